"""``thermolearn landscape ...``: model files, diagnostics of them, one-line errors."""

import pytest
import torch
from typer.testing import CliRunner

from thermolearn.cli import app
from thermolearn.landscape import load_mlp

runner = CliRunner()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("mlp") / "digits.safetensors"
    r = runner.invoke(app, ["landscape", "train-mlp", "--out", str(out), "--hidden", "16", "--epochs", "2",
                            "--examples", "300", "--float64"])
    assert r.exit_code == 0, r.output
    return out


def test_train_mlp_writes_a_model_that_reloads(model_file):
    model = load_mlp(model_file)
    assert model.sizes == [64, 16, 10] and next(model.parameters()).dtype == torch.float64


@pytest.mark.parametrize("args, option", [
    (["--hidden", "0"], "--hidden"),
    (["--activation", "swish"], "--activation"),
    (["--epochs", "-1"], "--epochs"),
    (["--lr", "0"], "--lr"),
    (["--examples", "0"], "--examples"),
    (["--data", "nowhere.npz"], "--data"),
])
def test_train_mlp_bad_options_are_one_line_errors(tmp_path, args, option):
    r = runner.invoke(app, ["landscape", "train-mlp", "--out", str(tmp_path / "m.safetensors"), *args])
    assert r.exit_code == 2
    assert r.output.strip().splitlines()[-1].startswith(f"error: {option}:"), r.output
    assert not (tmp_path / "m.safetensors").exists()


def test_phase_diagram_prints_the_critical_line_and_writes_json(tmp_path):
    import json

    out = tmp_path / "pd.json"
    r = runner.invoke(app, ["landscape", "phase-diagram", "--sigma-b2", "0.05", "--points", "8", "--json", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert abs(data["critical_sigma_w2"][0] - 1.761) < 1e-3
    assert len(data["xi_c"][0]) == 8


def test_hessian_of_a_model_file_matches_the_library(model_file, tmp_path):
    import json

    from torch import nn

    from thermolearn.data import load_dataset
    from thermolearn.landscape import hessian_eigenvalues

    out = tmp_path / "h.json"
    r = runner.invoke(app, ["landscape", "hessian", str(model_file), "--examples", "200", "--k", "2",
                            "--json", str(out)])
    assert r.exit_code == 0, r.output
    got = json.loads(out.read_text())
    ds = load_dataset("digits", binarize=None)
    ref = hessian_eigenvalues(load_mlp(model_file), nn.CrossEntropyLoss(),
                              (ds.train[:200].double(), ds.train_labels[:200].long()), k=2, seed=0)
    assert got["examples"] == 200 and got["converged"]
    assert torch.allclose(torch.tensor(got["eigenvalues"], dtype=torch.float64), ref.eigenvalues, rtol=1e-5)


def test_weight_spectra_of_a_model_file(model_file, tmp_path):
    import json

    out = tmp_path / "w.json"
    r = runner.invoke(app, ["landscape", "weight-spectra", str(model_file), "--null", "shuffle",
                            "--bootstrap", "20", "--json", str(out)])
    assert r.exit_code == 0, r.output
    layers = json.loads(out.read_text())["layers"]
    assert [(L["N"], L["M"]) for L in layers] == [(64, 16), (16, 10)]
    assert all("shuffle" in L for L in layers)


@pytest.mark.parametrize("args, option", [
    (["phase-diagram", "--activation", "swish"], "--activation"),
    (["phase-diagram", "--sigma-b2", "-1"], "--sigma-b2"),
    (["phase-diagram", "--points", "1"], "--points"),
    (["phase-diagram", "--dropout", "0"], "--dropout"),
    (["hessian", "missing.safetensors"], "MODEL"),
    (["weight-spectra", "missing.safetensors"], "MODEL"),
    (["weight-spectra", "missing.safetensors", "--null", "random"], "--null"),
])
def test_diagnostic_bad_options_are_one_line_errors(args, option):
    r = runner.invoke(app, ["landscape", *args])
    assert r.exit_code == 2
    assert r.output.strip().splitlines()[-1].startswith(f"error: {option}:"), r.output


def test_hessian_refuses_data_of_another_width(model_file):
    r = runner.invoke(app, ["landscape", "hessian", str(model_file), "--data", "mnist", "--examples", "10"])
    assert r.exit_code == 2 and "--data:" in r.output and "expects 64" in r.output

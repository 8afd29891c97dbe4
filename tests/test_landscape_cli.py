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

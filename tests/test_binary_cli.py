"""``thermolearn binary solve``: solves, writes a self-contained solution file, clear errors."""

import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from binary_check import np_errors
from thermolearn.binary import errors, random_patterns
from thermolearn.cli import app
from thermolearn.io import load_tensors

runner = CliRunner()


def _row(output: str, name: str) -> str:
    """The value printed in the table row ``name``."""
    m = re.search(rf"│\s*{re.escape(name)}\s*│\s*(.*?)\s*│", output)
    assert m, f"no row {name!r} in:\n{output}"
    return m.group(1)


@pytest.mark.parametrize("algo", ["rsgd", "sa"])
def test_solves_a_small_perceptron_and_the_file_reloads(tmp_path, algo):
    out = tmp_path / f"{algo}.safetensors"
    r = runner.invoke(app, ["binary", "solve", "--N", "51", "--alpha", "0.3", "--algo", algo,
                            "--seed", "3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert _row(r.output, "N") == "51" and _row(r.output, "M") == "15" and _row(r.output, "K") == "1"
    assert _row(r.output, "converged") == "yes"
    printed = int(_row(r.output, "errors").split("/")[0])
    assert printed == 0 and str(out) in r.output
    tensors, meta = load_tensors(out, kind="binary-solution")
    W, X, y = tensors["weights"], tensors["X"], tensors["y"]
    assert W.shape == (51,) and X.shape == (15, 51) and y.shape == (15,)
    assert W.dtype == torch.int8
    # the weights in the file have the printed error count, counted two independent ways
    assert int(errors(W, X, y)) == np_errors(W, X, y) == printed == meta["errors"]
    assert meta["algo"] == algo and meta["N"] == 51 and meta["K"] == 1 and meta["alpha"] == 0.3
    assert meta["converged"] is True and meta["seed"] == 3 and meta["arch"] == "perceptron"
    assert "teacher" not in tensors


def test_same_seed_same_problem_and_solution(tmp_path):
    files = [tmp_path / "a.safetensors", tmp_path / "b.safetensors"]
    for f in files:
        r = runner.invoke(app, ["binary", "solve", "--N", "31", "--alpha", "0.4", "--algo", "sgd",
                                "--out", str(f)])
        assert r.exit_code == 0, r.output
    (ta, _), (tb, _) = (load_tensors(f) for f in files)
    for key in ("weights", "X", "y"):
        assert torch.equal(ta[key], tb[key])
    # the solver's initial weights are not drawn from the problem's stream
    X, _ = random_patterns(31, 0.4, seed=0)
    assert not torch.equal(ta["X"], X)


def test_npz_input(tmp_path):
    X, y = random_patterns(41, 0.35, seed=5)
    path = tmp_path / "p.npz"
    np.savez(path, X=X.numpy().astype(np.float64), y=y.numpy())
    out = tmp_path / "s.safetensors"
    r = runner.invoke(app, ["binary", "solve", "--patterns", str(path), "--algo", "rsgd",
                            "--max-iter", "300", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert _row(r.output, "N") == "41" and _row(r.output, "M") == str(X.shape[0])
    tensors, meta = load_tensors(out)
    assert torch.equal(tensors["X"], X) and torch.equal(tensors["y"], y)
    assert meta["alpha"] == pytest.approx(X.shape[0] / 41) and meta["patterns"] == str(path)
    assert int(errors(tensors["weights"], X, y)) == meta["errors"] == int(_row(r.output, "errors").split("/")[0])


def test_committee_with_teacher_reports_generalization(tmp_path):
    out = tmp_path / "c.safetensors"
    r = runner.invoke(app, ["binary", "solve", "--arch", "committee", "--N", "27", "--K", "3",
                            "--alpha", "0.3", "--teacher", "--n-test", "2000", "--algo", "rsgd",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    gen = float(_row(r.output, "generalization error").split()[0])
    assert 0.0 <= gen <= 0.6
    tensors, meta = load_tensors(out)
    assert tensors["weights"].shape == (3, 27) and tensors["teacher"].shape == (3, 27)
    assert meta["generalization_error"] == pytest.approx(gen, abs=1e-4)
    X, y, T = tensors["X"], tensors["y"], tensors["teacher"]
    assert int(errors(T, X, y, 3)) == 0                      # the labels are the teacher's
    assert int(errors(tensors["weights"], X, y, 3)) == meta["errors"]


def test_committee_tree_is_passed_through(tmp_path):
    out = tmp_path / "t.safetensors"
    r = runner.invoke(app, ["binary", "solve", "--arch", "committee", "--N", "45", "--K", "3",
                            "--tree", "--alpha", "0.3", "--algo", "sgd", "--max-iter", "50",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    tensors, meta = load_tensors(out)
    assert tensors["weights"].shape == (3, 15) and meta["tree"] is True and meta["n_weights"] == 45


@pytest.mark.parametrize("args,option", [
    (["--N", "50"], "--N"),
    (["--N", "-3"], "--N"),
    (["--arch", "committee", "--K", "4", "--N", "21"], "--K"),
    (["--arch", "committee", "--K", "1"], "--K"),
    (["--K", "3"], "--K"),
    (["--alpha", "0"], "--alpha"),
    (["--alpha", "-0.5"], "--alpha"),
    (["--N", "11", "--alpha", "0.01"], "--alpha"),
    (["--algo", "bp"], "--algo"),
    (["--arch", "mlp"], "--arch"),
    (["--tree"], "--tree"),
    (["--arch", "committee", "--K", "3", "--N", "31", "--tree"], "--N"),
    (["--algo", "rsgd", "--steps", "3"], "--steps"),
    (["--algo", "rsgd", "--max-iter", "0"], "--max-iter"),
    (["--algo", "rsgd", "--replicas", "0"], "--replicas"),
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2**63)], "--seed"),
    (["--algo", "fbp", "--replicas", "3"], "--replicas"),
    (["--n-test", "0"], "--n-test"),
])
@pytest.mark.parametrize("columns", ["60", "80", "132"])
def test_bad_options_exit_2_naming_the_option(tmp_path, args, option, columns):
    out = tmp_path / "x.safetensors"
    r = runner.invoke(app, ["binary", "solve", "--N", "21", "--alpha", "0.3", *args, "--out", str(out)],
                      env={"COLUMNS": columns})
    assert r.exit_code == 2, r.output
    assert "error:" in r.output and option in r.output, r.output
    assert "Traceback" not in r.output and not out.exists()
    lines = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}"), r.output


def _long_folder(tmp_path):
    deep = tmp_path.joinpath(*["a-rather-long-folder-name-for-wrapping"] * 5)
    deep.mkdir(parents=True)
    return deep


@pytest.mark.parametrize("columns", ["60", "80", "132"])
@pytest.mark.parametrize("case", ["missing-folder", "parent-is-a-file", "folder"])
def test_out_that_cannot_be_written_is_refused_before_solving(tmp_path, monkeypatch, columns, case):
    import thermolearn.binary.algorithms as algorithms

    def must_not_run(*args, **kwargs):
        raise AssertionError("the solver ran before --out was checked")

    monkeypatch.setattr(algorithms, "solver_function", lambda algo: must_not_run)
    base = _long_folder(tmp_path)
    if case == "missing-folder":
        out = base / "missing" / "x.safetensors"
    elif case == "parent-is-a-file":
        (base / "file").write_text("not a folder")
        out = base / "file" / "x.safetensors"
    else:
        out = base
    r = runner.invoke(app, ["binary", "solve", "--N", "21", "--alpha", "0.3", "--out", str(out)],
                      env={"COLUMNS": columns})
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith("error: --out:"), r.output
    assert "Traceback" not in r.output and not (base / "missing").exists()


@pytest.mark.parametrize("option,value,names", [
    ("--algo", "bp", ["fbp", "rsgd", "sgd", "rsa", "sa"]),
    ("--arch", "mlp", ["perceptron", "committee"]),
])
def test_unknown_names_list_the_valid_ones(tmp_path, option, value, names):
    out = _long_folder(tmp_path) / "x.safetensors"
    r = runner.invoke(app, ["binary", "solve", option, value, "--out", str(out)], env={"COLUMNS": "60"})
    assert r.exit_code == 2 and "Traceback" not in r.output
    line = next(line for line in r.output.splitlines() if line.startswith("error:"))
    assert line.startswith(f"error: {option}:") and all(n in line for n in names), r.output


@pytest.mark.parametrize("alpha,arch,warned", [("100", "perceptron", True), ("0.9", "perceptron", True),
                                               ("0.9", "committee", False), ("1.2", "committee", True),
                                               ("0.3", "perceptron", False)])
def test_loads_beyond_capacity_warn_and_still_solve(tmp_path, alpha, arch, warned):
    out = _long_folder(tmp_path) / "x.safetensors"
    args = ["binary", "solve", "--arch", arch, "--N", "21", "--alpha", alpha, "--algo", "sgd",
            "--max-iter", "2", "--no-progress", "--out", str(out)]
    if arch == "committee":
        args += ["--K", "3"]
    r = runner.invoke(app, args, env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    assert ("warning: --alpha:" in r.output) == warned, r.output
    assert out.exists()


def test_teacher_labels_never_warn(tmp_path):
    out = tmp_path / "x.safetensors"
    r = runner.invoke(app, ["binary", "solve", "--N", "21", "--alpha", "2", "--teacher", "--algo", "sgd",
                            "--max-iter", "2", "--n-test", "10", "--out", str(out)])
    assert r.exit_code == 0 and "warning" not in r.output, r.output


def test_progress_is_shown_on_stderr_and_can_be_turned_off(tmp_path):
    out = tmp_path / "x.safetensors"
    base = ["binary", "solve", "--N", "21", "--alpha", "0.9", "--algo", "sgd", "--max-iter", "3",
            "--out", str(out)]
    shown = runner.invoke(app, base)
    assert shown.exit_code == 0 and "3/3" in shown.output and "epoch" in shown.output, shown.output
    quiet = runner.invoke(app, base + ["--no-progress"])
    assert quiet.exit_code == 0 and "3/3" not in quiet.output, quiet.output


def test_unimplemented_architecture_is_a_clean_error(tmp_path, monkeypatch):
    """A solver that does not handle K > 1 (or tree) raises NotImplementedError: exit 2, no traceback."""
    import thermolearn.binary.algorithms as helpers

    def not_yet(X, y, K=1, seed=0, **kw):
        raise NotImplementedError(f"K: committee machines (K = {K}) are future work")

    monkeypatch.setattr(helpers, "solver_function", lambda algo: not_yet)
    out = tmp_path / "x.safetensors"
    r = runner.invoke(app, ["binary", "solve", "--arch", "committee", "--K", "3", "--N", "21",
                            "--alpha", "0.3", "--algo", "fbp", "--out", str(out)])
    assert r.exit_code == 2 and "--algo fbp" in r.output and "K = 3" in r.output, r.output
    assert "Traceback" not in r.output and not out.exists()


def test_bad_pattern_files(tmp_path):
    X, y = random_patterns(21, 0.5, seed=0)
    cases = {}
    np.savez(tmp_path / "nolabels.npz", X=X.numpy())
    cases["nolabels.npz"] = "missing array(s) y"
    np.savez(tmp_path / "zeros.npz", X=(X.numpy() > 0).astype(np.int8), y=y.numpy())
    cases["zeros.npz"] = "X: expected entries"
    np.savez(tmp_path / "short.npz", X=X.numpy(), y=y.numpy()[:-1])
    cases["short.npz"] = "y: expected shape"
    np.savez(tmp_path / "even.npz", X=np.ones((5, 20), np.int8), y=np.ones(5, np.int8))
    cases["even.npz"] = "X has N = 20 columns; expected an odd number"
    np.savez(tmp_path / "flat.npz", X=np.ones(21, np.int8), y=np.ones(1, np.int8))
    cases["flat.npz"] = "X: expected a 2-d array"
    (tmp_path / "junk.npz").write_bytes(b"not an archive at all")
    cases["junk.npz"] = "not a readable .npz file"
    np.save(tmp_path / "single.npy", X.numpy())
    cases["single.npy"] = "single array"
    cases["missing.npz"] = "no such file"
    for name, text in cases.items():
        r = runner.invoke(app, ["binary", "solve", "--patterns", str(tmp_path / name),
                                "--out", str(tmp_path / "o.safetensors")])
        assert r.exit_code == 2, (name, r.output)
        assert "--patterns" in r.output and text in r.output, (name, r.output)
        assert "Traceback" not in r.output
    np.savez(tmp_path / "good.npz", X=X.numpy(), y=y.numpy())
    for extra, option in ((["--N", "23"], "--N"), (["--alpha", "0.9"], "--alpha"), (["--teacher"], "--teacher")):
        r = runner.invoke(app, ["binary", "solve", "--patterns", str(tmp_path / "good.npz"), *extra,
                                "--out", str(tmp_path / "o.safetensors")])
        assert r.exit_code == 2 and option in r.output, r.output
    assert not (tmp_path / "o.safetensors").exists()


def test_out_is_a_folder(tmp_path):
    r = runner.invoke(app, ["binary", "solve", "--N", "21", "--alpha", "0.3", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--out" in r.output

"""thermolearn rbm train | evaluate: results read from files and --json, never from table text;
every bad input a one-line error naming the option, at any terminal width and path length."""

import json
import os

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from thermolearn.cli import _common, app
from thermolearn.ebm import RBM
from thermolearn.io import load_tensors

runner = CliRunner()

SMALL = ["--data", "digits", "--hidden", "6", "--batch-size", "20", "--lr", "0.05"]


def train_args(out, epochs, *extra):
    return ["rbm", "train", *SMALL, "--epochs", str(epochs), "--out", str(out), *extra]


def test_train_resume_and_evaluate_on_digits(tmp_path):
    out = tmp_path / "d.rbm"
    r = runner.invoke(app, train_args(out, 2))
    assert r.exit_code == 0, r.output
    assert out.exists() and (tmp_path / "d.rbm.ckpt").exists()
    assert not (tmp_path / "d.rbm.ckpt.part").exists()
    # more epochs on the same command line continue from the checkpoint
    r = runner.invoke(app, train_args(out, 3))
    assert r.exit_code == 0, r.output
    meta = load_tensors(out)[1]
    assert meta["epochs"] == 3 and [rec["step"] for rec in meta["history"]] == [1, 2, 3]
    assert meta["settings"]["lr"] == 0.05 and meta["settings"]["batch_size"] == 20
    assert RBM.load(out).n_visible == 64
    js = tmp_path / "eval.json"
    r = runner.invoke(app, ["rbm", "evaluate", str(out), "--betas", "300", "--raise-betas", "300",
                            "--raise-examples", "20", "--json", str(js)])
    assert r.exit_code == 0, r.output
    res = json.loads(js.read_text())
    for key in ("exact_test_ll", "ais_test_ll", "raise_test_ll", "tap2_test_ll", "tap3_test_ll",
                "independent_test_ll"):
        assert np.isfinite(res[key]), key
    assert abs(res["ais_log_z"] - res["exact_log_z"]) < 6 * res["ais_stderr"] + 0.05


def _free_energy(path):
    rbm = RBM.load(path)
    from thermolearn.data import load_digits
    return float(rbm.free_energy(load_digits().test).double().mean())


def test_a_diverged_run_loses_nothing_and_a_changed_lr_is_refused(tmp_path):
    """The data-loss sequence: a good model, a diverging --no-resume run, the good command again."""
    out = tmp_path / "g.rbm"
    ckpt = tmp_path / "g.rbm.ckpt"
    good = train_args(out, 3)
    assert runner.invoke(app, good).exit_code == 0
    model, checkpoint = out.read_bytes(), ckpt.read_bytes()
    good_W, good_F = RBM.load(out).W, _free_energy(out)
    assert -60 < good_F < 0

    bad = runner.invoke(app, [*good[:-4], "--lr", "1e6", *good[-4:], "--no-resume"])
    assert bad.exit_code == 1, bad.output
    assert "NaN/Inf" in bad.output and "Traceback" not in bad.output
    assert "left as it was" in bad.output
    assert out.read_bytes() == model and ckpt.read_bytes() == checkpoint
    assert not (tmp_path / "g.rbm.ckpt.part").exists()

    again = runner.invoke(app, good)                     # resumes the good, finished checkpoint
    assert again.exit_code == 0, again.output
    assert torch.equal(RBM.load(out).W, good_W) and _free_energy(out) == good_F

    for option, value, setting in (("--lr", "0.02", "lr"), ("--momentum", "0.9", "momentum"),
                                   ("--batch-size", "10", "batch_size"), ("--seed", "1", "seed")):
        args = [a if a != str(out) else str(out) for a in good] + [option, value]
        r = runner.invoke(app, args)
        assert r.exit_code == 2, r.output
        line = next(x for x in r.output.splitlines() if x.startswith("error:"))
        assert line.startswith(f"error: {option}: ") and setting in line and "--no-resume" in line
        assert "resume=False" not in line and "Traceback" not in r.output
        assert out.read_bytes() != b"" and torch.equal(RBM.load(out).W, good_W)
    assert ckpt.read_bytes() == checkpoint


def test_lr_decay_cannot_be_resumed_with_more_epochs(tmp_path):
    out = tmp_path / "d.rbm"
    assert runner.invoke(app, train_args(out, 2, "--lr-decay")).exit_code == 0
    r = runner.invoke(app, train_args(out, 3, "--lr-decay"))
    assert r.exit_code == 2 and "error: --lr: " in r.output and "--lr-decay" in r.output
    assert load_tensors(out)[1]["epochs"] == 2


def test_training_on_probabilities_is_a_checkpointed_option(tmp_path):
    out = tmp_path / "p.rbm"
    r = runner.invoke(app, train_args(out, 2, "--probabilities"))
    assert r.exit_code == 0, r.output
    meta = load_tensors(out)[1]
    assert meta["probabilities"] is True and meta["settings"]["probabilities"] is True
    r = runner.invoke(app, train_args(out, 3))              # resuming without it: another trajectory
    assert r.exit_code == 2 and "error: --probabilities: " in r.output and "Traceback" not in r.output
    assert load_tensors(out)[1]["epochs"] == 2


def test_tap_magnetizations_from_the_data_is_a_checkpointed_option(tmp_path):
    out = tmp_path / "t.rbm"
    r = runner.invoke(app, train_args(out, 1, "--method", "tap2", "--magnetizations", "data"))
    assert r.exit_code == 0, r.output
    assert load_tensors(out)[1]["settings"]["magnetizations"] == "data"
    r = runner.invoke(app, train_args(out, 2, "--method", "tap2"))     # persistent: another trajectory
    assert r.exit_code == 2 and "error: --magnetizations: " in r.output and "Traceback" not in r.output
    for bad in (["--method", "pcd", "--magnetizations", "data"], ["--method", "tap2", "--magnetizations", "x"]):
        r = runner.invoke(app, train_args(tmp_path / "b.rbm", 1, *bad))
        assert r.exit_code == 2 and "error: --magnetizations: " in r.output and "Traceback" not in r.output
        assert not (tmp_path / "b.rbm").exists()


# -- bad inputs: exit code 2, one line naming the option, no traceback, nothing written ---------

@pytest.fixture(scope="module")
def model(tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m.rbm"
    r = runner.invoke(app, train_args(out, 1))
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(params=[(60, False), (80, False), (132, False), (80, True)],
                ids=["60-columns", "80-columns", "132-columns", "long-path"])
def where(request, tmp_path, monkeypatch):
    """A folder (very deep for "long-path") and a terminal width for the consoles."""
    columns, deep = request.param
    monkeypatch.setenv("COLUMNS", str(columns))
    for console in (_common.console, _common.err_console):
        monkeypatch.setattr(console, "width", columns)
    folder = tmp_path
    if deep:
        for i in range(8):
            folder = folder / f"a-rather-long-folder-name-to-make-the-path-wrap-{i}"
        folder.mkdir(parents=True)
    return folder


def _other_width_npz(folder):
    path = folder / "wide.npz"
    rng = np.random.default_rng(0)
    np.savez(path, train=(rng.random((40, 10)) > 0.5).astype(np.float32),
             test=(rng.random((10, 10)) > 0.5).astype(np.float32))
    return path


CASES = {
    "evaluate-other-width": (lambda m, f: ["rbm", "evaluate", str(m), "--data", str(_other_width_npz(f))], "--data"),
    "evaluate-chains-0": (lambda m, f: ["rbm", "evaluate", str(m), "--chains", "0"], "--chains"),
    "evaluate-betas-1": (lambda m, f: ["rbm", "evaluate", str(m), "--betas", "1"], "--betas"),
    "evaluate-betas-foo": (lambda m, f: ["rbm", "evaluate", str(m), "--betas", "foo"], "--betas"),
    "evaluate-raise-betas-foo": (lambda m, f: ["rbm", "evaluate", str(m), "--raise-betas", "x"], "--raise-betas"),
    "evaluate-json-missing-folder": (lambda m, f: ["rbm", "evaluate", str(m), "--json", str(f / "no" / "r.json")],
                                     "--json"),
    "evaluate-not-a-model": (lambda m, f: ["rbm", "evaluate", str(_junk(f))], "MODEL"),
    "evaluate-binarize": (lambda m, f: ["rbm", "evaluate", str(m), "--binarize", "round"], "--binarize"),
    "train-out-missing-folder": (lambda m, f: train_args(f / "no" / "x.rbm", 1), "--out"),
    "train-out-is-a-folder": (lambda m, f: train_args(f, 1), "--out"),
    "train-lr-negative": (lambda m, f: train_args(f / "x.rbm", 1, "--lr", "-1"), "--lr"),
    "train-momentum-2": (lambda m, f: train_args(f / "x.rbm", 1, "--momentum", "2"), "--momentum"),
    "train-epochs-0": (lambda m, f: train_args(f / "x.rbm", 0), "--epochs"),
    "train-hidden-0": (lambda m, f: train_args(f / "x.rbm", 1, "--hidden", "0"), "--hidden"),
    "train-batch-size-0": (lambda m, f: train_args(f / "x.rbm", 1, "--batch-size", "0"), "--batch-size"),
    "train-weight-decay": (lambda m, f: train_args(f / "x.rbm", 1, "--weight-decay", "-1"), "--weight-decay"),
    "train-k-0": (lambda m, f: train_args(f / "x.rbm", 1, "--k", "0"), "--k"),
    "train-beta-0": (lambda m, f: train_args(f / "x.rbm", 1, "--beta", "0"), "--beta"),
    "train-seed": (lambda m, f: train_args(f / "x.rbm", 1, "--seed", "-1"), "--seed"),
    "train-method": (lambda m, f: train_args(f / "x.rbm", 1, "--method", "sgd"), "--method"),
    "train-data": (lambda m, f: train_args(f / "x.rbm", 1, "--data", str(f / "nosuch.npz")), "--data"),
}


def _junk(folder):
    path = folder / "junk.rbm"
    path.write_bytes(b"\x80\x04\x95 not a model, a pickle header")
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_naming_the_option(case, model, where):
    make_args, option = CASES[case]
    args = make_args(model, where)
    before = sorted(p.name for p in where.rglob("*"))
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    errors = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {option}: "), r.output
    assert "exact" not in r.output and "AIS" not in r.output      # no evaluation ran
    created = set(p.name for p in where.rglob("*")) - set(before)
    assert not created, created                                    # nothing was written
    if "missing-folder" in case:                                   # the path is on the one line
        assert str(where / "no") in errors[0]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_out_is_refused_before_training(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        r = runner.invoke(app, train_args(folder / "x.rbm", 1))
    finally:
        folder.chmod(0o700)
    assert r.exit_code == 2 and r.output.startswith("error: --out: ") and "training" not in r.output


# -- defaults that work on the default dataset ------------------------------------------------

def test_default_training_beats_independent_pixels_by_two_nats(tmp_path):
    """``rbm train --data digits`` with no other option; evaluated exactly (the short ladders
    only shorten the AIS rows, the exact log-likelihood does not depend on them)."""
    out, js = tmp_path / "default.rbm", tmp_path / "default.json"
    r = runner.invoke(app, ["rbm", "train", "--data", "digits", "--out", str(out)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["rbm", "evaluate", str(out), "--betas", "100", "--raise-examples", "0",
                            "--json", str(js)])
    assert r.exit_code == 0, r.output
    res = json.loads(js.read_text())
    print(f"default training: exact_test_ll {res['exact_test_ll']:.3f}, "
          f"independent_test_ll {res['independent_test_ll']:.3f}")
    assert res["exact_test_ll"] >= res["independent_test_ll"] + 2.0, res


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_default_train_and_default_evaluate(tmp_path):
    out, js = tmp_path / "default.rbm", tmp_path / "default.json"
    assert runner.invoke(app, ["rbm", "train", "--data", "digits", "--out", str(out)]).exit_code == 0
    r = runner.invoke(app, ["rbm", "evaluate", str(out), "--json", str(js)])
    assert r.exit_code == 0, r.output
    res = json.loads(js.read_text())
    print({k: round(res[k], 3) for k in ("exact_test_ll", "ais_test_ll", "raise_test_ll",
                                         "independent_test_ll")})
    assert res["exact_test_ll"] >= res["independent_test_ll"] + 2.0, res
    assert abs(res["ais_test_ll"] - res["exact_test_ll"]) < 3 * res["ais_stderr"] + 0.05

import json

from typer.testing import CliRunner

from thermolearn.cli import app
from thermolearn.ebm import RBM

runner = CliRunner()


def test_train_resume_and_evaluate_on_digits(tmp_path):
    out = tmp_path / "d.rbm"
    args = ["rbm", "train", "--data", "digits", "--hidden", "6", "--epochs", "2", "--batch-size", "20",
            "--lr", "0.05", "--out", str(out)]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert out.exists() and (tmp_path / "d.rbm.ckpt").exists()
    # more epochs on the same command line continue from the checkpoint
    r = runner.invoke(app, args[:7] + ["3"] + args[8:])
    assert r.exit_code == 0, r.output
    assert "epochs 3" in r.output
    assert len(RBM.load(out).W) == 64
    js = tmp_path / "eval.json"
    r = runner.invoke(app, ["rbm", "evaluate", str(out), "--betas", "300", "--raise-betas", "300",
                            "--raise-examples", "20", "--json", str(js)])
    assert r.exit_code == 0, r.output
    for word in ("exact", "AIS", "reverse AIS", "TAP2", "TAP3"):
        assert word in r.output
    res = json.loads(js.read_text())
    assert abs(res["ais_log_z"] - res["exact_log_z"]) < 6 * res["ais_stderr"] + 0.05


def test_bad_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.rbm"
    bad.write_bytes(b"\x80\x04garbage")
    r = runner.invoke(app, ["rbm", "evaluate", str(bad)])
    assert r.exit_code == 2
    assert "not a readable thermolearn model file" in r.output
    assert "Traceback" not in r.output


def test_unknown_dataset_and_method_are_clear_errors(tmp_path):
    r = runner.invoke(app, ["rbm", "train", "--data", "nosuch.npz", "--out", str(tmp_path / "x.rbm")])
    assert r.exit_code == 2 and "nosuch.npz" in r.output
    r = runner.invoke(app, ["rbm", "train", "--method", "sgd", "--epochs", "1", "--out", str(tmp_path / "x.rbm")])
    assert r.exit_code == 2 and "method" in r.output

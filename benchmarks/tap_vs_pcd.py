"""TAP training against PCD on MNIST, each method at its own learning rates.

    python benchmarks/tap_vs_pcd.py [--epochs 10] [--hidden 500] [--runs pcd:0.01,0.05 tap2:0.1,0.5]
                                    [--data mnist|digits] [--batch-size 100] [--magnetizations data]
                                    [--out runs/tap_vs_pcd.jsonl]

Every run: an RBM (visible biases at the logit of the pixel means, W ~ N(0, 0.01^2), or the
standard deviation ``--init-std``) trained on
MNIST (Salakhutdinov & Murray 2008 stochastic binarization, seed 0) for ``--epochs`` epochs,
batch 100, momentum 0.5, weight decay 1e-4, a constant learning rate (the mean gradient over
the batch times lr; the authors of TAP training quote a rate per example, which is lr / 100
here), 3 damped fixed-point sweeps per update for TAP, started from the magnetizations of the
previous update (``--magnetizations persistent``, the default) or from the batch (``data``, as
in the authors' reference codes). Evaluated on the first 2000 test images:
forward AIS (100 chains, the S&M08 ladder of 14,501 temperatures: log Z and the test
log-likelihood with log Z ± 3 sigma), reverse AIS on 20 test images (4 chains each, same
ladder), and the TAP2 and TAP3 estimates of log Z. One JSON line per run is appended to
``--out``; runs already there are skipped (the script resumes), and the table of all runs is
printed at the end.

With ``--data digits`` (scikit-learn's 8x8 digits, thresholded; use at most 20 hidden units) the
test log-likelihood is exact (log Z by enumeration), so the training methods are compared without
estimator noise and the TAP estimates of log Z are checked against the exact value.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

DEFAULT_RUNS = ["pcd:0.01,0.05", "tap2:0.05,0.2,0.5,1.0", "tap3:0.2,0.5"]


def parse_runs(specs):
    runs = []
    for spec in specs:
        method, _, lrs = spec.partition(":")
        runs += [(method, float(lr)) for lr in lrs.split(",")]
    return runs


def one_run(method, lr, epochs, hidden, data="mnist", batch_size=100, init_std=0.01, seed=0,
            magnetizations="persistent"):
    import torch

    from thermolearn.data import load_digits, load_mnist
    from thermolearn.ebm import RBM, base_rate_bias, evaluate_rbm, train
    from thermolearn.errors import TrainingDiverged

    ds = load_mnist(binarize="stochastic", seed=0) if data == "mnist" else load_digits(binarize="threshold", seed=0)
    test = ds.test[:2000]
    rbm = RBM(ds.train.shape[1], hidden, seed=seed)
    rbm.W.mul_(init_std / 0.01)                          # RBM draws W ~ N(0, 0.01^2)
    rbm.visible_bias.copy_(base_rate_bias(ds.train))
    t0 = time.perf_counter()
    head = {"data": data, "method": method, "lr": lr, "epochs": epochs, "hidden": hidden, "batch_size": batch_size,
            "init_std": init_std, "magnetizations": magnetizations}
    try:
        res = train(rbm, ds.train, method=method, epochs=epochs, batch_size=batch_size, lr=lr, momentum=0.5,
                    weight_decay=1e-4, validation=test, seed=seed,
                    magnetizations=magnetizations if method in ("mf", "tap2", "tap3") else "persistent")
    except TrainingDiverged as exc:
        return {**head, "diverged": str(exc)[:200]}
    train_s = time.perf_counter() - t0
    if data == "mnist":
        ev = evaluate_rbm(rbm, ds.train, test, n_chains=100, n_betas="sm08", raise_examples=20,
                          raise_chains=4, raise_betas="sm08", raise_splits=("test",), tap_orders=(2, 3), seed=seed)
    else:
        ev = evaluate_rbm(rbm, ds.train, test, n_chains=100, n_betas=2000, raise_examples=0, tap_orders=(2, 3),
                          seed=seed)
        ev["ais_test_ll"] = ev.pop("exact_test_ll")        # the table's first column: exact here
        ev.pop("ais_test_ll_lower"), ev.pop("ais_test_ll_upper")
    keep = ("exact_log_z", "ais_log_z", "ais_stderr", "ais_test_ll", "ais_test_ll_lower", "ais_test_ll_upper",
            "raise_test_ll", "ais_test_ll_same_examples", "tap2_log_z", "tap3_log_z", "tap2_test_ll",
            "tap3_test_ll", "independent_test_ll")
    out = {**head, "train_seconds": round(train_s, 1),
           "weight_norm": float(torch.linalg.norm(rbm.W)),
           "free_energy_gap": res.last.get("free_energy_gap")}
    out.update({k: ev[k] for k in keep if k in ev})
    return out


def table(rows, exact=False):
    first = "exact test LL" if exact else "AIS test LL"
    print(f"{'method':6s} {'lr':>6s} {'ep':>4s} {first:>12s} {'(-3s, +3s)':>20s} {'RAISE 20':>9s} "
          f"{'AIS same 20':>11s} {'TAP2 LL':>8s} {'TAP3 LL':>8s} {'|W|':>6s} {'train s':>8s}")
    for r in rows:
        name = r["method"] + ("/data" if r.get("magnetizations") == "data" else "")
        if "diverged" in r:
            print(f"{name:6s} {r['lr']:6g} {r['epochs']:4d}  diverged")
            continue
        lo, hi = r.get("ais_test_ll_lower", math.nan), r.get("ais_test_ll_upper", math.nan)
        print(f"{name:6s} {r['lr']:6g} {r['epochs']:4d} {r['ais_test_ll']:12.2f} ({lo:8.2f}, {hi:8.2f}) "
              f"{r.get('raise_test_ll', math.nan):9.2f} {r.get('ais_test_ll_same_examples', math.nan):11.2f} "
              f"{r.get('tap2_test_ll', math.nan):8.2f} {r.get('tap3_test_ll', math.nan):8.2f} "
              f"{r['weight_norm']:6.1f} {r['train_seconds']:8.1f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--runs", nargs="*", default=DEFAULT_RUNS, help="method:lr,lr,... (default %(default)s)")
    ap.add_argument("--data", choices=("mnist", "digits"), default="mnist")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--init-std", type=float, default=0.01, help="standard deviation of the initial weights")
    ap.add_argument("--magnetizations", choices=("persistent", "data"), default="persistent",
                    help="where the TAP sweeps of each update start")
    ap.add_argument("--out", default="runs/tap_vs_pcd.jsonl")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    def key(r):
        return (r.get("data", "mnist"), r["method"], r["lr"], r["epochs"], r["hidden"], r.get("batch_size", 100),
                r.get("init_std", 0.01), r.get("magnetizations", "persistent"))

    have = {key(r) for r in done}
    for method, lr in parse_runs(args.runs):
        mag = args.magnetizations if method in ("mf", "tap2", "tap3") else "persistent"
        if (args.data, method, lr, args.epochs, args.hidden, args.batch_size, args.init_std, mag) in have:
            continue
        r = one_run(method, lr, args.epochs, args.hidden, args.data, args.batch_size, args.init_std,
                    magnetizations=mag)
        with out.open("a") as f:
            f.write(json.dumps(r) + "\n")
        done.append(r)
        print(json.dumps(r), flush=True)
    table([r for r in done if key(r)[0] == args.data and r["epochs"] == args.epochs and r["hidden"] == args.hidden
           and key(r)[5] == args.batch_size and key(r)[6] == args.init_std
           and key(r)[7] in ("persistent", args.magnetizations)], exact=args.data == "digits")


if __name__ == "__main__":
    main()

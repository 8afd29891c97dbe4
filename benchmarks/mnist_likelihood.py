"""MNIST log-likelihood table: RBMs trained by CD-1, CD-25, PCD, TAP2, TAP3 (500 hidden) and
small 20-hidden models with exact log Z, each evaluated by AIS, reverse AIS and TAP.

    python benchmarks/mnist_likelihood.py [--only NAME ...] [--out runs/mnist] [--quick]

Data: MNIST with the Salakhutdinov & Murray (2008) stochastic binarization (seed 0). Each
model is trained with a checkpoint under --out, so an interrupted run resumes; a finished
model is not retrained. Evaluation: AIS with the S&M08 ladder (14,501 betas, 100 chains,
base rates from the training pixel means), reverse AIS on the first 50 test examples (4 chains
each) with the same ladder, TAP2/TAP3 from 100 training rows. Prints a Markdown table and
writes the figures to OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from thermolearn.data import load_mnist
from thermolearn.ebm import RBM, base_rate_bias, evaluate_rbm, train
from thermolearn.schedules import linear_decay

# name: (hidden, method, k, epochs, initial lr). All: batch 100, momentum 0.5, weight decay 1e-4,
# learning rate decaying linearly to 0 over the run, visible biases from the pixel means.
CONFIGS = {
    "pcd-20": (20, "pcd", 1, 100, 0.02),
    "pcd-500": (500, "pcd", 1, 150, 0.01),
    "cd1-500": (500, "cd", 1, 100, 0.01),
    "tap2-500": (500, "tap2", 3, 60, 0.01),
    "tap3-500": (500, "tap3", 3, 60, 0.01),
    "cd25-500": (500, "cd", 25, 20, 0.01),
    "cd1-20": (20, "cd", 1, 100, 0.02),
}


def run(name, ds, out: Path, quick: bool):
    hidden, method, k, epochs, lr = CONFIGS[name]
    if quick:
        epochs = max(1, epochs // 10)
    path = out / f"{name}.rbm"
    rbm = RBM(784, hidden, seed=0)
    rbm.visible_bias.copy_(base_rate_bias(ds.train).to(rbm.dtype))
    t0 = time.perf_counter()
    hist = train(rbm, ds.train, method=method, k=k, epochs=epochs, batch_size=100,
                 lr=linear_decay(lr, epochs), momentum=0.5, weight_decay=1e-4, validation=ds.test[:2000],
                 seed=0, checkpoint=out / f"{name}.ckpt", progress=True)
    train_seconds = sum(r["seconds"] for r in hist.records)
    rbm.save(path, extra={"method": method, "k": k, "epochs": epochs})
    res = evaluate_rbm(rbm, ds.train, ds.test, n_chains=100, n_betas="sm08", raise_examples=50,
                       raise_chains=4, raise_betas="sm08", raise_splits=("test",), tap_orders=(2, 3),
                       seed=0, progress=True)
    res.update(name=name, method=method, k=k, epochs=epochs, lr=lr, train_seconds=train_seconds,
               wall_seconds=time.perf_counter() - t0)
    return res


def row(r):
    f = lambda key: f"{r[key]:.2f}" if key in r else "-"  # noqa: E731
    return (f"| {r['name']} | {r['method']}-{r['k']} | {r['epochs']} | "
            f"{r['ais_log_z']:.2f} ± {3 * r['ais_stderr']:.2f} | {f('exact_log_z')} | "
            f"{r['ais_test_ll']:.2f} [{r['ais_test_ll_lower']:.2f}, {r['ais_test_ll_upper']:.2f}] | "
            f"{f('exact_test_ll')} | {r['raise_test_ll']:.2f} (AIS {r['ais_test_ll_same_examples']:.2f}) | "
            f"{f('tap2_test_ll')} | {f('tap3_test_ll')} | {r['train_seconds']:.0f} |")


HEADER = ("| model | method | epochs | AIS log Z ± 3σ | exact log Z | AIS test LL [±3σ] | exact test LL | "
          "reverse AIS test LL, 50 ex. (AIS same ex.) | TAP2 test LL | TAP3 test LL | train s |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--out", type=Path, default=Path("runs/mnist"))
    p.add_argument("--quick", action="store_true", help="a tenth of the epochs (a smoke run)")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ds = load_mnist(binarize="stochastic", seed=0)
    results_file = args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in args.only:
        results[name] = run(name, ds, args.out, args.quick)
        results_file.write_text(json.dumps(results, indent=1))
        print(HEADER)
        print(row(results[name]), flush=True)
    print("\n" + HEADER)
    for name in args.only:
        print(row(results[name]))


if __name__ == "__main__":
    main()

"""MNIST log-likelihood table: RBMs trained by CD-1, CD-25, PCD, TAP2, TAP3 (500 hidden) and
small 20-hidden models with exact log Z, each evaluated by AIS, reverse AIS and TAP.

    python benchmarks/mnist_likelihood.py [--only NAME ...] [--out runs/mnist] [--quick]

The points (settings) are those of the registered experiments rbm-mnist-likelihood and
rbm-small-exact (seed 0), run one after the other in this process with progress bars and
checkpoints under --out (an interrupted run resumes). Data: MNIST with the Salakhutdinov &
Murray (2008) stochastic binarization (seed 0). Evaluation: AIS with the S&M08 ladder (14,501 betas, 100 chains,
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

from thermolearn.experiments.ebm import rbm_mnist_likelihood as table500
from thermolearn.experiments.ebm import rbm_small_exact as small
from thermolearn.experiments.ebm._common import train_and_evaluate
from thermolearn.experiments.registry import expand

# the points of the two registered experiments (seed 0): the 500-hidden table and the 20-hidden
# models with exact log Z; names as in the experiments' grids
POINTS = {f"{p['method']}{p['k'] if p['method'] == 'cd' else ''}-{p['hidden']}": dict(p, seed=0)
          for grid in small.FULL_GRID for p in expand(grid)}
POINTS.update({p["model"]: dict(p, seed=0) for p in expand(table500.grid(table500.CONFIGS, "mnist", 100, "sm08"))})


def run(name, out: Path, quick: bool):
    p = dict(POINTS[name])
    if quick:
        p["epochs"] = max(1, p["epochs"] // 10)
    t0 = time.perf_counter()
    res = train_and_evaluate(p, checkpoint=out / f"{name}.ckpt", progress=True)
    res.update(name=name, method=p["method"], k=p["k"], epochs=p["epochs"], lr=p["lr"],
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
    p.add_argument("--only", nargs="*", default=list(POINTS), choices=list(POINTS))
    p.add_argument("--out", type=Path, default=Path("runs/mnist"))
    p.add_argument("--quick", action="store_true", help="a tenth of the epochs (a smoke run)")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in args.only:
        results[name] = run(name, args.out, args.quick)
        results_file.write_text(json.dumps(results, indent=1))
        print(HEADER)
        print(row(results[name]), flush=True)
    print("\n" + HEADER)
    for name in args.only:
        print(row(results[name]))


if __name__ == "__main__":
    main()

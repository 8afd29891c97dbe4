"""Binary perceptron, N = 1001: replicated solvers against their plain baselines (a slice of the
perceptron-capacity experiment, with its settings and its run function).

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/perceptron_baselines.py
        [--algos rsgd sgd rsa sa] [--alphas 0.4 0.5 0.6 0.7] [--seeds 0 1 2] [--max-epochs 1000]
        [--max-moves 50000000]

Each (algo, alpha, seed) point is run by thermolearn.experiments.binary.perceptron_capacity.run with the
full grid's settings of that algorithm (replicated SGD: y = 7; plain SGD: one replica, no
coupling; replicated annealing: y = 3, gamma 0.1; plain annealing: gamma 0), except for the
budgets given here. Errors are recounted by the experiment (solve_record) independently of the
solver. Prints one line per point and the success counts.
"""

from __future__ import annotations

import argparse


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algos", nargs="+", default=["rsgd", "sgd", "rsa", "sa"])
    p.add_argument("--alphas", type=float, nargs="+", default=[0.4, 0.5, 0.6, 0.7])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-epochs", type=int, default=1000)
    p.add_argument("--max-moves", type=int, default=50_000_000)
    args = p.parse_args()

    from thermolearn.experiments.binary.perceptron_capacity import FULL_GRID, run

    base = {g["algo"][0]: {k: v[0] for k, v in g.items()} for g in FULL_GRID}
    counts = {}
    for algo in args.algos:
        for alpha in args.alphas:
            for seed in args.seeds:
                params = dict(base[algo], alpha=alpha, seed=seed)
                if algo in ("rsgd", "sgd"):
                    params["max_iter"] = args.max_epochs
                if algo in ("rsa", "sa"):
                    params["max_iter"] = args.max_moves
                    params["patience"] = min(params["patience"], args.max_moves)
                r = run(params)[0]
                counts.setdefault((algo, alpha), []).append(r["errors"] == 0)
                print(f"{algo:5s} alpha={alpha:.2f} seed={seed}: errors={r['errors']:4d} "
                      f"steps={r['steps']:>10} {r['seconds']:7.1f} s", flush=True)
    print("solved:")
    for (algo, alpha), ok in counts.items():
        print(f"  {algo:5s} alpha={alpha:.2f}: {sum(ok)}/{len(ok)}")


if __name__ == "__main__":
    main()

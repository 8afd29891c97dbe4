"""Local energy of binary-perceptron solutions found by different solvers (flatness).

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/binary_local_energy.py [--N 401]
        [--alpha 0.4] [--seeds 0 1 2]

For each seed, one random instance (thermolearn.binary.random_patterns) is solved by focusing BP,
replicated SGD (y = 7), plain SGD, replicated annealing (y = 3, gamma 0.5) and plain annealing
(gamma = 0), all through thermolearn.experiments.binary._common.solve; then the local energy of every
solution that has zero errors (recounted here with NumPy) is measured with
thermolearn.binary.local_energy: the training error fraction after flipping a fraction p of the
weights, 200 draws per p. The claim tested (Baldassi et al., PNAS 2016): solvers driven by the
robust ensemble (fbp, rsgd, rsa) end in dense regions, so their error grows more slowly with p
than that of the plain solvers (sgd, sa), which find typical, isolated-looking solutions.
"""

from __future__ import annotations

import argparse

import numpy as np

FRACTIONS = [0.0, 0.005, 0.01, 0.02, 0.05, 0.1]
ALGOS = ["fbp", "rsgd", "rsa", "sgd", "sa"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--N", type=int, default=401)
    p.add_argument("--alpha", type=float, default=0.4)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--draws", type=int, default=200)
    args = p.parse_args()

    from thermolearn.binary import local_energy, random_patterns, solve
    from thermolearn.schedules import Geometric

    anneal = dict(max_iter=200_000_000, patience=20_000_000)
    settings = {
        "fbp": dict(),
        "rsgd": dict(max_iter=2000),
        "sgd": dict(max_iter=2000),
        "rsa": dict(replicas=3, options=dict(beta=Geometric(0.2, 1.0001), gamma=Geometric(0.5, 1.0001)), **anneal),
        "sa": dict(options=dict(beta=Geometric(0.2, 1.0001)), **anneal),
    }
    print(f"N={args.N}, alpha={args.alpha}, draws={args.draws}; training error fraction after "
          f"flipping a fraction p of the weights (mean over draws)")
    print(f"{'seed':>4} {'algo':>5} {'solved':>6} {'sec':>6}  " + " ".join(f"p={f:<6g}" for f in FRACTIONS))
    curves = {a: [] for a in ALGOS}
    for seed in args.seeds:
        X, y = random_patterns(args.N, args.alpha, seed)
        Xn, yn = X.numpy().astype(np.int64), y.numpy().astype(np.int64)
        for algo in ALGOS:
            r = solve(algo, X, y, seed=seed, **settings[algo])
            W = r.weights.numpy().astype(np.int64)
            errs = int(((Xn @ W) * yn <= 0).sum())
            if errs:
                print(f"{seed:>4} {algo:>5} {'no':>6} {r.seconds:6.1f}  ({errs} errors left)", flush=True)
                continue
            le = local_energy(r.weights, X, y, fractions=FRACTIONS, draws=args.draws, seed=seed)
            curves[algo].append(le.mean)
            print(f"{seed:>4} {algo:>5} {'yes':>6} {r.seconds:6.1f}  " + " ".join(f"{v:<8.4f}" for v in le.mean),
                  flush=True)
    print("mean over solved seeds:")
    for algo in ALGOS:
        if curves[algo]:
            m = np.mean(curves[algo], 0)
            print(f"     {algo:>5} ({len(curves[algo])} solved)        " + " ".join(f"{v:<8.4f}" for v in m))


if __name__ == "__main__":
    main()

"""Focusing BP on the binary perceptron: cost of one parallel sweep against two matrix-vector passes.

    OMP_NUM_THREADS=1 python benchmarks/bench_fbp.py [--N 1001] [--alpha 0.7]

Times ``focusing_bp`` for one protocol step of plain BP capped at --sweeps sweeps (tol 1e-300, so every
sweep runs) and divides by the sweeps done; the floor is X @ v plus X.T @ w in float64 on the
same matrix. Target (issue 4): a sweep within 3x of the floor.
"""

from __future__ import annotations

import argparse
import time

import torch


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--N", type=int, default=1001)
    p.add_argument("--alpha", type=float, default=0.7)
    p.add_argument("--sweeps", type=int, default=20)
    args = p.parse_args()

    from thermolearn.binary import focusing_bp, random_patterns

    X, y = random_patterns(args.N, args.alpha, seed=0)
    Xd = X.to(torch.float64)
    v, w = torch.rand(args.N, dtype=torch.float64), torch.rand(X.shape[0], dtype=torch.float64)
    t0 = time.perf_counter()
    for _ in range(200):
        Xd @ v
        Xd.T @ w
    floor = (time.perf_counter() - t0) / 200
    t0 = time.perf_counter()
    r = focusing_bp(X, y, protocol=[(0.0, 1.0)], steps=1, max_iters=args.sweeps, tol=1e-300)
    seconds = time.perf_counter() - t0
    sweeps = r.history[0]["iterations"]
    per = seconds / sweeps
    print(f"N={args.N}, M={X.shape[0]}: one BP sweep {per * 1e3:.2f} ms, two matrix-vector passes "
          f"{floor * 1e3:.3f} ms, ratio {per / floor:.0f} (target 3)")


if __name__ == "__main__":
    main()

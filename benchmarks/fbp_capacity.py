"""Focusing BP on the binary perceptron: success probability against the load alpha.

    OMP_NUM_THREADS=1 python benchmarks/fbp_capacity.py [--N 1001] [--seeds 10] [--steps 100]
        [--alphas 0.70 0.72 ...] [--messages amp] [--damping 0.5]

One random instance per (alpha, seed) (thermolearn.binary.random_patterns, labels +-1), solved by
``focusing_bp`` with the pseudo-reinforcement protocol; a success is zero training errors,
recounted here with NumPy integers independently of the library. Prints one row per alpha:
solved / seeds, median sweeps and seconds. Reference points: the capacity of the binary
perceptron is 0.833 (Krauth & Mezard 1989) [unverified]; reinforced BP reaches about 0.74-0.75
(Braunstein & Zecchina 2006) [unverified].
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--N", type=int, default=1001)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--messages", default="amp", choices=["amp", "full"])
    p.add_argument("--damping", type=float, default=0.5)
    p.add_argument("--alphas", type=float, nargs="+",
                   default=[0.70, 0.72, 0.74, 0.76, 0.78, 0.80])
    args = p.parse_args()

    from thermolearn.binary import focusing_bp, random_patterns

    print(f"N={args.N}, pseudo-reinforcement, {args.steps} steps, damping {args.damping}, messages={args.messages}, "
          f"seeds 0..{args.seeds - 1}")
    print(f"{'alpha':>6} {'solved':>8} {'sweeps(med)':>12} {'seconds(med)':>13} {'errors left':>12}")
    for alpha in args.alphas:
        solved, sweeps, secs, left = 0, [], [], []
        for seed in range(args.seeds):
            X, y = random_patterns(args.N, alpha, seed)
            t0 = time.perf_counter()
            r = focusing_bp(X, y, steps=args.steps, seed=seed, messages=args.messages, damping=args.damping)
            secs.append(time.perf_counter() - t0)
            W = r.weights.numpy().astype(np.int64)
            errs = int(((X.numpy().astype(np.int64) @ W) * y.numpy() <= 0).sum())
            assert errs == r.errors, (errs, r.errors)
            solved += errs == 0
            sweeps.append(r.steps)
            if errs:
                left.append(errs)
        print(f"{alpha:6.3f} {solved:>4}/{args.seeds:<3} {np.median(sweeps):12.0f} {np.median(secs):13.1f} "
              f"{str(left) if left else '-':>12}", flush=True)


if __name__ == "__main__":
    main()

"""Replicated vs plain SGD on the binary committee machine (N=321, K=5, y=7: the reference setting).

    python benchmarks/committee_rsgd.py [--alpha 0.5] [--seeds 0 1 2] [--max-epochs 1000]
        [--replicas 7] [--gamma-step 0.001] [--no-plain]

Random patterns at load alpha (patterns per weight); replicated SGD with the reference settings
(batch 80, lr 2, coupling 0.75, gamma 0.05 + 0.001 per epoch) against plain SGD (one replica, no
coupling) through the same function. Prints, per seed, whether each solved, the epochs and the
final training errors (recounted independently of the solver).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument("--max-epochs", type=int, default=1000)
    p.add_argument("--replicas", type=int, default=7)
    p.add_argument("--gamma-step", type=float, default=0.001)
    p.add_argument("--no-plain", action="store_true", help="skip the plain-SGD baseline")
    args = p.parse_args()

    from thermolearn.binary import random_patterns, replicated_sgd
    from thermolearn.schedules import LinearDecay

    print(f"N=321, K=5, alpha={args.alpha}, max {args.max_epochs} epochs, y={args.replicas}, "
          f"gamma_step={args.gamma_step}")
    T = args.max_epochs
    ramp = LinearDecay(0.05, T, 0.05 + args.gamma_step * T)          # gamma 0.05 + gamma_step per epoch
    runs = [(f"replicated (y={args.replicas})", {"replicas": args.replicas, "gamma": ramp})]
    if not args.no_plain:
        runs.append(("plain SGD", {"replicas": 1, "coupling": 0.0}))
    for seed in args.seeds:
        X, y = random_patterns(321, args.alpha, seed, K=5)
        for name, kw in runs:
            t0 = time.perf_counter()
            r = replicated_sgd(X, y, K=5, seed=seed, max_iter=args.max_epochs, **kw)
            seconds = time.perf_counter() - t0
            Xn, yn, Wn = X.numpy().astype(np.int64), y.numpy(), r.weights.numpy().astype(np.int64)
            hidden = np.sign(Xn @ Wn.T)                      # (M, K); N odd: no zeros
            recount = int((np.sign(hidden.sum(1)) != yn).sum())
            print(f"seed {seed} {name:17s}: solved={r.converged!s:5s} epochs={r.steps:5d} "
                  f"errors={r.errors} (recount {recount}) {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()

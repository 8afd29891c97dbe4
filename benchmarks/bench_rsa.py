"""Single-flip annealing throughput: proposed moves per second per core (N=1001, alpha=0.5).

    OMP_NUM_THREADS=1 python benchmarks/bench_rsa.py [--moves 20000000]

One replica at constant beta (no annealing, no coupling), then y=3 replicas with coupling, on
random patterns. Each proposal scans all M stability fields to get the energy change, so the
floor is about M simple operations per move. Target: 1e7 proposed moves per second per core.
"""

from __future__ import annotations

import argparse
import time


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--moves", type=int, default=20_000_000)
    args = p.parse_args()

    from thermolearn.binary import random_patterns, replicated_annealing

    X, y = random_patterns(1001, 0.5, seed=0)
    replicated_annealing(X, y, replicas=1, gamma=0.0, max_moves=10_000, seed=1)     # compile
    for label, kw in (("1 replica, beta=1 constant", dict(replicas=1, gamma=0.0, beta=1.0, beta_rate=1.0, gamma_rate=1.0)),
                      ("3 replicas, gamma=0.1", dict(replicas=3, gamma=0.1, beta=1.0, beta_rate=1.0, gamma_rate=1.0))):
        t0 = time.perf_counter()
        r = replicated_annealing(X, y, max_moves=args.moves, history_every=args.moves, seed=1, **kw)
        seconds = time.perf_counter() - t0
        print(f"{label}: {r.steps:.3g} proposed moves in {seconds:.2f} s = {r.steps / seconds:.3g} moves/s "
              f"(target 1e7), final energy {r.energy}")


if __name__ == "__main__":
    main()

"""Single-flip annealing throughput: proposed moves per second per core.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/bench_rsa.py [--moves 20000000]

Perceptron N=1001, alpha=0.5 (M=500): one replica at constant beta (no annealing, no coupling),
then y=3 replicas with coupling gamma=0.1. Committee machines, alpha=0.5: fully connected N=321,
K=5 (1605 weights, M=802) and tree-like N=1005, K=5 (201 inputs per unit, M=502). Random
patterns, the same seeds every run.

Each proposal scans the M stability fields of the flipped unit (perceptron: fields and pattern
column; committee: also two order statistics per pattern) to get the energy change. The
"scan-only ceiling" line times that scan alone over random columns, with nothing else of the move
(no random numbers, no acceptance): the rate a move could reach if everything else were free.

Rates are given per wall-clock second and per CPU second of this process (time.process_time):
on a machine shared with other jobs the CPU-time rate is the per-core figure. Target: 1e7
proposed moves per second per core for the perceptron; the ratio to it is printed.
"""

from __future__ import annotations

import argparse
import time

TARGET = 1e7


def _scan_ceiling(X, y, n_scans: int, seed: int = 0) -> tuple[float, float]:
    """(wall, cpu) seconds of n_scans perceptron energy-change scans over random columns."""
    import numpy as np
    from numba import njit

    from thermolearn.binary.rsa import _de_perceptron

    @njit(cache=False)
    def scans(XyT, D, cols, w):
        tot = 0
        for t in range(cols.shape[0]):
            tot += _de_perceptron(XyT, cols[t], D, 0, w[t])
        return tot

    Xn, yn = X.numpy().astype(np.int8), y.numpy().astype(np.int8)
    XyT = np.ascontiguousarray((Xn * yn[:, None]).T)
    rng = np.random.default_rng(seed)
    W = (rng.integers(0, 2, XyT.shape[0]) * 2 - 1).astype(np.int8)
    D = (W.astype(np.int32) @ XyT.astype(np.int32)).astype(np.int16).reshape(1, 1, -1)
    cols = rng.integers(0, XyT.shape[0], n_scans)
    ws = W[cols]
    scans(XyT, D, cols[:10], ws[:10])                                     # compile
    t0, c0 = time.perf_counter(), time.process_time()
    scans(XyT, D, cols, ws)
    return time.perf_counter() - t0, time.process_time() - c0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--moves", type=int, default=20_000_000, help="proposals per perceptron run")
    p.add_argument("--committee-moves", type=int, default=10_000_000, help="proposals per committee run")
    args = p.parse_args()

    from thermolearn.binary import random_patterns, replicated_annealing

    const = dict(beta=1.0)                                   # constant beta and gamma
    cases = [
        ("perceptron N=1001", dict(N=1001, K=1, tree=False), args.moves, [
            ("1 replica, beta=1 constant", dict(replicas=1, gamma=0.0)),
            ("3 replicas, gamma=0.1", dict(replicas=3, gamma=0.1))]),
        ("committee N=321 K=5 fully connected", dict(N=321, K=5, tree=False), args.committee_moves, [
            ("1 replica, beta=1 constant", dict(replicas=1, gamma=0.0)),
            ("3 replicas, gamma=0.1", dict(replicas=3, gamma=0.1))]),
        ("committee N=1005 K=5 tree-like", dict(N=1005, K=5, tree=True), args.committee_moves, [
            ("1 replica, beta=1 constant", dict(replicas=1, gamma=0.0)),
            ("3 replicas, gamma=0.1", dict(replicas=3, gamma=0.1))]),
    ]
    print(f"{'case':<44} {'run':<28} {'moves':>8} {'wall s':>7} {'moves/s wall':>13} "
          f"{'moves/s cpu':>12} {'cpu/target':>10} {'energy':>6}")
    for name, arch, moves, runs in cases:
        X, y = random_patterns(arch["N"], 0.5, seed=0, K=arch["K"], tree=arch["tree"])
        replicated_annealing(X, y, K=arch["K"], tree=arch["tree"], replicas=1, gamma=0.0,
                             max_iter=10_000, seed=1)                    # compile / load cache
        label = f"{name} (M={X.shape[0]})"
        for run_label, kw in runs:
            t0, c0 = time.perf_counter(), time.process_time()
            r = replicated_annealing(X, y, K=arch["K"], tree=arch["tree"], max_iter=moves,
                                     history_every=moves, seed=1, **const, **kw)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            print(f"{label:<44} {run_label:<28} {r.steps:>8.3g} {wall:>7.2f} {r.steps / wall:>13.3g} "
                  f"{r.steps / cpu:>12.3g} {r.steps / cpu / TARGET:>10.2f} {r.energy:>6}")
        if arch["K"] == 1:
            wall, cpu = _scan_ceiling(X, y, moves)
            print(f"{label:<44} {'scan-only ceiling':<28} {moves:>8.3g} {wall:>7.2f} {moves / wall:>13.3g} "
                  f"{moves / cpu:>12.3g} {moves / cpu / TARGET:>10.2f} {'-':>6}")
    print(f"target: {TARGET:.0e} proposed moves per second per core (perceptron); cpu/target = the "
          f"CPU-time rate divided by it")


if __name__ == "__main__":
    main()

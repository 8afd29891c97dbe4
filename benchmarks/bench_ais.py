"""AIS with the S&M08 ladder (14,501 temperatures, 100 chains, 784x500) against its matmul floor.

    python benchmarks/bench_ais.py [--chains 100] [--hidden 500] [--repeats 3]

The floor is the two matrix products per temperature that any AIS sweep of an RBM needs
(v W for the hidden drive and the weight increment, h W^T for the visible drive), timed on
the same shapes, dtype and threads in the same process. Floor and AIS runs are interleaved
(floor, AIS, floor, AIS, ..., floor) so that both see the same load; each AIS run is divided by
the mean of the two floor runs beside it, and the median of those ratios is the figure (the
ratio of the fastest AIS run to the fastest floor run is printed too). The target is AIS within
2x its floor.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def matmul_floor(n_chains, n_v, n_h, K):
    W = 0.01 * torch.randn(n_v, n_h)
    v, h = torch.rand(n_chains, n_v), torch.rand(n_chains, n_h)
    x, y = torch.empty(n_chains, n_h), torch.empty(n_chains, n_v)
    t0 = time.perf_counter()
    for _ in range(K):
        torch.mm(v, W, out=x)
        torch.mm(h, W.T, out=y)
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chains", type=int, default=100)
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--visible", type=int, default=784)
    p.add_argument("--repeats", type=int, default=3, help="AIS runs, each between two floor runs")
    args = p.parse_args()

    from thermolearn.ebm import RBM, ais_log_partition
    from thermolearn.schedules import sm08_betas

    K = sm08_betas().numel() - 1
    rbm = RBM(args.visible, args.hidden, seed=0)
    rbm.W.mul_(10.0)                           # W ~ N(0, 0.1^2): a non-trivial model
    ais_log_partition(rbm, n_chains=args.chains, n_betas=200)          # warm-up (and numba's cache)
    print(f"AIS: {args.visible}x{args.hidden} float32, {args.chains} chains, S&M08 ladder ({K + 1} betas), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    floors = [matmul_floor(args.chains, args.visible, args.hidden, K)]
    runs, ratios = [], []
    for i in range(args.repeats):
        res = ais_log_partition(rbm, n_chains=args.chains, n_betas="sm08", seed=i)
        floors.append(matmul_floor(args.chains, args.visible, args.hidden, K))
        runs.append(res.seconds)
        ratios.append(res.seconds / (0.5 * (floors[-2] + floors[-1])))
        print(f"run {i}: AIS {res.seconds:.1f} s (log Z {res.log_z:.3f} ± {res.stderr:.3f}, ESS {res.ess:.0f}); "
              f"floor of {2 * K} matmuls {floors[-2]:.1f} s before, {floors[-1]:.1f} s after; ratio {ratios[-1]:.2f}")
    print(f"AIS / floor: {statistics.median(ratios):.2f} (median of {len(ratios)} interleaved runs; "
          f"fastest AIS / fastest floor {min(runs) / min(floors):.2f}; target: within 2x)")


if __name__ == "__main__":
    main()

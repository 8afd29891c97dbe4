"""AIS with the S&M08 ladder (14,501 temperatures, 100 chains, 784x500) against its matmul floor.

    python benchmarks/bench_ais.py [--chains 100] [--hidden 500]

The floor is the two matrix products per temperature that any AIS sweep of an RBM needs
(v W for the hidden drive and the weight increment, h W^T for the visible drive), timed on
the same shapes, dtype and threads in the same process. The target is under 60 s on a 2-core
CPU, about 3x the floor.
"""

from __future__ import annotations

import argparse
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
    args = p.parse_args()

    from thermolearn.ebm import RBM, ais_log_partition
    from thermolearn.schedules import sm08_betas

    K = sm08_betas().numel() - 1
    rbm = RBM(args.visible, args.hidden, seed=0)
    rbm.W.mul_(10.0)                           # W ~ N(0, 0.1^2): a non-trivial model
    ais_log_partition(rbm, n_chains=args.chains, n_betas=200)          # warm-up
    print(f"AIS: {args.visible}x{args.hidden} float32, {args.chains} chains, S&M08 ladder ({K + 1} betas), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    floor = matmul_floor(args.chains, args.visible, args.hidden, K)
    res = ais_log_partition(rbm, n_chains=args.chains, n_betas="sm08")
    floor2 = matmul_floor(args.chains, args.visible, args.hidden, K)
    floor = min(floor, floor2)
    print(f"AIS {res.seconds:.1f} s (log Z {res.log_z:.3f} ± {res.stderr:.3f}); "
          f"floor of {2 * K} matmuls {floor:.1f} s")
    print(f"AIS / floor: {res.seconds / floor:.2f} (target: under 60 s, about 3x the floor)")


if __name__ == "__main__":
    main()

"""Focusing BP: cost of one parallel sweep against two matrix-vector passes over the patterns.

    OMP_NUM_THREADS=1 python benchmarks/bench_fbp.py [--N 1001] [--alpha 0.7] [--device cpu]

Times ``focusing_bp`` for one protocol step of plain BP capped at --sweeps sweeps (tol 1e-300, so
every sweep runs) and divides by the sweeps done, for the large-N form (messages="amp", the
perceptron default) and the full M x N message form; the floor is X @ v plus X.T @ w in the same
dtype on the same matrix and device, timed in the same run. Target: a sweep within 3x
of the floor. --skip-full leaves out the full form (which needs M x N memory: use it at N = 1e5).
Then, unless --skip-full, the agreement of the two forms: plain-BP magnetizations at their fixed
points on an N = 401, alpha = 0.3 instance.
"""

from __future__ import annotations

import argparse
import time

import torch


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--N", type=int, default=1001)
    p.add_argument("--alpha", type=float, default=0.7)
    p.add_argument("--sweeps", type=int, default=50)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--skip-full", action="store_true")
    args = p.parse_args()

    from thermolearn.binary import focusing_bp, random_patterns

    dev, dtype = torch.device(args.device), getattr(torch, args.dtype)
    X, y = random_patterns(args.N, args.alpha, seed=0, device=dev)
    Xd = X.to(dtype)
    v = torch.rand(args.N, dtype=dtype, device=dev)
    w = torch.rand(X.shape[0], dtype=dtype, device=dev)
    reps = max(5, int(2e8 // X.numel()))

    def floor():
        _sync(dev)
        t0 = time.perf_counter()
        for _ in range(reps):
            Xd @ v
            Xd.T @ w
        _sync(dev)
        return (time.perf_counter() - t0) / reps

    def sweep(messages):
        focusing_bp(X, y, protocol=None, steps=1, gamma=0.0, replicas=1.0, max_iter=2, tol=1e-300, messages=messages,
                    dtype=dtype)                                         # warm-up
        _sync(dev)
        t0 = time.perf_counter()
        r = focusing_bp(X, y, protocol=None, steps=1, gamma=0.0, replicas=1.0, max_iter=args.sweeps, tol=1e-300,
                        messages=messages, dtype=dtype)
        _sync(dev)
        return (time.perf_counter() - t0) / r.history[0]["iterations"]

    floor()
    f = floor()
    print(f"N={args.N}, M={X.shape[0]}, {args.dtype} on {dev}; two matrix-vector passes {f * 1e3:.3f} ms")
    forms = ["amp"] if args.skip_full else ["amp", "full"]
    for messages in forms:
        per = sweep(messages)
        f = floor()                       # re-measured beside each form (shared machines drift)
        print(f"  messages={messages}: one sweep {per * 1e3:.3f} ms, floor {f * 1e3:.3f} ms, "
              f"ratio {per / f:.2f} (target <= 3)")
    if not args.skip_full:
        Xs, ys = random_patterns(401, 0.3, seed=4, device=dev)
        kw = dict(protocol=None, steps=1, gamma=0.0, replicas=1.0, tol=1e-9, max_iter=3000, seed=4, dtype=dtype)
        m = [focusing_bp(Xs, ys, messages=f, **kw).history[-1]["marginals"] for f in ("full", "amp")]
        diff = (m[0] - m[1]).abs()
        print(f"N=401, alpha=0.3, plain BP: |m_full - m_amp| max {float(diff.max()):.1e}, "
              f"mean {float(diff.mean()):.1e}")


if __name__ == "__main__":
    main()

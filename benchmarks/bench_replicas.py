"""Time per training step of y replicas: one batched Replicated step vs a loop over y modules.

    OMP_NUM_THREADS=1 python benchmarks/bench_replicas.py [--replicas 8] [--batch-size 64] [--repeats 21] [--steps 30]

Measured side by side in one process, on the CPU:

* digits: scikit-learn's digits (1797 x 64, pixels / 16), MLP 64-128-10, batch 64 per replica,
  cross-entropy, SGD (lr 0.1);
* MNIST-sized: MLP 784-500-10, batch 64 per replica, on random data of MNIST's shape (timing only:
  the numbers do not depend on the values).

For each: one step of ``Replicated(replicas=y)`` (forward + backward + update of all replicas in
one batched call; the MLPs here take the "bmm" path, batched matrix products), the same with the
mean coupling on (gamma = 0.01), the same with ``vmap=True`` (the torch.func.vmap path), y separate
modules each with its own SGD optimizer (torch's defaults, the same learning rate) stepped one
after the other in an ordinary PyTorch loop (zero_grad, forward, cross-entropy, backward, step),
and one single model. The
evaluation path of each Replicated variant (``Replicated.path``) is printed in brackets. Each step
takes fresh minibatches (indices drawn beforehand, outside the timed region). The variants are
timed in turn within each repeat; the time per step is the median over ``repeats`` of (time of
``steps`` steps) / ``steps``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from thermolearn.deep import Replicated


def mlp(sizes, seed):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def bench(name, X, T, sizes, y, batch_size, steps, repeats, lr=0.1):
    rng = np.random.default_rng(0)
    n = X.shape[0]
    pool = [torch.from_numpy(rng.integers(0, n, size=(y, batch_size))) for _ in range(64)]
    batches = [[(X[idx[a]], T[idx[a]]) for a in range(y)] for idx in pool]
    counter = [0]

    def next_batches():
        counter[0] = (counter[0] + 1) % len(batches)
        return batches[counter[0]]

    runners, reps = {}, {}
    for label, gamma, vmap in (("replicated, gamma=0", 0.0, "auto"), ("replicated, gamma=0.01", 0.01, "auto"),
                               ("replicated, vmap=True, gamma=0", 0.0, True)):
        rep = reps[label] = Replicated(lambda: mlp(sizes, 0), y, gamma=gamma, lr=lr, seed=0, vmap=vmap)

        def run(k, rep=rep):
            for _ in range(k):
                rep.step(next_batches(), F.cross_entropy)
        runners[label] = run

    models = [mlp(sizes, a) for a in range(y)]
    opts = [torch.optim.SGD(m.parameters(), lr=lr) for m in models]

    def run_loop(k):
        for _ in range(k):
            for m, o, (x, t) in zip(models, opts, next_batches()):
                o.zero_grad()
                F.cross_entropy(m(x), t).backward()
                o.step()
    loop_label = f"loop over {y} modules"
    runners[loop_label] = run_loop

    single, sopt = mlp(sizes, 0), None
    sopt = torch.optim.SGD(single.parameters(), lr=lr)

    def run_single(k):
        for _ in range(k):
            x, t = next_batches()[0]
            sopt.zero_grad()
            F.cross_entropy(single(x), t).backward()
            sopt.step()
    runners["single model"] = run_single

    for run in runners.values():      # warm-up (allocations, the vmap check)
        run(3)
    times = {label: [] for label in runners}
    for _ in range(repeats):          # interleaved, so that load changes hit all alike
        for label, run in runners.items():
            t0 = time.perf_counter()
            run(steps)
            times[label].append((time.perf_counter() - t0) / steps)
    results = {label: statistics.median(ts) for label, ts in times.items()}

    print(f"\n{name}: MLP {'-'.join(map(str, sizes))}, y={y} replicas, batch {batch_size} per replica, SGD lr={lr}")
    for label, sec in results.items():
        shown = f"{label} [{reps[label].path}]" if label in reps else label
        print(f"  {shown:40s} {sec * 1e3:8.3f} ms/step")
    loop = results[loop_label]
    for label in reps:
        print(f"  speed-up of '{label}' [{reps[label].path}] over the loop: {loop / results[label]:.2f}x")
    print(f"  replicated (gamma=0) / single model: {results['replicated, gamma=0'] / results['single model']:.2f}"
          f"  (the replicas do y={y} models' work)")
    return results, reps["replicated, gamma=0"].path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replicas", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from sklearn.datasets import load_digits
    digits = load_digits()
    X = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    T = torch.tensor(digits.target, dtype=torch.int64)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), float32, CPU; "
          f"median of {args.repeats} repeats of {args.steps} steps")
    r1, path1 = bench("digits (scikit-learn, 1797 x 64)", X, T, [64, 128, 10], args.replicas, args.batch_size,
               args.steps, args.repeats)
    g = torch.Generator().manual_seed(0)
    Xm = torch.rand(60000, 784, generator=g)
    Tm = torch.randint(0, 10, (60000,), generator=g)
    r2, path2 = bench("MNIST-sized (random data of MNIST's shape, 60000 x 784)", Xm, Tm, [784, 500, 10], args.replicas,
               args.batch_size, max(5, args.steps // 3), args.repeats)
    key = f"loop over {args.replicas} modules"
    print(f"\nsummary: speed-up of Replicated over the loop (gamma=0): digits "
          f"{r1[key] / r1['replicated, gamma=0']:.2f}x [{path1} path] (target >= 2), "
          f"MNIST-sized {r2[key] / r2['replicated, gamma=0']:.2f}x [{path2} path]; "
          f"with vmap=True: digits {r1[key] / r1['replicated, vmap=True, gamma=0']:.2f}x, "
          f"MNIST-sized {r2[key] / r2['replicated, vmap=True, gamma=0']:.2f}x")


if __name__ == "__main__":
    main()

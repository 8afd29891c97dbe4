"""One PCD-1 epoch (MNIST, 500 hidden, batch 100): thermolearn vs scikit-learn vs the matmul floor.

    python benchmarks/bench_rbm_epoch.py [--repeats 3] [--hidden 500] [--batch 100]

The three are measured interleaved in one process, repeated, and the medians compared:
- thermolearn: ``train(rbm, X, method="pcd", k=1, epochs=1, momentum=0, weight_decay=0)``, the
  whole call (data checks, shuffling, the epoch, the end-of-epoch monitor), at scikit-learn's
  settings (plain SGD steps: no momentum, no weight decay); ``--defaults`` uses the library's
  defaults (momentum 0.5, weight decay 1e-4) instead;
- scikit-learn: ``BernoulliRBM(n_components=500, batch_size=100, n_iter=1).fit(X)`` on the same
  float32 data (scikit-learn's RBM is also PCD-1 with one chain per batch row);
- floor: the five matrix products an epoch needs per batch (p(h|data), p(v|h), p(h|v), and
  the two outer-product sums of the gradient), nothing else, in torch float32.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def matmul_floor(X, n_hidden, batch):
    n_v = X.shape[1]
    W = 0.01 * torch.randn(n_v, n_hidden)
    a, b = torch.zeros(n_v), torch.zeros(n_hidden)
    ph0, ph = torch.empty(batch, n_hidden), torch.empty(batch, n_hidden)
    pv, gW = torch.empty(batch, n_v), torch.empty(n_v, n_hidden)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(X.shape[0] // batch):
            v0 = X[i * batch:(i + 1) * batch]
            torch.addmm(b, v0, W, out=ph0)
            torch.addmm(a, ph0, W.T, out=pv)
            torch.addmm(b, pv, W, out=ph)
            torch.mm(pv.T, ph, out=gW)
            gW.addmm_(v0.T, ph0)
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--defaults", action="store_true", help="momentum 0.5 and weight decay 1e-4")
    args = p.parse_args()

    from sklearn.neural_network import BernoulliRBM

    from thermolearn.data import load_mnist
    from thermolearn.ebm import RBM
    from thermolearn.ebm.training import train

    X = load_mnist(binarize="stochastic", seed=0).train.contiguous()
    Xn = X.numpy()
    print(f"data: MNIST {tuple(X.shape)}, S&M08 binarization; hidden={args.hidden}, batch={args.batch}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{'library defaults' if args.defaults else 'no momentum, no weight decay (as scikit-learn)'}")
    train(RBM(X.shape[1], args.hidden, seed=0), X[:1000], epochs=1, batch_size=args.batch)  # warm-up

    times = {"thermolearn": [], "scikit-learn": [], "floor": []}
    for r in range(args.repeats):
        rbm = RBM(X.shape[1], args.hidden, seed=r)
        t0 = time.perf_counter()
        extra = {} if args.defaults else {"momentum": 0.0, "weight_decay": 0.0}
        train(rbm, X, method="pcd", k=1, epochs=1, batch_size=args.batch, lr=0.01, seed=r, **extra)
        times["thermolearn"].append(time.perf_counter() - t0)

        sk = BernoulliRBM(n_components=args.hidden, batch_size=args.batch, n_iter=1,
                          learning_rate=0.01, random_state=r)
        t0 = time.perf_counter()
        sk.fit(Xn)
        times["scikit-learn"].append(time.perf_counter() - t0)

        times["floor"].append(matmul_floor(X, args.hidden, args.batch))
        print(f"repeat {r}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))

    med = {k: statistics.median(v) for k, v in times.items()}
    print("median seconds per epoch: " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))
    print(f"speed-up over scikit-learn: {med['scikit-learn'] / med['thermolearn']:.2f}x (target >= 1.6)")
    print(f"thermolearn / matmul floor: {med['thermolearn'] / med['floor']:.2f} (target <= 1.25)")


if __name__ == "__main__":
    main()

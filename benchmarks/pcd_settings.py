"""PCD-1 on MNIST (500 hidden, 100 epochs) under a few learning-rate/momentum settings.

    python benchmarks/pcd_settings.py [--out runs/pcd-settings] [--only NAME ...]

Each setting trains from the same initialisation (seed 0, visible biases at the logit of the
pixel means, batch 100, weight decay 1e-4) and is scored by AIS (S&M08 ladder, 100 chains).
It records why the library's default momentum is 0.5 rather than the guide's 0.5 -> 0.9 switch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from thermolearn.data import load_mnist
from thermolearn.ebm import RBM, ais_log_partition, base_rate_bias, train
from thermolearn.schedules import InverseDecay, LinearDecay

EPOCHS = 100
SETTINGS = {  # name: (learning-rate schedule, momentum schedule, description)
    "T1": (InverseDecay(0.05, 10), Step(0.5, 0.9, at=5), "lr 0.05/(1+epoch/10), momentum 0.5 -> 0.9 at epoch 5"),
    "T2": (InverseDecay(0.01, 100), Step(0.5, 0.9, at=5), "lr 0.01/(1+epoch/100), momentum 0.5 -> 0.9 at epoch 5"),
    "T3": (LinearDecay(0.01, EPOCHS), 0.5, "lr 0.01 -> 0 linearly, momentum 0.5"),
    "T4": (LinearDecay(0.003, EPOCHS), Step(0.5, 0.9, at=5), "lr 0.003 -> 0 linearly, momentum 0.5 -> 0.9 at epoch 5"),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/pcd-settings"))
    p.add_argument("--only", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ds = load_mnist(binarize="stochastic", seed=0)
    base = base_rate_bias(ds.train)
    for name in args.only:
        lr, momentum, text = SETTINGS[name]
        rbm = RBM(784, 500, seed=0)
        rbm.visible_bias.copy_(base)
        train(rbm, ds.train, method="pcd", epochs=EPOCHS, batch_size=100, lr=lr, momentum=momentum,
              weight_decay=1e-4, validation=ds.test[:2000], checkpoint=args.out / f"{name}.ckpt")
        ais = ais_log_partition(rbm, n_chains=100, n_betas="sm08", base_visible_bias=base)
        print(f"{name}: {text}: AIS test log-likelihood {rbm.log_likelihood(ds.test, ais.log_z):.2f} "
              f"(stderr of log Z {ais.stderr:.3f})", flush=True)


if __name__ == "__main__":
    main()

"""Training settings: PCD-1 on MNIST, and the choice of ``thermolearn rbm train``'s defaults on digits.

    python benchmarks/pcd_settings.py [--out runs/pcd-settings] [--only NAME ...]
    python benchmarks/pcd_settings.py --digits

MNIST: each setting trains a 500-hidden RBM for 100 epochs from the same initialisation (seed 0,
visible biases at the logit of the pixel means, batch 100, weight decay 1e-4) and is scored by
AIS (S&M08 ladder, 100 chains). It records why the library's default momentum is 0.5 rather
than the guide's 0.5 -> 0.9 switch.

--digits: 20-hidden RBMs on scikit-learn's digits (seed 0, momentum 0.5, weight decay 1e-4,
constant lr) under the settings of ``DIGITS``, scored by the exact test log-likelihood against
the independent-pixel model; the first row is the command line's default.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from thermolearn.data import load_mnist
from thermolearn.ebm import RBM, ais_log_partition, base_rate_bias, train
from thermolearn.schedules import InverseDecay, LinearDecay, Step

EPOCHS = 100
DIGITS = {  # name: (method, lr, batch size, epochs)
    "default": ("cd", 0.05, 10, 20),
    "cd-50-epochs": ("cd", 0.05, 10, 50),
    "cd-batch-20": ("cd", 0.05, 20, 50),
    "cd-lr-0.1": ("cd", 0.1, 10, 30),
    "pcd": ("pcd", 0.05, 10, 50),
    "pcd-lr-0.1": ("pcd", 0.1, 10, 50),
    "mnist-settings": ("pcd", 0.01, 100, 20),
}


def digits():
    import time

    from thermolearn.data import load_digits
    from thermolearn.ebm import exact_log_partition
    from thermolearn.ebm.evaluate import independent_log_likelihood

    ds = load_digits(seed=0)
    print(f"independent pixels: test log-likelihood {independent_log_likelihood(ds.train, ds.test):.2f}")
    for name, (method, lr, batch, epochs) in DIGITS.items():
        rbm = RBM(64, 20, seed=0)
        rbm.visible_bias.copy_(base_rate_bias(ds.train))
        t0 = time.perf_counter()
        train(rbm, ds.train, method=method, epochs=epochs, batch_size=batch, lr=lr, momentum=0.5,
              weight_decay=1e-4, seed=0)
        seconds = time.perf_counter() - t0
        log_z = exact_log_partition(rbm)
        print(f"{name}: {method}, lr {lr}, batch {batch}, {epochs} epochs: exact test log-likelihood "
              f"{rbm.log_likelihood(ds.test, log_z):.2f} ({seconds:.1f} s)", flush=True)
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
    p.add_argument("--digits", action="store_true", help="the digits settings of the CLI defaults")
    args = p.parse_args()
    if args.digits:
        return digits()
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

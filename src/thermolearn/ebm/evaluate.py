"""One-call evaluation of a trained RBM: log Z and log-likelihoods by every estimator.

- exact (when the smaller layer has at most ``exact_limit`` units),
- forward AIS (S&M08 base-rate model from the training pixel means; log Z with ± 3 sigma),
- reverse AIS (RAISE) on a subset of examples: the conservative estimate,
- TAP (orders 2 and 3): -log Z ~ Gamma at the fixed point reached from training rows.

Log-likelihoods are mean nats per example. Forward AIS tends to over-estimate them and
RAISE to under-estimate them, so the two bracket the truth.
"""

from __future__ import annotations

import time

import torch

from .ais import ais_log_partition, base_rate_bias
from .exact import exact_log_partition
from .reverse_ais import raise_log_likelihood
from .tap import tap_free_energy


def evaluate_rbm(rbm, train, test, *, n_chains: int = 100, n_betas="sm08", raise_examples: int = 100,
                 raise_chains: int = 1, raise_betas="sm08", raise_splits=("train", "test"), tap_orders=(2, 3), tap_starts: int = 100,
                 exact_limit: int = 20, seed: int = 0, progress: bool = False) -> dict:
    """Return a flat dict of estimates (see the module docstring); NaN-free keys only."""
    t0 = time.perf_counter()
    train = torch.as_tensor(train).to(device=rbm.device, dtype=rbm.dtype)
    test = torch.as_tensor(test).to(device=rbm.device, dtype=rbm.dtype)
    with torch.inference_mode():
        nlf_train = float((-rbm.beta * rbm.free_energy(train)).double().mean())
        nlf_test = float((-rbm.beta * rbm.free_energy(test)).double().mean())
    out = {"n_visible": rbm.n_visible, "n_hidden": rbm.n_hidden, "beta": rbm.beta,
           "free_energy_train": -nlf_train / rbm.beta, "free_energy_test": -nlf_test / rbm.beta}

    if min(rbm.n_visible, rbm.n_hidden) <= exact_limit:
        log_z = exact_log_partition(rbm)
        out.update(exact_log_z=log_z, exact_train_ll=nlf_train - log_z, exact_test_ll=nlf_test - log_z)

    base = base_rate_bias(train)
    ais = ais_log_partition(rbm, n_chains=n_chains, n_betas=n_betas, base_visible_bias=base,
                            seed=seed, progress=progress)
    out.update(ais_log_z=ais.log_z, ais_stderr=ais.stderr, ais_log_z_lower=ais.log_z_lower,
               ais_log_z_upper=ais.log_z_upper, ais_train_ll=nlf_train - ais.log_z,
               ais_test_ll=nlf_test - ais.log_z,
               # log Z within [lower, upper] (3 sigma) puts the likelihood within the mirrored range
               ais_test_ll_lower=nlf_test - ais.log_z_upper, ais_test_ll_upper=nlf_test - ais.log_z_lower,
               ais_seconds=ais.seconds)

    if raise_examples > 0:
        for name, rows in (("train", train), ("test", test)):
            if name not in raise_splits:
                continue
            sub = rows[:raise_examples]
            r = raise_log_likelihood(rbm, sub, n_chains=raise_chains, n_betas=raise_betas,
                                     base_visible_bias=base, seed=seed, progress=progress)
            with torch.inference_mode():
                nlf_rows = float((-rbm.beta * rbm.free_energy(sub)).double().mean())
            out.update({f"raise_{name}_ll": r.log_likelihood, f"raise_{name}_stderr": r.stderr,
                        f"raise_{name}_examples": int(sub.shape[0]),
                        f"ais_{name}_ll_same_examples": nlf_rows - ais.log_z})
            if "exact_log_z" in out:
                out[f"exact_{name}_ll_same_examples"] = nlf_rows - out["exact_log_z"]

    for order in tap_orders:
        g = torch.Generator(device="cpu").manual_seed(seed)
        starts = train[torch.randperm(train.shape[0], generator=g)[:tap_starts].to(train.device)]
        tap = tap_free_energy(rbm, order=order, init_visible=starts)
        out.update({f"tap{order}_log_z": -tap.free_energy,
                    f"tap{order}_test_ll": nlf_test + tap.free_energy})
    out["seconds"] = time.perf_counter() - t0
    return out

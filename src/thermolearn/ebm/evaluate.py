"""One-call evaluation of a trained RBM: log Z and log-likelihoods by every estimator.

- exact (when the smaller layer has at most ``exact_limit`` units, by default
  :data:`thermolearn.ebm.exact.MAX_EXACT_UNITS`),
- forward AIS from the base-rate model of the training pixel means (Salakhutdinov & Murray
  2008), log Z with ± 3 sigma,
- reverse AIS (RAISE, Burda, Grosse & Salakhutdinov 2015) on a subset of examples: the
  conservative estimate,
- TAP (orders 2 and 3, Gabrie, Tramel & Krzakala 2015): -log Z ~ Gamma at the fixed point
  reached from training rows,
- the baseline every model must beat: independent pixels with the training means
  (``independent_test_ll``).

Log-likelihoods are mean nats per example. Forward AIS tends to over-estimate them and
RAISE to under-estimate them, so the two bracket the truth: on the examples RAISE was run on,
``{split}_ll_bracket_lower`` (RAISE) and ``{split}_ll_bracket_upper`` (AIS) with their difference
``{split}_ll_bracket_width``.

Forward AIS is also reported as a non-equilibrium process (Jarzynski 1997; Neal 2001): the work
W_i = -log w_i of its chains (``ais_work_mean``, ``ais_work_std``), the Jarzynski free-energy
change Delta F-hat = log Z_0 - log Z-hat (``ais_free_energy_change``, with ``ais_log_z_base`` =
log Z_0), the dissipated work <W> - Delta F-hat (``ais_dissipated_work``, and against the exact
Delta F as ``exact_dissipated_work`` when log Z is exact) and the effective sample size of the
weights (``ais_ess``, ``ais_ess_fraction`` = ESS / chains).
"""

from __future__ import annotations

import time

import torch

from .._numerics import as_tensor, check_int
from ..seeding import as_generator, check_seed
from .ais import ais_log_partition, base_rate_bias
from .exact import MAX_EXACT_UNITS, exact_log_partition
from .reverse_ais import raise_log_likelihood
from .tap import tap_free_energy


def independent_log_likelihood(train, test) -> float:
    """Mean log p(v) of ``test`` under independent Bernoulli pixels with the training means,
    p_i = (sum_n train_ni + 1) / (n + 2) (one pseudo-count each way, so that a pixel never on
    in training costs a finite amount). Nats per example; the floor an RBM must beat."""
    x = as_tensor(train, "train", dtype=torch.float64, ndim=2)
    t = as_tensor(test, "test", dtype=torch.float64, ndim=2)
    if t.shape[1] != x.shape[1]:
        raise ValueError(f"test: expected {x.shape[1]} columns like train, got shape {tuple(t.shape)}")
    p = (x.sum(0) + 1.0) / (x.shape[0] + 2.0)
    return float((t @ torch.log(p) + (1.0 - t) @ torch.log1p(-p)).mean())


def _rows(data, name, rbm):
    x = as_tensor(data, name, ndim=2)
    if x.shape[1] != rbm.n_visible or x.shape[0] < 1:
        raise ValueError(f"{name}: expected rows of {rbm.n_visible} values (the model's n_visible), "
                         f"got shape {tuple(x.shape)}")
    return x.to(device=rbm.device, dtype=rbm.dtype)


def evaluate_rbm(rbm, train, test, *, n_chains: int = 100, n_betas="sm08", raise_examples: int = 100,
                 raise_chains: int = 1, raise_betas="sm08", raise_splits=("train", "test"),
                 tap_orders=(2, 3), tap_starts: int = 100, exact_limit: int = MAX_EXACT_UNITS,
                 seed=0, progress: bool = False) -> dict:
    """Return a flat, JSON-ready dict of estimates (see the module docstring).

    Keys: n_visible, n_hidden, beta, free_energy_train/test, independent_test_ll,
    exact_log_z / exact_train_ll / exact_test_ll / exact_dissipated_work (when enumeration is
    feasible), ais_* (log Z, stderr, ± 3 sigma bounds, train/test log-likelihoods, log Z_0, work
    mean and sd, free-energy change, dissipated work, ESS and ESS / chains), raise_* and the
    bracket {split}_ll_bracket_lower / _upper / _width (when ``raise_examples`` > 0, per split;
    exact_{split}_ll_in_bracket with exact log Z), tap{order}_log_z / tap{order}_test_ll, seconds.
    Every value is a Python int, float, bool or str.
    """
    t0 = time.perf_counter()
    n_chains, tap_starts = check_int(n_chains, "n_chains"), check_int(tap_starts, "tap_starts")
    raise_examples = check_int(raise_examples, "raise_examples", minimum=0)
    raise_chains, exact_limit = check_int(raise_chains, "raise_chains"), check_int(exact_limit, "exact_limit")
    seed = check_seed(seed)
    if isinstance(seed, torch.Generator):          # one integer per estimator below
        seed = int(torch.randint(0, 2**62, (1,), generator=seed))
    train, test = _rows(train, "train", rbm), _rows(test, "test", rbm)
    with torch.inference_mode():
        nlf_train = float((-rbm.beta * rbm.free_energy(train)).double().mean())
        nlf_test = float((-rbm.beta * rbm.free_energy(test)).double().mean())
    out = {"n_visible": rbm.n_visible, "n_hidden": rbm.n_hidden, "beta": rbm.beta,
           "free_energy_train": -nlf_train / rbm.beta, "free_energy_test": -nlf_test / rbm.beta,
           "independent_test_ll": independent_log_likelihood(train, test)}

    if min(rbm.n_visible, rbm.n_hidden) <= exact_limit:
        log_z = exact_log_partition(rbm, max_units=exact_limit)
        out.update(exact_log_z=log_z, exact_train_ll=nlf_train - log_z, exact_test_ll=nlf_test - log_z)

    base = base_rate_bias(train)
    ais = ais_log_partition(rbm, n_chains=n_chains, n_betas=n_betas, base_visible_bias=base,
                            seed=seed, progress=progress)
    out.update(ais_log_z=ais.log_z, ais_stderr=ais.stderr, ais_log_z_lower=ais.log_z_lower,
               ais_log_z_upper=ais.log_z_upper, ais_train_ll=nlf_train - ais.log_z,
               ais_test_ll=nlf_test - ais.log_z,
               # log Z within [lower, upper] (3 sigma) puts the likelihood within the mirrored range
               ais_test_ll_lower=nlf_test - ais.log_z_upper, ais_test_ll_upper=nlf_test - ais.log_z_lower,
               ais_seconds=ais.seconds, ais_log_z_base=ais.log_z_base, ais_work_mean=ais.work_mean,
               ais_work_std=ais.work_std, ais_free_energy_change=ais.free_energy_change,
               ais_dissipated_work=ais.dissipated_work, ais_ess=ais.ess, ais_ess_fraction=ais.ess_fraction)
    if "exact_log_z" in out:        # the second law against the exact Delta F = log Z_0 - log Z
        out["exact_dissipated_work"] = ais.work_mean - (ais.log_z_base - out["exact_log_z"])

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
            lower, upper = r.log_likelihood, nlf_rows - ais.log_z
            out.update({f"{name}_ll_bracket_lower": lower, f"{name}_ll_bracket_upper": upper,
                        f"{name}_ll_bracket_width": upper - lower})
            if "exact_log_z" in out:
                exact_rows = nlf_rows - out["exact_log_z"]
                out[f"exact_{name}_ll_same_examples"] = exact_rows
                out[f"exact_{name}_ll_in_bracket"] = bool(lower <= exact_rows <= upper)

    for order in tap_orders:
        g = as_generator(seed)
        starts = train[torch.randperm(train.shape[0], generator=g)[:tap_starts].to(train.device)]
        tap = tap_free_energy(rbm, order=order, init_visible=starts)
        out.update({f"tap{order}_log_z": -tap.free_energy,
                    f"tap{order}_test_ll": nlf_test + tap.free_energy})
    out["seconds"] = time.perf_counter() - t0
    return out

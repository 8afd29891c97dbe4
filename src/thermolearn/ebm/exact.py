"""Exact log partition function of an RBM by enumerating its smaller layer.

log Z(beta) = log sum_h exp(beta b.h) prod_i (1 + exp(beta (a + W h)_i))      (enumerate h)
            = log sum_v exp(beta a.v) prod_j (1 + exp(beta (b + v W)_j))      (enumerate v)

The enumerated layer's 2^n states are visited in chunks; all arithmetic is float64 and the
sum is a logsumexp, so the result is exact to rounding.

:data:`MAX_EXACT_UNITS` is the one limit of the library: every caller (``evaluate_rbm``,
``BernoulliRBM.score_samples``, ``thermolearn rbm evaluate``) enumerates when the smaller layer
has at most that many units and falls back to annealed importance sampling above it. At 20
units the 2^20 states take well under a second; the cost doubles with each unit.
"""

from __future__ import annotations

import torch

from .._numerics import check_int, softplus

MAX_EXACT_UNITS = 20
"""Exact enumeration runs when the smaller layer has at most this many units."""


def all_states(n: int, start: int = 0, stop: int | None = None, dtype=torch.float64, device=None):
    """Binary states start..stop-1 of n units as rows (bit i of the index is unit i)."""
    stop = 2**n if stop is None else stop
    idx = torch.arange(start, stop, device=device, dtype=torch.int64)
    bits = torch.arange(n, device=device, dtype=torch.int64)
    return ((idx.unsqueeze(1) >> bits) & 1).to(dtype)


def exact_log_partition(rbm, max_units: int = MAX_EXACT_UNITS, chunk: int = 2**14) -> float:
    """log Z(beta) of ``rbm``, exactly, by enumerating its smaller layer in float64.

    Raises ValueError when the smaller layer has more than ``max_units`` units (2^max_units
    states); raise ``max_units`` knowingly, the cost doubles with each unit.
    """
    max_units = check_int(max_units, "max_units")
    W, a, b = rbm.scaled_parameters(torch.float64)
    if W.shape[1] > W.shape[0]:           # enumerate the smaller layer: transpose the roles
        W, a, b = W.T, b, a
    n_sum, n_enum = W.shape               # enumerate the n_enum units, sum the n_sum analytically
    if n_enum > max_units:
        raise ValueError(
            f"exact_log_partition: the smaller layer has {n_enum} units, above the limit "
            f"max_units={max_units} (2^{n_enum} states); use ais_log_partition instead"
        )
    parts = []
    for start in range(0, 2**n_enum, chunk):
        h = all_states(n_enum, start, min(start + chunk, 2**n_enum), device=W.device)
        parts.append(torch.logsumexp(h @ b + softplus(torch.addmm(a, h, W.T)).sum(1), 0))
    return float(torch.logsumexp(torch.stack(parts), 0))


def exact_log_likelihood(rbm, v, max_units: int = MAX_EXACT_UNITS) -> float:
    """Mean log p(v) in nats per example with the exact log Z."""
    return rbm.log_likelihood(v, exact_log_partition(rbm, max_units=max_units))


def exact_is_feasible(rbm, max_units: int = MAX_EXACT_UNITS) -> bool:
    """Whether :func:`exact_log_partition` accepts ``rbm`` under ``max_units``."""
    return min(rbm.n_visible, rbm.n_hidden) <= max_units


__all__ = ["exact_log_partition", "exact_log_likelihood", "exact_is_feasible", "all_states",
           "MAX_EXACT_UNITS"]

"""Schedules: inverse-temperature ladders for annealing, and per-epoch values for training.

A per-epoch schedule is any callable ``epoch -> value`` (epochs count from 0); a plain number
is the constant schedule. :func:`as_schedule` turns either into a callable.
"""

from __future__ import annotations

from typing import Callable

import torch

from ._numerics import check_real

Schedule = Callable[[int], float]


def as_schedule(value, name: str) -> Schedule:
    """A callable ``epoch -> float`` from a number or a callable."""
    if callable(value):
        return value
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number or a callable epoch -> number, got {value!r}") from None
    return lambda epoch: v


def step(before: float, after: float, at: int) -> Schedule:
    """``before`` for epochs < ``at``, then ``after`` (Hinton's momentum 0.5 -> 0.9 at epoch 5)."""
    return lambda epoch: before if epoch < at else after


def inverse_decay(start: float, half_life: float) -> Schedule:
    """start / (1 + epoch / half_life): a learning rate that halves after ``half_life`` epochs."""
    return lambda epoch: start / (1.0 + epoch / half_life)


def linear_decay(start: float, epochs: int, end: float = 0.0) -> Schedule:
    """From ``start`` at epoch 0 linearly towards ``end``, reached after ``epochs`` epochs
    (so the last epoch of a run of that length still learns); Tieleman (2008) decays to 0."""
    if epochs < 1:
        raise ValueError(f"epochs: expected a positive integer, got {epochs!r}")
    return lambda epoch: start + (end - start) * min(epoch, epochs) / epochs


class ExponentialGrowth:
    """The schedule ``t -> g0 * (1 + g1) ** t`` (Entropy-SGD's scoping of the coupling, Chaudhari
    et al. 2017; also used for replicated SGD on deep nets, Pittorino et al. 2021).

    ``t`` is the clock of the trainer that evaluates it (steps or epochs). A plain, picklable
    object, so it can be passed to worker processes.
    """

    def __init__(self, g0: float, g1: float):
        self.g0 = check_real(g0, "g0", 0.0, strict=False)
        self.g1 = check_real(g1, "g1", -1.0, strict=True)

    def __call__(self, t: int) -> float:
        return self.g0 * (1.0 + self.g1) ** t

    def __repr__(self):
        return f"exponential_growth(g0={self.g0:g}, g1={self.g1:g})"


def exponential_growth(g0: float, g1: float) -> ExponentialGrowth:
    """The coupling schedule ``gamma(t) = g0 * (1 + g1) ** t`` (t: steps or epochs, from 0)."""
    return ExponentialGrowth(g0, g1)


def sm08_betas(dtype=torch.float64) -> torch.Tensor:
    """The AIS ladder of Salakhutdinov & Murray (2008): 14,501 values from 0 to 1.

    Step 1e-3 on [0, 0.5], 1e-4 on [0.5, 0.9], 1e-5 on [0.9, 1].
    """
    parts = [torch.linspace(0.0, 0.5, 501, dtype=torch.float64)[:-1],
             torch.linspace(0.5, 0.9, 4001, dtype=torch.float64)[:-1],
             torch.linspace(0.9, 1.0, 10001, dtype=torch.float64)]
    return torch.cat(parts).to(dtype)


def linear_betas(n: int, dtype=torch.float64) -> torch.Tensor:
    """``n`` equally spaced inverse temperatures from 0 to 1 (n >= 2)."""
    if n < 2:
        raise ValueError(f"n_betas: expected at least 2, got {n}")
    return torch.linspace(0.0, 1.0, n, dtype=dtype)


def betas_from(n_betas) -> torch.Tensor:
    """A ladder from a count (equally spaced, or 'sm08' for the S&M08 ladder) or explicit values."""
    if isinstance(n_betas, str):
        if n_betas.lower() != "sm08":
            raise ValueError(f"n_betas: expected an integer, 'sm08' or a sequence, got {n_betas!r}")
        return sm08_betas()
    if isinstance(n_betas, int):
        return linear_betas(n_betas)
    b = torch.as_tensor(n_betas, dtype=torch.float64).flatten()
    if b.numel() < 2 or float(b[0]) != 0.0 or float(b[-1]) != 1.0 or bool((b.diff() <= 0).any()):
        raise ValueError("betas: expected an increasing sequence from 0 to 1 with at least 2 values")
    return b

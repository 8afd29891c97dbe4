"""Schedules: a value that changes along a run, and the inverse-temperature ladders of AIS.

Every annealing, scoping or learning-rate quantity in the library (``lr``, ``beta``, ``gamma``,
``momentum``, ...) takes either a plain number (a constant) or a schedule object from this
module. A schedule is called with the clock of the algorithm that uses it, ``t = 0, 1, 2, ...``,
whose unit (update, epoch, sweep, accepted move) that algorithm's docstring names:

    >>> from thermolearn.schedules import Geometric, LinearDecay
    >>> LinearDecay(0.1, steps=10)(5)
    0.05
    >>> Geometric(0.2, rate=1.01)(100)       # 0.2 * 1.01 ** 100
    0.5409...

Schedule objects are small, picklable (they travel to Dask workers), comparable and printable,
so a checkpoint can record them. Any other callable ``t -> number`` is accepted too, but cannot
be recorded in a checkpoint or compared.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

import numpy as np
import torch

from ._numerics import check_int, check_real

__all__ = ["Schedule", "Constant", "LinearDecay", "Step", "InverseDecay", "Geometric", "Table",
           "as_schedule", "schedule_values", "describe", "sm08_betas", "linear_betas", "betas_from"]


class Schedule:
    """Base class: ``schedule(t) -> float`` for the integer clock ``t >= 0``."""

    def __call__(self, t: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def values(self, n: int) -> np.ndarray:
        """The first ``n`` values, float64."""
        return np.array([self(t) for t in range(n)], dtype=np.float64)


@dataclass(frozen=True)
class Constant(Schedule):
    """The same ``value`` at every ``t``."""

    value: float

    def __call__(self, t: int) -> float:
        return self.value


@dataclass(frozen=True)
class LinearDecay(Schedule):
    """From ``start`` at t = 0 linearly to ``end`` at t = ``steps``, then constant.

    With ``steps`` the length of the run, the last step still moves (Tieleman 2008 decays the
    learning rate to 0 this way). ``end > start`` makes it a linear growth (a scoping ramp).
    """

    start: float
    steps: int
    end: float = 0.0

    def __post_init__(self):
        check_int(self.steps, "steps")

    def __call__(self, t: int) -> float:
        return self.start + (self.end - self.start) * min(t, self.steps) / self.steps


@dataclass(frozen=True)
class Step(Schedule):
    """``before`` for t < ``at``, then ``after`` (Hinton's momentum 0.5 -> 0.9 at epoch 5)."""

    before: float
    after: float
    at: int

    def __call__(self, t: int) -> float:
        return self.before if t < self.at else self.after


@dataclass(frozen=True)
class InverseDecay(Schedule):
    """``start / (1 + t / half_life)``: halves after ``half_life`` steps."""

    start: float
    half_life: float

    def __post_init__(self):
        check_real(self.half_life, "half_life")

    def __call__(self, t: int) -> float:
        return self.start / (1.0 + t / self.half_life)


@dataclass(frozen=True)
class Geometric(Schedule):
    """``start * rate ** t``, capped at ``cap``.

    Annealing of an inverse temperature and scoping of a coupling: simulated annealing's
    ``beta *= rate`` per move, and Entropy-SGD's ``gamma_0 (1 + gamma_1)^t`` (Chaudhari et al.
    2017), which is ``Geometric(gamma_0, 1 + gamma_1)``.
    """

    start: float
    rate: float
    cap: float = 1e12

    def __post_init__(self):
        check_real(self.start, "start", strict=False)
        check_real(self.rate, "rate")

    def __call__(self, t: int) -> float:
        if self.start == 0.0:
            return 0.0
        if math.log(self.start) + t * math.log(self.rate) >= math.log(self.cap):
            return self.cap
        return min(self.start * self.rate ** t, self.cap)


@dataclass(frozen=True)
class Table(Schedule):
    """Explicit values: ``values[t]``, and the last value once t runs past the end."""

    values_: tuple

    def __init__(self, values):
        vals = tuple(float(v) for v in values)
        if not vals:
            raise ValueError("values: expected at least one value")
        object.__setattr__(self, "values_", vals)

    def __call__(self, t: int) -> float:
        return self.values_[min(t, len(self.values_) - 1)]

    def __repr__(self):
        return f"Table({list(self.values_)!r})"


ScheduleLike = Union[float, int, Schedule, Callable[[int], float]]


def as_schedule(value: ScheduleLike, name: str, minimum: float | None = None,
                strict: bool = False) -> Callable[[int], float]:
    """A callable of ``t`` from a number, a :class:`Schedule` or another callable.

    A number is checked (finite, and ``>= minimum``, or ``> minimum`` when ``strict``) and
    becomes a :class:`Constant`; the message names ``name``.
    """
    if isinstance(value, Schedule) or (callable(value) and not isinstance(value, (int, float))):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}: expected a number or a schedule from thermolearn.schedules, got {value!r}")
    return Constant(check_real(value, name, minimum=minimum, strict=strict))


def schedule_values(value: ScheduleLike, n: int, name: str = "schedule") -> np.ndarray:
    """The first ``n`` values of a number or schedule, float64."""
    s = as_schedule(value, name)
    if isinstance(s, Schedule):
        return s.values(n)
    return np.array([float(s(t)) for t in range(n)], dtype=np.float64)


def describe(value: ScheduleLike):
    """A JSON-ready description for checkpoints and records: the number itself, the schedule's
    repr, or None for a callable that is not a :class:`Schedule` (it cannot be compared)."""
    if isinstance(value, Schedule):
        return value.value if isinstance(value, Constant) else repr(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    return None


# ---------------------------------------------------------------------------------------------
# AIS ladders
# ---------------------------------------------------------------------------------------------

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
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n_betas: expected an integer of at least 2, got {n!r}")
    return torch.linspace(0.0, 1.0, int(n), dtype=dtype)


def betas_from(n_betas) -> torch.Tensor:
    """A ladder from a count (equally spaced, or 'sm08' for the S&M08 ladder) or explicit values."""
    if isinstance(n_betas, str):
        if n_betas.lower() != "sm08":
            raise ValueError(f"n_betas: expected an integer, 'sm08' or a sequence, got {n_betas!r}")
        return sm08_betas()
    if isinstance(n_betas, (int, np.integer)):
        return linear_betas(n_betas)
    b = torch.as_tensor(n_betas, dtype=torch.float64).flatten()
    if b.numel() < 2 or float(b[0]) != 0.0 or float(b[-1]) != 1.0 or bool((b.diff() <= 0).any()):
        raise ValueError("betas: expected an increasing sequence from 0 to 1 with at least 2 values")
    return b

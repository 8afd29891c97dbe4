"""What solvers and trainers return: declared dataclasses with a JSON-ready history.

Every result dataclass mixes in :class:`Result`, declares ``history: list[dict]`` (one dict per
record, each with an integer ``step`` in the result's ``step_unit``) and its other fields; see
docs/CONVENTIONS.md. :class:`LocalEnergy` is the one flatness result of binary and deep networks.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np


def json_ready(value):
    """``value`` with NumPy / torch scalars and arrays turned into Python numbers and lists."""
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "tolist"):           # numpy arrays and scalars, torch tensors
        return json_ready(value.tolist())
    raise TypeError(f"not JSON-ready: {type(value).__name__}")


class Result:
    """Mixin of the result dataclasses: reading the history."""

    def column(self, key: str) -> list:
        """``[record[key] for record in history]`` (None where a record lacks the key)."""
        return [r.get(key) for r in self.history]

    @property
    def last(self) -> dict:
        """The last history record ({} when there is none)."""
        return self.history[-1] if self.history else {}


@dataclass
class LocalEnergy:
    """The local energy of a network: a metric after random perturbations of its weights.

    sizes : (F,) perturbation sizes (fractions of flipped weights, or noise scales sigma).
    kind : how the weights were perturbed ("flip", "multiplicative", "additive").
    metric : what was measured ("error": training error fraction, "loss").
    values : (F, draws) the metric after each draw; base : the metric of the unperturbed net.
    mean, std : (F,) over the draws, std with ddof = 1 (0 for one draw); ``sem`` = std / sqrt(draws).
    """

    sizes: np.ndarray
    kind: str
    metric: str
    values: np.ndarray
    base: float

    @property
    def draws(self) -> int:
        return int(self.values.shape[1])

    @property
    def mean(self) -> np.ndarray:
        return self.values.mean(axis=1)

    @property
    def std(self) -> np.ndarray:
        if self.draws < 2:
            return np.zeros(self.values.shape[0])
        return self.values.std(axis=1, ddof=1)

    @property
    def sem(self) -> np.ndarray:
        return self.std / math.sqrt(self.draws)

    def as_dict(self) -> dict:
        """JSON-ready summary: sizes, kind, metric, base, mean, std, sem, draws."""
        return json_ready({"sizes": self.sizes, "kind": self.kind, "metric": self.metric, "base": self.base,
                           "mean": self.mean, "std": self.std, "sem": self.sem, "draws": self.draws})

"""The result every binary-network solver returns (focusing BP, replicated SGD, replicated SA)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class SolverResult:
    """weights : (N,) or (K, n) int8 +-1 solution (the center / reference, or the first replica
        that solved); errors and energy : of ``weights`` on the training set, recounted by
        thermolearn.binary.models; converged : zero errors reached; seconds : wall time;
        steps : the solver's own unit (sweeps, epochs, proposed moves); history : per-step dicts
        (gamma, y, beta, mean overlaps, errors, and solver-specific fields); replicas : the final
        (y, ...) replica weights when the solver has replicas."""

    weights: torch.Tensor
    errors: int
    energy: int
    converged: bool
    seconds: float
    steps: int
    history: list[dict] = field(default_factory=list)
    replicas: torch.Tensor | None = None

"""The result every binary-network solver returns (focusing BP, replicated SGD, replicated SA)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..results import Result


@dataclass
class SolverResult(Result):
    """What :func:`~thermolearn.binary.focusing_bp`, :func:`~thermolearn.binary.replicated_sgd`
    and :func:`~thermolearn.binary.replicated_annealing` return.

    weights : (N,) or (K, n) int8 +-1 solution (the center / reference, or the first replica
        that solved; the best network found when nothing solved).
    errors, energy : of ``weights`` on the training set, recounted by thermolearn.binary.models.
    converged : zero training errors reached.
    seconds : wall time. steps : iterations done, in ``step_unit``.
    step_unit : "sweep" (focusing BP: parallel message-passing sweeps), "epoch" (replicated SGD),
        "move" (replicated SA: proposed single-weight flips, all replicas together).
    stop_reason : "solved", "max_iter" (the budget ran out), "patience" (annealing made no
        progress) or "steps" (focusing BP ran every protocol step without a solution).
    history : one JSON-ready dict per record, each with an integer ``step`` in ``step_unit``.
    replicas : the final (replicas, *weights.shape) int8 replica weights, when the solver has them.
    marginals : the final BP magnetizations tanh(H) (focusing BP only), float, weights' shape.
    debug : solver internals kept for tests (replicated SA with ``debug=True``), else None.
    """

    weights: torch.Tensor
    errors: int
    energy: int
    converged: bool
    seconds: float
    steps: int
    step_unit: str
    stop_reason: str
    history: list[dict] = field(default_factory=list)
    replicas: torch.Tensor | None = None
    marginals: torch.Tensor | None = None
    debug: dict | None = None

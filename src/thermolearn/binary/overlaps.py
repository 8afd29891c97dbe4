"""Overlaps between replicas of binary networks, computed from the sum of their weights.

For y replicas W^a in {-1, +1}^{N_w} and their sum S_i = sum_a W^a_i, the mean pairwise overlap is

    q = (2 / (y (y - 1))) sum_{a < b} W^a . W^b / N_w = (S . S - y N_w) / (y (y - 1) N_w),

and the mean overlap of the replicas with a reference whose magnetization given the replicas is
tanh(gamma S_i) (the reference traced out with coupling gamma, as in the robust ensemble of
Baldassi et al., PNAS 2016) is

    q_ref = sum_i tanh(gamma S_i) S_i / (y N_w),

which for gamma = inf is the overlap with the majority vote sign(S) (the center of replicated
SGD): sum_i |S_i| / (y N_w). Distances are d = (1 - q) / 2. Both the replicated SGD and the
replicated annealing solvers record these two numbers.
"""

from __future__ import annotations

import math

import torch

__all__ = ["replica_overlap", "center_overlap"]


def _flat(S) -> torch.Tensor:
    return torch.as_tensor(S).reshape(-1).to(torch.float64)


def replica_overlap(S, replicas: int) -> float:
    """Mean pairwise overlap q over a < b from the replica sum S (any shape); NaN for one replica."""
    if replicas < 2:
        return math.nan
    s = _flat(S)
    n_w = s.numel()
    return (float(s @ s) - replicas * n_w) / (replicas * (replicas - 1) * n_w)


def center_overlap(S, replicas: int, gamma: float = math.inf) -> float:
    """Mean overlap of the replicas with the traced-out reference tanh(gamma S) (sign(S) for
    gamma = inf); 0 for gamma = 0."""
    s = _flat(S)
    if math.isinf(gamma):
        return float(s.abs().sum()) / (replicas * s.numel())
    return float(torch.tanh(gamma * s) @ s) / (replicas * s.numel())

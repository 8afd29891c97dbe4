"""Random classification problems for binary networks: random labels and teacher-student.

Following Baldassi et al., PNAS 2016: M = round(alpha * N_weights) patterns xi in
{-1, +1}^N with i.i.d. uniform entries; alpha is the load in patterns per synapse, with
N_weights = N for the perceptron and the tree-like committee and N*K for the fully connected
committee (so the reference setting N = 321, K = 5, alpha = 0.5 has M = round(0.5 * 1605) = 802).

* Random labels: y_mu = +-1 i.i.d. uniform (the capacity problem).
* Teacher-student: y_mu = sigma_T(xi_mu) for a uniform random binary teacher T of the same
  architecture; the generalization error of a student W is then
  eps_g = P_xi[ sigma_W(xi) != sigma_T(xi) ], estimated on fresh patterns.

Everything is drawn on the CPU from an explicit ``seed`` (int, torch.Generator, or None for fresh
entropy) and then moved to ``device``: a seed gives the same problem on every device.
"""

from __future__ import annotations

import numpy as np
import torch

from .._numerics import check_int, check_real
from ..seeding import as_generator
from .models import Architecture, _fields, _output_field, as_pm1

__all__ = ["n_patterns", "random_patterns", "teacher_student", "generalization_error"]


def n_patterns(arch: Architecture, alpha) -> int:
    """M = round(alpha * arch.n_weights); raises ValueError naming ``alpha`` if it gives M = 0."""
    a = check_real(alpha, "alpha", what=" (patterns per weight)")
    M = int(round(a * arch.n_weights))
    if M < 1:
        raise ValueError(f"alpha: {alpha!r} * {arch.n_weights} weights rounds to M = 0 patterns")
    return M


def _pm1(shape, g: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=g, dtype=torch.int8).mul_(2).sub_(1)


def random_patterns(N: int, alpha, seed, *, K: int = 1, tree: bool = False, device=None,
                    dtype=torch.int8) -> tuple[torch.Tensor, torch.Tensor]:
    """Random classification problem: X (M, N) and y (M,), i.i.d. uniform entries +-1.

    M = round(alpha * N_weights) with N_weights = N (perceptron, tree-like) or N*K (fully
    connected committee). N, K and tree are validated as for :class:`Architecture` (N odd, or
    N/K odd for a tree; K odd).
    """
    arch = Architecture(N, K, tree)
    M = n_patterns(arch, alpha)
    g = as_generator(seed)
    X = _pm1((M, arch.N), g)
    y = _pm1((M,), g)
    return X.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype)


def teacher_student(N: int, alpha, seed, *, K: int = 1, tree: bool = False, device=None,
                    dtype=torch.int8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Teacher-student problem: (X, y, teacher) with y_mu = sigma_teacher(xi_mu).

    The teacher has uniform random weights +-1 of shape Architecture(N, K, tree).weight_shape;
    patterns are as in :func:`random_patterns`. The teacher classifies its own X with zero errors.
    """
    arch = Architecture(N, K, tree)
    M = n_patterns(arch, alpha)
    g = as_generator(seed)
    teacher = arch.random_weights(g)
    X = _pm1((M, arch.N), g)
    y = torch.sign(_output_field(_fields(teacher, X, arch))).to(torch.int8)
    return (X.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype),
            teacher.to(device=device, dtype=dtype))


def generalization_error(W, teacher, n_test: int, seed, *, K: int = 1, tree: bool = False,
                         chunk: int = 1 << 14) -> torch.Tensor:
    """Monte Carlo estimate of eps_g = P[sigma_W(xi) != sigma_teacher(xi)] on ``n_test`` fresh
    uniform patterns drawn from ``seed``.

    W may carry leading batch dimensions (replicas); the teacher is one network of the same
    architecture (K hidden units, ``tree`` as given to :func:`teacher_student`). Returns float64
    of shape W's batch dimensions (0-d for one network); the standard error of each estimate is
    sqrt(eps (1 - eps) / n_test). Patterns are drawn on the CPU in chunks of ``chunk`` rows and moved to W's device.
    """
    W = as_pm1(W, "W", min_ndim=1)
    teacher = as_pm1(teacher, "teacher", min_ndim=1)
    if teacher.device != W.device:
        raise ValueError(f"teacher: on device {teacher.device}, but W is on {W.device}")
    n_test, chunk = check_int(n_test, "n_test"), check_int(chunk, "chunk")
    if not isinstance(K, (int, np.integer)) or isinstance(K, bool) or K < 1 or K % 2 == 0:
        raise ValueError(f"K: expected an odd positive integer, got {K!r}")
    unit_dims = 1 if K == 1 else 2
    if teacher.ndim != unit_dims:
        raise ValueError(f"teacher: expected one network of shape {'(N,)' if K == 1 else '(K, n)'} "
                         f"for K = {K}, got shape {tuple(teacher.shape)}")
    # the number of inputs is not stored with the weights: a fully connected teacher (K, N) sees
    # N inputs, a tree-like one (K, n) sees N = K n; ``tree`` says which.
    N = teacher.shape[-1] * (K if tree else 1)
    try:
        arch = Architecture(N, K, tree)
    except ValueError as exc:
        if not str(exc).startswith("N:"):
            raise
        raise ValueError(f"teacher: shape {tuple(teacher.shape)} gives N = {N} inputs; "
                         + str(exc)[3:]) from None
    if tuple(teacher.shape) != arch.weight_shape:
        raise ValueError(f"teacher: expected shape {arch.weight_shape} for K = {K}, "
                         f"got {tuple(teacher.shape)}")
    if tuple(W.shape[W.ndim - unit_dims:]) != tuple(teacher.shape):
        raise ValueError(f"W: expected trailing shape {tuple(teacher.shape)} to match teacher, "
                         f"got {tuple(W.shape)}")
    g = as_generator(seed)
    wrong = torch.zeros(W.shape[:W.ndim - unit_dims], dtype=torch.int64, device=W.device)
    done = 0
    while done < n_test:
        m = min(chunk, n_test - done)
        X = _pm1((m, arch.N), g).to(W.device)
        s_t = torch.sign(_output_field(_fields(teacher, X, arch)))
        s_w = torch.sign(_output_field(_fields(W, X, arch)))
        wrong += (s_w != s_t).sum(-1)
        done += m
    return wrong.to(torch.float64) / n_test

"""Binary perceptron and binary committee machine: outputs, error counts, local-search energies.

Conventions (Baldassi et al., PNAS 2016, "Models and data"):

* weights W in {-1, +1}; patterns xi in {-1, +1}^N, one per row of X (shape (M, N)); labels y in
  {-1, +1} (shape (M,)).
* Perceptron (K = 1): W has shape (..., N) and the output is sigma(xi) = sign(W . xi).
* Committee machine with K hidden units (K odd): W has shape (..., K, n) and

      sigma(xi) = sign( sum_k sign(W_k . xi_k) ),

  fully connected when n = N (every unit sees the whole pattern, xi_k = xi, N*K weights) and
  tree-like when n = N / K (unit k sees its own block xi_k = xi[k n : (k+1) n], N weights).
  The layout is read from the last dimension of W; for K = 1 the two coincide.
* Fields are never zero: N (fully connected) or n = N/K (tree-like) must be odd, and K odd.
* Leading dimensions of W ("...") are a batch of independent networks (e.g. replicas): every
  function returns one value per network, or per network and pattern.

Energy used by local search (Baldassi et al., PNAS 2016, replicated simulated annealing): per pattern, the minimum
number of weights to flip so that the pattern is classified correctly,

    perceptron:  E_mu = ceil((|Delta_mu| + 1) / 2) if Delta_mu < 0 else 0,   Delta_mu = y_mu W . xi_mu

    committee:   Delta_k = y_mu W_k . xi_mu,  h_out = sum_k sign(Delta_k)  (so y_mu sigma = sign(h_out));
                 if h_out < 0, fix the ceil((|h_out| + 1)/2) wrong units (Delta_k < 0) with the
                 smallest |Delta_k|, each at cost ceil((|Delta_k| + 1)/2); E_mu = the sum, else 0.

Each hidden unit owns its weights (in both layouts), so per-unit costs add and the committee
energy is the exact minimum number of flips (checked by enumeration in tests/test_binary_models.py).
All functions work on CPU or GPU tensors, int8 or floating, with fields computed exactly in float32
(float64 when N > 2^24).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._numerics import check_int, to_tensor
from ..seeding import as_generator

__all__ = ["Architecture", "hidden_fields", "output", "errors", "energies", "energy",
           "as_pm1", "check_pm1", "check_problem", "check_training_set"]


# ---------------------------------------------------------------------------------------------
# Input checks. Errors name the argument, what was expected and what was received.
# ---------------------------------------------------------------------------------------------

def check_pm1(t: torch.Tensor, name: str) -> None:
    """Raise ValueError if ``t`` has entries other than -1 and +1 (NaN counts as other)."""
    if t.dtype == torch.bool:
        raise ValueError(f"{name}: expected entries in {{-1, +1}}, got a boolean tensor")
    if t.is_complex():
        raise ValueError(f"{name}: expected real entries in {{-1, +1}}, got dtype {t.dtype}")
    bad = int(torch.count_nonzero((t != 1) & (t != -1))) if t.numel() else 0
    if bad:
        tf = t.double()
        lo, hi = float(tf.nan_to_num(0.0).min()), float(tf.nan_to_num(0.0).max())
        raise ValueError(f"{name}: expected entries in {{-1, +1}}, got {bad} other value(s) "
                         f"(finite range [{lo:g}, {hi:g}])")


def as_pm1(x, name: str, *, ndim: int | None = None, min_ndim: int | None = None) -> torch.Tensor:
    """Convert a NumPy array, list or tensor to a tensor with entries +-1 (dtype kept), or raise.

    Integer and floating dtypes are kept as they are (int8 stays int8); the device is kept.
    """
    t = to_tensor(x, name)
    if ndim is not None and t.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {tuple(t.shape)}")
    if min_ndim is not None and t.ndim < min_ndim:
        raise ValueError(f"{name}: expected at least {min_ndim} dimension(s), got shape {tuple(t.shape)}")
    check_pm1(t, name)
    return t


def _check_odd(value, name: str, what: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1 or value % 2 == 0:
        raise ValueError(f"{name}: expected an odd positive integer ({what}), got {value!r}")
    return int(value)


def _check_K(K) -> int:
    return _check_odd(K, "K", "number of hidden units; an odd K means the output field is never zero")


# ---------------------------------------------------------------------------------------------
# Architecture
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Architecture:
    """A binary perceptron (K = 1) or committee machine (K odd > 1), fully connected or tree-like.

    Parameters
    ----------
    N : number of inputs (pattern length). Must be odd (fully connected) or a multiple of K with
        N / K odd (tree-like), so that no hidden field is ever zero.
    K : number of hidden units, odd; 1 is the perceptron.
    tree : tree-like committee (unit k sees inputs k*N/K .. (k+1)*N/K - 1) instead of fully connected.
    """

    N: int
    K: int = 1
    tree: bool = False

    def __post_init__(self):
        K = _check_K(self.K)
        if not isinstance(self.tree, (bool, np.bool_)):
            raise ValueError(f"tree: expected True or False, got {self.tree!r}")
        N = self.N
        N = check_int(N, "N")
        if self.tree and K > 1:
            if N % K:
                raise ValueError(f"N: a tree-like committee needs N divisible by K = {K}, got N = {N}")
            if (N // K) % 2 == 0:
                raise ValueError(f"N: a tree-like committee needs an odd block size N/K so that "
                                 f"fields are never zero, got N/K = {N}/{K} = {N // K}")
        elif N % 2 == 0:
            raise ValueError(f"N: expected an odd number of inputs so that fields are never zero, got {N}")
        object.__setattr__(self, "N", int(N))
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "tree", bool(self.tree) and K > 1)

    @property
    def n_per_unit(self) -> int:
        """Inputs seen by each hidden unit: N (fully connected, perceptron) or N/K (tree-like)."""
        return self.N // self.K if self.tree else self.N

    @property
    def n_weights(self) -> int:
        """Number of binary weights: N (perceptron, tree-like) or N*K (fully connected)."""
        return self.K * self.n_per_unit

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """(N,) for the perceptron, (K, n_per_unit) for a committee machine."""
        return (self.N,) if self.K == 1 else (self.K, self.n_per_unit)

    def random_weights(self, seed, replicas: int | None = None, device=None,
                       dtype=torch.int8) -> torch.Tensor:
        """Uniform random weights in {-1, +1}, shape weight_shape or (replicas, *weight_shape).

        Drawn on the CPU from ``seed`` (int, torch.Generator or None for fresh entropy) and then
        moved to ``device``, so a seed gives the same weights on every device.
        """
        shape = self.weight_shape
        if replicas is not None:
            shape = (check_int(replicas, "replicas", allow_none=True),) + shape
        g = as_generator(seed)
        W = torch.randint(0, 2, shape, generator=g, dtype=torch.int8).mul_(2).sub_(1)
        return W.to(device=device, dtype=dtype)

    @classmethod
    def infer(cls, W: torch.Tensor, N: int, K: int = 1, name: str = "W") -> Architecture:
        """The architecture of weights W (shape (..., N) or (..., K, n)) applied to N inputs."""
        K = _check_K(K)
        if K == 1:
            if W.ndim < 1 or W.shape[-1] != N:
                raise ValueError(f"{name}: a perceptron on N = {N} inputs needs shape (..., {N}), "
                                 f"got {tuple(W.shape)}")
            return cls(N, 1, False)
        if W.ndim < 2 or W.shape[-2] != K or W.shape[-1] not in (N, N // K if N % K == 0 else -1):
            tree = f" or (..., {K}, {N // K}) (tree-like)" if N % K == 0 else ""
            raise ValueError(f"{name}: a committee machine with K = {K} on N = {N} inputs needs shape "
                             f"(..., {K}, {N}) (fully connected){tree}, got {tuple(W.shape)}")
        return cls(N, K, tree=W.shape[-1] != N)


def check_training_set(X, y):
    """X (M, N) and y (M,) as tensors with entries +-1 and M >= 1, or a ValueError naming X or y."""
    X = as_pm1(X, "X", ndim=2)
    y = as_pm1(y, "y", ndim=1)
    M = X.shape[0]
    if y.shape[0] != M:
        raise ValueError(f"y: expected shape ({M},) to match X of shape {tuple(X.shape)}, got {tuple(y.shape)}")
    if M < 1:
        raise ValueError("X: expected at least one pattern (row), got 0")
    return X, y


def check_problem(X, y, K: int = 1, tree: bool = False):
    """Validate a training set for a solver: X (M, N) and y (M,) with entries +-1, M >= 1, and
    the architecture (K, tree) on N inputs. Returns (X, y, Architecture); errors name X, y, K
    or tree (an unsuitable N is reported as a property of X, the argument the caller passed)."""
    if not isinstance(tree, (bool, np.bool_)):
        raise ValueError(f"tree: expected True or False, got {tree!r}")
    X, y = check_training_set(X, y)
    N = X.shape[1]
    try:
        arch = Architecture(N, K, bool(tree))
    except ValueError as exc:
        if str(exc).startswith("N:"):
            raise ValueError(f"X: has N = {N} columns; " + str(exc)[3:]) from None
        raise
    return X, y, arch


# ---------------------------------------------------------------------------------------------
# Fields, outputs, errors, energies
# ---------------------------------------------------------------------------------------------

def _prepare(W, X, K: int, y=None):
    """Validate and return (W, X, y, arch); X and y must be on W's device."""
    W = as_pm1(W, "W", min_ndim=1)
    X = as_pm1(X, "X", ndim=2)
    if X.device != W.device:
        raise ValueError(f"X: on device {X.device}, but W is on {W.device}; move them to the same device")
    try:
        arch = Architecture.infer(W, X.shape[1], K)
    except ValueError as exc:
        if str(exc).startswith("N:"):  # N comes from X here: name X, the argument the caller passed
            raise ValueError(f"X: has N = {X.shape[1]} columns; " + str(exc)[3:]) from None
        raise
    if y is not None:
        y = as_pm1(y, "y", ndim=1)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"y: expected shape ({X.shape[0]},) to match X of shape {tuple(X.shape)}, "
                             f"got {tuple(y.shape)}")
        if y.device != W.device:
            raise ValueError(f"y: on device {y.device}, but W is on {W.device}")
    return W, X, y, arch


def _fields(W: torch.Tensor, X: torch.Tensor, arch: Architecture) -> torch.Tensor:
    """Hidden fields W_k . xi_k, shape (..., M, K), exact (integer-valued floats)."""
    ct = torch.float32 if arch.n_per_unit <= 2 ** 24 else torch.float64
    Wf, Xf = W.to(ct), X.to(ct)
    if arch.K == 1:
        return (Wf @ Xf.T).unsqueeze(-1)                                      # (..., M, 1)
    if not arch.tree:
        return (Wf @ Xf.T).transpose(-1, -2)                                  # (..., M, K)
    Xb = Xf.reshape(X.shape[0], arch.K, arch.n_per_unit)                      # (M, K, n)
    return torch.einsum("...ki,mki->...mk", Wf, Xb)


def hidden_fields(W, X, K: int = 1) -> torch.Tensor:
    """Hidden-unit fields h_k(xi_mu) = W_k . xi_mu, shape (..., M, K) (K = 1 for the perceptron)."""
    W, X, _, arch = _prepare(W, X, K)
    return _fields(W, X, arch)


def _output_field(fields: torch.Tensor) -> torch.Tensor:
    """h_out = sum_k sign(h_k), shape (..., M); odd, hence never zero."""
    return torch.sign(fields).sum(-1)


def output(W, X, K: int = 1) -> torch.Tensor:
    """Network outputs sigma(xi_mu) = sign(sum_k sign(W_k . xi_mu)) in {-1, +1}, int8, shape (..., M).

    For K = 1 this is the perceptron output sign(W . xi_mu).
    """
    W, X, _, arch = _prepare(W, X, K)
    return torch.sign(_output_field(_fields(W, X, arch))).to(torch.int8)


def errors(W, X, y, K: int = 1) -> torch.Tensor:
    """Number of misclassified patterns, #{mu : sigma(xi_mu) != y_mu}: int64, shape W.shape[:-1]
    for the perceptron and W.shape[:-2] for a committee (a 0-d tensor for a single network)."""
    W, X, y, arch = _prepare(W, X, K, y)
    h_out = _output_field(_fields(W, X, arch))
    return (h_out * y.to(h_out.dtype) < 0).sum(-1)


def energies(W, X, y, K: int = 1) -> torch.Tensor:
    """Per-pattern energy E_mu: the minimum number of weight flips that classifies pattern mu
    correctly (formulas in the module docstring).

    Returns int64 of shape (..., M). Zero exactly on correctly classified patterns.
    """
    W, X, y, arch = _prepare(W, X, K, y)
    F = _fields(W, X, arch)
    delta = F * y.to(F.dtype).unsqueeze(-1)                                   # (..., M, K), odd
    cost = torch.div(delta.abs() + 1, 2, rounding_mode="floor")               # ceil((|D|+1)/2), D odd
    if arch.K == 1:
        return torch.where(delta < 0, cost, torch.zeros_like(cost)).squeeze(-1).to(torch.int64)
    h_out = torch.sign(delta).sum(-1)                                         # y * output field
    tofix = torch.div(h_out.abs() + 1, 2, rounding_mode="floor").to(torch.int64)  # units to fix
    big = torch.full_like(cost, float(arch.n_per_unit + 1))                   # right units: never chosen
    ranked = torch.sort(torch.where(delta < 0, cost, big), dim=-1).values.cumsum(-1)
    # (K + |h_out|)/2 >= tofix units are wrong when h_out < 0, so only finite costs are summed
    picked = torch.gather(ranked, -1, (tofix.clamp(1, arch.K) - 1).unsqueeze(-1)).squeeze(-1)
    return torch.where(h_out < 0, picked, torch.zeros_like(picked)).to(torch.int64)


def energy(W, X, y, K: int = 1) -> torch.Tensor:
    """Total energy E = sum_mu E_mu (minimum flips per pattern, summed), int64, one per network."""
    return energies(W, X, y, K).sum(-1)

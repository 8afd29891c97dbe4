"""Landscape diagnostics for binary networks: the local energy around a solution.

Spec: shared/specs/replicas.md, "Continuous networks", item "Flatness to report": for binary
weights, the local energy is the training error after flipping a fraction p of the weights.
Solutions in dense (wide, flat) regions keep a low error for small p; isolated solutions lose it
immediately. Comparing curves of several solvers (fBP, replicated SGD, replicated SA against their
non-interacting baselines) is the flatness measurement of Baldassi et al., PNAS 2016.

For each fraction p the diagnostic flips exactly k = round(p * n_weights) weights, a set drawn
uniformly without replacement and independently for each of ``draws`` draws, and counts the
fraction of misclassified training patterns with :func:`thermolearn.binary.models.errors`. All
draws of one fraction are evaluated at once as a batch of networks (in chunks that bound memory).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .._numerics import check_int, check_reals
from ..seeding import as_generator
from .models import Architecture, _check_K, as_pm1, check_training_set, errors

__all__ = ["DEFAULT_FRACTIONS", "LocalEnergy", "local_energy"]

DEFAULT_FRACTIONS = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)

# at most about this many weights (draws x n_weights) or fields (draws x M x K) exist at once
_CHUNK_WEIGHTS = 1 << 22


@dataclass
class LocalEnergy:
    """The local energy of one network (see :func:`local_energy`).

    fractions : (F,) the requested fractions p. flips : (F,) the number of weights flipped per
    draw, round(p * n_weights). mean, std : (F,) mean and standard deviation (over draws, ddof 0)
    of the training error fraction. errors : (F, draws) the raw error fractions, one per draw.
    n_weights : number of binary weights; n_patterns : M; base_errors : misclassified patterns of
    the unperturbed network (a count, not a fraction).
    """

    fractions: np.ndarray
    flips: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    errors: np.ndarray
    n_weights: int
    n_patterns: int
    base_errors: int
    draws: int = field(init=False)

    def __post_init__(self):
        self.draws = int(self.errors.shape[1])

    @property
    def sem(self) -> np.ndarray:
        """Standard error of the mean error fraction, std / sqrt(draws - 1) (0 for one draw)."""
        return self.std / math.sqrt(self.draws - 1) if self.draws > 1 else np.zeros_like(self.std)

    def as_dict(self) -> dict:
        """JSON-ready lists: fractions, flips, mean, std, n_weights, n_patterns, base_errors, draws."""
        return {"fractions": self.fractions.tolist(), "flips": self.flips.tolist(),
                "mean": self.mean.tolist(), "std": self.std.tolist(), "n_weights": self.n_weights,
                "n_patterns": self.n_patterns, "base_errors": self.base_errors, "draws": self.draws}


def _network(W, N: int, K: int, tree) -> tuple[torch.Tensor, Architecture]:
    """W as one network of its architecture's weight_shape, and that architecture."""
    W = as_pm1(W, "W", min_ndim=1)
    if K == 1:
        if W.ndim != 1 and not (W.ndim == 2 and W.shape[0] == 1):
            raise ValueError(f"W: a perceptron (K = 1) needs one network of shape ({N},), "
                             f"got shape {tuple(W.shape)}")
        W = W.reshape(-1)
    elif W.ndim == 1:
        # a flat committee: K consecutive blocks of n weights (n = N fully connected, N/K tree-like)
        if W.shape[0] not in (N * K, N):
            raise ValueError(f"W: a flat committee with K = {K} on N = {N} inputs needs {N * K} "
                             f"(fully connected) or {N} (tree-like) weights, got {W.shape[0]}")
        W = W.reshape(K, -1)
    elif W.ndim != 2:
        raise ValueError(f"W: expected one network of shape (K, n) = ({K}, {N}) or ({K}, {N // K}), "
                         f"got shape {tuple(W.shape)}")
    arch = Architecture.infer(W, N, K)
    if tree is not None and K > 1 and bool(tree) != arch.tree:
        want = "tree-like" if tree else "fully connected"
        raise ValueError(f"W: shape {tuple(W.shape)} is a {'tree-like' if arch.tree else 'fully connected'} "
                         f"committee on N = {N} inputs, but tree={tree!r} asks for a {want} one")
    return W, arch


def local_energy(W, X, y, K: int = 1, fractions=DEFAULT_FRACTIONS, draws: int = 100, seed=0,
                 tree: bool | None = None) -> LocalEnergy:
    """Training error fraction after flipping a random fraction p of the weights of W.

    Parameters
    ----------
    W : one network, entries +-1: shape (N,) for the perceptron (K = 1); (K, N) fully connected or
        (K, N/K) tree-like for a committee machine (a flat vector of K*N or N weights is read as K
        consecutive blocks).
    X : (M, N) patterns, y : (M,) labels, entries +-1.
    K : odd number of hidden units (1 = perceptron).
    fractions : numbers p in [0, 1]; for each, exactly round(p * n_weights) distinct weights are
        flipped (p = 0: none, the training error of W; p = 1: all, the network -W).
    draws : independent random sets of flipped weights per fraction (>= 1).
    seed : int, torch.Generator or None; the sets are drawn on the CPU from it, so results do not
        depend on the device of W.
    tree : None reads the layout from the shape of W; True / False also checks it.

    Returns a :class:`LocalEnergy` (mean, std and raw error fractions per fraction). The
    computation runs on W's device (X and y are moved there).
    """
    K = _check_K(K)
    draws = check_int(draws, "draws")
    p = check_reals(fractions, "fractions", 0.0, 1.0)
    if tree is not None and not isinstance(tree, (bool, np.bool_)):
        raise ValueError(f"tree: expected None, True or False, got {tree!r}")
    X, y = check_training_set(X, y)
    M, N = X.shape
    W, arch = _network(W, N, K, tree)
    dev = W.device
    X, y = X.to(dev), y.to(dev)
    n_w = arch.n_weights
    flat = W.reshape(n_w)
    flips = np.rint(p * n_w).astype(np.int64)        # round half to even, as Python's round
    g = as_generator(seed)
    chunk = max(1, min(draws, _CHUNK_WEIGHTS // max(n_w, M * K)))   # weights and fields per chunk
    out = np.empty((p.size, draws), dtype=np.float64)
    base = int(errors(W, X, y, K))
    for j, k in enumerate(flips.tolist()):
        if k == 0:
            out[j] = base / M
            continue
        for start in range(0, draws, chunk):
            b = min(chunk, draws - start)
            if k == n_w:
                idx = torch.arange(n_w).expand(b, n_w)
            else:
                # b independent uniform k-subsets: the first k of random permutations
                idx = torch.rand((b, n_w), generator=g).argsort(dim=1)[:, :k]
            sign = torch.ones((b, n_w), dtype=flat.dtype)
            sign.scatter_(1, idx, -1)
            batch = (flat.unsqueeze(0) * sign.to(dev)).reshape((b,) + arch.weight_shape)
            out[j, start:start + b] = errors(batch, X, y, K).cpu().numpy() / M
    return LocalEnergy(fractions=p, flips=flips, mean=out.mean(1), std=out.std(1), errors=out,
                       n_weights=n_w, n_patterns=M, base_errors=base)

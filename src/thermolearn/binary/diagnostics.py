"""Landscape diagnostics for binary networks: the local energy around a solution.

For binary weights the local energy is the training error after flipping a random fraction p of
the weights (Baldassi et al., PNAS 2016; Baldassi, Ingrosso, Lucibello, Saglietti, Zecchina,
PRL 115, 128101 (2015), for the dense regions it probes).
Solutions in dense (wide, flat) regions keep a low error for small p; isolated solutions lose it
immediately. Comparing curves of several solvers (fBP, replicated SGD, replicated SA against their
non-interacting baselines) is the flatness measurement of Baldassi et al., PNAS 2016.

For each fraction p the diagnostic flips exactly k = round(p * n_weights) weights, a set drawn
uniformly without replacement and independently for each of ``draws`` draws, and counts the
fraction of misclassified training patterns with :func:`thermolearn.binary.models.errors`. All
draws of one fraction are evaluated at once as a batch of networks (in chunks that bound memory).
The result is the library's one flatness type, :class:`thermolearn.results.LocalEnergy`
(``kind="flip"``, ``metric="error"``; standard deviations with ddof = 1).
"""

from __future__ import annotations

import numpy as np
import torch

from .._numerics import check_int, check_reals
from ..results import LocalEnergy
from ..seeding import as_generator
from .models import Architecture, _check_K, as_pm1, check_training_set, errors

__all__ = ["DEFAULT_FRACTIONS", "flip_counts", "local_energy"]

DEFAULT_FRACTIONS = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)

# at most about this many weights (draws x n_weights) or fields (draws x M x K) exist at once
_CHUNK_WEIGHTS = 1 << 22


def flip_counts(fractions, n_weights: int) -> np.ndarray:
    """The number of weights :func:`local_energy` flips per draw for each fraction p:
    round(p * n_weights), half to even (as Python's round), int64."""
    p = check_reals(fractions, "fractions", 0.0, 1.0)
    return np.rint(p * check_int(n_weights, "n_weights")).astype(np.int64)


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

    Returns a :class:`thermolearn.results.LocalEnergy`: sizes = the fractions, kind "flip",
    metric "error", values (F, draws) the training error fractions (misclassified / M), base the
    error fraction of W itself; mean, std (ddof 1) and sem per fraction. The number of weights
    flipped per draw is :func:`flip_counts` (fractions, n_weights). The computation runs on W's
    device (X and y are moved there).
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
    flips = flip_counts(p, n_w)
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
    return LocalEnergy(sizes=p, kind="flip", metric="error", values=out, base=base / M)

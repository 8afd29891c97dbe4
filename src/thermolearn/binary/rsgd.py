"""Replicated stochastic gradient descent (RSGD) on binary perceptrons and committee machines.

Baldassi, Borgs, Chayes, Ingrosso, Lucibello, Saglietti, Zecchina, "Unreasonable effectiveness of
learning neural networks: From accessible states and robust ensembles to basic algorithmic
schemes", PNAS 113 (48), E7655 (2016); arXiv:1605.06444 (replicated SGD on binary committee
machines).

Algorithm (one network per replica a = 1..y, weights in the layout of
:class:`thermolearn.binary.models.Architecture`, shape (K, n), n = N or N/K):

* Each replica keeps continuous hidden weights H_a (init +-1 uniform, all replicas equal); the
  binary weights are W_a = sign(H_a) (sign(0) := +1).
* Least-action SGD step on a minibatch B: for each pattern (xi, sigma) in B with
  Delta_k = sigma W_k . xi_k and h_out = sum_k sign(Delta_k) < 0 (misclassified), let
  tofix = (|h_out| + 1) / 2; among the units with Delta_k <= 0 take the tofix with smallest
  |Delta_k| (ties: lowest k) and accumulate

      H_{a,k} += eta * sigma * xi_k        (eta = ``lr``)

  over the minibatch (fields all computed with W_a before the step), then W_a = sign(H_a).
  For K = 1 (perceptron) tofix = 1: the clipped-perceptron rule on misclassified patterns.
* Coupling with the center traced out: with C = (1/y) sum_b W_b (current W of all replicas),

      H_a += lambda * ( tanh(gamma * y * C) - W_a ),   W_a = sign(H_a)     (lambda = ``coupling``)

* Epoch: every replica draws its own random pattern order; there are ceil(M / batch_size)
  sub-epochs; in sub-epoch s the replicas, in a fresh random order, each take their s-th
  minibatch, do the SGD step and then the coupling step. Epoch t (t = 0, 1, ...) uses
  gamma(t), a number or a schedule of the epoch clock (scoping: the paper's gamma_0 + t gamma_step
  is ``LinearDecay(gamma_0, steps, gamma_0 + steps * gamma_step)``).
* Stop at the end of the first epoch where the center sign(sum_a W_a) or any replica has zero
  training errors.

Vectorisation: the SGD step of replica a depends only on W_a, which no other replica changes, so
the SGD steps of a sub-epoch are computed for all replicas at once with batched matrix products;
only the cheap element-wise coupling runs replica by replica in the random order, keeping the
running sum of the W_b exactly as the sequential algorithm sees it (replicas earlier in the order
already updated, later ones not yet). coupling = 0 skips the coupling and gives ``replicas``
independent plain SGD runs; replicas = 1, coupling = 0 is plain SGD, the non-interacting baseline.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from .._numerics import check_int, check_real
from ..schedules import LinearDecay, as_schedule, describe
from ..seeding import as_generator, spawn_seeds
from ._progress import bar
from .models import Architecture, check_problem, energy, errors
from .overlaps import center_overlap, replica_overlap
from .result import SolverResult

__all__ = ["GAMMA", "default_replica_seeds", "replicated_sgd"]


def _sign(H: torch.Tensor) -> torch.Tensor:
    """sign with sign(0) = +1, same dtype as H."""
    return torch.where(H >= 0, 1.0, -1.0).to(H.dtype)


def _all_errors(Ws: torch.Tensor, Xf: torch.Tensor, yf: torch.Tensor, arch: Architecture) -> torch.Tensor:
    """Training errors of a stack of networks Ws (B, K, n) (float), shape (B,)."""
    if arch.tree:
        F = torch.einsum("bkn,mkn->bmk", Ws, Xf.view(Xf.shape[0], arch.K, arch.n_per_unit))
    else:
        F = torch.matmul(Ws, Xf.T).transpose(1, 2)                        # (B, M, K)
    hout = torch.sign(F).sum(-1)
    return (hout * yf < 0).sum(-1)


GAMMA = LinearDecay(0.05, 1000, 1.05)
"""The default scoping: gamma = 0.05 + 0.001 t at epoch t (Baldassi et al., PNAS 2016)."""


def check_replica_seeds(replica_seeds, replicas: int) -> list[int] | None:
    """None, or ``replicas`` integer seeds (a ValueError naming replica_seeds otherwise)."""
    if replica_seeds is None:
        return None
    seeds = list(replica_seeds)
    if len(seeds) != replicas or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                                         and 0 <= s < 2**63 for s in seeds):
        raise ValueError(f"replica_seeds: expected {replicas} integers in [0, 2**63) (one per replica), "
                         f"got {replica_seeds!r}")
    return [int(s) for s in seeds]


def default_replica_seeds(N: int, K: int = 1, tree: bool = False, seed: int = 0,
                          replicas: int = 7) -> list[int]:
    """The pattern-order seeds :func:`replicated_sgd` gives its replicas for an integer ``seed``:
    ``spawn_seeds`` of the seed's generator after the initial weights are drawn. Replica a of a
    ``replicas=y, coupling=0`` run is the plain run ``replicas=1, coupling=0,
    replica_seeds=[default_replica_seeds(N, K, tree, seed, y)[a]]`` with the same ``seed``
    (replica 0 is the plain run with the same ``seed``: spawned seeds do not depend on how many)."""
    if isinstance(seed, torch.Generator):
        raise ValueError("seed: expected an integer (a generator would be advanced), got a torch.Generator")
    g = as_generator(seed)
    Architecture(N, K, tree).random_weights(g)
    return spawn_seeds(g, check_int(replicas, "replicas"))


def replicated_sgd(X, y, K: int = 1, replicas: int = 7, batch_size: int = 80, lr: float = 2.0,
                   coupling: float = 0.75, gamma=GAMMA, max_iter: int = 1000, tree: bool = False,
                   seed=0, device=None, progress: bool = False, *, replica_seeds=None) -> SolverResult:
    """Replicated SGD (Baldassi et al., PNAS 2016) on a binary perceptron (K = 1) or committee machine.

    Parameters
    ----------
    X : (M, N) patterns with entries +-1; y : (M,) labels +-1.
    K : odd number of hidden units (1 = perceptron); tree : tree-like committee (N/K inputs per unit).
    replicas : y, the number of replicas; batch_size : minibatch size; lr : eta;
    coupling : lambda (0 = independent plain SGD runs).
    gamma : coupling strength to the traced-out center: a number or a schedule of the epoch
        clock t = 0, 1, ... (default ``LinearDecay(0.05, 1000, 1.05)``: 0.05 + 0.001 t).
    max_iter : epoch cap (the run stops earlier at a solution).
    seed : int, torch.Generator or None; it draws the common initial H, then the per-replica
        seeds of the pattern-order streams (``spawn_seeds``; drawn, and unused, when
        ``replica_seeds`` is given), then the replica orders.
    replica_seeds : optional sequence of ``replicas`` ints, the seeds of the per-replica
        pattern-order streams. Replica a of a run with coupling 0 follows exactly the plain run
        ``replicas=1, replica_seeds=[s[a]]`` with the same ``seed``, where s is ``replica_seeds``
        or, by default, :func:`default_replica_seeds` (``spawn_seeds`` drawn after the initial
        weights).
    device : torch device for the computation (default: X's device).
    progress : draw a progress bar over the epochs on standard error.

    Returns
    -------
    SolverResult with ``step_unit`` "epoch" and ``weights`` (shape (N,) for K = 1, else (K, n),
    int8): the center when it solved, else the first (lowest-index) replica that solved; when
    nothing solved, whichever of center and replicas has the fewest errors (the center on ties).
    ``errors``/``energy`` are recounted by :func:`thermolearn.binary.models.errors` / ``energy``.
    ``steps`` = epochs run; ``replicas`` = final replica weights (replicas, *weight_shape) int8.
    ``history`` holds one dict per epoch (step 0 = initial state): step (epochs done), gamma (the
    value used in that epoch), errors (center), errors_min / errors_mean over replicas,
    replica_errors (list), overlap (mean W_a . W_b / N_weights over pairs a < b; NaN for one
    replica), overlap_center (mean W_a . W_center / N_weights), both from
    :mod:`thermolearn.binary.overlaps`.
    """
    t0 = time.perf_counter()
    X, y, arch = check_problem(X, y, K, tree)
    M, N = X.shape
    R = check_int(replicas, "replicas")
    batch = check_int(batch_size, "batch_size")
    max_iter = check_int(max_iter, "max_iter", minimum=0)
    eta = check_real(lr, "lr")
    lam = check_real(coupling, "coupling", strict=False)
    gamma_at = as_schedule(gamma, "gamma", minimum=0.0)
    rseeds = check_replica_seeds(replica_seeds, R)
    dev = torch.device(device) if device is not None else X.device

    g = as_generator(seed)
    H0 = arch.random_weights(g, dtype=torch.float32).reshape(arch.K, arch.n_per_unit)
    spawned = spawn_seeds(g, R)
    rgens = [as_generator(s) for s in (rseeds if rseeds is not None else spawned)]

    Kh, n = arch.K, arch.n_per_unit
    Xf = X.to(device=dev, dtype=torch.float32)
    yf = y.to(device=dev, dtype=torch.float32)
    Xu = Xf.view(M, Kh, n) if arch.tree else Xf                      # per-unit view for tree
    H = H0.to(dev).expand(R, Kh, n).contiguous()                     # (R, K, n)
    W = _sign(H)
    n_sub = -(-M // batch)
    kidx = torch.arange(Kh, device=dev)

    def record(epoch: int, gam: float) -> tuple[torch.Tensor, torch.Tensor]:
        S = W.sum(0)
        Wc = _sign(S)
        errs = _all_errors(torch.cat([Wc[None], W]), Xf, yf, arch).cpu()
        re = errs[1:]
        history.append({"step": epoch, "gamma": gam, "errors": int(errs[0]),
                        "errors_min": int(re.min()), "errors_mean": float(re.float().mean()),
                        "replica_errors": [int(e) for e in re], "overlap": replica_overlap(S, R),
                        "overlap_center": center_overlap(S, R)})
        return Wc, errs

    def gamma_of(epoch: int) -> float:
        v = float(gamma_at(epoch))
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"gamma: the schedule {describe(gamma)!r} gave {v!r} at epoch {epoch}; "
                             f"expected a finite number >= 0")
        return v

    history: list[dict] = []
    Wc, errs = record(0, gamma_of(0))
    epoch = 0
    pbar = bar(progress, max_iter, "epoch", "replicated SGD" if lam else "SGD")
    while not bool((errs == 0).any()) and epoch < max_iter:
        gam = gamma_of(epoch)
        perms = torch.stack([torch.randperm(M, generator=rg) for rg in rgens]).to(dev)   # (R, M)
        for s in range(n_sub):
            order = torch.randperm(R, generator=g).tolist()
            idx = perms[:, s * batch:(s + 1) * batch]                                  # (R, B)
            ys = yf[idx]                                                               # (R, B)
            Xs = Xu[idx]                                  # (R, B, N) or (R, B, K, n)
            if arch.tree:
                F = torch.einsum("rkn,rbkn->rbk", W, Xs)
            else:
                F = torch.bmm(Xs, W.transpose(1, 2))                                   # (R, B, K)
            D = F * ys.unsqueeze(-1)                       # sigma * h_k
            hout = torch.sign(D).sum(-1)                   # sigma * h_out (odd, never zero)
            wrong = D <= 0
            tofix = torch.div(hout.abs() + 1, 2, rounding_mode="floor")                # (R, B)
            key = torch.where(wrong, D.abs(), torch.full_like(D, float("inf")))
            order_k = torch.sort(key, dim=-1, stable=True).indices
            rank = torch.empty_like(order_k).scatter_(-1, order_k, kidx.expand_as(order_k))
            sel = wrong & (rank < tofix.unsqueeze(-1)) & (hout < 0).unsqueeze(-1)
            coef = sel.to(torch.float32) * (eta * ys).unsqueeze(-1)                   # (R, B, K)
            if arch.tree:
                dH = torch.einsum("rbk,rbkn->rkn", coef, Xs)
            else:
                dH = torch.bmm(coef.transpose(1, 2), Xs)                               # (R, K, N)
            H += dH
            Wn = _sign(H)
            if lam == 0.0:
                W = Wn
                continue
            S = W.sum(0)
            for a in order:                     # sequential coupling, exact running center
                S += Wn[a] - W[a]
                H[a] += lam * (torch.tanh(gam * S) - Wn[a])
                wa = _sign(H[a])
                S += wa - Wn[a]
                W[a] = wa
        epoch += 1
        Wc, errs = record(epoch, gam)
        pbar.update(1)
        pbar.set_postfix_str(f"errors {int(errs.min())}")
    pbar.close()

    Wi = W.to(torch.int8)
    Wc8 = Wc.to(torch.int8)
    if int(errs[0]) == 0:
        best = Wc8
    else:
        j = int(torch.argmin(errs))      # first minimum: center on ties, else lowest replica
        best = Wc8 if j == 0 else Wi[j - 1]
    shape = arch.weight_shape
    best = best.reshape(shape)
    reps = Wi.reshape((R,) + shape)
    e = int(errors(best, X.to(best.device), y.to(best.device), arch.K))
    en = int(energy(best, X.to(best.device), y.to(best.device), arch.K))
    return SolverResult(weights=best, errors=e, energy=en, converged=e == 0,
                        seconds=time.perf_counter() - t0, steps=epoch, step_unit="epoch",
                        stop_reason="solved" if bool((errs == 0).any()) else "max_iter",
                        history=history, replicas=reps)

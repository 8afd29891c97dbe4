"""Replicated stochastic gradient descent (RSGD) on binary perceptrons and committee machines.

Baldassi, Borgs, Chayes, Ingrosso, Lucibello, Saglietti, Zecchina, "Unreasonable effectiveness of
learning neural networks: From accessible states and robust ensembles to basic algorithmic
schemes", PNAS 113 (48), E7655 (2016); arXiv:1605.06444. Settings and numbers to check:
shared/specs/replicas.md, "Replicated SGD on binary committee machines".

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

* Epoch: every replica draws its own random pattern order; there are ceil(M / batch) sub-epochs;
  in sub-epoch s the replicas, in a fresh random order, each take their s-th minibatch, do the SGD
  step and then the coupling step. After each epoch gamma += gamma_step (scoping).
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

import time

import numpy as np
import torch

from .._numerics import check_int, check_real
from ..seeding import as_generator
from .models import Architecture, check_problem, energy, errors
from .result import SolverResult

__all__ = ["replicated_sgd"]


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


def replicated_sgd(X, y, K: int = 1, replicas: int = 7, batch: int = 80, lr: float = 2.0,
                   coupling: float = 0.75, gamma: float = 0.05, gamma_step: float = 0.001,
                   max_epochs: int = 1000, tree: bool = False, seed=0, device=None, *,
                   replica_seeds=None) -> SolverResult:
    """Replicated SGD (Baldassi et al., PNAS 2016) on a binary perceptron (K = 1) or committee machine.

    Parameters
    ----------
    X : (M, N) patterns with entries +-1; y : (M,) labels +-1.
    K : odd number of hidden units (1 = perceptron); tree : tree-like committee (N/K inputs per unit).
    replicas : y, the number of replicas; batch : minibatch size; lr : eta;
    coupling : lambda (0 = independent plain SGD runs); gamma, gamma_step : initial coupling
        strength to the traced-out center and its per-epoch increment (scoping).
    max_epochs : epoch cap. seed : int, torch.Generator or None; it draws the common initial H,
        the replica orders and (unless ``replica_seeds`` is given) one seed per replica for that
        replica's own pattern orders. replica_seeds : optional sequence of ``replicas`` ints, the
        seeds of the per-replica pattern-order streams (replica a of a run with coupling 0 then
        follows exactly the plain SGD run with ``replicas=1, replica_seeds=[replica_seeds[a]]``
        and the same ``seed``).
    device : torch device for the computation (default: X's device).

    Returns
    -------
    SolverResult with ``weights`` (shape (N,) for K = 1, else (K, n), int8): the center when it
    solved, else the first (lowest-index) replica that solved; when nothing solved, whichever of
    center and replicas has the fewest errors (the center on ties). ``errors``/``energy`` are
    recounted by :func:`thermolearn.binary.models.errors` / ``energy``. ``steps`` = epochs run;
    ``replicas`` = final replica weights (replicas, *weight_shape) int8. ``history`` holds one dict
    per epoch (epoch 0 = initial state): epoch, gamma (the value used in that epoch), errors
    (center), errors_min / errors_mean over replicas, replica_errors (list), overlap (mean
    W_a . W_b / N_weights over pairs a < b; NaN for one replica), overlap_center (mean
    W_a . W_center / N_weights).
    """
    t0 = time.perf_counter()
    X, y, arch = check_problem(X, y, K, tree)
    M, N = X.shape
    R = check_int(replicas, "replicas")
    batch = check_int(batch, "batch")
    max_epochs = check_int(max_epochs, "max_epochs", minimum=0)
    eta = check_real(lr, "lr")
    lam = check_real(coupling, "coupling", strict=False)
    gamma0 = check_real(gamma, "gamma", strict=False)
    gstep = check_real(gamma_step, "gamma_step", minimum=None)
    dev = torch.device(device) if device is not None else X.device

    g = as_generator(seed)
    H0 = arch.random_weights(g, dtype=torch.float32).reshape(arch.K, arch.n_per_unit)
    if replica_seeds is None:
        rseeds = [int(s) for s in torch.randint(0, 2 ** 62, (R,), generator=g)]
    else:
        rseeds = list(replica_seeds)
        if len(rseeds) != R or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                                       for s in rseeds):
            raise ValueError(f"replica_seeds: expected {R} integers (one per replica), got {replica_seeds!r}")
    rgens = [as_generator(int(s)) for s in rseeds]

    Kh, n = arch.K, arch.n_per_unit
    Xf = X.to(device=dev, dtype=torch.float32)
    yf = y.to(device=dev, dtype=torch.float32)
    Xu = Xf.view(M, Kh, n) if arch.tree else Xf                      # per-unit view for tree
    H = H0.to(dev).expand(R, Kh, n).contiguous()                     # (R, K, n)
    W = _sign(H)
    n_w = Kh * n
    n_sub = -(-M // batch)
    kidx = torch.arange(Kh, device=dev)

    def record(epoch: int, gam: float) -> tuple[torch.Tensor, torch.Tensor]:
        Wc = _sign(W.sum(0))
        errs = _all_errors(torch.cat([Wc[None], W]), Xf, yf, arch).cpu()
        flat = W.reshape(R, n_w)
        if R > 1:
            G = flat @ flat.T
            q = float((G.sum() - G.diagonal().sum()) / (R * (R - 1) * n_w))
        else:
            q = float("nan")
        qc = float((flat @ Wc.reshape(n_w)).mean() / n_w)
        re = errs[1:]
        history.append({"epoch": epoch, "gamma": gam, "errors": int(errs[0]),
                        "errors_min": int(re.min()), "errors_mean": float(re.float().mean()),
                        "replica_errors": [int(e) for e in re], "overlap": q, "overlap_center": qc})
        return Wc, errs

    history: list[dict] = []
    Wc, errs = record(0, gamma0)
    epoch = 0
    while not bool((errs == 0).any()) and epoch < max_epochs:
        gam = gamma0 + gstep * epoch
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
                        seconds=time.perf_counter() - t0, steps=epoch, history=history,
                        replicas=reps)

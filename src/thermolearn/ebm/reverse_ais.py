"""Reverse AIS (RAISE; Burda, Grosse & Salakhutdinov 2015): conservative RBM log-likelihoods.

Path and notation as in :mod:`thermolearn.ebm.ais`: unnormalised marginals

    log f_t(v) = (1 - t) a_A.v + t a'.v + sum_j softplus(t (b' + v W')_j),   t in [0, 1],

p_k = f_k / Z_k with f_k = f_{t_k} on a ladder 0 = t_0 < ... < t_K = 1, Z_0 known in closed form,
and T_k the Gibbs sweep v -> h -> v' at t_k. T_k is reversible with respect to p_k (on v):
p_k(v) T_k(v'|v) = sum_h p_k(h) p_k(v|h) p_k(v'|h) is symmetric in (v, v').

Derivation
----------
The *annealed model* p_ann is the law of the last state of the forward chain

    x_0 ~ p_0,   x_k ~ T_k(. | x_{k-1}),  k = 1..K,     p_ann(v) = P(x_K = v).

Its joint law is p_fwd(x_{0:K}) = p_0(x_0) prod_{k=1}^K T_k(x_k | x_{k-1}). Reversibility gives
T_k(x_k | x_{k-1}) = T_k(x_{k-1} | x_k) f_k(x_k) / f_k(x_{k-1}), hence

    p_fwd(x_{0:K}) = [f_0(x_0) / Z_0] prod_k T_k(x_{k-1} | x_k) f_k(x_k) / f_k(x_{k-1})
                   = q(x_{0:K-1} | x_K) * f_K(x_K) / Z_0 * prod_{k=1}^K f_{k-1}(x_{k-1}) / f_k(x_{k-1}),

where q(x_{0:K-1} | x_K) = prod_{k=1}^K T_k(x_{k-1} | x_k) is the *reverse chain* started at
x_K and run with T_K, T_{K-1}, ..., T_1 (the products telescope: f_0(x_0) prod_k f_k(x_k) /
f_k(x_{k-1}) = f_K(x_K) prod_k f_{k-1}(x_{k-1}) / f_k(x_{k-1})). Summing over x_{0:K-1} with
x_K = v fixed,

    p_ann(v) = E_q[ p-hat(v) ],
    log p-hat(v) = log f_K(v) + sum_{k=1}^K [log f_{k-1}(x_{k-1}) - log f_k(x_{k-1})] - log Z_0.

So p-hat(v), computed from a reverse chain started at the data point, is an unbiased estimate of
p_ann(v); averaging M chains in the weight domain (log-mean-exp) keeps it unbiased, and by
Jensen E[log p-hat(v)] <= log p_ann(v): a stochastic lower bound on the annealed model's
log-likelihood, which approaches the RBM's as the ladder gets finer (p_ann -> p_1). Burda et al.
argue that on held-out data the bias is conservative; together with forward AIS (which tends to
over-estimate likelihoods) it brackets the truth. Each ratio f_{k-1}/f_k is evaluated at the
state x_{k-1} *produced by* T_k from x_k. (Upadhya & Sastry 2015 report a typo in the weights
as printed in the original paper; the formula here is derived above and tested against the
exact p_ann = p_0 T_1 ... T_K of a small model in the test suite.)

Implementation: like forward AIS, exactly two matrix products per temperature. The product
x = b' + v W' of the state x_k (for k < K) gives both the weight term
log f_k(x_k) - log f_{k+1}(x_k) and the hidden drive of T_k; the product h W'^T gives the
visible drive. Data rows are processed in batches of ``batch_size`` rows times ``n_chains``
chains.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from .._numerics import as_tensor, check_int, logmeanexp, softplus
from ..seeding import as_generator
from .ais import _PROGRESS_EVERY, _base_bias, _ladder, _Path, _progress_bar


@dataclass
class RAISEResult:
    """Result of :func:`raise_log_likelihood`.

    log_likelihood : mean over the data rows of log p-hat(v), nats per example.
    stderr : standard error of that mean over the rows (std / sqrt(n_rows)); it reflects the
        spread of log p(v) across the data as well as the estimator's noise.
    per_example : (n_rows,) float64 log p-hat(v) of each row.
    seconds : wall-clock time of the run.
    n_betas : number of inverse temperatures on the ladder (including 0 and 1).
    """

    log_likelihood: float
    stderr: float
    per_example: torch.Tensor
    seconds: float
    n_betas: int


def _check_data(rbm, data) -> torch.Tensor:
    x = as_tensor(data, "data", dtype=rbm.dtype, device=rbm.device)
    if x.ndim == 1:
        x = x.unsqueeze(0)
    if x.ndim != 2 or x.shape[1] != rbm.n_visible or x.shape[0] < 1:
        raise ValueError(f"data: expected shape (n_examples, {rbm.n_visible}) with n_examples >= 1, "
                         f"got {tuple(x.shape)}")
    if not ((x == 0) | (x == 1)).all():
        raise ValueError(f"data: reverse AIS needs binary (0/1) visible vectors, got values in "
                         f"[{float(x.min()):g}, {float(x.max()):g}]")
    return x


def raise_log_likelihood(rbm, data, n_chains: int = 10, n_betas=1000, base_visible_bias=None,
                         seed=0, batch_size: int = 100, progress: bool = False) -> RAISEResult:
    """Conservative estimate of the mean log-likelihood of ``data`` under ``rbm`` by reverse AIS.

    Parameters
    ----------
    rbm : an :class:`~thermolearn.ebm.RBM` (any beta).
    data : (n_examples, n_visible) binary array.
    n_chains : reverse chains per data row (their weights are averaged per row).
    n_betas : ladder: 'sm08', an integer (equally spaced), or an increasing sequence from 0 to 1.
        The gap to the true log-likelihood shrinks as the ladder gets finer; the cost is
        n_examples * n_chains * n_betas Gibbs sweeps.
    base_visible_bias : visible biases of the base-rate model (zeros when None); see
        :func:`~thermolearn.ebm.ais.base_rate_bias`.
    seed : int, torch.Generator, or None.
    batch_size : data rows per batch (batch_size * n_chains chains run together).
    progress : show a tqdm progress bar (over temperatures of all batches).

    Returns a :class:`RAISEResult`; log p-hat is a stochastic lower bound on the annealed model's
    log-likelihood (see the module docstring for the derivation).
    """
    n_chains = check_int(n_chains, "n_chains")
    batch_size = check_int(batch_size, "batch_size")
    x_data = _check_data(rbm, data)
    betas = _ladder(n_betas)
    a_base = _base_bias(rbm, base_visible_bias)
    g = as_generator(seed, rbm.device)
    K = betas.numel() - 1
    n_rows = x_data.shape[0]
    n_batches = -(-n_rows // batch_size)
    t0 = time.perf_counter()
    bar = _progress_bar(progress, K * n_batches, "RAISE")
    out = torch.empty(n_rows, dtype=torch.float64, device=rbm.device)
    with torch.inference_mode():
        path = None
        for i_batch, start in enumerate(range(0, n_rows, batch_size)):
            rows = x_data[start:start + batch_size]
            B = rows.shape[0]
            if path is None or path.n != B * n_chains:
                path = _Path(rbm, a_base, betas, B * n_chains, g)
            out[start:start + B] = _raise_batch(path, rows, n_chains, K, bar, i_batch * K)
    if bar is not None:
        bar.close()
    per = out.cpu()
    mean = float(per.mean())
    stderr = float(per.std(unbiased=True)) / math.sqrt(n_rows) if n_rows > 1 else float("nan")
    return RAISEResult(log_likelihood=mean, stderr=stderr, per_example=per,
                       seconds=time.perf_counter() - t0, n_betas=K + 1)


def _raise_batch(path: _Path, rows: torch.Tensor, n_chains: int, K: int, bar, done: int):
    """log p-hat of each of ``rows`` from ``n_chains`` reverse chains each."""
    tl = path.t
    path.v.copy_(rows.repeat_interleave(n_chains, 0))
    # log f_K(v) with t_K = 1: a_A.v + (a' - a_A).v + sum_j softplus(b' + v W')_j
    path.drive()
    lw = path.v.to(torch.float64) @ path.a_base64
    lw += path.xd
    lw += softplus(path.xh.to(torch.float64)).sum(1)
    path.hidden_probabilities(tl[K])
    path.sweep(tl[K])                                 # x_{K-1} ~ T_K(. | v)
    for k in range(K - 1, -1, -1):
        # state x_k: add log f_k(x_k) - log f_{k+1}(x_k)
        path.drive()
        path.weigh(lw, k, -1.0, at_hi=False)          # leaves the hidden probabilities at t_k
        if k >= 1:
            path.sweep(tl[k])                         # x_{k-1} ~ T_k(. | x_k)
        step = K - k
        if bar is not None and (step % _PROGRESS_EVERY == 0 or step == K):
            bar.update(done + step - bar.n)
    return logmeanexp(lw.view(-1, n_chains), dim=1) - path.log_z_base


__all__ = ["RAISEResult", "raise_log_likelihood"]

"""Thermodynamics of an RBM as a function of the inverse temperature: log Z, <E>, S and C.

With the model's parameters W, a, b held fixed and the energy E(v, h) = -a.v - b.h - v.W.h of
:mod:`thermolearn.ebm.rbm`, the Gibbs distribution at inverse temperature beta is
p_beta(v, h) = exp(-beta E(v, h)) / Z(beta). Its thermodynamic functions are

    log Z(beta),            U(beta) = <E>_beta = -d log Z / d beta,
    S(beta) = beta U + log Z        (entropy, nats),
    C(beta) = beta^2 Var_beta(E) = beta^2 d^2 log Z / d beta^2      (heat capacity, units of k_B),
    F(beta) = -log Z / beta         (free energy).

The RBM's own ``beta`` is not used: the curve is over the ``betas`` given, so ``beta = 1`` is
the model as trained (with ``rbm.beta = 1``). A peak of C(beta) is the finite-size trace of a
phase transition; maximum-entropy and RBM models of real data have been reported to sit near
such a peak at beta = 1 (Mora & Bialek 2011; Tkacik et al. 2015) [unverified].

``method="exact"`` enumerates the smaller layer, as :func:`~thermolearn.ebm.exact_log_partition`
does (at most :data:`~thermolearn.ebm.exact.MAX_EXACT_UNITS` units). Given a state h of the
enumerated layer the other layer's units are independent Bernoulli variables: with the fields
x = a + W h and p_i = sigmoid(beta x_i),

    log sum_v exp(-beta E(v, h)) = beta b.h + sum_i softplus(beta x_i),
    E[E | h] = -b.h - sum_i x_i p_i,        Var[E | h] = sum_i x_i^2 p_i (1 - p_i),

and the moments of E are mixtures of these over the enumerated states, with the marginal
weights combined by logsumexp in float64 (chunk by chunk, merged with the parallel-variance
formula), so the results are exact to rounding.

``method="ais"`` runs one forward AIS (:func:`~thermolearn.ebm.ais_log_partition`, the
Salakhutdinov & Murray 2008 base-rate path) per beta on the model at that beta. log Z(beta) is
its estimate and its delta-method standard error; <E> and Var E are self-normalised importance
averages over the final states v_i of the chains with weights w_i, using the closed-form
conditional moments of E given v (the hidden units are independent given v):
U = sum_i w~_i m_i and Var E = sum_i w~_i (s_i^2 + (m_i - U)^2), with w~ the normalised weights.
Their standard errors are the delta-method ones of a self-normalised estimator,
sqrt(sum_i g_i^2) with g_i the influence of chain i: w~_i (m_i - U) for U,
w~_i (s_i^2 + (m_i - U)^2 - Var E) for Var E, and beta w~_i (m_i - U) + w~_i - 1/n for S (the
last term is that of log Z-hat, whose own error is AIS's std(w) / mean(w) / sqrt(n)). With few
chains or a short ladder the weights degenerate and these errors are themselves unreliable.

Everything is returned as float64 CPU tensors, like the rest of :mod:`thermolearn.ebm`.

Also here: :func:`heat_capacity_peak` (the beta that maximises C, refined by golden-section
search from a grid) and :func:`effective_beta` (the beta that maximises the exact mean
log-likelihood of given data, -beta F_beta(v) - log Z(beta), found by safeguarded Newton steps on
its derivative <E>_beta - <E(v, h)>_{data, p_beta(h|v)}).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from .._numerics import as_tensor, check_int, check_real, check_reals
from ..seeding import as_generator
from .exact import MAX_EXACT_UNITS, all_states
from .rbm import RBM

METHODS = ("exact", "ais")
_CHUNK = 2**14


@dataclass
class Thermodynamics:
    """What :func:`thermodynamics` returns; every array has one float64 entry per beta.

    betas : the inverse temperatures.
    log_z : log Z(beta).
    free_energy : -log Z(beta) / beta.
    energy : U(beta) = <E(v, h)>_beta (mean energy, the model's energy units).
    entropy : S(beta) = beta U + log Z (nats).
    heat_capacity : C(beta) = beta^2 Var_beta(E) (units of k_B).
    log_z_stderr, energy_stderr, entropy_stderr, heat_capacity_stderr : standard errors of the
        AIS estimates (delta method, see the module docstring); zeros for ``method="exact"``.
    method : "exact" or "ais".
    n_chains, n_betas : AIS chains and ladder length per beta (0 for "exact").
    seconds : wall time.
    """

    betas: torch.Tensor
    log_z: torch.Tensor
    free_energy: torch.Tensor
    energy: torch.Tensor
    entropy: torch.Tensor
    heat_capacity: torch.Tensor
    log_z_stderr: torch.Tensor
    energy_stderr: torch.Tensor
    entropy_stderr: torch.Tensor
    heat_capacity_stderr: torch.Tensor
    method: str
    n_chains: int
    n_betas: int
    seconds: float


def _check_rbm(rbm) -> None:
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm: expected a thermolearn.ebm.RBM, got {type(rbm).__name__}")


def _check_betas(betas) -> torch.Tensor:
    arr = check_reals(betas, "betas", minimum=0.0)
    if (arr <= 0).any():
        raise ValueError(f"betas: expected finite numbers > 0 (inverse temperatures), got {arr[arr <= 0].tolist()}")
    return torch.from_numpy(arr.copy())


def _layers(rbm, n_limit: int | None):
    """(W (n_sum, n_enum), a (sum bias), b (enumerated bias)) in float64, smaller layer enumerated."""
    W = rbm.W.detach().to(torch.float64)
    a = rbm.visible_bias.detach().to(torch.float64)
    b = rbm.hidden_bias.detach().to(torch.float64)
    if W.shape[1] > W.shape[0]:
        W, a, b = W.T, b, a
    if n_limit is not None and W.shape[1] > n_limit:
        raise ValueError(
            f"method: 'exact' enumerates the smaller layer, which has {W.shape[1]} units, above "
            f"MAX_EXACT_UNITS={n_limit} (2^{W.shape[1]} states); use method='ais'")
    return W.contiguous(), a, b


def _bernoulli_terms(x: torch.Tensor, beta: float):
    """(sum softplus(beta x), sum x p, sum x^2 p (1 - p)) over the last axis, p = sigmoid(beta x),
    in float64. softplus(z) = max(z, 0) - log sigmoid(|z|), and the log of the sum is taken once
    per row on the product of the sigmoid(|z|) in [1/2, 1], by blocks of 512 units (no underflow)."""
    z = x * beta
    s = torch.sigmoid(z.abs())                   # in [1/2, 1]
    sp = z.clamp_min(0.0).sum(-1)
    for j in range(0, x.shape[-1], 512):
        sp -= s[..., j:j + 512].prod(-1).log_()
    pos = z >= 0
    p = torch.where(pos, s, 1.0 - s)
    q = torch.where(pos, 1.0 - s, s)             # 1 - p
    xp = p.mul_(x)
    mean = xp.sum(-1)
    var = xp.mul_(x).mul_(q).sum(-1)
    return sp, mean, var


def _merge(parts):
    """Combine (log mass, mean, variance) of disjoint pieces of a distribution (float64 tensors of
    shape (pieces, ...)) into the whole: logsumexp of the masses and the parallel-variance rule."""
    lw, mu, var = (torch.stack(p) for p in zip(*parts))
    log_z = torch.logsumexp(lw, 0)
    q = torch.exp(lw - log_z)
    mean = (q * mu).sum(0)
    return log_z, mean, (q * (var + (mu - mean) ** 2)).sum(0)


def _exact_moments(W, a, b, betas: torch.Tensor, chunk: int = _CHUNK):
    """log Z, <E>, Var E at each beta by enumerating the n_enum units of W (n_sum, n_enum)."""
    n_enum = W.shape[1]
    per_beta = [[] for _ in range(betas.numel())]
    for start in range(0, 2**n_enum, chunk):
        h = all_states(n_enum, start, min(start + chunk, 2**n_enum), device=W.device)
        x = torch.addmm(a, h, W.T)               # fields of the summed layer, (C, n_sum)
        e = h @ b
        for k, beta in enumerate(betas.tolist()):
            sp, xm, xv = _bernoulli_terms(x, beta)
            lw = beta * e + sp                   # log sum over the other layer, per state
            m = -e - xm                          # E[E | h]
            l_c = torch.logsumexp(lw, 0)
            q = torch.exp(lw - l_c)
            mu = (q * m).sum()
            per_beta[k].append((l_c, mu, (q * (xv + (m - mu) ** 2)).sum()))
    out = [_merge(p) for p in per_beta]
    return tuple(torch.stack([o[i] for o in out]).cpu() for i in range(3))


def _ais_point(rbm, beta: float, n_chains, n_betas, base_visible_bias, generator):
    """(log Z, <E>, Var E, S, and their standard errors) at one beta by forward AIS."""
    from .ais import ais_log_partition

    model = RBM.from_weights(rbm.W, rbm.visible_bias, rbm.hidden_bias, beta=beta)
    res = ais_log_partition(model, n_chains=n_chains, n_betas=n_betas,
                            base_visible_bias=base_visible_bias, seed=generator)
    v = res.samples.detach().to(torch.float64)
    a = rbm.visible_bias.detach().to(torch.float64)
    y = torch.addmm(rbm.hidden_bias.detach().to(torch.float64), v, rbm.W.detach().to(torch.float64))
    _, ym, yv = _bernoulli_terms(y, beta)
    m = -(v @ a) - ym                            # E[E | v]
    lw = res.log_weights.to(torch.float64).to(m.device)
    q = torch.softmax(lw, 0)
    n = q.numel()
    mu = (q * m).sum()
    var = (q * (yv + (m - mu) ** 2)).sum()
    se = lambda influence: float(torch.sqrt((influence * influence).sum()))   # noqa: E731
    entropy = beta * float(mu) + res.log_z
    return (res.log_z, float(mu), float(var), entropy, res.stderr, se(q * (m - mu)),
            se(q * (yv + (m - mu) ** 2 - var)), se(beta * q * (m - mu) + q - 1.0 / n))


def thermodynamics(rbm, betas, method: str = "exact", *, n_chains: int = 100, n_betas=1000,
                   base_visible_bias=None, seed=0) -> Thermodynamics:
    """log Z, free energy, mean energy, entropy and heat capacity of ``rbm`` at each of ``betas``.

    Parameters
    ----------
    rbm : an :class:`~thermolearn.ebm.RBM`; its W, a, b define E(v, h); its ``beta`` is ignored.
    betas : a number or a 1-d sequence of inverse temperatures, finite and > 0.
    method : "exact" (enumerate the smaller layer, at most ``MAX_EXACT_UNITS`` units) or "ais"
        (one forward AIS run per beta; errors in the ``*_stderr`` fields).
    n_chains, n_betas, base_visible_bias : for "ais", passed to
        :func:`~thermolearn.ebm.ais_log_partition` (chains, ladder, base-rate visible biases in
        natural units).
    seed : for "ais": int, torch.Generator (advanced in place, used for one beta after the other)
        or None.

    Returns a :class:`Thermodynamics` of float64 CPU tensors.
    """
    _check_rbm(rbm)
    b64 = _check_betas(betas)
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(map(repr, METHODS))}, got {method!r}")
    t0 = time.perf_counter()
    zeros = torch.zeros_like(b64)
    if method == "exact":
        W, a, b = _layers(rbm, MAX_EXACT_UNITS)
        log_z, energy, var = _exact_moments(W, a, b, b64.to(W.device))
        errs = (zeros, zeros.clone(), zeros.clone(), zeros.clone())
        chains = ladder = 0
    else:
        n_chains = check_int(n_chains, "n_chains")
        if n_chains < 2:
            raise ValueError(f"n_chains: expected an integer >= 2 (standard errors need two chains), got {n_chains}")
        g = as_generator(seed, rbm.device)
        rows = [_ais_point(rbm, beta, n_chains, n_betas, base_visible_bias, g) for beta in b64.tolist()]
        cols = [torch.tensor(c, dtype=torch.float64) for c in zip(*rows)]
        log_z, energy, var, entropy_ais, se_z, se_e, se_var, se_s = cols
        errs = (se_z, se_e, se_s, b64**2 * se_var)
        chains = n_chains
        from .ais import _ladder
        ladder = _ladder(n_betas).numel()
    entropy = b64 * energy + log_z
    return Thermodynamics(betas=b64, log_z=log_z, free_energy=-log_z / b64, energy=energy, entropy=entropy,
                          heat_capacity=b64**2 * var, log_z_stderr=errs[0], energy_stderr=errs[1],
                          entropy_stderr=errs[2], heat_capacity_stderr=errs[3], method=method,
                          n_chains=chains, n_betas=ladder, seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------
# The peak of C(beta) and the beta that fits held-out data best
# ---------------------------------------------------------------------------------------------

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def _check_grid(grid, b64: torch.Tensor) -> Thermodynamics:
    if not isinstance(grid, Thermodynamics) or grid.method != "exact" or not torch.equal(grid.betas, b64):
        raise ValueError("grid: expected the exact thermodynamics of the model at the sorted betas")
    return grid


@dataclass
class HeatCapacityPeak:
    """What :func:`heat_capacity_peak` returns.

    beta : the inverse temperature of the largest heat capacity (refined inside the grid cell).
    heat_capacity : C there.
    on_edge : the grid's largest C was at its first or last beta: ``beta`` is that edge, the
        maximum may lie outside the grid.
    grid : the Thermodynamics of the grid (exact).
    steps : golden-section evaluations done (``step_unit`` "evaluation"); converged : the bracket
        shrank below ``tol`` (False on an edge).
    seconds : wall time.
    """

    beta: float
    heat_capacity: float
    on_edge: bool
    grid: Thermodynamics
    steps: int
    step_unit: str
    converged: bool
    seconds: float


def _heat_capacity_at(W, a, b, beta: float) -> float:
    _, _, var = _exact_moments(W, a, b, torch.tensor([beta], dtype=torch.float64))
    return float(beta**2 * var[0])


def _search_inputs(rbm, betas, tol, max_iter, grid, what: str):
    """The checked inputs of a search over beta: sorted float64 betas (at least 3, to bracket
    ``what``), tol, max_iter, and the exact grid (``grid`` checked, or computed)."""
    b64 = torch.sort(_check_betas(betas)).values
    if b64.numel() < 3:
        raise ValueError(f"betas: expected at least 3 inverse temperatures to bracket {what}, got {b64.numel()}")
    tol = check_real(tol, "tol")
    max_iter = check_int(max_iter, "max_iter", minimum=0)
    grid = _check_grid(grid, b64) if grid is not None else thermodynamics(rbm, b64)
    return b64, tol, max_iter, grid


def heat_capacity_peak(rbm, betas, tol: float = 1e-4, max_iter: int = 60,
                       grid: Thermodynamics | None = None) -> HeatCapacityPeak:
    """The beta of the largest exact heat capacity: C on the grid ``betas`` (sorted, at least 3),
    then golden-section search between the neighbours of the grid's best point until the bracket
    is narrower than ``tol`` times beta. A multi-modal C finds the peak of the grid's best cell.
    ``grid``: the exact :func:`thermodynamics` of ``rbm`` at the sorted ``betas``, to reuse."""
    _check_rbm(rbm)
    t0 = time.perf_counter()
    b64, tol, max_iter, grid = _search_inputs(rbm, betas, tol, max_iter, grid, "a peak")
    W, a, b = _layers(rbm, MAX_EXACT_UNITS)
    k = int(torch.argmax(grid.heat_capacity))
    if k in (0, b64.numel() - 1):
        return HeatCapacityPeak(beta=float(b64[k]), heat_capacity=float(grid.heat_capacity[k]), on_edge=True,
                                grid=grid, steps=0, step_unit="evaluation", converged=False,
                                seconds=time.perf_counter() - t0)
    lo, hi = float(b64[k - 1]), float(b64[k + 1])
    x1, x2 = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
    f1, f2 = _heat_capacity_at(W, a, b, x1), _heat_capacity_at(W, a, b, x2)
    steps, best = 2, (float(grid.heat_capacity[k]), float(b64[k]))
    while hi - lo > tol * 0.5 * (hi + lo) and steps < max_iter:
        if f1 >= f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - _GOLDEN * (hi - lo)
            f1 = _heat_capacity_at(W, a, b, x1)
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + _GOLDEN * (hi - lo)
            f2 = _heat_capacity_at(W, a, b, x2)
        steps += 1
    for f, x in ((f1, x1), (f2, x2)):
        if f > best[0]:
            best = (f, x)
    return HeatCapacityPeak(beta=best[1], heat_capacity=best[0], on_edge=False, grid=grid, steps=steps,
                            step_unit="evaluation", converged=hi - lo <= tol * 0.5 * (hi + lo),
                            seconds=time.perf_counter() - t0)


@dataclass
class EffectiveBeta:
    """What :func:`effective_beta` returns.

    beta : the inverse temperature that maximises the exact mean log-likelihood of the data,
        L(beta) = mean_v [-beta F_beta(v)] - log Z(beta) (nats per example).
    log_likelihood : L there; log_likelihood_grid : L at each grid beta (float64 tensor).
    on_edge : the grid's best L was at its first or last beta (``beta`` is that edge).
    grid : the Thermodynamics of the grid (exact).
    steps : Newton/bisection evaluations done (``step_unit`` "evaluation"); converged : |dL/dbeta|
        or the bracket fell below the tolerance.
    seconds : wall time.
    """

    beta: float
    log_likelihood: float
    log_likelihood_grid: torch.Tensor
    on_edge: bool
    grid: Thermodynamics
    steps: int
    step_unit: str
    converged: bool
    seconds: float


def _data_terms(rbm, v: torch.Tensor, beta: float):
    """mean_v -beta F_beta(v), mean_v E[E | v] and mean_v Var[E | v] at ``beta`` (float64)."""
    a = rbm.visible_bias.detach().to(torch.float64)
    y = torch.addmm(rbm.hidden_bias.detach().to(torch.float64), v, rbm.W.detach().to(torch.float64))
    sp, ym, yv = _bernoulli_terms(y, beta)
    av = v @ a
    return float((beta * av + sp).mean()), float((-av - ym).mean()), float(yv.mean())


def effective_beta(rbm, data, betas, tol: float = 1e-8, max_iter: int = 50,
                   grid: Thermodynamics | None = None) -> EffectiveBeta:
    """The beta at which ``rbm`` (its W, a, b) gives ``data`` the largest exact mean log-likelihood.

    L(beta) is evaluated on the grid ``betas`` (sorted, at least 3) with exact log Z; from the
    grid's best point the root of dL/dbeta = <E>_beta - mean_v E[E | v] in the bracket of its
    neighbours is found by Newton steps (d^2L/dbeta^2 = mean_v Var[E | v] - Var_beta E), falling back
    to bisection when a step leaves the bracket, until |dL/dbeta| < tol * (1 + |<E>|) or the
    bracket is narrower than tol times beta. ``data`` : (n, n_visible) binary rows. ``grid``: the
    exact :func:`thermodynamics` of ``rbm`` at the sorted ``betas``, to reuse.
    """
    _check_rbm(rbm)
    v = as_tensor(data, "data", dtype=torch.float64, device=rbm.device)
    if v.ndim != 2 or v.shape[0] < 1 or v.shape[1] != rbm.n_visible:
        raise ValueError(f"data: expected shape (n, {rbm.n_visible}) with n >= 1, got {tuple(v.shape)}")
    t0 = time.perf_counter()
    b64, tol, max_iter, grid = _search_inputs(rbm, betas, tol, max_iter, grid, "a maximum")
    ll = torch.tensor([_data_terms(rbm, v, beta)[0] for beta in b64.tolist()], dtype=torch.float64) - grid.log_z
    k = int(torch.argmax(ll))
    done = lambda beta, ll_b, steps, conv, edge: EffectiveBeta(  # noqa: E731
        beta=beta, log_likelihood=ll_b, log_likelihood_grid=ll, on_edge=edge, grid=grid, steps=steps,
        step_unit="evaluation", converged=conv, seconds=time.perf_counter() - t0)
    if k in (0, b64.numel() - 1):
        return done(float(b64[k]), float(ll[k]), 0, False, True)
    W, a, b = _layers(rbm, MAX_EXACT_UNITS)
    lo, hi = float(b64[k - 1]), float(b64[k + 1])
    beta, best = float(b64[k]), (float(ll[k]), float(b64[k]))
    converged = False
    for steps in range(1, max_iter + 1):  # noqa: B007
        log_z, energy, var = (float(t[0]) for t in _exact_moments(W, a, b, torch.tensor([beta], dtype=torch.float64)))
        data_ll, data_e, data_var = _data_terms(rbm, v, beta)
        value, grad, curv = data_ll - log_z, energy - data_e, data_var - var
        if value > best[0]:
            best = (value, beta)
        if abs(grad) < tol * (1.0 + abs(energy)) or hi - lo < tol * beta:
            converged = True
            best = (value, beta)
            break
        if grad > 0:
            lo = beta
        else:
            hi = beta
        step = beta - grad / curv if curv < 0 else math.nan
        beta = step if lo < step < hi else 0.5 * (lo + hi)
    else:
        steps = max_iter
    return done(best[1], best[0], steps if max_iter else 0, converged, False)


__all__ = ["Thermodynamics", "thermodynamics", "HeatCapacityPeak", "heat_capacity_peak", "EffectiveBeta",
           "effective_beta", "METHODS"]

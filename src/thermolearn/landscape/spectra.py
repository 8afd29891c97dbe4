"""Weight-matrix spectra of neural networks (random matrix theory of the layers' weights).

Conventions
-----------
A layer's weight W is read as an N x M matrix with N >= M (transposed when it has fewer rows
than columns, e.g. an ``nn.Linear`` with out < in). Its empirical spectral density (ESD) is that
of the M x M correlation matrix X = W^T W / N: the eigenvalues are lambda_i = s_i^2 / N for the
M singular values s_i of W (``torch.linalg.svdvals`` in float64), and Q = N / M >= 1 is the
aspect ratio. Biases are not part of the analysis.

Convolutions (``nn.Conv1d``, ``nn.Conv2d``, ``nn.Conv3d``, weight (out, in/groups, *kernel))
follow WeightWatcher's convention (Martin & Mahoney 2021) by default, ``conv="slices"``: every
kernel position gives one out x in/groups matrix (kh * kw of them for a 2-d kernel), each
oriented and normalised as above, and their eigenvalues are pooled into one ESD of
``n_matrices * M`` eigenvalues. ``conv="reshape"`` instead reads the weight as one
out x (in/groups * kh * kw) matrix.

Marchenko-Pastur law (Marchenko & Pastur 1967). For iid entries of variance sigma^2 the ESD of X
tends, as N, M -> infinity at fixed Q = N / M >= 1, to

    rho(lambda) = Q / (2 pi sigma^2 lambda) sqrt((lambda_+ - lambda)(lambda - lambda_-)),
    lambda_(+/-) = sigma^2 (1 +/- 1/sqrt(Q))^2,

on [lambda_-, lambda_+]. Eigenvalues above the bulk edge are "spikes". A finite pure-noise
matrix has its largest eigenvalue near lambda_+ with Tracy-Widom fluctuations (Tracy & Widom
1996) of the scale (Johnstone 2001, for X = W^T W / N)

    s_TW = sigma^2 (sqrt(N) + sqrt(M)) (1/sqrt(N) + 1/sqrt(M))^(1/3) / N,

so an eigenvalue counts as a spike when it exceeds lambda_+ + TW_QUANTILE * s_TW, with
``TW_QUANTILE`` = 2.02, about the 99th percentile of the Tracy-Widom (beta = 1) law: a pure
noise matrix shows a false spike in about 1 case in 100. A rank-one perturbation
W = G + theta u v^T (unit u, v) of a noise matrix G is visible as a spike when its strength
t = theta / (sigma sqrt(N)) exceeds the BBP threshold Q^(-1/4) (Baik, Ben Arous & Peche 2005);
the spike then sits at sigma^2 (1 + t^2)(1/Q + t^2) / t^2 (Benaych-Georges & Nadakuditi 2012).

Power-law tail (Clauset, Shalizi & Newman 2009; applied to ESDs by Martin & Mahoney 2019,
2021). The tail lambda >= xmin of the ESD is fitted by p(lambda) ~ lambda^(-alpha): the
continuous maximum-likelihood estimate alpha = 1 + n / sum_i ln(lambda_i / xmin) over the n
eigenvalues of the tail, with xmin chosen among the eigenvalues to minimise the
Kolmogorov-Smirnov distance between the tail's empirical CDF and the fitted one. Confidence
intervals come from the nonparametric bootstrap (Efron 1979): the eigenvalues are resampled with
replacement and refitted, xmin selection included, and the percentile interval is reported.

Other layer statistics: the spectral norm ||W||_2 (largest singular value), the stable rank
||W||_F^2 / ||W||_2^2 (Rudelson & Vershynin 2007) and the weighted alpha
alpha * log10(lambda_max) (Martin & Mahoney 2021), here with lambda_max the largest eigenvalue
of X = W^T W / N (WeightWatcher uses the largest eigenvalue of W^T W, which adds
alpha * log10(N)). For pooled convolution slices the spectral norm is the largest over the
slices and the stable rank is sum(lambda) / max(lambda) of the pooled ESD.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .._numerics import as_tensor, check_int, check_real
from ..seeding import as_generator, spawn_seeds

TW_QUANTILE = 2.02
"""Spikes lie above lambda_+ + TW_QUANTILE * s_TW (about the 99th percentile of Tracy-Widom beta = 1)."""

MIN_MP_EIGENVALUES = 3
"""The fewest eigenvalues :func:`marchenko_pastur_fit` accepts."""

NULLS = ("init", "shuffle")
"""The null models of :func:`weight_spectra`."""

LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
"""The layers :func:`weight_spectra` analyses."""

_KS_CHUNK = 1 << 18          # entries of one block of the KS scan (candidates x values)
_GAUSS_NODES = 64


# ---------------------------------------------------------------------------------------------
# Marchenko-Pastur law
# ---------------------------------------------------------------------------------------------

def _check_mp_args(sigma2, Q) -> tuple[float, float]:
    return check_real(sigma2, "sigma2"), check_real(Q, "Q", 1.0, strict=False)


def mp_edges(sigma2: float, Q: float) -> tuple[float, float]:
    """(lambda_-, lambda_+) = sigma2 (1 -/+ 1/sqrt(Q))^2, the edges of the Marchenko-Pastur bulk
    of X = W^T W / N for an N x M matrix W of iid entries of variance ``sigma2``, Q = N / M >= 1
    (Marchenko & Pastur 1967)."""
    sigma2, Q = _check_mp_args(sigma2, Q)
    r = 1.0 / math.sqrt(Q)
    return sigma2 * (1.0 - r) ** 2, sigma2 * (1.0 + r) ** 2


def mp_density(x, sigma2: float, Q: float) -> torch.Tensor:
    """The Marchenko-Pastur density rho(x) = Q / (2 pi sigma2 x) sqrt((lambda_+ - x)(x - lambda_-))
    on [lambda_-, lambda_+], 0 outside (Marchenko & Pastur 1967).

    x : eigenvalues of X = W^T W / N (a number, array or tensor; float64 tensor returned).
    sigma2 : the variance of W's entries (same units as x).  Q : the aspect ratio N / M >= 1.
    """
    sigma2, Q = _check_mp_args(sigma2, Q)
    x = as_tensor(x, "x", dtype=torch.float64)
    lo, hi = mp_edges(sigma2, Q)
    inside = (x > lo) & (x < hi)
    xs = torch.where(inside, x, torch.full_like(x, 0.5 * (lo + hi)))
    rho = Q / (2.0 * math.pi * sigma2 * xs) * torch.sqrt((hi - xs) * (xs - lo))
    return torch.where(inside, rho, torch.zeros_like(x))


@functools.lru_cache(maxsize=8)
def _gauss_legendre(device) -> tuple[torch.Tensor, torch.Tensor]:
    import numpy as np

    t, w = np.polynomial.legendre.leggauss(_GAUSS_NODES)
    return (torch.as_tensor(t, dtype=torch.float64, device=device),
            torch.as_tensor(w, dtype=torch.float64, device=device))


def _mp_cdf_angle(phi: torch.Tensor, sigma2: float, Q: float) -> torch.Tensor:
    """The MP CDF at lambda(phi) = lambda_- + (lambda_+ - lambda_-) sin^2(phi / 2), phi in [0, pi].

    With this substitution rho(lambda) d lambda = Q w^2 sin^2(phi) / (2 pi sigma2 lambda(phi)) d phi
    (w = (lambda_+ - lambda_-) / 2) is smooth on [0, pi], also for Q = 1, so Gauss-Legendre
    quadrature on [0, phi] is accurate to rounding."""
    lo, hi = mp_edges(sigma2, Q)
    t, w = _gauss_legendre(phi.device)
    theta = 0.5 * phi.unsqueeze(-1) * (t + 1.0)                     # (..., nodes)
    half = 0.5 * (hi - lo)
    lam = lo + (hi - lo) * torch.sin(0.5 * theta) ** 2
    sin2 = torch.sin(theta) ** 2
    if lo == 0.0:                       # Q = 1: sin^2(theta) / lambda = 4 cos^2(theta / 2) / hi
        g = Q * half ** 2 * 4.0 * torch.cos(0.5 * theta) ** 2 / (2.0 * math.pi * sigma2 * hi)
    else:
        g = Q * half ** 2 * sin2 / (2.0 * math.pi * sigma2 * lam)
    return (0.5 * phi * (g * w).sum(-1)).clamp(0.0, 1.0)


def mp_cdf(x, sigma2: float, Q: float) -> torch.Tensor:
    """The Marchenko-Pastur cumulative distribution function F(x) = int_{lambda_-}^x rho (see
    :func:`mp_density`; Marchenko & Pastur 1967), by Gauss-Legendre quadrature after the
    substitution x = lambda_- + (lambda_+ - lambda_-) sin^2(phi / 2), accurate to about 1e-14.

    x : eigenvalues of X = W^T W / N; sigma2 : entry variance; Q : aspect ratio N / M >= 1.
    """
    sigma2, Q = _check_mp_args(sigma2, Q)
    x = as_tensor(x, "x", dtype=torch.float64)
    lo, hi = mp_edges(sigma2, Q)
    u = ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
    phi = 2.0 * torch.asin(torch.sqrt(u))
    return _mp_cdf_angle(phi, sigma2, Q)


@functools.lru_cache(maxsize=256)
def _mp_quantile(p: float, sigma2: float, Q: float) -> float:
    """The ``p`` quantile of the MP law, by bisection in the angle phi of :func:`_mp_cdf_angle`."""
    lo_phi, hi_phi = 0.0, math.pi
    for _ in range(60):
        mid = 0.5 * (lo_phi + hi_phi)
        if float(_mp_cdf_angle(torch.tensor([mid], dtype=torch.float64), sigma2, Q)[0]) < p:
            lo_phi = mid
        else:
            hi_phi = mid
    lo, hi = mp_edges(sigma2, Q)
    return lo + (hi - lo) * math.sin(0.25 * (lo_phi + hi_phi)) ** 2


def tracy_widom_scale(sigma2: float, N: float, M: float) -> float:
    """s_TW = sigma2 (sqrt(N) + sqrt(M)) (1/sqrt(N) + 1/sqrt(M))^(1/3) / N: the scale of the
    Tracy-Widom fluctuations of the largest eigenvalue of X = W^T W / N for an N x M noise matrix
    W of entry variance ``sigma2`` (Johnstone 2001)."""
    a, b = math.sqrt(N), math.sqrt(M)
    return sigma2 * (a + b) * (1.0 / a + 1.0 / b) ** (1.0 / 3.0) / N


@dataclass
class MPFit:
    """A Marchenko-Pastur fit of an ESD (see :func:`marchenko_pastur_fit`).

    sigma2 : fitted entry variance; Q : aspect ratio N / M; lambda_minus, lambda_plus : the bulk
    edges sigma2 (1 -/+ 1/sqrt(Q))^2; tw_margin : TW_QUANTILE * s_TW added to lambda_plus to
    count spikes; spikes : eigenvalues above lambda_plus + tw_margin; n_bulk : eigenvalues at or
    below it; ks : Kolmogorov-Smirnov distance between the bulk's empirical CDF and the fitted
    MP CDF; iterations : rounds of the fit.
    """

    sigma2: float
    Q: float
    lambda_minus: float
    lambda_plus: float
    tw_margin: float
    spikes: int
    n_bulk: int
    ks: float
    iterations: int


def _ks_mp(bulk: torch.Tensor, sigma2: float, Q: float) -> float:
    n = bulk.numel()
    F = mp_cdf(bulk, sigma2, Q)
    i = torch.arange(n, dtype=torch.float64, device=bulk.device)
    return float(torch.maximum(F - i / n, (i + 1) / n - F).max())


def marchenko_pastur_fit(eigenvalues, aspect_ratio: float, *, n_matrices: int = 1) -> MPFit:
    """Fit the Marchenko-Pastur law (Marchenko & Pastur 1967) to the bulk of an ESD and count the
    spikes above it.

    eigenvalues : the eigenvalues of X = W^T W / N of ``n_matrices`` pooled N x M matrices
        (``n_matrices * M`` non-negative numbers; units of W's entries squared).
    aspect_ratio : Q = N / M >= 1.
    n_matrices : how many matrices the eigenvalues were pooled from (convolution slices), so
        that M = len(eigenvalues) / n_matrices sets the Tracy-Widom margin.

    sigma2 is fitted robustly to the bulk by quantile matching: sigma2 = median(bulk) / m(Q),
    with m(Q) the median of the MP law of unit variance, where the bulk is first every
    eigenvalue, then those at or below lambda_+(sigma2) + TW_QUANTILE * s_TW(sigma2) (Johnstone
    2001), repeated until the bulk no longer shrinks (each round can only lower sigma2, so it
    ends after at most M rounds). Spikes barely move the median of the bulk, so their number and
    strength do not bias sigma2 beyond O(spikes / M).
    """
    lam = as_tensor(eigenvalues, "eigenvalues", dtype=torch.float64).flatten()
    Q = check_real(aspect_ratio, "aspect_ratio", 1.0, strict=False)
    n_matrices = check_int(n_matrices, "n_matrices")
    total = lam.numel()
    if total < MIN_MP_EIGENVALUES:
        raise ValueError(f"eigenvalues: expected at least {MIN_MP_EIGENVALUES} eigenvalues for a fit, got {total}")
    if total % n_matrices:
        raise ValueError(f"n_matrices: {total} eigenvalues do not split into {n_matrices} matrices")
    if bool((lam < 0).any()):
        raise ValueError(f"eigenvalues: expected non-negative values, got {int((lam < 0).sum())} negative")
    lam = torch.sort(lam).values
    if float(lam[-1]) <= 0.0:
        raise ValueError("eigenvalues: all zero, nothing to fit")
    M = total // n_matrices
    N = Q * M
    m1 = _mp_quantile(0.5, 1.0, Q)
    bulk = lam
    iterations = 0
    while True:
        iterations += 1
        sigma2 = float(torch.quantile(bulk, 0.5)) / m1
        if sigma2 <= 0.0:
            raise ValueError("eigenvalues: more than half of the bulk is zero, no Marchenko-Pastur fit")
        edge = mp_edges(sigma2, Q)[1] + TW_QUANTILE * tracy_widom_scale(sigma2, N, M)
        n_bulk = int(torch.searchsorted(lam, torch.tensor([edge], dtype=torch.float64, device=lam.device),
                                        right=True)[0])
        if n_bulk >= bulk.numel():
            break
        bulk = lam[:n_bulk]
    lo, hi = mp_edges(sigma2, Q)
    margin = TW_QUANTILE * tracy_widom_scale(sigma2, N, M)
    return MPFit(sigma2=sigma2, Q=Q, lambda_minus=lo, lambda_plus=hi, tw_margin=margin,
                 spikes=total - bulk.numel(), n_bulk=bulk.numel(), ks=_ks_mp(bulk, sigma2, Q),
                 iterations=iterations)


# ---------------------------------------------------------------------------------------------
# Power-law tails
# ---------------------------------------------------------------------------------------------

@dataclass
class PowerLawFit:
    """A power-law fit p(x) ~ x^(-alpha) of the tail x >= xmin (see :func:`power_law_fit`).

    alpha : the exponent; xmin : the lower cut (chosen or given); xmax : the upper cut (None:
    no cut); n_tail : values in the fitted tail; n : values given; ks : Kolmogorov-Smirnov
    distance of the tail's empirical CDF from the fitted CDF; sigma : the asymptotic standard
    error (alpha - 1) / sqrt(n_tail) of the untruncated estimator (Clauset et al. 2009);
    ci_low, ci_high : the bootstrap percentile interval at ``level`` (NaN without bootstrap);
    bootstrap_alphas : (B,) the alphas of the bootstrap replicates (float64, empty without).
    """

    alpha: float
    xmin: float
    xmax: float | None
    n_tail: int
    n: int
    ks: float
    sigma: float
    ci_low: float
    ci_high: float
    level: float
    bootstrap_alphas: torch.Tensor


def _h(u: torch.Tensor) -> torch.Tensor:
    """h(u) = 1/u - 1/(e^u - 1), decreasing from 1 (u -> -inf) to 0 (u -> inf), h(0) = 1/2."""
    small = u.abs() < 1e-4
    us = torch.where(small, torch.ones_like(u), u)
    exact = 1.0 / us - 1.0 / torch.expm1(us)
    series = 0.5 - u / 12.0 + u ** 3 / 720.0
    return torch.where(small, series, exact)


def _truncated_beta(mean_log: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """beta = alpha - 1 of the power law truncated to [a, b] whose mean of ln(x / a) is
    ``mean_log``, L = ln(b / a): the root of mean_log = L h(beta L) (the likelihood equation),
    by bisection in u = beta L."""
    target = (mean_log / L).clamp(1e-12, 1.0 - 1e-12)
    lo = torch.full_like(target, -1e6)
    hi = torch.full_like(target, 1e6)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        above = _h(mid) > target                 # h decreasing: the root lies above mid
        lo = torch.where(above, mid, lo)
        hi = torch.where(above, hi, mid)
    return 0.5 * (lo + hi) / L


def _fit_sorted(x: torch.Tensor, xmin, xmax, min_tail: int):
    """(alpha, xmin, n_tail, ks) of sorted positive ``x`` (already cut at xmax), or None when no
    tail of ``min_tail`` values with two distinct values exists."""
    n = x.numel()
    if n < min_tail:
        return None
    logs = torch.log(x)
    l0 = logs[0]
    ell = logs - l0                                               # >= 0, less cancellation
    dev = x.device
    if xmin is None:
        first = torch.ones(n, dtype=torch.bool, device=dev)
        first[1:] = x[1:] != x[:-1]
        ar = torch.arange(n, device=dev)
        cand = torch.nonzero(first & (ar <= n - min_tail) & (x < x[-1])).flatten()
    else:
        i0 = int(torch.searchsorted(x, torch.tensor([xmin], dtype=x.dtype, device=dev))[0])
        if n - i0 < min_tail:
            raise ValueError(f"xmin: only {n - i0} values lie at or above xmin = {xmin:g}, need min_tail = {min_tail}")
        cand = torch.tensor([i0], device=dev)
    if cand.numel() == 0:
        return None
    suffix = torch.flip(torch.cumsum(torch.flip(ell, [0]), 0), [0])
    n_c = (n - cand).to(torch.float64)
    a_ell = ell[cand] if xmin is None else torch.full((1,), math.log(xmin), dtype=torch.float64,
                                                        device=dev) - l0
    T = suffix[cand] - n_c * a_ell                                 # sum over the tail of ln(x / xmin)
    if xmax is None:
        if xmin is not None and float(T[0]) <= 0.0:
            return None
        beta = n_c / T
        L = None
    else:
        L = (math.log(xmax) - l0) - a_ell
        beta = _truncated_beta(T / n_c, L)
    # D_c = max_j max(F_j - r/n_c, (r+1)/n_c - F_j) = 1/(2 n_c) + max_j |F_j - (r + 1/2)/n_c|, over the
    # tail values j = c + r; blocks of candidates keep the (candidates x values) scratch in cache
    best = (math.inf, 0)
    idx = torch.arange(n, dtype=torch.float64, device=dev)
    chunk = max(8, _KS_CHUNK // n)
    for s in range(0, cand.numel(), chunk):
        c = cand[s:s + chunk]
        c0 = int(c[0])
        a = a_ell[s:s + chunk] if xmin is None else a_ell
        b = beta[s:s + chunk].unsqueeze(1)
        inv = 1.0 / n_c[s:s + chunk].unsqueeze(1)
        e = (idx[c0:].unsqueeze(0) - c.unsqueeze(1).to(torch.float64) + 0.5) * inv
        d = ell[c0:].unsqueeze(0) - a.unsqueeze(1)                  # ln(x_j / xmin), < 0 before the tail
        if L is None:
            G = torch.exp(d.clamp_min_(0.0).mul_(-b)).add_(e).sub_(1.0).abs_()      # |1 - (x/xmin)^-beta - e|
        else:
            Lc = L[s:s + chunk].unsqueeze(1)
            bl = b * Lc
            tiny = bl.abs() < 1e-10
            d.clamp_min_(0.0)
            denom = torch.expm1(-torch.where(tiny, torch.ones_like(bl), bl))
            F = torch.where(tiny, d / Lc, torch.expm1(-b * d) / denom)
            G = (F - e).abs_()
        D = G.masked_fill_(e < 0, -math.inf).amax(1) + 0.5 * inv.squeeze(1)
        k = int(torch.argmin(D))
        if float(D[k]) < best[0]:
            best = (float(D[k]), s + k)
    ks, k = best
    alpha = 1.0 + float(beta[k])
    chosen = float(x[int(cand[k])]) if xmin is None else float(xmin)
    return alpha, chosen, int(n_c[k]), ks


def _check_fit_args(xmin, xmax, bootstrap, level, min_tail):
    bootstrap = check_int(bootstrap, "bootstrap", 0)
    min_tail = check_int(min_tail, "min_tail", 2)
    level = check_real(level, "level", 0.0)
    if level >= 1.0:
        raise ValueError(f"level: expected a number in (0, 1), got {level!r}")
    if xmin is not None:
        xmin = check_real(xmin, "xmin")
    if xmax is not None:
        xmax = check_real(xmax, "xmax")
        if xmin is not None and xmax <= xmin:
            raise ValueError(f"xmax: expected a number > xmin = {xmin:g}, got {xmax!r}")
    return xmin, xmax, bootstrap, level, min_tail


def power_law_fit(x, *, xmin: float | None = None, xmax: float | None = None, bootstrap: int = 0,
                  level: float = 0.95, min_tail: int = 10, seed=None) -> PowerLawFit:
    """Fit a continuous power law p(x) = (alpha - 1) / xmin (x / xmin)^(-alpha), x >= xmin, to the
    tail of the positive samples ``x`` (Clauset, Shalizi & Newman 2009).

    The exponent is the maximum-likelihood estimate alpha = 1 + n / sum_i ln(x_i / xmin) over the
    n values of the tail. With ``xmin=None`` every distinct value that leaves at least
    ``min_tail`` values (and two distinct ones) in the tail is tried, and the one minimising the
    Kolmogorov-Smirnov distance D = max |S(x) - P(x)| between the tail's empirical CDF S (both
    sides of each step) and the fitted CDF P is kept. With ``xmax``, values above it are left
    out and the power law truncated to [xmin, xmax] is fitted instead: the likelihood equation
    mean ln(x / xmin) = 1/(alpha - 1) - ln(xmax / xmin) / ((xmax / xmin)^(alpha - 1) - 1) is
    solved by bisection (alpha < 1 is then allowed).

    x : 1-d positive samples (e.g. the eigenvalues of an ESD; any units).
    xmin, xmax : fixed lower / upper cuts in the units of x (None: chosen / no upper cut).
    bootstrap : number of bootstrap replicates (Efron 1979): ``x`` resampled with replacement and
        refitted with the same settings (xmin selection included); 0 for none.
    level : the coverage of the percentile interval (ci_low, ci_high).
    min_tail : the fewest values a tail may have.
    seed : seeds the bootstrap resampling (int, torch.Generator or None).
    Returns a :class:`PowerLawFit` (float64 computation on x's device).
    """
    x = as_tensor(x, "x", dtype=torch.float64, ndim=1)
    xmin, xmax, bootstrap, level, min_tail = _check_fit_args(xmin, xmax, bootstrap, level, min_tail)
    if bool((x <= 0).any()):
        raise ValueError(f"x: expected positive values, got {int((x <= 0).sum())} value(s) <= 0")
    n_all = x.numel()
    x = torch.sort(x).values
    kept = x if xmax is None else x[x <= xmax]
    if kept.numel() < min_tail:
        where = "" if xmax is None else f" at or below xmax = {xmax:g}"
        raise ValueError(f"x: expected at least min_tail = {min_tail} values{where} for a fit, got {kept.numel()}")
    fit = _fit_sorted(kept, xmin, xmax, min_tail)
    if fit is None:
        raise ValueError(f"x: no tail of at least min_tail = {min_tail} values with two distinct values")
    alpha, chosen, n_tail, ks = fit
    alphas = []
    if bootstrap:
        gen = as_generator(seed)
        for _ in range(bootstrap):
            idx = torch.randint(0, n_all, (n_all,), generator=gen).to(x.device)
            xb = torch.sort(x[idx]).values
            if xmax is not None:
                xb = xb[xb <= xmax]
            try:
                fb = _fit_sorted(xb, xmin, xmax, min_tail)
            except ValueError:               # a resample with too few values above the fixed xmin
                fb = None
            if fb is not None:
                alphas.append(fb[0])
    boot = torch.tensor(alphas, dtype=torch.float64)
    if boot.numel():
        q = torch.tensor([(1.0 - level) / 2.0, (1.0 + level) / 2.0], dtype=torch.float64)
        ci_low, ci_high = (float(v) for v in torch.quantile(boot, q))
    else:
        ci_low = ci_high = math.nan
    return PowerLawFit(alpha=alpha, xmin=chosen, xmax=xmax, n_tail=n_tail, n=n_all, ks=ks,
                       sigma=(alpha - 1.0) / math.sqrt(n_tail), ci_low=ci_low, ci_high=ci_high, level=level,
                       bootstrap_alphas=boot)


# ---------------------------------------------------------------------------------------------
# Layers of a module
# ---------------------------------------------------------------------------------------------

@dataclass
class LayerSpectrum:
    """The spectrum of one layer's weight (see :func:`weight_spectra` and the module docstring).

    name : the layer's qualified name in the module; kind : its class name ("Linear",
    "Conv2d", ...); shape : the weight's shape; N, M : the analysed matrix is N x M, N >= M;
    Q : N / M; n_matrices : matrices pooled (kernel positions of a convolution, else 1);
    source : "weights" for the layer itself, "init" or "shuffle" for a null model.
    eigenvalues : (n_matrices * M,) eigenvalues of X = W^T W / N, ascending, float64, CPU.
    sigma2, lambda_minus, lambda_plus, spikes, mp_ks : the Marchenko-Pastur fit
    (:func:`marchenko_pastur_fit`); its KS distance is ``mp_ks`` (NaN, and spikes None, when
    there is no fit: fewer than 3 eigenvalues, or more than half of them zero).
    alpha, xmin, n_tail, ks, alpha_ci_low, alpha_ci_high : the power-law fit of the ESD's tail
    (:func:`power_law_fit`; NaN, and n_tail 0, when there is no tail to fit: fewer than
    ``min_tail`` positive eigenvalues, all of them equal, or too few beyond a given xmin).
    lambda_max : largest eigenvalue of X; spectral_norm : largest singular value of W;
    stable_rank : ||W||_F^2 / ||W||_2^2 (= sum(eigenvalues) / lambda_max);
    alpha_weighted : alpha * log10(lambda_max).
    nulls : {"init" | "shuffle": LayerSpectrum} the null models asked for ({} for a null itself).
    """

    name: str
    kind: str
    shape: tuple
    N: int
    M: int
    Q: float
    n_matrices: int
    source: str
    eigenvalues: torch.Tensor
    sigma2: float
    lambda_minus: float
    lambda_plus: float
    spikes: int | None
    mp_ks: float
    alpha: float
    xmin: float
    n_tail: int
    ks: float
    alpha_ci_low: float
    alpha_ci_high: float
    lambda_max: float
    spectral_norm: float
    stable_rank: float
    alpha_weighted: float
    nulls: dict = field(default_factory=dict)

    _SCALARS = ("N", "M", "Q", "n_matrices", "sigma2", "lambda_minus", "lambda_plus", "spikes", "mp_ks",
                "alpha", "xmin", "n_tail", "ks", "alpha_ci_low", "alpha_ci_high", "lambda_max",
                "spectral_norm", "stable_rank", "alpha_weighted")

    def record(self) -> dict:
        """A JSON-ready dict of the scalars (no eigenvalues; NaN as None), the layer's name, kind
        and shape, and every null's scalars under ``"<null>_<field>"`` keys."""
        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None
            return v

        out = {"layer": self.name, "kind": self.kind, "shape": list(self.shape)}
        out.update({k: clean(getattr(self, k)) for k in self._SCALARS})
        for kind, spec in self.nulls.items():
            out.update({f"{kind}_{k}": clean(getattr(spec, k)) for k in self._SCALARS
                        if k not in ("N", "M", "Q", "n_matrices")})
        return out


def _layers(module: nn.Module, what: str) -> list[tuple[str, nn.Module]]:
    if not isinstance(module, nn.Module):
        raise TypeError(f"{what}: expected a torch.nn.Module, got {type(module).__name__}")
    return [(name, m) for name, m in module.named_modules() if isinstance(m, LAYER_TYPES)]


def _matrices(weight: torch.Tensor, conv: str) -> torch.Tensor:
    """(K, rows, cols) float64 matrices of a weight: K = 1 for Linear or conv="reshape"."""
    w = weight.detach().to(torch.float64)
    if w.ndim == 2:
        return w.unsqueeze(0)
    if conv == "reshape":
        return w.reshape(w.shape[0], -1).unsqueeze(0)
    return w.flatten(2).permute(2, 0, 1)                          # (kernel positions, out, in)


def _check_nulls(null) -> tuple[str, ...]:
    items = (null,) if null is None or isinstance(null, str) else null
    try:
        items = tuple(items)
    except TypeError:
        items = (null,)
    if null is None:
        return ()
    if not items or any(k not in NULLS for k in items) or len(set(items)) != len(items):
        raise ValueError(f"null: expected None, 'init', 'shuffle' or a list of them, got {null!r}")
    return items


def _spectrum(name, kind, shape, mats: torch.Tensor, source: str, *, bootstrap, level, xmin, xmax,
              min_tail, seed, nulls=None) -> LayerSpectrum:
    K, rows, cols = mats.shape
    N, M = max(rows, cols), min(rows, cols)
    sv = torch.linalg.svdvals(mats)                                # (K, M)
    lam = torch.sort((sv ** 2 / N).flatten().cpu()).values
    nan = math.nan
    try:
        mp = marchenko_pastur_fit(lam, N / M, n_matrices=K)
        mpf = (mp.sigma2, mp.lambda_minus, mp.lambda_plus, mp.spikes, mp.ks)
    except ValueError:                      # fewer than 3 eigenvalues, or a mostly zero spectrum
        mpf = (nan, nan, nan, None, nan)
    lam_max = float(lam[-1])
    positive = lam[lam > lam_max * 1e-12] if lam_max > 0 else lam[:0]
    plf = (nan, nan, 0, nan, nan, nan)
    if positive.numel() >= min_tail:
        try:
            pl = power_law_fit(positive, xmin=xmin, xmax=xmax, bootstrap=bootstrap, level=level,
                               min_tail=min_tail, seed=seed)
            plf = (pl.alpha, pl.xmin, pl.n_tail, pl.ks, pl.ci_low, pl.ci_high)
        except ValueError:                  # no tail: all values equal, or too few beyond xmin / below xmax
            pass
    alpha = plf[0]
    return LayerSpectrum(
        name=name, kind=kind, shape=tuple(shape), N=N, M=M, Q=N / M, n_matrices=K, source=source,
        eigenvalues=lam, sigma2=mpf[0], lambda_minus=mpf[1], lambda_plus=mpf[2], spikes=mpf[3], mp_ks=mpf[4],
        alpha=alpha, xmin=plf[1], n_tail=plf[2], ks=plf[3],
        alpha_ci_low=plf[4], alpha_ci_high=plf[5], lambda_max=lam_max,
        spectral_norm=float(sv.max()), stable_rank=float(lam.sum()) / lam_max if lam_max > 0 else nan,
        alpha_weighted=alpha * math.log10(lam_max) if lam_max > 0 else nan, nulls=dict(nulls or {}))


def weight_spectra(module: nn.Module, *, null=None, init_module: nn.Module | None = None, bootstrap: int = 100,
                   level: float = 0.95, seed=None, xmin: float | None = None, xmax: float | None = None,
                   min_tail: int = 10, conv: str = "slices", progress: bool = False) -> list[LayerSpectrum]:
    """The weight spectrum of every ``nn.Linear`` and ``nn.Conv1d/2d/3d`` layer of ``module``, in
    the order of ``module.named_modules()``, with Marchenko-Pastur and power-law fits (the module
    docstring has the conventions and equations; Martin & Mahoney 2019, 2021).

    module : any torch module; only the weights of its Linear and Conv layers are read (the SVD
        runs in float64 on the weights' device; results are on the CPU).
    null : None, "init", "shuffle" or a list of them: null models analysed the same way and
        stored in each record's ``nulls`` dict.
        "init": the layer at initialisation, the same-named layer of ``init_module`` (e.g. a copy
        of the network taken before training), or when that is None a copy of the layer
        re-initialised by its own ``reset_parameters()`` under a seed drawn from ``seed``.
        "shuffle": the layer's own weight with its entries randomly permuted, which keeps the
        distribution of the entries and destroys their correlations (spikes and the heavy tail
        that correlations make).
    init_module : the network at initialisation for null="init" (same layer names and shapes).
    bootstrap, level, xmin, xmax, min_tail : of the power-law fit (:func:`power_law_fit`), applied
        to the positive eigenvalues (above 1e-12 lambda_max) of each layer; a layer without a tail
        to fit (see :class:`LayerSpectrum`) gets NaN power-law fields, one without a
        Marchenko-Pastur fit NaN MP fields, rather than an error.
    seed : seeds the bootstrap, the shuffles and the re-initialisations (int, Generator, None);
        each layer draws from its own stream (``spawn_seeds``).
    conv : "slices" (default, WeightWatcher's convention) or "reshape" (see the module docstring).
    progress : a progress bar over the layers on standard error.
    Returns a list of :class:`LayerSpectrum`, one per layer.
    """
    layers = _layers(module, "module")
    if not layers:
        raise ValueError(f"module: no nn.Linear or nn.Conv1d/2d/3d layers found in {type(module).__name__}")
    nulls = _check_nulls(null)
    if conv not in ("slices", "reshape"):
        raise ValueError(f"conv: expected 'slices' or 'reshape', got {conv!r}")
    xmin, xmax, bootstrap, level, min_tail = _check_fit_args(xmin, xmax, bootstrap, level, min_tail)
    for name, layer in layers:
        if not bool(torch.isfinite(layer.weight.detach()).all()):
            raise ValueError(f"module: layer {name!r} has non-finite weights")
    init_layers = {}
    if init_module is not None:
        if "init" not in nulls:
            raise ValueError("init_module: only used with null='init'")
        init_layers = dict(_layers(init_module, "init_module"))
        for name, layer in layers:
            other = init_layers.get(name)
            if other is None or tuple(other.weight.shape) != tuple(layer.weight.shape):
                raise ValueError(f"init_module: expected a layer {name!r} with weight shape "
                                 f"{tuple(layer.weight.shape)}, got "
                                 f"{None if other is None else tuple(other.weight.shape)}")
            if not bool(torch.isfinite(other.weight.detach()).all()):
                raise ValueError(f"init_module: layer {name!r} has non-finite weights")
    opts = dict(bootstrap=bootstrap, level=level, xmin=xmin, xmax=xmax, min_tail=min_tail)
    layer_seeds = spawn_seeds(seed, len(layers))
    bar = None
    if progress:
        import sys

        from tqdm import tqdm
        bar = tqdm(total=len(layers), unit="layer", desc="weight spectra", file=sys.stderr, leave=False)
    out = []
    for (name, layer), lseed in zip(layers, layer_seeds):
        s_boot, s_null, s_init_boot, s_shuffle_boot = spawn_seeds(lseed, 4)
        kind, shape = type(layer).__name__, tuple(layer.weight.shape)
        null_spectra = {}
        for which in nulls:
            if which == "shuffle":
                w = layer.weight.detach()
                perm = torch.randperm(w.numel(), generator=as_generator(s_null)).to(w.device)
                w0 = w.flatten()[perm].reshape(w.shape)
                boot_seed = s_shuffle_boot
            else:
                w0 = init_layers[name].weight.detach() if name in init_layers else _reinitialised(layer, s_null)
                boot_seed = s_init_boot
            null_spectra[which] = _spectrum(name, kind, shape, _matrices(w0, conv), which, seed=boot_seed, **opts)
        spec = _spectrum(name, kind, shape, _matrices(layer.weight, conv), "weights", seed=s_boot,
                         nulls=null_spectra, **opts)
        out.append(spec)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return out


def _reinitialised(layer: nn.Module, seed: int) -> torch.Tensor:
    """The weight of a CPU copy of ``layer`` re-initialised by its ``reset_parameters()``, drawn
    from torch's global generator seeded by ``seed`` and restored afterwards."""
    import copy

    from ..deep import reset_parameters

    clone = copy.deepcopy(layer).to("cpu")
    reset_parameters(clone, seed=seed)
    return clone.weight.detach()

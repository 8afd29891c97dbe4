"""Annealed importance sampling (AIS) estimate of an RBM's log partition function.

The annealing path is that of Salakhutdinov & Murray (2008). The base model has W = 0, visible
biases a_A and uniform hidden units; the target is the RBM at its inverse temperature, i.e. the
beta = 1 model with the scaled parameters (W', a', b') = rbm.scaled_parameters(). With
t in [0, 1] the unnormalised visible marginal along the path is

    log f_t(v) = (1 - t) a_A.v + t a'.v + sum_j softplus(t (b' + v W')_j),

so log Z_0 = sum_i softplus(a_{A,i}) + n_h log 2 and Z_1 = Z(beta) of the RBM. The transition at t
is one block-Gibbs sweep that leaves p_t invariant:

    h ~ sigmoid(t (b' + v W')),        v ~ sigmoid((1 - t) a_A + t (a' + W' h)).

Forward AIS (Neal 2001) with a ladder 0 = t_0 < t_1 < ... < t_K = 1: v_0 ~ p_0 exactly, then for
k = 1..K the log weight grows by log f_k(v_{k-1}) - log f_{k-1}(v_{k-1}) and, for k < K,
v_k ~ T_k(. | v_{k-1}). The mean weight is an unbiased estimate of Z_1 / Z_0, so
E[log Z-hat] <= log Z (Jensen): AIS tends to under-estimate log Z and over-estimate likelihoods.

Implementation: per temperature exactly two matrix products in the model's dtype. x = b + v W'
(with the extra column (a' - a_A).v folded into the product) gives both the weight increment
between t_{k-1} and t_k and the hidden drive of the sweep at t_k; the product h W'^T, with the
visible bias a_A + t (a' - a_A) of that temperature, gives the visible drive. The increments are
differences of nearly equal softplus values: float64 models evaluate them as written, float32
models by a cancellation-free identity in the hidden probabilities of the sweep (see ``_Path``).
Log weights are accumulated in float64; all buffers are allocated once.
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass

import torch

from .._numerics import LOG2, SOFTPLUS64_THRESHOLD, as_tensor, check_int, logit, softplus
from .._random import BernoulliSampler
from ..schedules import betas_from
from ..seeding import as_generator

_PROGRESS_EVERY = 500


@dataclass
class AISResult:
    """Result of :func:`ais_log_partition`.

    log_z : log Z-hat = log Z_0 + log mean_i w_i.
    stderr : delta-method standard error of log Z-hat, std(w) / mean(w) / sqrt(n_chains).
    log_z_lower, log_z_upper : log(Z-hat -/+ 3 sigma) as reported by Salakhutdinov & Murray
        (2008), sigma the standard error of Z-hat; the lower value is -inf when 3 sigma >= Z-hat.
    log_weights : (n_chains,) float64 log importance weights log w_i (log Z-hat - log Z_0 is
        their log-mean-exp).
    log_z_base : log Z_0 of the base-rate model.
    n_betas : number of inverse temperatures on the ladder (including 0 and 1).
    seconds : wall-clock time of the run.
    samples : (n_chains, n_visible) final visible states of the chains (model dtype); they are
        approximately distributed as the model, exactly so after weighting by the w_i.

    The run read as a non-equilibrium process (Jarzynski 1997; Neal 2001; Crooks 1998), in units
    of kT: each chain's log weight is minus the work W_i = -log w_i done on it by switching the
    energy -log f_t from t = 0 to 1 in K steps, and log Z-hat = log Z_0 + log mean_i exp(-W_i) is
    Jarzynski's equality read as an estimator of the free-energy change Delta F = log Z_0 - log Z:

    work_mean, work_std : mean and standard deviation (ddof = 1) of the W_i.
    free_energy_change : the Jarzynski estimate Delta F-hat = log Z_0 - log Z-hat.
    dissipated_work : work_mean - free_energy_change, the mean work lost to irreversibility; it
        is >= 0 (the second law, here exactly in-sample by Jensen's inequality) and is about
        work_std^2 / 2 when the work is Gaussian; it grows as the ladder gets coarser.
    ess : effective sample size of the weights, (sum_i w_i)^2 / sum_i w_i^2, in [1, n_chains].
    ess_fraction : ess / n_chains.
    """

    log_z: float
    stderr: float
    log_z_lower: float
    log_z_upper: float
    log_weights: torch.Tensor
    log_z_base: float
    n_betas: int
    seconds: float
    samples: torch.Tensor
    work_mean: float
    work_std: float
    free_energy_change: float
    dissipated_work: float
    ess: float
    ess_fraction: float

    @property
    def work(self) -> torch.Tensor:
        """(n_chains,) float64 work W_i = -log w_i of each chain (a view of -log_weights)."""
        return -self.log_weights


def base_rate_bias(data, smoothing: float = 0.05) -> torch.Tensor:
    """Visible biases of the base-rate model: logit of smoothed pixel means (float64).

    p_i = (1 - smoothing) * mean(data[:, i]) + smoothing / 2, i.e. the pixel means shrunk
    towards 1/2 so that pixels that are always off (or on) get a finite bias. Salakhutdinov &
    Murray (2008) use the training data's pixel means as the base; their code adds pseudo-counts
    in the same spirit. ``data`` is (n_examples, n_visible) with values in [0, 1] (binary data or
    pixel intensities).
    """
    x = as_tensor(data, "data", dtype=torch.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"data: expected a non-empty 2-d array (n_examples, n_visible), got shape {tuple(x.shape)}")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError(f"data: expected values in [0, 1], got [{float(x.min()):g}, {float(x.max()):g}]")
    try:
        s = float(smoothing)
    except (TypeError, ValueError):
        raise ValueError(f"smoothing: expected a number in (0, 1], got {smoothing!r}") from None
    if not 0 < s <= 1:
        raise ValueError(f"smoothing: expected a number in (0, 1], got {smoothing!r}")
    p = (1.0 - s) * x.mean(0) + 0.5 * s
    return logit(p, eps=1e-12)


# ---------------------------------------------------------------------------------------------
# Shared machinery (also used by reverse_ais)
# ---------------------------------------------------------------------------------------------

def _ladder(n_betas) -> torch.Tensor:
    """The float64 ladder 0 = t_0 < ... < t_K = 1 from ``n_betas``, errors naming n_betas."""
    if isinstance(n_betas, numbers.Integral) and not isinstance(n_betas, bool):
        n_betas = int(n_betas)
    elif isinstance(n_betas, bool) or n_betas is None:
        raise ValueError(f"n_betas: expected an integer >= 2, 'sm08' or a sequence, got {n_betas!r}")
    try:
        betas = betas_from(n_betas)
    except (ValueError, TypeError, RuntimeError) as exc:
        msg = str(exc).removeprefix("betas: ")
        if not msg.startswith("n_betas"):
            msg = f"n_betas: {msg}"
        raise ValueError(msg) from None
    betas = betas.to(torch.float64).flatten()
    if betas.numel() < 2 or float(betas[0]) != 0.0 or float(betas[-1]) != 1.0 \
            or bool((betas.diff() <= 0).any()) or not bool(torch.isfinite(betas).all()):
        raise ValueError("n_betas: expected an increasing ladder from 0 to 1 with at least 2 values")
    return betas


def _base_bias(rbm, base_visible_bias) -> torch.Tensor:
    """a_A as float64 on the model's device (zeros by default)."""
    n_v = rbm.n_visible
    if base_visible_bias is None:
        return torch.zeros(n_v, dtype=torch.float64, device=rbm.device)
    a = as_tensor(base_visible_bias, "base_visible_bias", dtype=torch.float64, device=rbm.device)
    if a.ndim != 1 or a.shape[0] != n_v:
        raise ValueError(f"base_visible_bias: expected a vector of length {n_v} (n_visible), "
                         f"got shape {tuple(a.shape)}")
    return a


class _Path:
    """Buffers and kernels of the S&M08 annealing path for ``n`` parallel chains.

    State: ``v`` (n, n_v), model dtype. After :meth:`drive`, ``x`` holds [b' + v W', (a' - a_A).v]
    in the model dtype; ``xh`` and ``xd`` are views of its two parts.

    Weight increments (:meth:`weigh`) between t_lo = t_i and t_hi = t_{i+1}, dt = t_hi - t_lo:

    - float64 models: sum_j softplus(t_hi x_j) - softplus(t_lo x_j) evaluated as written.
    - float32 models: the two softplus values nearly cancel, so the difference is taken from the
      exact identities (p_t = sigmoid(t x), the hidden probabilities the sweep needs anyway)

          softplus(t_hi x) - softplus(t_lo x) = -log1p(p_hi expm1(-dt x)) = log1p(p_lo expm1(dt x)),

      which lose no digits while dt |x| <= 1 (the argument of log1p then stays in [-0.64, 1]);
      steps with dt * max|x| > 1 (coarse ladders; max|x| bounded over all binary v by
      max_j |b'_j| + sum_i |W'_ij|) fall back to float64 softplus. The Bernoulli draws of
      float32 CPU models use the xorshift sampler of :mod:`thermolearn._random`.
    """

    def __init__(self, rbm, base_bias64: torch.Tensor, betas: torch.Tensor, n: int, generator):
        W, a, b = rbm.scaled_parameters(torch.float64)
        dt, dev = rbm.dtype, rbm.device
        n_v, n_h = W.shape
        self.n, self.n_v, self.n_h, self.g = n, n_v, n_h, generator
        self.a_base64 = base_bias64
        d = a - base_bias64                                       # a' - a_A
        self.W_aug = torch.cat([W, d[:, None]], 1).to(dt).contiguous()             # (n_v, n_h+1)
        self.b_aug = torch.cat([b, b.new_zeros(1)]).to(dt)                         # (n_h+1,)
        self.WT = W.T.to(dt).contiguous()                                          # (n_h, n_v)
        self.a_base, self.d = base_bias64.to(dt), d.to(dt)
        self.log_z_base = float(softplus(base_bias64).sum()) + n_h * LOG2
        # [t_{i+1}, t_i] for i = 0..K-1 as float64 (2, 1, 1) tensors
        pairs = torch.stack([betas[1:], betas[:-1]], 1).to(dev).view(-1, 2, 1, 1)
        self.pairs = list(pairs.unbind(0))
        self.t = betas.tolist()
        self.fast = dt == torch.float32
        if self.fast:
            x_max = float((b.abs() + W.abs().sum(0)).max()) if n_h else 0.0
            self.identity = (betas.diff() * x_max <= 1.0).tolist()
            self.sampler = BernoulliSampler(generator, dev)
        kw = dict(dtype=dt, device=dev)
        self.v = torch.empty(n, n_v, **kw)
        self.x = torch.empty(n, n_h + 1, **kw)
        self.xh, self.xd = self.x[:, :n_h], self.x[:, n_h]
        self.z = torch.empty(2, n, n_h, dtype=torch.float64, device=dev)
        self.s = torch.empty(2, n, dtype=torch.float64, device=dev)
        self.s_hi, self.s_lo = self.s[0], self.s[1]
        self.hp = torch.empty(n, n_h, **kw)
        self.q = torch.empty(n, n_h, **kw)
        self.h = torch.empty(n, n_h, **kw)
        self.c = torch.empty(n_v, **kw)
        self.y = torch.empty(n, n_v, **kw)
        self.r = torch.empty(n, n_h + n_v, **kw)                  # uniforms of one sweep
        self.rh, self.rv = self.r[:, :n_h], self.r[:, n_h:]

    def _bernoulli(self, out, p, uniforms):
        if self.fast:
            self.sampler.sample_(out, p)
        else:
            uniforms.uniform_(generator=self.g)
            torch.lt(uniforms, p, out=out)

    def sample_base(self):
        """v ~ p_0: independent Bernoulli(sigmoid(a_A)) units."""
        p = torch.sigmoid(self.a_base).expand(self.n, self.n_v).contiguous()
        self._bernoulli(self.v, p, self.rv)

    def drive(self):
        """x = [b' + v W', (a' - a_A).v]: one matrix product."""
        torch.addmm(self.b_aug, self.v, self.W_aug, out=self.x)

    def hidden_probabilities(self, t: float):
        """hp = sigmoid(t x) (needs :meth:`drive` first)."""
        torch.mul(self.xh, t, out=self.hp)
        self.hp.sigmoid_()

    def weigh(self, lw, i: int, sign: float, at_hi: bool):
        """lw += sign * (log f_{i+1}(v) - log f_i(v)) at the current v (after :meth:`drive`),
        leaving hp = sigmoid(t x) at t = t_{i+1} (``at_hi``) or t_i, ready for :meth:`sweep`."""
        t_lo, t_hi = self.t[i], self.t[i + 1]
        self.hidden_probabilities(t_hi if at_hi else t_lo)
        dt = t_hi - t_lo
        if self.fast and self.identity[i]:
            # -log1p(p_hi expm1(-dt x)) or log1p(p_lo expm1(dt x)): see the class docstring
            torch.mul(self.xh, -dt if at_hi else dt, out=self.q)
            self.q.expm1_().mul_(self.hp).log1p_()
            inc = self.q.sum(1, dtype=torch.float64)
            if at_hi:
                inc.neg_()
        else:
            torch.mul(self.xh, self.pairs[i], out=self.z)        # x upcast to float64 first
            torch._C._nn.softplus(self.z, 1.0, SOFTPLUS64_THRESHOLD, out=self.z)
            torch.sum(self.z, dim=2, out=self.s)
            inc = self.s_hi - self.s_lo
        inc.add_(self.xd, alpha=dt)
        lw.add_(inc, alpha=sign)

    def sweep(self, t: float):
        """v <- v' ~ p_t(. | h), h ~ Bernoulli(hp): the rest of one Gibbs sweep at t, after
        :meth:`hidden_probabilities` (or :meth:`weigh`) at the same t."""
        self._bernoulli(self.h, self.hp, self.rh)
        # (1 - t) a_A + t (a' + W' h) = (a_A + t (a' - a_A)) + t W' h
        torch.add(self.a_base, self.d, alpha=t, out=self.c)
        torch.addmm(self.c, self.h, self.WT, alpha=t, out=self.y)
        self.y.sigmoid_()
        self._bernoulli(self.v, self.y, self.rv)


def _progress_bar(progress: bool, total: int, desc: str):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="beta", mininterval=0.5)


def ais_log_partition(rbm, n_chains: int = 100, n_betas="sm08", base_visible_bias=None,
                      seed=0, progress: bool = False) -> AISResult:
    """Estimate log Z(beta) of ``rbm`` by forward AIS along the S&M08 base-rate path.

    Parameters
    ----------
    rbm : an :class:`~thermolearn.ebm.RBM` (any beta; its matrix products run in its dtype and
        on its device).
    n_chains : number of independent AIS runs (S&M08 use 100).
    n_betas : the ladder of inverse temperatures: 'sm08' (14,501 values, S&M08), an integer
        (equally spaced from 0 to 1), or an increasing sequence from 0 to 1.
    base_visible_bias : visible biases a_A of the base-rate model (length n_visible, natural
        units, not scaled by the RBM's beta); zeros (uniform base) when None. S&M08 use the
        logit of the training data's pixel means: see :func:`base_rate_bias`.
    seed : int, torch.Generator, or None (fresh entropy).
    progress : show a tqdm progress bar.

    Returns an :class:`AISResult`. The estimate of Z is unbiased, so log Z-hat is biased low
    (Jensen); report log_z with stderr, or the S&M08 interval [log_z_lower, log_z_upper].
    """
    n_chains = check_int(n_chains, "n_chains")
    betas = _ladder(n_betas)
    a_base = _base_bias(rbm, base_visible_bias)
    g = as_generator(seed, rbm.device)
    K = betas.numel() - 1
    t0 = time.perf_counter()
    bar = _progress_bar(progress, K, "AIS")
    with torch.inference_mode():
        path = _Path(rbm, a_base, betas, n_chains, g)
        tl = path.t
        lw = torch.zeros(n_chains, dtype=torch.float64, device=rbm.device)
        path.sample_base()
        for k in range(1, K + 1):
            # weight: log f_k(v) - log f_{k-1}(v) at the state v ~ T_{k-1}(...)
            path.drive()
            path.weigh(lw, k - 1, 1.0, at_hi=True)
            if k < K:
                path.sweep(tl[k])         # hidden drive t_k x reuses this x
            if bar is not None and (k % _PROGRESS_EVERY == 0 or k == K):
                bar.update(k - bar.n)
        log_z, stderr, lower, upper = _summarise(lw, path.log_z_base)
    if bar is not None:
        bar.close()
    samples = path.v.clone()                  # outside inference mode: ordinary tensors
    lw = lw.cpu().clone()
    return AISResult(log_z=log_z, stderr=stderr, log_z_lower=lower, log_z_upper=upper,
                     log_weights=lw, log_z_base=path.log_z_base, n_betas=K + 1,
                     seconds=time.perf_counter() - t0, samples=samples,
                     **work_statistics(lw, log_z, path.log_z_base))


def work_statistics(log_weights, log_z: float, log_z_base: float) -> dict:
    """The fields work_mean, work_std, free_energy_change, dissipated_work, ess and ess_fraction
    of :class:`AISResult` from float64 log weights (see there), as Python floats."""
    lw = torch.as_tensor(log_weights, dtype=torch.float64).flatten()
    n = lw.numel()
    work_mean = float(-lw.mean())
    work_std = float(lw.std(unbiased=True)) if n > 1 else float("nan")
    delta_f = log_z_base - log_z
    if bool(torch.isfinite(lw).all()):
        ess = math.exp(2.0 * float(torch.logsumexp(lw, 0)) - float(torch.logsumexp(2.0 * lw, 0)))
        ess = min(max(ess, 1.0), float(n))                 # rounding at the ends of [1, n]
    else:
        ess = float("nan")
    return {"work_mean": work_mean, "work_std": work_std, "free_energy_change": delta_f,
            "dissipated_work": work_mean - delta_f, "ess": ess, "ess_fraction": ess / n}


def _summarise(lw: torch.Tensor, log_z_base: float):
    """log Z-hat, delta-method stderr, and log(Z-hat -/+ 3 sigma), computed in log space."""
    n = lw.numel()
    m = float(lw.max())
    if not math.isfinite(m):
        return float("nan"), float("nan"), float("nan"), float("nan")
    w = torch.exp(lw - m)                        # in (0, 1], max = 1
    mean = float(w.mean())
    log_z = log_z_base + m + math.log(mean)
    if n < 2:
        return log_z, float("nan"), float("nan"), float("nan")
    rel = float(w.std(unbiased=True)) / mean / math.sqrt(n)   # sigma(Z-hat) / Z-hat
    lower = log_z + math.log1p(-3.0 * rel) if 3.0 * rel < 1.0 else float("-inf")
    upper = log_z + math.log1p(3.0 * rel)
    return log_z, rel, lower, upper


__all__ = ["AISResult", "ais_log_partition", "base_rate_bias", "work_statistics"]

"""Focusing belief propagation (fBP) for the binary perceptron and committee machines.

References
----------
* C. Baldassi, C. Borgs, J. Chayes, A. Ingrosso, C. Lucibello, L. Saglietti, R. Zecchina,
  "Unreasonable effectiveness of learning neural networks: From accessible states and robust
  ensembles to basic algorithmic schemes", PNAS 113 (48), E7655 (2016) -- focusing BP.
* A. Braunstein, R. Zecchina, "Learning by message passing in networks of discrete synapses",
  Phys. Rev. Lett. 96, 030201 (2006) -- reinforced BP (the gamma -> infinity limit below).

Model
-----
Weights w_ki in {-1, +1} (k = 1..K hidden units, K odd; i = 1..n inputs of unit k: n = N fully
connected, n = N/K tree-like; K = 1 is the perceptron). Pattern mu is one factor requiring
y_mu sum_k sign(sum_i xi_mu,ki w_ki) > 0. Write x_mu,ki = y_mu xi_mu,ki (the label folded into
the pattern), so every factor asks for a positive output. All messages are fields (atanh of
magnetizations), clamped to [-hmax, hmax], and combine by addition; updates are parallel.

Full message form (``messages="full"``; every K)
------------------------------------------------
* factor -> weight field u_{mu->ki}; weight field without the focusing factor
  Hs_ki = sum_mu u_{mu->ki}; with it H_ki = Hs_ki + u*_ki; marginal m_ki = tanh(H_ki).
* weight -> factor cavity magnetization h_{ki->mu} = tanh(H_ki - u_{mu->ki}).
* unit k of factor mu, Gaussian approximation of its field over the cavity distributions:
  mean_k = sum_i x_ki h_{ki->mu}, var_k = sum_i (1 - h_{ki->mu}^2); cavity of input i:
  c = mean_k - x_ki h_{ki->mu}, v = var_k - (1 - h_{ki->mu}^2). The unit outputs tau_k = +1 with
  probability Phi(mean_k / sqrt(var_k)) (Phi the standard normal CDF).
* output unit, exact: s_{-k} = sum_{k' != k} tau_k' is a sum of independent +-1 variables, whose
  law is computed by a recursion over the K - 1 other units (log space). With w_ki = w,

      P(correct | w) = P(s_{-k} > 0) + Phi((c + w x_ki) / sqrt(v)) P(s_{-k} = 0),
      u_{mu->ki} = (1/2) [ log P(correct | +1) - log P(correct | -1) ].

  For K = 1, s_{-k} = 0 and u = (1/2) [log Phi((c + x)/sqrt v) - log Phi((c - x)/sqrt v)].
  Cost: O(M K n) elementwise work per sweep.

Large-N form (``messages="amp"``; perceptron only)
-------------------------------------------------
Expanding the full form to leading order in 1/sqrt(N) (u_{mu->i} ~ x_mu,i g_mu) keeps only
per-pattern and per-weight quantities, so a sweep costs two matrix-vector products:

    V = sum_i (1 - m_i^2)                        (the same for every pattern, since x^2 = 1)
    omega_mu = sum_i x_mu,i m_i - V g_mu(old)   (Onsager reaction term)
    g_mu = d/d omega log Phi(omega / sqrt V),   A = -sum_mu d g_mu / d omega
    Hs_i = sum_mu x_mu,i g_mu + A m_i,          m_i = tanh(Hs_i + u*_i).

Focusing factor and protocols (both forms)
------------------------------------------
* focusing factor (y replicas traced out, coupling gamma to the reference), as a magnetization

      u*_ki = tanh(gamma) tanh( (y - 1) atanh( tanh(gamma) h_ki ) ),   h_ki = tanh(Hs_ki),

  used as the field atanh(u*). For gamma = inf this is the reinforced-BP field (y - 1) Hs_ki.
* damping in field space: new = damping * old + (1 - damping) * update (factor fields or, in the
  large-N form, Hs; and the focusing fields).
* protocol: ``steps`` protocol steps t = 0, 1, ..., each with a coupling gamma(t) and a number
  of replicas y(t) = ``replicas(t)``, both numbers or schedules of the protocol-step clock
  (:mod:`thermolearn.schedules`; gamma may be ``math.inf``); each step iterates to a change
  < tol or ``max_iter`` sweeps, then tests sign(m). The named protocols of Baldassi et al.
  (PNAS 2016), as :class:`~thermolearn.schedules.Table` schedules (:func:`protocol_schedules`),
  with rho_t = t / steps:
  "pseudo-reinforcement": gamma = atanh(sqrt(rho)), y = (2 - rho)/(1 - rho);
  "standard": gamma = inf, y = 1/(1 - rho);
  "scoping": gamma = atanh(sqrt(rho)), y = 7 (pass ``replicas=`` for another constant).

Per-step observables (history)
------------------------------
With h_ki = tanh(Hs_ki) the field a replica gets from its patterns and G = (y - 1) atanh(tanh(gamma)
h) the field the reference gets from the other y - 1 replicas, the pair (w, w~) of one replica
and the reference has weight exp(Hs w + gamma w w~ + G w~), which gives

* overlap S = <w w~> (replica-reference, mean over weights) and distance d = (1 - S) / 2;
* replica_overlap q = <w_a w_b> between two replicas (the same with two replicas explicit and
  G' = (y - 2) atanh(tanh(gamma) h) on the reference);
* free_entropy phi: the Bethe free entropy of the whole replicated system (y replicas, each with
  all M pattern factors, the reference and the y N_w coupling factors exp(gamma w w~)), divided
  by y N_w (N_w = number of weights): sum over factors + sum over variables - sum over edges of
  the log normalisations (see :func:`bethe_free_entropy`); full message form only.
* local_entropy = phi - gamma S: the entropy density of solutions at overlap S from the reference
  (up to the reference's own entropy / y, which vanishes as y grows); NaN for gamma = inf.

The run stops at the first step whose sign(m) has zero training errors (re-checked with
:func:`thermolearn.binary.models.errors`), unless ``stop_on_solution=False``.
"""

from __future__ import annotations

import math
import time

import torch

from .._numerics import check_int, check_real
from ..schedules import Table, as_schedule, describe
from ..seeding import as_generator
from ._progress import bar
from .models import check_problem, energy, errors
from .result import SolverResult

__all__ = ["PROTOCOLS", "focusing_bp", "log_H", "perceptron_messages", "factor_messages",
           "bethe_free_entropy", "protocol_schedules"]

def log_H(z: torch.Tensor) -> torch.Tensor:
    """log H(z) with H(z) = erfc(z / sqrt 2) / 2 = Phi(-z), stable for all z (log_ndtr)."""
    return torch.special.log_ndtr(-z)


def log_H_derivative(z: torch.Tensor) -> torch.Tensor:
    """d/dz log H(z) = -phi(z) / H(z), stable for all z."""
    log_phi = -0.5 * z * z - 0.5 * math.log(2.0 * math.pi)
    return -torch.exp(log_phi - log_H(z))


def _log2cosh(x: torch.Tensor) -> torch.Tensor:
    a = x.abs()
    return a + torch.log1p(torch.exp(-2.0 * a))


# ---------------------------------------------------------------------------------------------
# Output unit: law of a sum of independent +-1 unit outputs, in log space
# ---------------------------------------------------------------------------------------------

def _count_law(logp: list, logn: list, like: torch.Tensor) -> list:
    """log P(number of +1 = j), j = 0..len(logp), for independent units with log P(+1) = logp[k]."""
    law = [torch.zeros_like(like)]
    for lp, ln in zip(logp, logn):
        new = [law[0] + ln]
        for j in range(1, len(law)):
            new.append(torch.logaddexp(law[j] + ln, law[j - 1] + lp))
        new.append(law[-1] + lp)
        law = new
    return law


def _output_terms(mean: torch.Tensor, var: torch.Tensor):
    """For unit fields N(mean, var) of shape (M, K) (label folded): per (mu, k) the logs of
    P(s_{-k} > 0) and P(s_{-k} = 0) (s_{-k}: sum of the other units' outputs) and per mu
    log P(all units' sum > 0) (the factor's normalisation)."""
    M, K = mean.shape
    z = mean / var.sqrt()
    logp, logn = log_H(-z), log_H(z)
    if K == 1:
        zero = torch.zeros_like(mean)
        return torch.full_like(mean, -math.inf), zero, logp[:, 0]
    cols_p, cols_n = list(logp.unbind(1)), list(logn.unbind(1))
    half = (K - 1) // 2
    log_gt, log_eq = [], []
    for k in range(K):
        law = _count_law(cols_p[:k] + cols_p[k + 1:], cols_n[:k] + cols_n[k + 1:], mean[:, 0])
        log_eq.append(law[half])                                  # K-1 others: half of them +1
        log_gt.append(torch.logsumexp(torch.stack(law[half + 1:]), 0))
    full = _count_law(cols_p, cols_n, mean[:, 0])
    log_z = torch.logsumexp(torch.stack(full[half + 1:]), 0)      # more than K/2 units at +1
    return torch.stack(log_gt, 1), torch.stack(log_eq, 1), log_z


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------

def factor_messages(Xu: torch.Tensor, Mc: torch.Tensor, var_eps: float = 1e-12):
    """Factor -> weight fields u_{mu->ki} (full form, any K) and the factors' log normalisations.

    Xu : (M, K, n) patterns seen by each unit with the label folded in (x = y xi), floats.
    Mc : (M, K, n) cavity magnetizations h_{ki->mu}.
    Returns (U, log_z): U (M, K, n) and log_z (M,) = log P(factor satisfied) under the cavity
    distributions (used by the Bethe free entropy). Formulas in the module docstring.
    """
    q = 1.0 - Mc * Mc
    XM = Xu * Mc
    mean, var = XM.sum(-1), q.sum(-1)
    c = mean.unsqueeze(-1) - XM
    sd = (var.unsqueeze(-1) - q).clamp_min(var_eps).sqrt()
    log_plus = log_H(-(c + Xu) / sd)
    log_minus = log_H(-(c - Xu) / sd)
    log_gt, log_eq, log_z = _output_terms(mean, var.clamp_min(var_eps))
    if Xu.shape[1] == 1:
        U = 0.5 * (log_plus - log_minus)
    else:
        gt, eq = log_gt.unsqueeze(-1), log_eq.unsqueeze(-1)
        U = 0.5 * (torch.logaddexp(gt, log_plus + eq) - torch.logaddexp(gt, log_minus + eq))
    return U, log_z


def perceptron_messages(Xy: torch.Tensor, Mc: torch.Tensor, var_eps: float = 1e-12) -> torch.Tensor:
    """Factor -> weight fields of the perceptron, (M, N) from (M, N) x = y xi and cavity magnetizations."""
    return factor_messages(Xy.unsqueeze(1), Mc.unsqueeze(1), var_eps)[0].squeeze(1)


def _focusing_field(Hs: torch.Tensor, gamma: float, y: float, hmax: float) -> torch.Tensor:
    """atanh(u*) with u* = tanh(g) tanh((y-1) atanh(tanh(g) tanh(Hs))), computed in fields."""
    t = math.tanh(gamma) if math.isfinite(gamma) else 1.0
    if t == 0.0 or y == 1.0:
        return torch.zeros_like(Hs)
    if t == 1.0:
        return ((y - 1.0) * Hs).clamp(-hmax, hmax)
    a = torch.atanh(t * torch.tanh(Hs))            # |t tanh| <= t < 1: finite
    return torch.atanh(t * torch.tanh((y - 1.0) * a)).clamp(-hmax, hmax)


def _reference_field(Hs: torch.Tensor, gamma: float) -> torch.Tensor:
    """Field on the reference from one replica: atanh(tanh(gamma) tanh(Hs)) (Hs for gamma = inf)."""
    if not math.isfinite(gamma):
        return Hs
    return torch.atanh(math.tanh(gamma) * torch.tanh(Hs))


# ---------------------------------------------------------------------------------------------
# Observables
# ---------------------------------------------------------------------------------------------

def _overlaps(Hs: torch.Tensor, gamma: float, y: float) -> tuple[float, float]:
    """(S, q): mean replica-reference and replica-replica overlaps (module docstring)."""
    if gamma == 0.0:
        m = torch.tanh(Hs)
        return 0.0, float((m * m).mean())
    if not math.isfinite(gamma):
        return 1.0, 1.0
    g = _reference_field(Hs, gamma)
    G1 = (y - 1.0) * g
    # S: states (w, w~) with weight exp(Hs w + gamma w w~ + G1 w~); log weights of w w~ = +1 / -1
    a = gamma + _log2cosh(Hs + G1)
    b = -gamma + _log2cosh(Hs - G1)
    S = torch.tanh(0.5 * (a - b))
    # q: two explicit replicas, reference field G2 = (y - 2) g; sum over w~ = +-1 of
    # exp(G2 w~) prod_{a=1,2} exp((Hs + gamma w~) w_a); <w_1 w_2> = E_w~[tanh(Hs + gamma w~)^2]
    G2 = (y - 2.0) * g
    lp = G2 + 2.0 * _log2cosh(Hs + gamma)
    ln = -G2 + 2.0 * _log2cosh(Hs - gamma)
    wp = torch.sigmoid(lp - ln)
    q = wp * torch.tanh(Hs + gamma) ** 2 + (1.0 - wp) * torch.tanh(Hs - gamma) ** 2
    return float(S.mean()), float(q.mean())


def bethe_free_entropy(U: torch.Tensor, log_z: torch.Tensor, Hs: torch.Tensor, gamma: float,
                       y: float) -> float:
    """Bethe free entropy of the replicated system, divided by y * (number of weights).

    U : (M, K, n) factor fields and log_z (M,) the factors' log normalisations (from
    :func:`factor_messages` at the fixed point); Hs = U.sum(0) without focusing; finite gamma.
    Terms (normalised messages, ``l(x) = log 2cosh x``; per replica unless stated):

    * pattern factors:  sum_mu log_z_mu
    * replica variable (M patterns + one coupling factor):  l(H) - sum_mu l(u_mu) - l(u*)
    * edge (pattern, weight):  -[l(H) - l(H - u_mu) - l(u_mu)]
    * coupling factor exp(gamma w w~):  log cosh(gamma) + log(1 + tanh(gamma) tanh(Hs) tanh(G1))
    * edge (coupling, replica weight):  -[l(H) - l(Hs) - l(u*)]
    * edge (coupling, reference):  -[l(y g) - l(G1) - l(g)]
    * reference variable, once (not per replica):  l(y g) - y l(g)

    with H = Hs + u*, u* the focusing field, g the field one replica sends to the reference and
    G1 = (y - 1) g.
    """
    if not math.isfinite(gamma):
        raise ValueError("gamma: the free entropy needs a finite coupling")
    uf = _focusing_field(Hs, gamma, y, math.inf)
    H = Hs + uf
    g = _reference_field(Hs, gamma)
    G1 = (y - 1.0) * g
    lH = _log2cosh(H)
    per_replica = (float(log_z.sum())
                   + float((lH - _log2cosh(uf)).sum())                          # variables
                   - float((lH.unsqueeze(0) - _log2cosh(H.unsqueeze(0) - U)).sum())  # pattern edges
                   + float((math.log(math.cosh(gamma))
                            + torch.log1p(math.tanh(gamma) * torch.tanh(Hs) * torch.tanh(G1))).sum())
                   - float((lH - _log2cosh(Hs) - _log2cosh(uf)).sum())          # coupling edges
                   - float((_log2cosh(y * g) - _log2cosh(G1) - _log2cosh(g)).sum()))
    reference = float((_log2cosh(y * g) - y * _log2cosh(g)).sum())
    return (y * per_replica + reference) / (y * Hs.numel())


# ---------------------------------------------------------------------------------------------
# Protocols
# ---------------------------------------------------------------------------------------------

PROTOCOLS = ("pseudo-reinforcement", "standard", "scoping")


def protocol_schedules(protocol: str, steps: int) -> tuple[Table, Table]:
    """(gamma, replicas) schedules of a named protocol over ``steps`` protocol steps (module
    docstring): :class:`~thermolearn.schedules.Table` objects of ``steps`` values each."""
    steps = check_int(steps, "steps")
    rho = [t / steps for t in range(steps)]
    if protocol == "pseudo-reinforcement":
        return Table([math.atanh(math.sqrt(r)) for r in rho]), Table([(2 - r) / (1 - r) for r in rho])
    if protocol == "standard":
        return Table([math.inf] * steps), Table([1.0 / (1.0 - r) for r in rho])
    if protocol == "scoping":
        return Table([math.atanh(math.sqrt(r)) for r in rho]), Table([7.0] * steps)
    raise ValueError(f"protocol: expected one of {', '.join(map(repr, PROTOCOLS))} or None, got {protocol!r}")


def _as_protocol_schedule(value, name: str):
    """A number (math.inf allowed for gamma) or a schedule, as a callable of the protocol step."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isinf(value):
        return lambda t: math.inf
    return as_schedule(value, name)


def _protocol(protocol, steps, gamma, replicas) -> list[tuple[float, float]]:
    """The (gamma, y) of every protocol step, checked: gamma >= 0 (inf allowed), finite y >= 1."""
    steps = check_int(steps, "steps")
    if protocol is None:
        missing = [n for n, v in (("gamma", gamma), ("replicas", replicas)) if v is None]
        if missing:
            raise ValueError(f"{missing[0]}: protocol=None needs explicit gamma and replicas "
                             f"(numbers or schedules)")
        named = (None, None)
    else:
        named = protocol_schedules(protocol, steps)
    g_at = _as_protocol_schedule(gamma, "gamma") if gamma is not None else named[0]
    y_at = _as_protocol_schedule(replicas, "replicas") if replicas is not None else named[1]
    sched = []
    for t in range(steps):
        g, yy = float(g_at(t)), float(y_at(t))
        if not g >= 0:
            raise ValueError(f"gamma: expected values >= 0 (math.inf allowed), got {g!r} at protocol step {t} "
                             f"from {describe(gamma) if gamma is not None else protocol!r}")
        if not (math.isfinite(yy) and yy >= 1):
            raise ValueError(f"replicas: expected finite values >= 1, got {yy!r} at protocol step {t} "
                             f"from {describe(replicas) if replicas is not None else protocol!r}")
        sched.append((g, yy))
    return sched


# ---------------------------------------------------------------------------------------------
# Solver
# ---------------------------------------------------------------------------------------------

class _Full:
    """Full message form: state = factor fields U (M, K, n)."""

    def __init__(self, Xu, init, hmax):
        self.Xu, self.hmax = Xu, hmax
        self.U = init

    def Hs(self):
        return self.U.sum(0)

    def sweep(self, F, d):
        Hs = self.U.sum(0)
        Mc = torch.tanh((Hs + F - self.U).clamp(-self.hmax, self.hmax))
        Unew = factor_messages(self.Xu, Mc)[0]
        Unew.clamp_(-self.hmax, self.hmax)
        delta = float((Unew - self.U).abs().max())
        self.U = d * self.U + (1.0 - d) * Unew
        return Hs, delta

    def free_entropy(self, F, gamma, y):
        if not math.isfinite(gamma):
            return math.nan
        Hs = self.U.sum(0)
        Mc = torch.tanh((Hs + F - self.U).clamp(-self.hmax, self.hmax))
        _, log_z = factor_messages(self.Xu, Mc)
        return bethe_free_entropy(self.U, log_z, Hs, gamma, y)


class _Amp:
    """Large-N (AMP) form for the perceptron: state = Hs (1, N) and g (M,)."""

    def __init__(self, Xy, init, hmax):
        self.X, self.hmax = Xy, hmax
        self.H = init.view(1, -1)
        self.g = torch.zeros(Xy.shape[0], dtype=Xy.dtype, device=Xy.device)

    def Hs(self):
        return self.H

    def sweep(self, F, d):
        m = torch.tanh((self.H + F).clamp(-self.hmax, self.hmax)).view(-1)
        V = float((1.0 - m * m).sum()) + 1e-12
        sd = math.sqrt(V)
        omega = self.X @ m - V * self.g
        z = omega / sd
        g = -log_H_derivative(-z) / sd                       # d/d omega log Phi(omega / sd)
        A = float((g * (z / sd + g)).sum())                  # -sum d g / d omega
        Hnew = (self.X.T @ g + A * m).clamp_(-self.hmax, self.hmax).view(1, -1)
        delta = float((g - self.g).abs().max())
        Hs = self.H
        self.g = g
        self.H = d * self.H + (1.0 - d) * Hnew
        return Hs, delta

    def free_entropy(self, F, gamma, y):
        return math.nan


def focusing_bp(X, y, K: int = 1, protocol: str | None = "pseudo-reinforcement", steps: int = 100,
                gamma=None, replicas=None, damping: float = 0.5, max_iter: int = 200, tol: float = 1e-4,
                seed=0, device=None, dtype=torch.float64, hmax: float = 30.0, init_scale: float = 0.01,
                tree: bool = False, messages: str = "auto", free_entropy: bool = False,
                stop_on_solution: bool = True, progress: bool = False) -> SolverResult:
    """Focusing BP on the binary perceptron (K = 1) or committee machine (equations: module docstring).

    Parameters
    ----------
    X : (M, N) patterns, entries +-1. y : (M,) labels +-1.
    K : odd number of hidden units (1 = perceptron); tree : tree-like committee (N/K inputs per unit).
    protocol : "pseudo-reinforcement", "standard", "scoping" (see :func:`protocol_schedules`) or
        None; it gives the schedules of gamma and replicas that are not passed explicitly.
    steps : number of protocol steps t = 0 .. steps - 1.
    gamma, replicas : coupling to the reference and number of replicas y, each a number or a
        schedule of the protocol step t (``thermolearn.schedules``; gamma may be ``math.inf``);
        None takes the protocol's. With protocol=None both are required.
    damping : fraction of the old field kept at each update, in [0, 1).
    max_iter : cap on the parallel sweeps per protocol step. tol : convergence threshold on
        the largest change of a factor field (full form) or of g_mu (large-N form) in one sweep.
    seed : int, torch.Generator or None; the initial factor fields are init_scale * N(0, 1) draws
        from it (CPU generator).
    device, dtype : where and in which precision messages live (float64 recommended).
    hmax : clamp for every field.
    messages : "full" (M x K x n factor fields, any K), "amp" (the large-N form: per-pattern and
        per-weight quantities only, two matrix-vector products per sweep; perceptron only) or
        "auto" (default): "amp" for the perceptron, "full" for committee machines.
    free_entropy : compute the Bethe free entropy and local entropy at the end of each step
        (full form only, one extra sweep's work per step); otherwise they are NaN in the history.
    stop_on_solution : stop at the first step whose sign(m) has zero errors (default); False runs
        every protocol step (to scan observables against gamma and y).
    progress : draw a progress bar over the protocol steps on standard error.

    Returns a SolverResult with ``step_unit`` "sweep": weights sign(m) (int8, ties -> +1; shape
    (N,) or (K, n)), errors, energy, converged (zero errors), seconds, steps (total sweeps),
    stop_reason ("solved" or "steps"), marginals (the final BP magnetizations m = tanh(H), the
    weights' shape) and a history with one dict per protocol step: step (sweeps so far),
    protocol_step, gamma, replicas (y), iterations (sweeps of this step), bp_converged, delta
    (last change), errors, polarization mean|m|, q_self mean(m^2), overlap S
    (replica-reference), distance (1 - S)/2, replica_overlap, free_entropy and local_entropy
    (module docstring).
    """
    t0 = time.perf_counter()
    dev = torch.device(device) if device is not None else (
        X.device if isinstance(X, torch.Tensor) else torch.device("cpu"))
    Xv, yv, arch = check_problem(X, y, K, tree)
    Xv, yv = Xv.to(dev), yv.to(dev)
    M, N = Xv.shape
    K, n = arch.K, arch.n_per_unit
    if messages not in ("auto", "full", "amp"):
        raise ValueError(f"messages: expected 'auto', 'full' or 'amp', got {messages!r}")
    if messages == "auto":
        messages = "amp" if K == 1 else "full"
    if messages == "amp" and K != 1:
        raise ValueError(f"messages: the large-N form 'amp' is implemented for the perceptron (K = 1) "
                         f"only; use messages='full' for K = {K}")
    if free_entropy and messages != "full":
        raise ValueError("free_entropy: the Bethe free entropy is computed in the full message form; "
                         "pass messages='full'")
    if not (isinstance(damping, (int, float)) and 0.0 <= damping < 1.0):
        raise ValueError(f"damping: expected a number in [0, 1), got {damping!r}")
    max_iter, tol = check_int(max_iter, "max_iter"), check_real(tol, "tol")
    sched = _protocol(protocol, steps, gamma, replicas)

    Xy = Xv.to(dtype) * yv.to(dtype).unsqueeze(1)                        # (M, N) x = y xi
    g = as_generator(seed)
    if messages == "amp":
        init = (init_scale * torch.randn(N, generator=g, dtype=torch.float64)).to(dev, dtype)
        bp = _Amp(Xy.contiguous(), init, hmax)
    else:
        Xu = (Xy.view(M, K, n) if arch.tree else Xy.unsqueeze(1).expand(M, K, n)).contiguous()
        init = (init_scale * torch.randn((M, K, n), generator=g, dtype=torch.float64)).to(dev, dtype)
        bp = _Full(Xu, init, hmax)
    F = torch.zeros((K, n), dtype=dtype, device=dev)
    d = float(damping)
    history: list[dict] = []
    sweeps = 0
    W = torch.ones(arch.weight_shape, dtype=torch.int8, device=dev)
    errs = M
    pbar = bar(progress, len(sched), "step", "focusing BP")
    for t, (gamma, yy) in enumerate(sched):
        it, delta = 0, math.inf
        while it < max_iter:
            it += 1
            Hs, delta = bp.sweep(F, d)
            F = d * F + (1.0 - d) * _focusing_field(Hs, gamma, yy, hmax)
            sweeps += 1
            if delta < tol:
                break
        Hs = bp.Hs()
        Hfull = Hs + F
        m = torch.tanh(Hfull)
        W = torch.where(Hfull >= 0, 1, -1).to(torch.int8).reshape(arch.weight_shape)
        errs = int(errors(W, Xv, yv, K))
        S, q = _overlaps(Hs, gamma, yy)
        phi = bp.free_entropy(F, gamma, yy) if free_entropy else math.nan
        history.append(dict(step=sweeps, protocol_step=t, gamma=gamma, replicas=yy, iterations=it,
                            bp_converged=bool(delta < tol), delta=float(delta), errors=errs,
                            polarization=float(m.abs().mean()), q_self=float((m * m).mean()),
                            overlap=S, distance=(1.0 - S) / 2.0, replica_overlap=q, free_entropy=phi,
                            local_entropy=phi - gamma * S if math.isfinite(gamma) else math.nan))
        pbar.update(1)
        pbar.set_postfix_str(f"errors {errs}")
        if errs == 0 and stop_on_solution:
            break
    pbar.close()
    marginals = m.reshape(arch.weight_shape) if history else None
    return SolverResult(weights=W, errors=errs, energy=int(energy(W, Xv, yv, K)), converged=errs == 0,
                        seconds=time.perf_counter() - t0, steps=sweeps, step_unit="sweep",
                        stop_reason="solved" if errs == 0 else "steps", history=history,
                        marginals=marginals)

"""Focusing belief propagation (fBP) for the binary perceptron.

References
----------
* C. Baldassi, C. Borgs, J. Chayes, A. Ingrosso, C. Lucibello, L. Saglietti, R. Zecchina,
  "Unreasonable effectiveness of learning neural networks: From accessible states and robust
  ensembles to basic algorithmic schemes", PNAS 113 (48), E7655 (2016) -- focusing BP.
* A. Braunstein, R. Zecchina, "Learning by message passing in networks of discrete synapses",
  Phys. Rev. Lett. 96, 030201 (2006) -- reinforced BP (the gamma -> infinity limit below).

Spec: shared/specs/replicas.md, "Focusing belief propagation (fBP)".

Model and messages (K = 1, parallel updates, field representation)
-----------------------------------------------------------------
Weights w_i in {-1, +1}, i = 1..N (N odd); patterns xi_mu in {-1, +1}^N with labels y_mu; each
pattern is a factor Theta(y_mu sum_i xi_mu_i w_i). Write x_mu_i = y_mu xi_mu_i. All messages are
fields (atanh of magnetizations), clamped to [-hmax, hmax], and combine by addition:

* factor -> weight field u_{mu->i}; weight i's field without the focusing factor
  Hs_i = sum_mu u_{mu->i}; with it H_i = Hs_i + u*_i; marginal m_i = tanh(H_i).
* weight -> factor cavity magnetization h_{i->mu} = tanh(H_i - u_{mu->i}).
* factor mu (Gaussian approximation of the sum over its other inputs):

      mu_mu = sum_i x_mu_i h_{i->mu},     s2_mu = sum_i (1 - h_{i->mu}^2),
      c_{mu i} = mu_mu - x_mu_i h_{i->mu},  v_{mu i} = s2_mu - (1 - h_{i->mu}^2),
      u_{mu->i} = (x_mu_i / 2) [ log H(-(c + 1)/sqrt(v)) - log H(-(c - 1)/sqrt(v)) ],

  with H(z) = erfc(z / sqrt 2) / 2, so log H(-z) = log Phi(z) = ``torch.special.log_ndtr(z)``
  (stable for all z; see :func:`log_H`).
* focusing factor (y replicas traced out, coupling gamma to the reference), as a magnetization

      u*_i = tanh(gamma) tanh( (y - 1) atanh( tanh(gamma) h_i ) ),   h_i = tanh(Hs_i),

  used as the field atanh(u*_i). For gamma = inf this is the reinforced-BP field (y - 1) Hs_i.
* damping in field space: u <- damping * u_old + (1 - damping) * u_new (factor and focusing fields).

Protocols (each step: iterate to max |u_new - u_old| < tol or max_iters, then test sign(m)):

* "pseudo-reinforcement": rho_k = k / steps, k = 0..steps-1; gamma = atanh(sqrt(rho)),
  y = (2 - rho) / (1 - rho).
* "standard": standard reinforcement, gamma = inf, y = 1 / (1 - x), x = k / steps.
* "scoping": fixed y = ``scoping_y``, gamma = atanh(sqrt(rho_k)) swept as above.
* a list of (gamma, y) pairs (gamma may be ``math.inf``).

The run stops at the first step whose sign(m) has zero training errors (re-checked with
:func:`thermolearn.binary.models.errors`). Committee machines (K > 1) are not implemented yet.
"""

from __future__ import annotations

import math
import time

import torch

from .._numerics import check_int, check_real, make_generator
from .models import _check_K, _prepare, as_pm1, energy, errors
from .result import SolverResult

__all__ = ["focusing_bp", "log_H", "perceptron_messages", "protocol_schedule"]


def log_H(z: torch.Tensor) -> torch.Tensor:
    """log H(z) with H(z) = erfc(z / sqrt 2) / 2 = Phi(-z), stable for all z (log_ndtr)."""
    return torch.special.log_ndtr(-z)


def log_H_derivative(z: torch.Tensor) -> torch.Tensor:
    """d/dz log H(z) = -phi(z) / H(z), stable for all z."""
    log_phi = -0.5 * z * z - 0.5 * math.log(2.0 * math.pi)
    return -torch.exp(log_phi - log_H(z))


def perceptron_messages(Xy: torch.Tensor, Mc: torch.Tensor, var_eps: float = 1e-12) -> torch.Tensor:
    """Factor -> weight fields u_{mu->i} of the perceptron factors (Gaussian approximation).

    Xy : (M, N) y_mu xi_mu_i as floats; Mc : (M, N) cavity magnetizations h_{i->mu}.
    Returns (M, N) fields (formulas in the module docstring).
    """
    q = 1.0 - Mc * Mc
    XM = Xy * Mc
    c = XM.sum(1, keepdim=True) - XM
    v = (q.sum(1, keepdim=True) - q).clamp_min(var_eps)
    sd = v.sqrt()
    return 0.5 * Xy * (log_H(-(c + 1.0) / sd) - log_H(-(c - 1.0) / sd))


def _focusing_field(Hs: torch.Tensor, gamma: float, y: float, hmax: float) -> torch.Tensor:
    """atanh(u*) with u* = tanh(g) tanh((y-1) atanh(tanh(g) tanh(Hs))), computed in fields."""
    t = math.tanh(gamma) if math.isfinite(gamma) else 1.0
    if t == 0.0 or y == 1.0:
        return torch.zeros_like(Hs)
    if t == 1.0:
        return ((y - 1.0) * Hs).clamp(-hmax, hmax)
    a = torch.atanh(t * torch.tanh(Hs))            # |t tanh| <= t < 1: finite
    return torch.atanh(t * torch.tanh((y - 1.0) * a)).clamp(-hmax, hmax)


def protocol_schedule(protocol, steps: int, scoping_y: float = 7.0) -> list[tuple[float, float]]:
    """The list of (gamma, y) pairs of a protocol name (see the module docstring) or list."""
    if isinstance(protocol, str):
        steps = check_int(steps, "steps")
        ks = range(steps)
        if protocol == "pseudo-reinforcement":
            return [(math.atanh(math.sqrt(k / steps)), (2 - k / steps) / (1 - k / steps)) for k in ks]
        if protocol == "standard":
            return [(math.inf, 1.0 / (1.0 - k / steps)) for k in ks]
        if protocol == "scoping":
            return [(math.atanh(math.sqrt(k / steps)), float(scoping_y)) for k in ks]
        raise ValueError(f"protocol: expected 'pseudo-reinforcement', 'standard', 'scoping' or a list "
                         f"of (gamma, y) pairs, got {protocol!r}")
    try:
        sched = [(float(g), float(yy)) for g, yy in protocol]
    except (TypeError, ValueError):
        raise ValueError(f"protocol: expected a protocol name or a list of (gamma, y) pairs, "
                         f"got {protocol!r}") from None
    if not sched or any(not (g >= 0) or not (yy >= 1) or not math.isfinite(yy) for g, yy in sched):
        raise ValueError(f"protocol: every (gamma, y) pair needs gamma >= 0 and finite y >= 1, got {sched!r}")
    return sched


def focusing_bp(X, y, K: int = 1, protocol="pseudo-reinforcement", damping: float = 0.5,
                max_iters: int = 200, tol: float = 1e-4, steps: int = 100, seed=0, device=None,
                dtype=torch.float64, scoping_y: float = 7.0, hmax: float = 30.0,
                init_scale: float = 0.01) -> SolverResult:
    """Focusing BP on the binary perceptron (equations and protocols: module docstring).

    Parameters
    ----------
    X : (M, N) patterns, entries +-1, N odd. y : (M,) labels +-1.
    K : 1 (perceptron). K > 1 (committee machines) raises NotImplementedError.
    protocol : "pseudo-reinforcement", "standard", "scoping" or a list of (gamma, y) pairs.
    damping : fraction of the old field kept at each update, in [0, 1).
    max_iters : cap on the parallel sweeps per protocol step. tol : convergence threshold on
        the largest change of a factor field in one sweep.
    steps : number of protocol steps for named protocols. scoping_y : y of the "scoping" protocol.
    seed : initial factor fields are init_scale * N(0, 1) draws from this seed (CPU generator).
    device, dtype : where and in which precision messages live (float64 recommended).
    hmax : clamp for every field.

    Returns a SolverResult: weights sign(m) (int8, ties -> +1), errors, energy, converged (zero
    errors), seconds, steps (total sweeps) and a history with one dict per protocol step: gamma,
    y, iterations, bp_converged, delta (last change), errors, polarization mean|m|, q mean(m^2);
    the last dict also holds "marginals", the final BP magnetizations m = tanh(H) as a tensor.
    """
    t0 = time.perf_counter()
    K = _check_K(K)
    if K != 1:
        raise NotImplementedError(f"K: focusing_bp handles the perceptron (K = 1) only; committee "
                                  f"machines (K = {K}) are future work")
    dev = torch.device(device) if device is not None else (
        X.device if isinstance(X, torch.Tensor) else torch.device("cpu"))
    # validation (entries +-1, 2-d X, 1-d y of matching length, odd N) through the models helpers
    Xv = as_pm1(X, "X", ndim=2).to(dev)
    yv = as_pm1(y, "y", ndim=1).to(dev)
    M, N = Xv.shape
    _prepare(torch.ones(N, dtype=torch.int8, device=dev), Xv, 1, yv)
    if not (isinstance(damping, (int, float)) and 0.0 <= damping < 1.0):
        raise ValueError(f"damping: expected a number in [0, 1), got {damping!r}")
    max_iters, tol = check_int(max_iters, "max_iters"), check_real(tol, "tol")
    sched = protocol_schedule(protocol, steps, scoping_y)

    Xy = (Xv.to(dtype) * yv.to(dtype).unsqueeze(1)).contiguous()            # (M, N) x_mu_i
    g = make_generator(seed)
    U = (init_scale * torch.randn((M, N), generator=g, dtype=torch.float64)).to(dev, dtype)
    F = torch.zeros(N, dtype=dtype, device=dev)
    d = float(damping)
    history: list[dict] = []
    sweeps = 0
    W = torch.ones(N, dtype=torch.int8, device=dev)
    errs = M
    for gamma, yy in sched:
        it, delta = 0, math.inf
        for it in range(1, max_iters + 1):
            Hs = U.sum(0)
            H = Hs + F
            Mc = torch.tanh((H.unsqueeze(0) - U).clamp(-hmax, hmax))
            Unew = perceptron_messages(Xy, Mc).clamp_(-hmax, hmax)
            Fnew = _focusing_field(Hs, gamma, yy, hmax)
            delta = float((Unew - U).abs().max())
            U = d * U + (1.0 - d) * Unew
            F = d * F + (1.0 - d) * Fnew
            sweeps += 1
            if delta < tol:
                break
        Hfull = U.sum(0) + F
        m = torch.tanh(Hfull)
        W = torch.where(Hfull >= 0, 1, -1).to(torch.int8)
        errs = int(errors(W, Xv, yv))
        history.append(dict(gamma=gamma, y=yy, iterations=it, bp_converged=delta < tol, delta=delta,
                            errors=errs, polarization=float(m.abs().mean()), q=float((m * m).mean())))
        if errs == 0:
            break
    if history:
        history[-1]["marginals"] = m                                         # final tanh(H), (N,)
    return SolverResult(weights=W, errors=errs, energy=int(energy(W, Xv, yv)), converged=errs == 0,
                        seconds=time.perf_counter() - t0, steps=sweeps, history=history)

"""TAP / extended mean-field free energy of a binary RBM (Gabrie, Tramel, Krzakala 2015).

Reference: M. Gabrie, E. W. Tramel, F. Krzakala, "Training Restricted Boltzmann Machines via the
Thouless-Anderson-Palmer Free Energy", NIPS 2015, arXiv:1506.02914 (the "GTK15" equations below).

Notation: magnetizations m_v = <v> (shape (batch, n_v)) and m_h = <h> (shape (batch, n_h)), one
candidate state per row; W (n_v, n_h), visible bias a, hidden bias b; sums run over i (visible)
and j (hidden). Write s(m) = m - m^2 (the Bernoulli variance). The Plefka expansion of the Gibbs
free energy of the beta = 1 model, to third order in W (GTK15, eqs. 6-7), is

    Gamma(m_v, m_h) = sum_i [m_vi ln m_vi + (1-m_vi) ln(1-m_vi)] + sum_j [same for m_hj]   (entropy)
                      - a.m_v - b.m_h - m_v.W.m_h                                           (energy)
                      - 1/2 sum_ij W_ij^2 s(m_vi) s(m_hj)                               (2nd: Onsager)
                      - 2/3 sum_ij W_ij^3 s(m_vi)(1/2 - m_vi) s(m_hj)(1/2 - m_hj)        (3rd order)

``order`` = 1 keeps the first two lines (naive mean field), 2 adds the Onsager term (TAP2), 3 the
third-order term (TAP3). -log Z is approximated by Gamma at a stationary point (a minimum) of
Gamma, found by the damped fixed-point iteration of GTK15 eqs. 8-9, which is dGamma/dm = 0 solved
for m (derivation: d/dm [s(m)(1/2 - m)] = 1/2 - 3 s(m), times 2/3 gives 1/3 - 2 s(m)):

    m_vi <- sigmoid( a_i + sum_j [ W_ij m_hj - W_ij^2 (m_vi - 1/2) s(m_hj)
                                   + W_ij^3 (1/3 - 2 s(m_vi)) s(m_hj)(1/2 - m_hj) ] )

and symmetrically for m_hj (i <-> j, a <-> b). The negative-phase statistics used for the gradient
of log Z (GTK15 eq. 10) are the derivatives of -Gamma with respect to the parameters at fixed m:

    -dGamma/dW = m_v m_h^T + W * s(m_v) s(m_h)^T + 2 W^2 * [s(m_v)(1/2 - m_v)] [s(m_h)(1/2 - m_h)]^T
    -dGamma/da = m_v,        -dGamma/db = m_h

(at a stationary point the derivatives through m vanish, so these are d(-Gamma*)/dtheta).

Inverse temperature: an RBM at beta is the beta = 1 model with parameters (beta W, beta a, beta b)
(``rbm.scaled_parameters()``); the functions taking an ``rbm`` expand that model, so their
``free_energy`` approximates -log Z(beta). The low-level functions take the parameters as given.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._numerics import as_tensor, binary_entropy_terms, check_int, check_real
from ..seeding import as_generator

__all__ = [
    "TAPResult",
    "gibbs_free_energy",
    "tap_fixed_point",
    "tap_negative_statistics",
    "tap_free_energy",
    "tap_log_likelihood",
]


def _check_order(order) -> int:
    if isinstance(order, bool) or order not in (1, 2, 3):
        raise ValueError(f"order: expected 1 (naive mean field), 2 (TAP2) or 3 (TAP3), got {order!r}")
    return int(order)


# ---------------------------------------------------------------------------------------------
# Gibbs free energy, fixed point, negative statistics (parameters of the beta = 1 model)
# ---------------------------------------------------------------------------------------------

def gibbs_free_energy(W, a, b, m_v, m_h, order: int = 2) -> torch.Tensor:
    """Gamma(m_v, m_h) of GTK15 eqs. 6-7 (module docstring), one value per row.

    ``m_v`` has shape (batch, n_v), ``m_h`` shape (batch, n_h) (1-d inputs are one row). Entries
    equal to 0 or 1 are fine: the entropy uses 0 ln 0 = 0. Computed in the dtype of the inputs;
    pass float64 for precise values.
    """
    order = _check_order(order)
    m_v = m_v.unsqueeze(0) if m_v.ndim == 1 else m_v
    m_h = m_h.unsqueeze(0) if m_h.ndim == 1 else m_h
    mvW = m_v @ W                                                   # (batch, n_h)
    gamma = (binary_entropy_terms(m_v).sum(1) + binary_entropy_terms(m_h).sum(1)
             - m_v @ a - m_h @ b - (mvW * m_h).sum(1))
    if order >= 2:
        s_v, s_h = m_v - m_v * m_v, m_h - m_h * m_h
        gamma = gamma - 0.5 * ((s_v @ (W * W)) * s_h).sum(1)
        if order >= 3:
            t_v, t_h = s_v * (0.5 - m_v), s_h * (0.5 - m_h)
            gamma = gamma - (2.0 / 3.0) * ((t_v @ (W * W * W)) * t_h).sum(1)
    return gamma


def tap_fixed_point(W, a, b, m_v, m_h, order: int = 2, damping: float = 0.5, k: int = 3):
    """``k`` damped TAP sweeps (GTK15 eqs. 8-9); returns the new (m_v, m_h).

    Each iteration updates the visible magnetizations from the current m_h, then the hidden ones
    from the new m_v, each as m <- damping * m_old + (1 - damping) * m_new (GTK15 and the
    reference codes: damping 1/2, 3 iterations per parameter update, magnetizations persistent
    across updates). All rows (independent states) are updated at once; W^2 and W^3 are formed
    once per call, so an iteration costs 2 * order matrix products of size (batch, n_v, n_h).
    No clamping is needed: the update involves no logarithms.
    """
    order = _check_order(order)
    if not (0.0 <= float(damping) < 1.0):
        raise ValueError(f"damping: expected a number in [0, 1), got {damping!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k: expected a non-negative integer, got {k!r}")
    damping = float(damping)
    W2 = W * W if order >= 2 else None
    W3 = W2 * W if order >= 3 else None
    for _ in range(k):
        m_v = _half_step(m_v, m_h, a, W.T, None if W2 is None else W2.T,
                         None if W3 is None else W3.T, damping)
        m_h = _half_step(m_h, m_v, b, W, W2, W3, damping)
    return m_v, m_h


def _half_step(m, m_other, bias, W, W2, W3, damping):
    """Damped update of one layer ``m`` given the other layer; W maps other -> this: (n_other, n)."""
    field = torch.addmm(bias, m_other, W)                            # bias + sum W m'
    if W2 is not None:
        s_other = m_other - m_other * m_other
        field = field - (m - 0.5) * (s_other @ W2)                  # - W^2 (m - 1/2) s(m')
        if W3 is not None:
            s = m - m * m
            field = field + (1.0 / 3.0 - 2.0 * s) * ((s_other * (0.5 - m_other)) @ W3)
    return torch.lerp(torch.sigmoid(field), m, damping)             # damping*old + (1-damping)*new


def tap_negative_statistics(W, m_v, m_h, order: int = 2):
    """(dW, da, db) = -dGamma/d(W, a, b) at fixed m, averaged over rows (GTK15 eq. 10).

    dW = mean_rows[ m_v m_h^T + W * s(m_v) s(m_h)^T (order >= 2)
                    + 2 W^2 * (s(m_v)(1/2 - m_v)) (s(m_h)(1/2 - m_h))^T (order 3) ],
    da = mean_rows m_v, db = mean_rows m_h, with s(m) = m - m^2. These are the model ("negative")
    terms of the log-likelihood gradient when m is a fixed point.
    """
    order = _check_order(order)
    m_v = m_v.unsqueeze(0) if m_v.ndim == 1 else m_v
    m_h = m_h.unsqueeze(0) if m_h.ndim == 1 else m_h
    n = m_v.shape[0]
    dW = m_v.T @ m_h
    if order >= 2:
        s_v, s_h = m_v - m_v * m_v, m_h - m_h * m_h
        dW = dW + W * (s_v.T @ s_h)
        if order >= 3:
            dW = dW + 2.0 * (W * W) * ((s_v * (0.5 - m_v)).T @ (s_h * (0.5 - m_h)))
    return dW / n, m_v.mean(0), m_h.mean(0)


# ---------------------------------------------------------------------------------------------
# Free energy of an RBM (to convergence, float64)
# ---------------------------------------------------------------------------------------------

@dataclass
class TAPResult:
    """Result of :func:`tap_free_energy`.

    free_energy : Gamma at the best (lowest) fixed point found, the estimate of -log Z(beta).
    m_visible, m_hidden : the magnetizations of that fixed point, shapes (n_v,) and (n_h,).
    converged : whether every start reached max |change| < tol within max_iter iterations.
    steps : sweeps run (of every start at once); ``step_unit`` is ``"sweep"``.
    free_energies : Gamma at the fixed point reached from each start, shape (n_starts,).
    """

    free_energy: float
    m_visible: torch.Tensor
    m_hidden: torch.Tensor
    converged: bool
    steps: int
    free_energies: torch.Tensor
    step_unit: str = "sweep"


def tap_free_energy(rbm, order: int = 2, init_visible=None, damping: float = 0.5,
                    max_iter: int = 1000, tol: float = 1e-9, seed=0) -> TAPResult:
    """TAP estimate of -log Z(beta) of ``rbm``: Gamma at a fixed point of the damped iteration.

    Works in float64 on the beta = 1 model with parameters ``rbm.scaled_parameters()``, iterating
    :func:`tap_fixed_point` until the largest change of any magnetization is below ``tol``.

    init_visible : starting visible magnetizations. None: one start at sigmoid(beta a); an int n:
        n starts drawn uniformly in (0, 1) with ``seed``; an array (batch, n_v) or (n_v,) with
        entries in [0, 1] (e.g. data rows). Hidden magnetizations start at sigmoid(beta (b + m_v W)).
    With several starts, each is iterated independently and the result is the **lowest** fixed
    point: ``free_energy`` = min over starts of Gamma (not a sum over the TAP minima), with its
    magnetizations; ``free_energies`` keeps the value reached from every start.
    """
    order = _check_order(order)
    max_iter, tol = check_int(max_iter, "max_iter"), check_real(tol, "tol")
    W, a, b = rbm.scaled_parameters(torch.float64)
    n_v = W.shape[0]
    if init_visible is None:
        m_v = torch.sigmoid(a).unsqueeze(0)
    elif isinstance(init_visible, int) and not isinstance(init_visible, bool):
        if init_visible < 1:
            raise ValueError(f"init_visible: expected a positive number of starts, got {init_visible}")
        g = as_generator(seed)
        m_v = torch.rand(init_visible, n_v, generator=g, dtype=torch.float64).to(W.device)
    else:
        m_v = as_tensor(init_visible, "init_visible", dtype=torch.float64, device=W.device)
        m_v = m_v.unsqueeze(0) if m_v.ndim == 1 else m_v
        if m_v.ndim != 2 or m_v.shape[1] != n_v or m_v.shape[0] == 0:
            raise ValueError(f"init_visible: expected shape (batch, {n_v}), got {tuple(m_v.shape)}")
        if float(m_v.min()) < 0 or float(m_v.max()) > 1:
            raise ValueError("init_visible: magnetizations must lie in [0, 1], got values in "
                             f"[{float(m_v.min()):g}, {float(m_v.max()):g}]")
        m_v = m_v.clone()
    m_h = torch.sigmoid(torch.addmm(b, m_v, W))

    converged, it = False, 0
    while it < max_iter:
        new_v, new_h = tap_fixed_point(W, a, b, m_v, m_h, order, damping, k=1)
        it += 1
        change = max(float((new_v - m_v).abs().max()), float((new_h - m_h).abs().max()))
        m_v, m_h = new_v, new_h
        if change < tol:
            converged = True
            break

    gammas = gibbs_free_energy(W, a, b, m_v, m_h, order)
    best = int(torch.argmin(gammas))
    return TAPResult(free_energy=float(gammas[best]), m_visible=m_v[best], m_hidden=m_h[best],
                     converged=converged, steps=it, free_energies=gammas)


def tap_log_likelihood(rbm, v, order: int = 2, **kw) -> float:
    """Mean log p(v) in nats per example with the TAP estimate log Z(beta) ~ -Gamma:
    mean(-beta F_beta(v)) + Gamma*. Keyword arguments go to :func:`tap_free_energy`."""
    res = tap_free_energy(rbm, order=order, **kw)
    return rbm.log_likelihood(v, -res.free_energy)

"""Mean-field signal propagation through random deep networks (Poole et al. 2016; Schoenholz et al. 2017).

A fully connected network of width N has pre-activations h^l = W^l phi(h^{l-1}) + b^l with
independent weights W_ij ~ N(0, sigma_w2 / N) and biases b_i ~ N(0, sigma_b2). In the limit of
large width every pre-activation is a centred Gaussian over the draw of the weights, and three
one-layer maps describe how two inputs a, b travel through the network. With Dz the standard
Gaussian measure, u = sqrt(q) z, u1 = sqrt(q11) z1 and u2 = sqrt(q22) (c z1 + sqrt(1 - c^2) z2):

* length map     q^l   = sigma_w2 Int Dz phi(sqrt(q^{l-1}) z)^2 + sigma_b2,        fixed point q*;
* covariance map q12^l = sigma_w2 Int Dz1 Dz2 phi(u1) phi(u2) + sigma_b2,
  correlation    c^l   = q12^l / sqrt(q11^l q22^l),                                 fixed point c*;
* chi_1 = sigma_w2 Int Dz phi'(sqrt(q*) z)^2, the mean squared singular value of one layer's
  Jacobian at q*: chi_1 < 1 is the ordered phase (nearby inputs converge, gradients vanish),
  chi_1 > 1 the chaotic phase (nearby inputs decorrelate, gradients explode), chi_1 = 1 the
  critical line ("edge of chaos").

Depth scales (Schoenholz et al. 2017) come from linearising the maps at their fixed
points, |q^l - q*| ~ exp(-l / xi_q) and |c^l - c*| ~ exp(-l / xi_c):

* xi_q^-1 = -ln chi_q with chi_q = dq^l/dq^{l-1} at q* = chi_1 + sigma_w2 Int Dz phi'' phi. It is
  evaluated here in the equivalent form sigma_w2 Int Dz phi phi' z / sqrt(q*) (Gaussian integration
  by parts), which needs no second derivative and so stays right for piecewise-linear activations
  (hard_tanh), whose phi'' holds Dirac deltas that automatic differentiation does not see;
* xi_c^-1 = -ln chi_c with chi_c = dc^l/dc^{l-1} at c* = sigma_w2 Int Dz1 Dz2 phi'(u1) phi'(u2)
  (at q*, c*); chi_c = chi_1 when c* = 1, so xi_c diverges on the critical line;
* gradients: E (dL/dh^l)^2 grows by chi_1 per layer going backwards, a depth scale
  xi_grad = 1 / |ln chi_1| (returned positive: gradients shrink by exp(-l / xi_grad) in the
  ordered phase and grow by exp(+l / xi_grad) in the chaotic one; inf at chi_1 = 1).

Fixed points. q* is found by bracketing the root of q -> length map(q) - q outward from q0 = 1
(the limit of iterating the map from q0 when the map is monotone), then Brent's method. Two
degenerate cases are kept: q* = 0 (no bias, e.g. tanh with sigma_b2 = 0 in the ordered phase) and
q* = inf (unbounded activations whose length grows without bound, e.g. relu with sigma_w2 > 2);
there the derivatives are evaluated at the smallest (largest) q of the search, which gives the
limits q -> 0+ (q -> inf), and c* is reported as 1 (for q* = 0, where the correlation map tends to
the identity) or nan (for q* = inf). A marginal length map (relu at sigma_w2 = 2, sigma_b2 = 0,
where every q is a fixed point) keeps q* = q0 = 1.

c* is the stable fixed point of the correlation map at q*. The map c -> C(c) is a power series in c
with non-negative coefficients (Mehler's expansion), hence increasing and convex on [0, 1], with
C(0) >= 0; so C(c) - c has at most one root in [0, 1): in the chaotic phase it is the stable fixed
point c* < 1 (c = 1 is then unstable); in the ordered phase there is none and c* = 1. The root is
bracketed in the gap e = 1 - c, with 1 - C(c) computed without cancellation as
sigma_w2 Int (phi(u1) - phi(u2))^2 / (2 q*) (plus the dropout term), so that c* close to 1 near
the critical line is still resolved.

Dropout (Schoenholz et al. 2017), keep probability rho, inverted scaling 1 / rho of the
kept units: the diagonal becomes q = (sigma_w2 / rho) Int Dz phi^2 + sigma_b2, while the covariance
of two different inputs, whose masks are independent, keeps q12 = sigma_w2 Int phi(u1) phi(u2) +
sigma_b2. Then C(1) < 1: c = 1 is no longer a fixed point, c* < 1 in both phases and xi_c stays
finite; dropout removes the critical point. chi_1 = (sigma_w2 / rho) Int phi'^2 is then the growth
per layer of squared gradients (and of perturbations that share the dropout masks), and it still
names the phase; chi_c = sigma_w2 Int phi'(u1) phi'(u2) at (q*, c*).

Quadrature. Integrals over the standard normal measure use the midpoint rule on ``nodes`` equal
cells of z in [-10, 10] (the tensor product of it in two dimensions), in float64 torch. For an
integrand analytic in a strip around the real axis this rule converges exponentially in the
number of points, like Gauss-Hermite quadrature, but it spends its points where the Gaussian
weight is, with a uniform spacing: for tanh(sqrt(q) z), whose poles approach the real axis as
pi / (2 sqrt(q)), 200 points give Int Dz phi'^2 to 1e-15 at q = 5 and 1e-7 at q = 20, where 100
Gauss-Hermite nodes are off by 2.5e-4 and 2e-2. An even number of points keeps z = 0 off the grid,
so that the one-dimensional integrals of relu are exact by symmetry. Kinks (relu, hard_tanh)
make the two-dimensional integrals converge only algebraically: at 200 points the relu
correlation map is off by about 1e-4 and its derivative term by about 1e-3 (raise ``nodes`` for
more). Derivatives phi', phi'' of any elementwise torch function come from automatic
differentiation, so a callable equal to a named activation gives the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .._numerics import as_tensor, check_int, check_real, check_reals
from ..seeding import as_generator


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


#: activation name -> elementwise torch function
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh, "relu": torch.relu, "erf": torch.erf, "hard_tanh": F.hardtanh,
    "sigmoid": torch.sigmoid, "gelu": F.gelu, "silu": F.silu, "linear": _identity,
}

DEFAULT_NODES = 200
"""Quadrature points per dimension (two-dimensional integrals use the 200 x 200 product rule)."""

Z_MAX = 10.0
"""Gaussian integrals run over z in [-Z_MAX, Z_MAX] (the neglected tails hold 1.5e-23)."""

CRITICAL_TOL = 1e-8
"""|ln chi_1| below this is reported as phase "critical"."""

_SEARCH_STEPS = 64          # doublings (halvings) of the outward bracket searches


# ---------------------------------------------------------------------------------------------
# activations and Gaussian quadrature
# ---------------------------------------------------------------------------------------------

def _activation(activation) -> tuple[str, Callable]:
    """(name, elementwise function) of ``activation``: a name among :data:`ACTIVATIONS` or a callable."""
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)} or a torch callable, "
                             f"got {activation!r}")
        return activation, ACTIVATIONS[activation]
    if not callable(activation):
        raise TypeError(f"activation: expected one of {sorted(ACTIVATIONS)} or a torch callable, "
                        f"got {type(activation).__name__}")
    name = getattr(activation, "__name__", None) or type(activation).__name__
    probe = torch.linspace(-2.0, 2.0, 5, dtype=torch.float64)
    try:
        out = activation(probe)
    except Exception as exc:
        raise ValueError(f"activation: calling it on a float64 tensor failed: {exc}") from None
    if not isinstance(out, torch.Tensor) or out.shape != probe.shape:
        raise ValueError("activation: expected an elementwise function returning a tensor of its input's shape")
    return name, activation


def _check_nodes(nodes) -> int:
    nodes = check_int(nodes, "nodes", 2)
    if nodes % 2:
        raise ValueError(f"nodes: expected an even number of quadrature points (z = 0 off the grid), got {nodes}")
    return nodes


def _derivatives(fn: Callable, u: torch.Tensor, order: int) -> list[torch.Tensor]:
    """[phi(u), phi'(u), ..., phi^(order)(u)] of the elementwise ``fn`` by automatic differentiation
    (zeros where a derivative does not depend on u, e.g. the linear activation's phi'')."""
    with torch.enable_grad():
        x = u.detach().requires_grad_(order > 0)
        out = [fn(x)]
        for k in range(order):
            prev = out[-1]
            grad = None
            if prev.requires_grad:
                (grad,) = torch.autograd.grad(prev.sum(), x, create_graph=k + 1 < order, allow_unused=True)
            out.append(torch.zeros_like(u) if grad is None else grad)
    return [t.detach() for t in out]


class _Gauss:
    """Gaussian integrals Int Dz f(z) of one activation, in float64: the midpoint rule on
    ``nodes`` equal cells of [-Z_MAX, Z_MAX] with weights proportional to exp(-z^2 / 2) (see
    the module docstring)."""

    def __init__(self, fn: Callable, nodes: int):
        step = 2.0 * Z_MAX / nodes
        z = -Z_MAX + step * (np.arange(nodes) + 0.5)
        w = np.exp(-0.5 * z * z)
        self.fn = fn
        self.z = torch.from_numpy(z)
        self.w = torch.from_numpy(w / w.sum())
        self.w2 = self.w[:, None] * self.w[None, :]

    def mean(self, values: torch.Tensor) -> float:
        return float((self.w * values).sum())

    def mean2(self, values: torch.Tensor) -> float:
        return float((self.w2 * values).sum())

    def phi_sq(self, q: float) -> float:
        """Int Dz phi(sqrt(q) z)^2."""
        return self.mean(self.fn(math.sqrt(q) * self.z) ** 2)

    def single(self, q: float) -> dict:
        """The one-point moments at variance q: phi2 = Int phi^2, dphi2 = Int phi'^2,
        ddphi2 = Int phi''^2, phi_ddphi = Int phi phi'', slope = Int phi phi' z / sqrt(q)."""
        phi, d1, d2 = _derivatives(self.fn, math.sqrt(q) * self.z, 2)
        slope = self.mean(phi * d1 * self.z) / math.sqrt(q) if q > 0 else self.mean(d1 ** 2 + phi * d2)
        return {"phi2": self.mean(phi ** 2), "dphi2": self.mean(d1 ** 2), "ddphi2": self.mean(d2 ** 2),
                "phi_ddphi": self.mean(phi * d2), "slope": slope}

    def _pair_points(self, q11: float, q22: float, c: float, gap: float | None = None):
        """u1 (n, 1) and u2 (n, n) of the two-dimensional rule; ``gap`` = 1 - c given precisely."""
        e = 1.0 - c if gap is None else gap
        s = math.sqrt(max(e * (2.0 - e), 0.0))           # sqrt(1 - c^2) without cancellation
        z1, z2 = self.z[:, None], self.z[None, :]
        return math.sqrt(q11) * z1, math.sqrt(q22) * ((1.0 - e) * z1 + s * z2)

    def pair(self, q11: float, q22: float, c: float, derivative: bool = True) -> tuple[float, float]:
        """(Int phi(u1) phi(u2), Int phi'(u1) phi'(u2)) over the correlated pair (nan for the second
        when not ``derivative``)."""
        u1, u2 = self._pair_points(q11, q22, c)
        if not derivative:
            return self.mean2(self.fn(u1) * self.fn(u2)), math.nan
        p1, d1 = _derivatives(self.fn, u1, 1)
        p2, d2 = _derivatives(self.fn, u2, 1)
        return self.mean2(p1 * p2), self.mean2(d1 * d2)

    def gap(self, q: float, e: float) -> float:
        """Int (phi(u1) - phi(u2))^2 for equal variances q and correlation c = 1 - e."""
        u1, u2 = self._pair_points(q, q, 1.0 - e, gap=e)
        return self.mean2((self.fn(u1) - self.fn(u2)) ** 2)


# ---------------------------------------------------------------------------------------------
# fixed points
# ---------------------------------------------------------------------------------------------

def _brent(f, a: float, b: float, tol: float, max_iter: int) -> float:
    from scipy.optimize import brentq

    return float(brentq(f, a, b, xtol=1e-300, rtol=max(tol, 4.5e-16), maxiter=max_iter))


def _q_fixed_point(gauss: _Gauss, sw: float, sb: float, rho: float, tol: float, max_iter: int,
                   q0: float = 1.0) -> tuple[float, float]:
    """(q*, q at which to evaluate the derivatives): the root of Q(q) - q next to q0 in the
    direction the iteration of Q moves (see the module docstring)."""
    f = lambda q: sw / rho * gauss.phi_sq(q) + sb - q
    f0 = f(q0)
    if abs(f0) <= tol * q0:                                  # marginal (or q0 already fixed)
        return q0, q0
    prev = q0
    for k in range(1, _SEARCH_STEPS + 1):
        q = q0 * 2.0 ** (k if f0 > 0 else -k)
        fq = f(q)
        # going up, a sign change must stand above the rounding of Q(q) - q at large q
        if (fq <= -tol * q) if f0 > 0 else (fq >= 0):
            lo, hi = (prev, q) if f0 > 0 else (q, prev)
            root = _brent(f, lo, hi, tol, max_iter) if fq != 0 else q
            return root, root
        prev = q
    return (math.inf if f0 > 0 else 0.0), prev


def _c_fixed_point(gauss: _Gauss, q: float, sw: float, sb: float, rho: float, chi1: float,
                   tol: float, max_iter: int) -> float:
    """The stable fixed point c* in [0, 1] of the correlation map at the length fixed point q."""
    drop = sw * (1.0 / rho - 1.0) * gauss.phi_sq(q)         # q_diag - q12 at c = 1

    def h(e):                      # 1 - C(1 - e) - e, concave in e, zero at c*
        return (drop + 0.5 * sw * gauss.gap(q, e)) / q - e

    if rho == 1.0 and math.log(chi1) < CRITICAL_TOL:       # ordered or critical: c = 1 is stable
        return 1.0
    if h(1.0) >= 0:                # C(0) = 0: c* = 0 (odd phi, no bias, chaotic)
        return 0.0
    prev = 1.0
    for k in range(1, _SEARCH_STEPS + 1):
        e = 2.0 ** -k
        he = h(e)
        if he > 0:
            return 1.0 - _brent(h, e, prev, tol, max_iter)
        prev = e
    return 1.0                     # chi_1 so close to 1 that c* cannot be told from 1


def _depth_scale(x: float) -> float:
    """-1 / ln|x|: inf for |x| >= 1, 0 for x = 0."""
    a = abs(x)
    if a >= 1.0:
        return math.inf
    if a == 0.0:
        return 0.0
    return -1.0 / math.log(a)


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------

@dataclass
class SignalPropagation:
    """What :func:`signal_propagation` returns (all floats are per unit and dimensionless).

    q_star : fixed point of the length map (0 or inf in the degenerate cases of the module doc).
    c_star : stable fixed point of the correlation map (1 in the ordered phase without dropout).
    chi1 : (sigma_w2 / rho) Int phi'(sqrt(q*) z)^2, the per-layer growth of squared gradients.
    chi_c : sigma_w2 Int phi'(u1) phi'(u2) at (q*, c*), the slope of the correlation map at c*.
    chi_q : slope of the length map at q* (chi_1 + sigma_w2 Int phi phi'' without dropout).
    xi_q, xi_c : depth scales -1 / ln chi_q and -1 / ln chi_c, in layers (inf when the slope is 1;
        xi_c is inf in the phase "critical" when c* = 1).
    xi_grad : 1 / |ln chi1|, in layers, always >= 0 (gradients shrink by exp(-l / xi_grad) when
        chi1 < 1 and grow by exp(l / xi_grad) when chi1 > 1; inf in the phase "critical").
    phase : "ordered" (chi1 < 1), "chaotic" (chi1 > 1) or "critical" (|ln chi1| < CRITICAL_TOL).
    activation, sigma_w2, sigma_b2, dropout : the arguments (dropout None or the keep probability).
    """

    activation: str
    sigma_w2: float
    sigma_b2: float
    dropout: float | None
    q_star: float
    c_star: float
    chi1: float
    chi_c: float
    chi_q: float
    xi_q: float
    xi_c: float
    xi_grad: float
    phase: str


def _check_common(sigma_w2, sigma_b2, dropout, nodes, tol, max_iter):
    sw = check_real(sigma_w2, "sigma_w2", 0.0, strict=True)
    sb = check_real(sigma_b2, "sigma_b2", 0.0, strict=False)
    if dropout is None:
        rho = 1.0
    else:
        rho = check_real(dropout, "dropout", 0.0, strict=True, what=" in (0, 1] (a keep probability) or None")
        if rho > 1.0:
            raise ValueError(f"dropout: expected a keep probability in (0, 1] or None, got {dropout!r}")
    nodes = _check_nodes(nodes)
    tol = check_real(tol, "tol", 0.0, strict=True)
    max_iter = check_int(max_iter, "max_iter", 1)
    return sw, sb, rho, nodes, tol, max_iter


def _propagate(name, gauss, sw, sb, rho, dropout, tol, max_iter) -> SignalPropagation:
    q_star, q_eval = _q_fixed_point(gauss, sw, sb, rho, tol, max_iter)
    m = gauss.single(q_eval)
    chi1 = sw / rho * m["dphi2"]
    chi_q = sw / rho * m["slope"]
    if math.isinf(q_star):
        c_star = chi_c = math.nan
    elif q_star == 0.0:
        c_star, chi_c = 1.0, sw * m["dphi2"]             # the limit q -> 0+ of the correlation map
    else:
        c_star = _c_fixed_point(gauss, q_star, sw, sb, rho, chi1, tol, max_iter)
        chi_c = sw * gauss.pair(q_star, q_star, c_star)[1]
    log_chi = math.log(chi1) if chi1 > 0 else -math.inf
    phase = "critical" if abs(log_chi) < CRITICAL_TOL else ("ordered" if log_chi < 0 else "chaotic")
    return SignalPropagation(
        activation=name, sigma_w2=sw, sigma_b2=sb, dropout=None if dropout is None else rho,
        q_star=q_star, c_star=c_star, chi1=chi1, chi_c=chi_c, chi_q=chi_q,
        xi_q=math.nan if math.isinf(q_star) else _depth_scale(chi_q),
        xi_c=math.nan if math.isnan(chi_c) else (math.inf if phase == "critical" and c_star == 1.0
                                                 else _depth_scale(chi_c)),
        xi_grad=math.inf if phase == "critical" else 1.0 / abs(log_chi), phase=phase)


def signal_propagation(activation, sigma_w2, sigma_b2, dropout=None, *, nodes: int = DEFAULT_NODES,
                       tol: float = 1e-12, max_iter: int = 200) -> SignalPropagation:
    """Fixed points, slopes and depth scales of mean-field signal propagation through a random network.

    Computes q*, c*, chi_1, the slopes chi_q, chi_c of the length and correlation maps and the depth
    scales xi_q, xi_c, xi_grad (Poole et al. 2016; Schoenholz et al. 2017; dropout as in the latter), see the
    module docstring for the equations and the degenerate cases.

    activation : a name among :data:`ACTIVATIONS` (tanh, relu, erf, hard_tanh, sigmoid, gelu, silu,
        linear) or an elementwise torch callable (derivatives by autograd).
    sigma_w2 : weight variance times fan-in, > 0; sigma_b2 : bias variance, >= 0 (both per unit).
    dropout : None, or the keep probability rho in (0, 1] of inverted dropout on every unit.
    nodes : quadrature points per dimension (even); tol : relative tolerance of the fixed points;
    max_iter : the cap of each root search (Brent iterations).
    """
    sw, sb, rho, nodes, tol, max_iter = _check_common(sigma_w2, sigma_b2, dropout, nodes, tol, max_iter)
    name, fn = _activation(activation)
    return _propagate(name, _Gauss(fn, nodes), sw, sb, rho, dropout, tol, max_iter)


def _chi1(gauss: _Gauss, sw: float, sb: float, rho: float, tol: float, max_iter: int) -> float:
    q_star, q_eval = _q_fixed_point(gauss, sw, sb, rho, tol, max_iter)
    return sw / rho * gauss.single(q_eval)["dphi2"]


def _critical(name: str, gauss: _Gauss, sb: float, rho: float, tol: float, max_iter: int) -> float:
    f = lambda sw: _chi1(gauss, sw, sb, rho, tol, max_iter) - 1.0
    grid = [2.0 ** k for k in range(-8, 17)]
    prev, f_prev = None, None
    for sw in grid:
        fs = f(sw)
        if fs == 0:
            return sw
        if f_prev is not None and f_prev < 0 < fs:
            return _brent(f, prev, sw, tol, max_iter)
        prev, f_prev = sw, fs
    raise ValueError(f"activation: {name} has no critical point at sigma_b2 = {sb:g}: chi_1 - 1 does not change "
                     f"sign from negative to positive for sigma_w2 in [{grid[0]:g}, {grid[-1]:g}]")


def critical_sigma_w2(activation, sigma_b2, dropout=None, *, nodes: int = DEFAULT_NODES, tol: float = 1e-12,
                      max_iter: int = 200) -> float:
    """The weight variance sigma_w2 (times fan-in) on the critical line chi_1(sigma_w2, sigma_b2) = 1.

    The root of chi_1 - 1 (chi_1 = sigma_w2 Int Dz phi'(sqrt(q*) z)^2, Schoenholz et al. 2017) in sigma_w2,
    bracketed on the grid 2^-8, 2^-7, ..., 2^16 (the first sign change from
    ordered to chaotic) and refined by Brent's method; a ValueError starting "activation:" when
    there is none. With ``dropout`` (keep probability rho) chi_1 = (sigma_w2 / rho) Int phi'^2 at
    the dropout fixed point q*: the line where gradients neither grow nor vanish (the correlation
    map has no critical point then). ``activation``, ``nodes``, ``tol`` and ``max_iter`` as in
    :func:`signal_propagation`.
    """
    _, sb, rho, nodes, tol, max_iter = _check_common(1.0, sigma_b2, dropout, nodes, tol, max_iter)
    name, fn = _activation(activation)
    return _critical(name, _Gauss(fn, nodes), sb, rho, tol, max_iter)


@dataclass
class PhaseDiagram:
    """What :func:`phase_diagram` returns: the signal-propagation phase diagram on a grid.

    sigma_w2 : (W,) and sigma_b2 : (B,) the grid (float64 tensors).
    critical_sigma_w2 : (B,) the critical line, sigma_w2 with chi_1 = 1 at each sigma_b2 (nan where
        there is none).
    q_star, c_star, chi1, xi_c, xi_q : (B, W) the fields of :class:`SignalPropagation` at every
        (sigma_b2, sigma_w2), row b for sigma_b2[b].
    activation : its name; dropout : the keep probability or None.
    """

    activation: str
    dropout: float | None
    sigma_w2: torch.Tensor
    sigma_b2: torch.Tensor
    critical_sigma_w2: torch.Tensor
    q_star: torch.Tensor
    c_star: torch.Tensor
    chi1: torch.Tensor
    xi_c: torch.Tensor
    xi_q: torch.Tensor

    def plot(self, ax=None):
        """Heat map of log10 xi_c over (sigma_w2, sigma_b2) with the critical line chi_1 = 1 drawn
        over it; on ``ax`` or a new figure. Returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4.5))
        xi = self.xi_c.clone()
        finite = torch.isfinite(xi)
        top = float(xi[finite].max()) if finite.any() else 1.0
        xi[~torch.isnan(xi) & ~finite] = top                   # inf on the critical line itself
        mesh = ax.pcolormesh(self.sigma_w2.numpy(), self.sigma_b2.numpy(), torch.log10(xi).numpy(),
                             shading="nearest", cmap="viridis")
        ax.figure.colorbar(mesh, ax=ax, label="log10 xi_c (layers)")
        ok = torch.isfinite(self.critical_sigma_w2)
        ax.plot(self.critical_sigma_w2[ok].numpy(), self.sigma_b2[ok].numpy(), "w-o", ms=3, lw=1.5,
                label="critical line chi_1 = 1")
        ax.set_xlabel("weight variance sigma_w^2 (times fan-in)")
        ax.set_ylabel("bias variance sigma_b^2")
        drop = "" if self.dropout is None else f", dropout keep {self.dropout:g}"
        ax.set_title(f"{self.activation}: correlation depth scale xi_c{drop}", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
        return ax


def phase_diagram(activation, sigma_w2_grid, sigma_b2_grid, dropout=None, *, nodes: int = DEFAULT_NODES,
                  tol: float = 1e-12, max_iter: int = 200, progress: bool = False) -> PhaseDiagram:
    """The order-to-chaos phase diagram: xi_c (and q*, c*, chi_1, xi_q) on a grid and the critical line.

    Runs :func:`signal_propagation` at every (sigma_b2, sigma_w2) of the two grids and
    :func:`critical_sigma_w2` at every sigma_b2 (Poole et al. 2016; Schoenholz et al. 2017). ``sigma_w2_grid``
    : numbers > 0; ``sigma_b2_grid`` : numbers >= 0; ``dropout`` etc. as
    in :func:`signal_propagation` (with dropout the line is chi_1 = (sigma_w2 / rho) Int phi'^2 = 1,
    see :func:`critical_sigma_w2`). ``progress`` draws a bar.
    """
    sws = check_reals(sigma_w2_grid, "sigma_w2_grid", 0.0)
    if (sws <= 0).any():
        raise ValueError(f"sigma_w2_grid: expected numbers > 0, got {sws[sws <= 0].tolist()}")
    sbs = check_reals(sigma_b2_grid, "sigma_b2_grid", 0.0)
    _, _, rho, nodes, tol, max_iter = _check_common(1.0, 0.0, dropout, nodes, tol, max_iter)
    name, fn = _activation(activation)
    gauss = _Gauss(fn, nodes)
    shape = (len(sbs), len(sws))
    fields = {k: torch.full(shape, math.nan, dtype=torch.float64) for k in ("q_star", "c_star", "chi1", "xi_c", "xi_q")}
    line = torch.full((len(sbs),), math.nan, dtype=torch.float64)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(sbs) * len(sws), desc="phase diagram", leave=False)
    for i, sb in enumerate(sbs):
        try:
            line[i] = _critical(name, gauss, float(sb), rho, tol, max_iter)
        except ValueError:
            pass
        for j, sw in enumerate(sws):
            r = _propagate(name, gauss, float(sw), float(sb), rho, dropout, tol, max_iter)
            for k in fields:
                fields[k][i, j] = getattr(r, k)
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    return PhaseDiagram(activation=name, dropout=None if dropout is None else rho,
                        sigma_w2=torch.from_numpy(sws), sigma_b2=torch.from_numpy(sbs),
                        critical_sigma_w2=line, **fields)


# ---------------------------------------------------------------------------------------------
# finite networks
# ---------------------------------------------------------------------------------------------

def _theory_iterates(gauss: _Gauss, sw: float, sb: float, depth: int, q11: float, q22: float,
                     q12: float) -> tuple[list, list, list, list]:
    """The mean-field iterates of two inputs: per layer 0..depth the variances q11, q22, the
    correlation c, and per layer 1..depth the Jacobian factor chi(q11^{l-1}) of the first input."""
    qa, qb, cs, chis = [q11], [q22], [q12 / math.sqrt(q11 * q22)], []
    for _ in range(depth):
        chis.append(sw * gauss.single(qa[-1])["dphi2"])
        cov, _ = gauss.pair(qa[-1], qb[-1], min(max(cs[-1], -1.0), 1.0), derivative=False)
        qa.append(sw * gauss.phi_sq(qa[-1]) + sb)
        qb.append(sw * gauss.phi_sq(qb[-1]) + sb)
        cs.append((sw * cov + sb) / math.sqrt(qa[-1] * qb[-1]))
    return qa, qb, cs, chis


def _default_inputs(width: int, q0: float, c0: float, gen: torch.Generator) -> torch.Tensor:
    """Two vectors of squared length width * q0 and exact correlation c0."""
    g = torch.randn(2, width, generator=gen, dtype=torch.float64)
    e0 = g[0] / g[0].norm()
    e1 = g[1] - (g[1] @ e0) * e0
    e1 = e1 / e1.norm()
    r = math.sqrt(width * q0)
    return torch.stack([r * e0, r * (c0 * e0 + math.sqrt(max(1.0 - c0 * c0, 0.0)) * e1)])


@dataclass
class RandomNetworkSimulation:
    """What :func:`simulate_random_network` returns: one random network measured against mean-field theory.

    Layer l = 0 is the input (taken as the pre-activations h^0), l = 1..depth the layers
    h^l = W^l phi(h^{l-1}) + b^l. Tensors on the requested device, in its dtype:

    q : (depth + 1,) |h^l|^2 / width averaged over the two inputs; q_theory : the same from the
        length map started at the measured layer-0 values.
    c : (depth + 1,) the correlation (h_a . h_b) / (|h_a| |h_b|) of the two inputs; c_theory : from
        the covariance map.
    layer_chi : (depth,) the mean squared singular value ||W^l diag phi'(h_a^{l-1})||_F^2 / width of
        layer l's Jacobian at the first input; layer_chi_theory : sigma_w2 Int phi'^2 at the theory's
        q^{l-1} of that input (chi_1 once q has reached q*).
    jacobian_norm2 : (depth + 1,) ||d h^l / d h^0||_F^2 / width at the first input, estimated with
        ``probes`` Gaussian tangent vectors (1 at layer 0); jacobian_norm2_theory : the product of
        layer_chi_theory up to l.
    """

    activation: str
    width: int
    depth: int
    sigma_w2: float
    sigma_b2: float
    probes: int
    q: torch.Tensor
    c: torch.Tensor
    q_theory: torch.Tensor
    c_theory: torch.Tensor
    layer_chi: torch.Tensor
    layer_chi_theory: torch.Tensor
    jacobian_norm2: torch.Tensor
    jacobian_norm2_theory: torch.Tensor


def simulate_random_network(width, depth, activation, sigma_w2, sigma_b2, *, inputs=None, q0: float = 1.0,
                            c0: float = 0.5, probes: int = 16, nodes: int = DEFAULT_NODES, seed=None,
                            dtype=torch.float64, device=None) -> RandomNetworkSimulation:
    """Propagate two inputs through one random network and measure q^l, c^l and Jacobian norms.

    Draws W^l_ij ~ N(0, sigma_w2 / width), b^l_i ~ N(0, sigma_b2) for l = 1..depth (square layers
    of ``width`` units) and measures, per layer, the squared length per unit q^l, the correlation
    c^l of the two inputs and the Jacobian statistics of :class:`RandomNetworkSimulation`, beside
    the large-width mean-field iterates of the same quantities (Poole et al. 2016;
    Schoenholz et al. 2017). For large width the measurement agrees with the theory
    within sampling errors of order 1/sqrt(width).

    width, depth : units per layer and number of layers; activation : as in
        :func:`signal_propagation`; sigma_w2 > 0, sigma_b2 >= 0 : per-unit variances.
    inputs : optional (2, width) layer-0 pre-activations; by default two vectors of squared length
        width * q0 with correlation exactly c0 (q0 > 0, c0 in [-1, 1]).
    probes : Gaussian tangent vectors of the Jacobian-norm estimate; nodes : quadrature nodes of the
        theory; seed : int, torch.Generator or None (weights drawn on the CPU, so the network does
        not depend on ``device``); dtype, device : of the simulation and of the returned tensors.
    """
    width, depth = check_int(width, "width", 1), check_int(depth, "depth", 1)
    sw = check_real(sigma_w2, "sigma_w2", 0.0, strict=True)
    sb = check_real(sigma_b2, "sigma_b2", 0.0, strict=False)
    q0 = check_real(q0, "q0", 0.0, strict=True)
    c0 = check_real(c0, "c0", None)
    if not -1.0 <= c0 <= 1.0:
        raise ValueError(f"c0: expected a correlation in [-1, 1], got {c0!r}")
    probes, nodes = check_int(probes, "probes", 1), _check_nodes(nodes)
    name, fn = _activation(activation)
    gen = as_generator(seed)
    if inputs is None:
        h = _default_inputs(width, q0, c0, gen)
    else:
        h = as_tensor(inputs, "inputs", dtype=torch.float64, ndim=2).cpu()
        if h.shape != (2, width):
            raise ValueError(f"inputs: expected shape (2, {width}), got {tuple(h.shape)}")
        if (h.norm(dim=1) == 0).any():
            raise ValueError("inputs: expected two non-zero vectors")
    first = (float(h[0] @ h[0]) / width, float(h[1] @ h[1]) / width, float(h[0] @ h[1]) / width)
    h = h.to(dtype=dtype, device=device)
    tangent = torch.randn(probes, width, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)

    def stats(h):
        sq = (h * h).sum(1)
        return float(sq.mean()) / width, float((h[0] @ h[1]) / sq.prod().sqrt())

    q, c, layer_chi, jac = [], [], [], [1.0]
    qm, cm = stats(h)
    q.append(qm)
    c.append(cm)
    norm0 = float((tangent * tangent).sum()) / probes
    for _ in range(depth):
        W = (torch.randn(width, width, generator=gen, dtype=torch.float64) * math.sqrt(sw / width)).to(h)
        b = (torch.randn(width, generator=gen, dtype=torch.float64) * math.sqrt(sb)).to(h)
        phi, dphi = _derivatives(fn, h, 1)
        layer_chi.append(float((W * W).sum(0) @ (dphi[0] * dphi[0])) / width)
        tangent = (tangent * dphi[0]) @ W.T
        jac.append(float((tangent * tangent).sum()) / probes / norm0)
        h = phi @ W.T + b
        qm, cm = stats(h)
        q.append(qm)
        c.append(cm)
    qa, qb, cs, chis = _theory_iterates(_Gauss(fn, nodes), sw, sb, depth, *first)
    tensor = lambda xs: torch.tensor(xs, dtype=dtype, device=device)
    jac_theory = torch.tensor([1.0] + chis, dtype=torch.float64).cumprod(0).to(dtype=dtype, device=device)
    return RandomNetworkSimulation(
        activation=name, width=width, depth=depth, sigma_w2=sw, sigma_b2=sb, probes=probes,
        q=tensor(q), c=tensor(c), q_theory=tensor([(a + b) / 2 for a, b in zip(qa, qb)]), c_theory=tensor(cs),
        layer_chi=tensor(layer_chi), layer_chi_theory=tensor(chis), jacobian_norm2=tensor(jac),
        jacobian_norm2_theory=jac_theory)


def critical_init(module: nn.Module, activation, sigma_b2: float = 0.05, seed=None) -> nn.Module:
    """Re-initialise a torch module in place on the critical line chi_1 = 1 ("edge of chaos").

    Every ``nn.Linear`` and every convolution (``nn.Conv1d/2d/3d``) of ``module`` gets weights
    W_ij ~ N(0, sigma_w2 / fan_in) with sigma_w2 = :func:`critical_sigma_w2` (activation,
    sigma_b2), and biases ~ N(0, sigma_b2) (Schoenholz et al. 2017; Poole et al. 2016). fan_in is
    ``in_features`` for a linear layer and in_channels / groups times the kernel size for a
    convolution (kh * kw for Conv2d). The numbers are drawn on the CPU in float64 from ``seed``
    (int, torch.Generator or None) and then cast to each parameter's dtype and device, so the
    result does not depend on the device. Returns ``module``.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    sb = check_real(sigma_b2, "sigma_b2", 0.0, strict=False)
    sw = critical_sigma_w2(activation, sb)
    gen = as_generator(seed)
    with torch.no_grad():
        for layer in module.modules():
            if not isinstance(layer, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                continue
            w = layer.weight
            fan_in = w[0].numel()                # in_features, or in_channels / groups * kernel size
            w.copy_(torch.randn(w.shape, generator=gen, dtype=torch.float64) * math.sqrt(sw / fan_in))
            if layer.bias is not None:
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen, dtype=torch.float64)
                                 * math.sqrt(sb))
    return module

"""Matrix-free spectral estimates of symmetric operators: Lanczos eigenvalues, stochastic traces and
stochastic Lanczos quadrature.

Everything here works on a *symmetric operator*: an object with ``size`` (its dimension n),
``dtype``, ``device`` and ``matvec(v)`` (``v`` a flat tensor of n entries), optionally ``matmat(V)``
(the products with the rows of an (m, n) tensor, for batched work) and a ``matvecs`` counter. The
Hessian operators of :mod:`thermolearn.landscape.hessian` are such objects; a dense symmetric tensor
is accepted too (:class:`DenseOperator`).

* :func:`lanczos_eigenvalues`: extreme eigenvalues by the Lanczos process (Lanczos 1950) with full
  reorthogonalization (classical Gram-Schmidt with the re-pass criterion of Daniel, Gragg, Kaufman &
  Stewart 1976) and thick restarts (Wu & Simon 2000). After j steps, with orthonormal basis V_j,
  H V_j = V_j T_j + beta_j v_{j+1} e_j^T; the Ritz pairs (theta_i, V_j s_i) of the small symmetric
  T_j have residual norms ||H y_i - theta_i y_i|| = beta_j |e_j^T s_i|, and a wanted pair is
  converged when that is at most tol * |theta_i| (Parlett 1998, ch. 13). When the basis is full,
  the wanted Ritz vectors and some more are kept and the residual vector v_{j+1} continues the
  basis; the projected matrix becomes diagonal plus an arrow row beta_j e_j^T S (Wu & Simon 2000).
* :func:`stochastic_trace`: tr(H) by Hutchinson's estimator (Hutchinson 1989) with Rademacher
  probes, or by Hutch++ (Meyer, Musco, Musco & Woodruff 2021), which takes the trace of a
  sketched top subspace exactly and Hutchinson's estimate of the rest.
* :func:`lanczos_quadrature`: the spectral density by stochastic Lanczos quadrature (Golub & Meurant
  1994; Lin, Saad & Yang 2016; applied to network Hessians by Ghorbani, Krishnan & Xiao 2019): for a
  Rademacher probe z/||z||, m Lanczos steps give nodes theta_j and weights tau_j = (e_1^T s_j)^2
  with sum_j tau_j f(theta_j) ~ z^T f(H) z / ||z||^2, exactly for polynomials f of degree <= 2m - 1,
  whose mean over probes estimates tr f(H) / n.

All products are counted in ``matvecs`` (one per vector).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

import torch

from .._numerics import as_tensor, check_int, check_real
from ..seeding import as_generator

WHICH = ("top", "bottom", "both")
TRACE_METHODS = ("hutchinson", "hutch++")
PROBE_BLOCK_BYTES = 256 * 2**20
"""Memory allowed for the Lanczos bases of the probes run together by :func:`lanczos_quadrature`."""


# ---------------------------------------------------------------------------------------------
# operators
# ---------------------------------------------------------------------------------------------

class SymmetricOperator:
    """Base of the matrix-free symmetric operators: ``matmat`` by a loop over ``matvec`` and the
    ``matvecs`` counter (subclasses implement ``_matvec`` and may override ``_matmat``)."""

    size: int
    dtype: torch.dtype
    device: torch.device

    def __init__(self):
        self.matvecs = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """The product with the flat vector ``v`` (n entries)."""
        self.matvecs += 1
        return self._matvec(v)

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """The products with the rows of ``V`` (m, n): an (m, n) tensor."""
        self.matvecs += V.shape[0]
        return self._matmat(V)

    def _matvec(self, v):  # pragma: no cover - abstract
        raise NotImplementedError

    def _matmat(self, V):
        return torch.stack([self._matvec(v) for v in V]) if V.shape[0] else torch.empty_like(V)

    def dense(self) -> torch.Tensor:
        """The (n, n) matrix, column by column (n products: for small operators only)."""
        eye = torch.eye(self.size, dtype=self.dtype, device=self.device)
        return self.matmat(eye).T.contiguous()


class DenseOperator(SymmetricOperator):
    """A dense symmetric (n, n) tensor as an operator."""

    def __init__(self, matrix: torch.Tensor):
        super().__init__()
        matrix = as_tensor(matrix, "operator", ndim=2)
        if matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"operator: expected a square matrix, got shape {tuple(matrix.shape)}")
        self.matrix = matrix
        self.size, self.dtype, self.device = int(matrix.shape[0]), matrix.dtype, matrix.device

    def _matvec(self, v):
        return self.matrix @ v

    def _matmat(self, V):
        return V @ self.matrix.T


def as_operator(operator, name: str = "operator"):
    """``operator`` when it has ``size``, ``dtype``, ``device`` and ``matvec``; a
    :class:`DenseOperator` for a square tensor; a TypeError otherwise."""
    if isinstance(operator, torch.Tensor):
        return DenseOperator(operator)
    if all(hasattr(operator, a) for a in ("size", "dtype", "device", "matvec")):
        return operator
    raise TypeError(f"{name}: expected a symmetric operator (size, dtype, device, matvec) or a square tensor, "
                    f"got {type(operator).__name__}")


def _matmat(op, V: torch.Tensor) -> torch.Tensor:
    if hasattr(op, "matmat"):
        return op.matmat(V)
    return torch.stack([op.matvec(v) for v in V])


def _count(op) -> int:
    return int(getattr(op, "matvecs", 0))


class _Progress:
    """A tqdm bar on standard error when enabled, else nothing."""

    def __init__(self, enabled: bool, total: int | None, desc: str, unit: str):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, mininterval=0.5)

    def update(self, n: int = 1, **postfix):
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------------------
# Lanczos eigenvalues
# ---------------------------------------------------------------------------------------------

@dataclass
class HessianEigenvalues:
    """Extreme eigenvalues of a symmetric operator (a Hessian) by thick-restart Lanczos.

    eigenvalues : (k,) float64, descending (for ``which="both"`` the k largest then the k smallest,
        2k values, all descending).
    eigenvectors : (n, k) unit eigenvectors as columns, in the order of ``eigenvalues``, in the
        operator's dtype; None unless asked for.
    residuals : (k,) the residual norms ||H y - theta y|| of the Ritz pairs (float64).
    converged : every wanted pair met ``residual <= tol * |theta|`` (or the basis spanned the whole
        space).
    which, tol : what was asked for.
    matvecs : operator products used; steps : Lanczos steps (= matvecs); step_unit : "matvec".
    restarts : thick restarts done; basis_size : the largest basis kept (memory: basis_size * n).
    seconds : wall time.
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor | None
    residuals: torch.Tensor
    converged: bool
    which: str
    tol: float
    matvecs: int
    steps: int
    restarts: int
    basis_size: int
    seconds: float
    step_unit: str = "matvec"


def _default_tol(dtype) -> float:
    return 1e-6 if dtype == torch.float64 else 1e-4


def _wanted(theta: torch.Tensor, k: int, which: str) -> torch.Tensor:
    """Indices (into the ascending ``theta``) of the wanted Ritz values, in descending order."""
    m = theta.shape[0]
    if which == "top":
        return torch.arange(m - 1, m - 1 - min(k, m), -1)
    if which == "bottom":
        return torch.arange(min(k, m) - 1, -1, -1)
    if 2 * k >= m:
        return torch.arange(m - 1, -1, -1)
    return torch.cat([torch.arange(m - 1, m - 1 - k, -1), torch.arange(k - 1, -1, -1)])


def _kept(theta: torch.Tensor, keep: int, which: str) -> torch.Tensor:
    """Indices of the Ritz vectors kept at a restart: the ``keep`` nearest the wanted end(s)."""
    m = theta.shape[0]
    keep = min(keep, m)
    if which == "top":
        return torch.arange(m - keep, m)
    if which == "bottom":
        return torch.arange(0, keep)
    low = keep // 2
    return torch.cat([torch.arange(0, low), torch.arange(m - (keep - low), m)])


def _orthogonalize(V: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """w minus its projection on the rows of V, and the coefficients V w (of the original w).

    The last two rows (the three-term recurrence's) are removed first, then one classical
    Gram-Schmidt pass over all rows, repeated when it shrank w by more than 1/sqrt(2) (the criterion
    of Daniel, Gragg, Kaufman & Stewart 1976; twice is enough, Giraud et al. 2005).
    """
    m = V.shape[0]
    h = torch.zeros(m, dtype=w.dtype, device=w.device)
    for i in range(m - 1, max(m - 3, -1), -1):
        c = torch.dot(V[i], w)
        w = w - c * V[i]
        h[i] += c
    before = w.norm()
    for _ in range(2):
        c = V @ w
        w = w - c @ V
        h += c
        after = w.norm()
        if after > 0.7071 * before:
            break
        before = after
    return w, h


def lanczos_eigenvalues(operator, k: int = 1, which: str = "top", *, tol: float | None = None,
                        max_iter: int | None = None, ncv: int | None = None, seed=None, v0=None,
                        eigenvectors: bool = False, progress: bool = False) -> HessianEigenvalues:
    """The k largest (``which="top"``), smallest (``"bottom"``) or both (``"both"``: k of each)
    eigenvalues of a symmetric operator by thick-restart Lanczos with full reorthogonalization
    (Lanczos 1950; Wu & Simon 2000; see the module docstring).

    operator : a symmetric operator (``size``, ``dtype``, ``device``, ``matvec``) or a square tensor.
    k : eigenvalues wanted at each end; at most n (2k at most n for ``"both"``).
    tol : a Ritz pair is converged when its residual norm ||H y - theta y|| is at most
        ``tol * max(|theta|, eps^(2/3) * |theta|_max)`` (the floor keeps zero eigenvalues reachable);
        the eigenvalue error is then at most the residual, and about residual^2 / gap for a
        separated eigenvalue. Default 1e-6 for float64 operators, 1e-4 otherwise.
    max_iter : the most operator products (default max(500, 30 k)); ``converged`` is False when it
        stops there.
    ncv : the largest basis (default min(n, max(2 k' + 20, 50)), k' the number of wanted values);
        at least k' + 2 unless it is n. Memory: ncv vectors of n entries.
    seed : the random start vector (Gaussian; an int, a torch.Generator or None); ``v0`` gives one
        instead.
    eigenvectors : also return the Ritz vectors, as the columns of an (n, k) tensor.

    As for every single-vector Krylov method, an eigenvalue of multiplicity m > 1 is found once
    (its other copies only slowly, through rounding): ask ARPACK-like methods for distinct values.
    """
    t0 = time.perf_counter()
    op = as_operator(operator)
    n = int(op.size)
    if which not in WHICH:
        raise ValueError(f"which: expected one of {WHICH}, got {which!r}")
    k = check_int(k, "k")
    kw = 2 * k if which == "both" else k
    if kw > n:
        raise ValueError(f"k: expected at most {n // 2 if which == 'both' else n} (the operator has {n} dimensions"
                         f"{', and which=both wants 2k' if which == 'both' else ''}), got {k}")
    tol = _default_tol(op.dtype) if tol is None else check_real(tol, "tol")
    max_iter = max(500, 30 * kw) if max_iter is None else check_int(max_iter, "max_iter")
    if ncv is None:
        ncv = min(n, max(2 * kw + 20, 50))
    else:
        ncv = check_int(ncv, "ncv")
        if ncv > n:
            ncv = n
        if ncv < n and ncv < kw + 2:
            raise ValueError(f"ncv: expected at least k' + 2 = {kw + 2} (k' = {kw} wanted values) or n = {n}, "
                             f"got {ncv}")
    eps = torch.finfo(op.dtype).eps
    floor = eps ** (2.0 / 3.0)
    start = _count(op)

    V = torch.empty(ncv + 1, n, dtype=op.dtype, device=op.device)
    T = torch.zeros(ncv + 1, ncv + 1, dtype=torch.float64)
    gen = as_generator(seed)
    if v0 is None:
        v = torch.randn(n, generator=gen, dtype=op.dtype).to(op.device)
    else:
        v = as_tensor(v0, "v0", dtype=op.dtype, device=op.device, ndim=1)
        if v.shape[0] != n:
            raise ValueError(f"v0: expected {n} entries, got {v.shape[0]}")
    norm = float(v.norm())
    if norm == 0.0:
        raise ValueError("v0: the start vector is zero")
    V[0] = v / norm
    j, restarts, steps, scale, converged = 0, 0, 0, 0.0, False
    bar = _Progress(progress, max_iter, "Lanczos", "matvec")
    try:
        while True:
            w = op.matvec(V[j]).to(op.dtype)
            steps += 1
            w, h = _orthogonalize(V[:j + 1], w)
            T[:j + 1, j] = h.double().cpu()
            beta = float(w.norm())
            A = T[:j + 1, :j + 1]
            theta, S = torch.linalg.eigh(0.5 * (A + A.T))
            scale = max(scale, float(theta.abs().max()))
            res = beta * S[j].abs()
            idx = _wanted(theta, k, which)
            bound = tol * torch.clamp(theta[idx].abs(), min=floor * scale)
            full = j + 1 == n
            converged = full or (j + 1 >= kw and bool((res[idx] <= bound).all()))
            bar.update(1, restarts=restarts)
            if converged or steps >= max_iter:
                break
            if beta <= 100 * eps * max(scale, 1e-300):   # invariant subspace: continue from a fresh direction
                w = torch.randn(n, generator=gen, dtype=op.dtype).to(op.device)
                w, _ = _orthogonalize(V[:j + 1], w)
                w, beta_used = w / w.norm(), 0.0
            else:
                w, beta_used = w / beta, beta
            if j + 1 < ncv:
                V[j + 1] = w
                T[j + 1, j] = beta_used
                j += 1
                continue
            # thick restart: keep the wanted Ritz vectors and as many more, continue with w
            keep = min(j - 1, kw + max(1, (ncv - kw) // 2))
            kept = _kept(theta, keep, which)
            Y = S[:, kept].T.to(op.dtype).to(op.device) @ V[:j + 1]
            V[:keep] = Y
            V[keep] = w
            T.zero_()
            T[range(keep), range(keep)] = theta[kept]
            T[keep, :keep] = beta_used * S[j, kept]
            T[:keep, keep] = T[keep, :keep]
            j = keep
            restarts += 1
    finally:
        bar.close()
    order = idx
    values = theta[order].clone()
    vecs = None
    if eigenvectors:
        vecs = (S[:, order].T.to(op.dtype).to(op.device) @ V[:j + 1]).T.contiguous()
    return HessianEigenvalues(eigenvalues=values, eigenvectors=vecs, residuals=res[order].clone(),
                              converged=converged, which=which, tol=tol, matvecs=_count(op) - start or steps,
                              steps=steps, restarts=restarts, basis_size=ncv, seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------
# traces
# ---------------------------------------------------------------------------------------------

@dataclass
class HessianTrace:
    """A stochastic estimate of the trace of a symmetric operator (a Hessian).

    trace : the estimate. stderr : its standard error: for Hutchinson the sample standard deviation
        (ddof = 1) of the probe values over sqrt(probes); for Hutch++ the same for the Hutchinson
        part on the deflated remainder (the sketched part is exact given the sketch), i.e. the error
        conditional on the sketch.
    method : "hutchinson" or "hutch++". probes : products used in all (= matvecs).
    samples : (h,) the Hutchinson probe values z^T A z (for Hutch++ those of the remainder).
    sketch_trace : Hutch++'s exact part tr(Q^T H Q) (None for Hutchinson); sketch_size : its rank.
    matvecs, seconds.
    """

    trace: float
    stderr: float
    method: str
    probes: int
    samples: torch.Tensor
    sketch_trace: float | None
    sketch_size: int
    matvecs: int
    seconds: float


def _rademacher(m: int, n: int, gen, dtype, device) -> torch.Tensor:
    z = torch.randint(0, 2, (m, n), generator=gen, dtype=torch.int8)
    return (2 * z - 1).to(dtype).to(device)


def _block(n: int, itemsize: int, per_vector: int = 1) -> int:
    return max(1, min(64, PROBE_BLOCK_BYTES // max(1, n * itemsize * per_vector)))


def _quadratic_forms(op, Z: torch.Tensor, bar=None) -> torch.Tensor:
    """z^T A z for the rows z of Z, in blocks (float64)."""
    out = []
    for Zb in Z.split(_block(op.size, Z.element_size(), 4)):
        out.append((Zb * _matmat(op, Zb)).sum(1).double())
        if bar is not None:
            bar.update(Zb.shape[0])
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def _products(op, X: torch.Tensor, bar) -> torch.Tensor:
    out = []
    for Xb in X.split(_block(op.size, X.element_size(), 4)):
        out.append(_matmat(op, Xb))
        bar.update(Xb.shape[0])
    return torch.cat(out)


def _mean_stderr(samples: torch.Tensor) -> tuple[float, float]:
    mean = float(samples.mean())
    sd = float(samples.std(unbiased=True)) if samples.numel() > 1 else float("nan")
    return mean, sd / math.sqrt(samples.numel())


def stochastic_trace(operator, probes: int = 100, method: str = "hutchinson", *, seed=None,
                     progress: bool = False) -> HessianTrace:
    """tr(A) of a symmetric operator from ``probes`` products with random sign vectors.

    method : "hutchinson" (Hutchinson 1989): mean of z^T A z over Rademacher z, variance
        2 sum_{i != j} A_ij^2 per probe; probes >= 2. "hutch++" (Meyer et al. 2021): s = probes // 3
        products sketch Q = orth(A S) (S Rademacher, at most n columns), s more give tr(Q^T A Q)
        exactly, the remaining h = probes - 2 s estimate the trace of (I - QQ^T) A (I - QQ^T) by
        Hutchinson; probes >= 4. Hutch++ needs O(1/eps) products for relative error eps where
        Hutchinson needs O(1/eps^2), when the spectrum decays.
    seed : the probes (int, torch.Generator or None).
    """
    t0 = time.perf_counter()
    op = as_operator(operator)
    if method not in TRACE_METHODS:
        raise ValueError(f"method: expected one of {TRACE_METHODS}, got {method!r}")
    probes = check_int(probes, "probes", 2 if method == "hutchinson" else 4)
    gen = as_generator(seed)
    n, start = int(op.size), _count(op)
    bar = _Progress(progress, probes, method, "matvec")
    try:
        if method == "hutchinson":
            samples = _quadratic_forms(op, _rademacher(probes, n, gen, op.dtype, op.device), bar)
            trace, stderr = _mean_stderr(samples)
            return HessianTrace(trace=trace, stderr=stderr, method=method, probes=probes, samples=samples,
                                sketch_trace=None, sketch_size=0, matvecs=_count(op) - start,
                                seconds=time.perf_counter() - t0)
        s = min(probes // 3, n)
        h = probes - 2 * s
        Y = _products(op, _rademacher(s, n, gen, op.dtype, op.device), bar)
        Q = torch.linalg.qr(Y.T.double())[0].T.to(op.dtype)                   # (s, n), orthonormal rows
        sketch = float((Q.double() * _products(op, Q, bar).double()).sum())
        G = _rademacher(h, n, gen, op.dtype, op.device)
        samples = _quadratic_forms(op, G - (G @ Q.T) @ Q, bar)
    finally:
        bar.close()
    rest, stderr = _mean_stderr(samples)
    return HessianTrace(trace=sketch + rest, stderr=stderr, method=method, probes=probes, samples=samples,
                        sketch_trace=sketch, sketch_size=s, matvecs=_count(op) - start,
                        seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------
# stochastic Lanczos quadrature
# ---------------------------------------------------------------------------------------------

def _gaussian_mixture(nodes: torch.Tensor, weights: torch.Tensor, grid: torch.Tensor, sigma: float) -> torch.Tensor:
    """(rows, G): sum_j w_j N(grid; theta_j, sigma^2) for each row of (nodes, weights)."""
    z = (grid[None, None, :] - nodes[:, :, None]) / sigma
    return (weights[:, :, None] * torch.exp(-0.5 * z * z)).sum(1) / (sigma * math.sqrt(2.0 * math.pi))


@dataclass
class SpectralDensity:
    """The eigenvalue density of a symmetric operator (a Hessian) by stochastic Lanczos quadrature.

    nodes, weights : (probes, steps) float64: per probe the Ritz values theta_j of its Lanczos
        tridiagonal and the quadrature weights tau_j = (e_1^T s_j)^2 (each row sums to 1). A probe
        whose Krylov space closed early (an invariant subspace) is padded with weight-0 nodes.
    lengths : (probes,) Lanczos steps done per probe.
    batch : (probes,) int64: the data batch each probe was run on (all 0 without ``per_batch``).
    size : n, the dimension (the density integrates to 1: it is the eigenvalue count over n).
    matvecs, seconds.
    """

    nodes: torch.Tensor
    weights: torch.Tensor
    lengths: torch.Tensor
    batch: torch.Tensor
    size: int
    matvecs: int
    seconds: float

    @property
    def probes(self) -> int:
        return int(self.nodes.shape[0])

    @property
    def batches(self) -> int:
        return int(self.batch.max()) + 1 if self.batch.numel() else 0

    def density(self, grid, sigma: float, over: str = "probes") -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian-broadened density on ``grid`` (eigenvalue units; density per unit eigenvalue,
        integrating to 1): ``(mean, spread)``.

        Per probe phi_l(x) = sum_j tau_lj exp(-(x - theta_lj)^2 / (2 sigma^2)) / (sigma sqrt(2 pi))
        (Lin, Saad & Yang 2016; Ghorbani et al. 2019). ``over="probes"``: mean and sample standard
        deviation (ddof 1) over all probes; ``over="batches"``: the per-batch mean densities, their
        mean and standard deviation over batches. The standard error of the mean is spread / sqrt(count).
        """
        grid = as_tensor(grid, "grid", dtype=torch.float64).reshape(-1)
        sigma = check_real(sigma, "sigma")
        phi = _gaussian_mixture(self.nodes, self.weights, grid, sigma)
        if over == "probes":
            rows = phi
        elif over == "batches":
            rows = torch.stack([phi[self.batch == b].mean(0) for b in range(self.batches)])
        else:
            raise ValueError(f"over: expected 'probes' or 'batches', got {over!r}")
        spread = rows.std(0, unbiased=True) if rows.shape[0] > 1 else torch.zeros_like(rows[0])
        return rows.mean(0), spread

    def _moments(self, j: int) -> torch.Tensor:
        j = check_int(j, "j", 0)
        return (self.weights * self.nodes ** j).sum(1)

    def moment(self, j: int) -> float:
        """The estimate of tr(H^j) / n: the mean over probes of sum_i tau_i theta_i^j (exact per probe,
        z^T H^j z / ||z||^2, for j <= 2 steps - 1)."""
        return float(self._moments(j).mean())

    def moment_stderr(self, j: int) -> float:
        """The standard error of :meth:`moment` over probes (sample sd, ddof 1, / sqrt(probes))."""
        return _mean_stderr(self._moments(j))[1]


def _slq_block(op, Z: torch.Tensor, steps: int):
    """Lanczos with full reorthogonalization from each row of Z (unit rows) at once: the
    (B, steps) diagonals, off-diagonals and the number of steps done per row."""
    B, n = Z.shape
    V = torch.empty(B, steps, n, dtype=op.dtype, device=op.device)      # rows are written before they are read
    V[:, 0] = Z
    alpha = torch.zeros(B, steps, dtype=torch.float64)
    beta = torch.zeros(B, steps, dtype=torch.float64)
    length = torch.full((B,), steps, dtype=torch.int64)
    active = torch.ones(B, dtype=torch.bool)
    eps = torch.finfo(op.dtype).eps
    scale = torch.zeros(B, dtype=torch.float64)
    for j in range(steps):
        rows = active.nonzero().flatten()
        if rows.numel() == 0:
            break
        W = _matmat(op, V[:, j] if rows.numel() == B else V[rows, j]).to(op.dtype)
        hj = torch.zeros(rows.numel(), dtype=torch.float64)
        for a, r in enumerate(rows.tolist()):                   # contiguous (j + 1, n) bases: matrix-vector BLAS
            W[a], h = _orthogonalize(V[r, :j + 1], W[a])
            hj[a] = float(h[j])
        alpha[rows, j] = hj
        if j + 1 == steps:
            break
        b = W.norm(dim=1).double().cpu()
        scale[rows] = torch.maximum(scale[rows], alpha[rows, j].abs() + b)
        broke = b <= 100 * eps * scale[rows].clamp(min=1e-300)
        for r, flag in zip(rows.tolist(), broke.tolist()):
            if flag:
                length[r], active[r] = j + 1, False
        ok = ~broke
        if ok.any():
            V[rows[ok], j + 1] = W[ok] / b[ok].to(W.dtype).to(W.device)[:, None]
            beta[rows[ok], j] = b[ok]
    return alpha, beta, length


def lanczos_quadrature(operator, probes: int = 10, steps: int = 80, *, seed=None, progress: bool = False,
                       batch_index: int = 0) -> SpectralDensity:
    """The spectral density of a symmetric operator by stochastic Lanczos quadrature (see the module
    docstring): ``probes`` Rademacher probes, ``steps`` Lanczos steps each (at most n), full
    reorthogonalization. Costs probes * steps products, run on blocks of probes together
    (``matmat``). ``seed``: the probes. ``batch_index`` labels the probes' data batch."""
    t0 = time.perf_counter()
    op = as_operator(operator)
    probes, steps = check_int(probes, "probes"), check_int(steps, "steps")
    n, start = int(op.size), _count(op)
    steps = min(steps, n)
    gen = as_generator(seed)
    Z = _rademacher(probes, n, gen, op.dtype, op.device) / math.sqrt(n)
    nodes = torch.zeros(probes, steps, dtype=torch.float64)
    weights = torch.zeros(probes, steps, dtype=torch.float64)
    lengths = torch.zeros(probes, dtype=torch.int64)
    block = _block(n, Z.element_size(), steps + 2)
    bar = _Progress(progress, probes, "SLQ", "probe")
    try:
        for lo in range(0, probes, block):
            alpha, beta, length = _slq_block(op, Z[lo:lo + block], steps)
            for r in range(alpha.shape[0]):
                m = int(length[r])
                T = torch.diag(alpha[r, :m]) + torch.diag(beta[r, :m - 1], 1) + torch.diag(beta[r, :m - 1], -1)
                theta, S = torch.linalg.eigh(T)
                nodes[lo + r, :m], weights[lo + r, :m] = theta, S[0] ** 2
                nodes[lo + r, m:] = theta[-1]
                lengths[lo + r] = m
            bar.update(alpha.shape[0])
    finally:
        bar.close()
    return SpectralDensity(nodes=nodes, weights=weights, lengths=lengths,
                           batch=torch.full((probes,), batch_index, dtype=torch.int64), size=n,
                           matvecs=_count(op) - start, seconds=time.perf_counter() - t0)


def concat_densities(parts: list[SpectralDensity]) -> SpectralDensity:
    """One :class:`SpectralDensity` of the probes of several (one per data batch, numbered in order)."""
    steps = max(p.nodes.shape[1] for p in parts)

    def pad(t, fill):
        return torch.cat([t, fill.expand(t.shape[0], steps - t.shape[1])], 1) if t.shape[1] < steps else t

    nodes = torch.cat([pad(p.nodes, p.nodes[:, -1:]) for p in parts])
    weights = torch.cat([pad(p.weights, torch.zeros(1, 1, dtype=torch.float64)) for p in parts])
    batch = torch.cat([torch.full((p.probes,), b, dtype=torch.int64) for b, p in enumerate(parts)])
    return SpectralDensity(nodes=nodes, weights=weights, lengths=torch.cat([p.lengths for p in parts]), batch=batch,
                           size=parts[0].size, matvecs=sum(p.matvecs for p in parts),
                           seconds=sum(p.seconds for p in parts))

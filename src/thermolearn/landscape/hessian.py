"""Hessians of torch models: products, extreme eigenvalues, traces, spectral densities, the
Gauss-Newton split and the class structure of the Gauss-Newton matrix.

The loss is the mean over all examples of ``data``: for batches b of sizes n_b, each batch's
``loss_fn(model(inputs), targets)`` (a mean over the batch) weighted by n_b / N, so
L(theta) = (1/N) sum_i l(f(x_i; theta), y_i) whatever the batching. The Hessian H = d^2 L / d theta^2
is taken with respect to the parameters that require grad, or a subset (``params=`` names or
tensors, ``block=`` a module or parameter name: "0" for the parameters of module 0, "0.weight" for
one tensor). Vectors are flat, in the order of ``model.named_parameters()``.

* :class:`HessianOperator`: H v by double backpropagation (Pearlmutter 1994). For a single batch
  (the default with ``cache=None``) the gradient's graph is built once and every product is one
  backward pass through it; otherwise each product runs forward and both backward passes per batch.
* :func:`hessian_eigenvalues` (Lanczos, :mod:`thermolearn.landscape.lanczos`), :func:`block_eigenvalues`
  (per parameter tensor or module), :func:`hessian_trace` (Hutchinson, Hutch++),
  :func:`hessian_density` (stochastic Lanczos quadrature, optionally one per batch).
* :func:`gauss_newton_split`: H = G + R with the generalized Gauss-Newton matrix
  G = (1/N) sum_i J_i^T H_i J_i (J_i = d f(x_i) / d theta, H_i = d^2 l / d f^2) and the residual
  R = (1/N) sum_i sum_c (d l / d f_c) d^2 f_c / d theta^2 (Schraudolph 2002; Martens 2020). G v is
  J^T (H_f (J v)), with J v by the double-backward trick; R v is the Hessian-vector product of the
  surrogate sum_i <d l_i / d f (held fixed), f(x_i; theta)>, so the two are computed independently of H.
* :func:`class_decomposition`: Papyan's (2019, 2020) split of the Gauss-Newton matrix of a
  cross-entropy classifier into class-mean, cross-class and within-class parts (see there).

The model is evaluated as it is (train or eval mode is the caller's: use eval() for dropout or
batch-norm models). A cached operator holds the parameters' values at its construction.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._numerics import as_tensor, check_int, to_tensor
from ..seeding import as_generator, spawn_seeds
from .lanczos import (
    HessianEigenvalues,
    HessianTrace,
    SpectralDensity,
    SymmetricOperator,
    _rademacher,
    concat_densities,
    lanczos_eigenvalues,
    lanczos_quadrature,
    stochastic_trace,
)

__all__ = [
    "HessianOperator", "GaussNewtonOperator", "ResidualOperator", "HessianEigenvalues", "HessianTrace",
    "SpectralDensity", "GaussNewtonSplit", "ClassDecomposition", "hessian_vector_product", "hessian_eigenvalues",
    "block_eigenvalues", "hessian_trace", "hessian_density", "gauss_newton_split", "class_decomposition",
]

MAX_DENSE = 4096
"""Largest number of parameters for which ``dense=True`` builds (n, n) matrices."""

_MODEL_ERRORS = (RuntimeError, ValueError, TypeError, IndexError)


# ---------------------------------------------------------------------------------------------
# data, parameters, one forward pass
# ---------------------------------------------------------------------------------------------

def _is_array(x) -> bool:
    return isinstance(x, (torch.Tensor, np.ndarray))


def _is_pair(data) -> bool:
    return isinstance(data, (tuple, list)) and len(data) == 2 and _is_array(data[0])


def _convert(x, t, i: int, dtype, device):
    """One batch as tensors on ``device``; floating inputs and targets in ``dtype``, checked finite."""
    x, t = to_tensor(x, "data"), to_tensor(t, "data")
    if x.ndim == 0:
        raise ValueError(f"data: the inputs of batch {i} are a scalar; expected one row per example")
    x = as_tensor(x, f"data: inputs of batch {i}", dtype=dtype, device=device) if x.is_floating_point() \
        else x.to(device)
    t = as_tensor(t, f"data: targets of batch {i}", dtype=dtype, device=device) if t.is_floating_point() \
        else t.to(device)
    if t.ndim == 0 or t.shape[0] != x.shape[0]:
        raise ValueError(f"data: batch {i} has {x.shape[0]} inputs (shape {tuple(x.shape)}) but targets of shape "
                         f"{tuple(t.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"data: batch {i} is empty")
    return x, t


class _Batches:
    """The batches of ``data``: one (inputs, targets) pair, or an iterable of them (re-iterated on
    every pass; a one-shot iterator is read once into a list). ``limit``: only the first batches."""

    def __init__(self, data, dtype, device, limit: int | None = None):
        self.dtype, self.device, self.limit = dtype, device, limit
        if _is_pair(data):
            self.source, self.single = [tuple(data)], True
            return
        if _is_array(data) or isinstance(data, (str, bytes, dict)):
            raise TypeError(f"data: expected an (inputs, targets) pair or an iterable of such batches, got "
                            f"{type(data).__name__}")
        try:
            it = iter(data)
        except TypeError:
            raise TypeError(f"data: expected an (inputs, targets) pair or an iterable of such batches, got "
                            f"{type(data).__name__}") from None
        self.source = list(data) if it is data else data
        self.single = False

    def __iter__(self):
        count = 0
        for i, batch in enumerate(self.source):
            if self.limit is not None and i >= self.limit:
                break
            if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                raise ValueError(f"data: batch {i} is not an (inputs, targets) pair, got {type(batch).__name__}")
            count += 1
            yield i, _convert(batch[0], batch[1], i, self.dtype, self.device)
        if count == 0:
            raise ValueError("data: no batches")


def _select(model: nn.Module, params=None, block=None) -> tuple[list[str], list[torch.Tensor]]:
    """The (names, tensors) of the parameters to differentiate by."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if params is not None and block is not None:
        raise ValueError("block: give params or block, not both")
    if block is not None:
        blocks = [block] if isinstance(block, str) else list(block)
        if not blocks or not all(isinstance(b, str) for b in blocks):
            raise ValueError(f"block: expected a parameter or module name or a list of them, got {block!r}")
        named = [(n, p) for n, p in named if any(n == b or n.startswith(b + ".") for b in blocks)]
        if not named:
            raise ValueError(f"block: no trainable parameter is named {block!r} or lies in a module of that name; "
                             f"names: {[n for n, _ in model.named_parameters()]}")
    elif params is not None:
        items = [params] if isinstance(params, (str, torch.Tensor)) else list(params)
        by_name = dict(model.named_parameters())
        by_id = {id(p): n for n, p in by_name.items()}
        chosen = []
        for item in items:
            name = item if isinstance(item, str) else by_id.get(id(item))
            if name is None or name not in by_name:
                raise ValueError(f"params: {item if isinstance(item, str) else 'a tensor'} is not a parameter of the "
                                 f"model; names: {list(by_name)}")
            if not by_name[name].requires_grad:
                raise ValueError(f"params: {name!r} does not require grad")
            chosen.append(name)
        wanted = set(chosen)
        named = [(n, p) for n, p in named if n in wanted]
    if not named:
        raise ValueError("params: the model has no parameters that require grad")
    dtypes = {p.dtype for _, p in named}
    if len(dtypes) > 1 or not named[0][1].is_floating_point():
        raise ValueError(f"params: expected floating parameters of one dtype, got {sorted(map(str, dtypes))}")
    return [n for n, _ in named], [p for _, p in named]


def _forward(model, x, i: int) -> torch.Tensor:
    try:
        out = model(x)
    except _MODEL_ERRORS as exc:
        raise ValueError(f"data: the model failed on the inputs of batch {i}, of shape {tuple(x.shape)}: "
                         f"{exc}") from exc
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"model: expected the model to return a tensor, got {type(out).__name__}")
    return out


def _loss(loss_fn, out: torch.Tensor, t: torch.Tensor, i: int) -> torch.Tensor:
    try:
        loss = loss_fn(out, t)
    except _MODEL_ERRORS as exc:
        raise ValueError(f"data: loss_fn failed on outputs of shape {tuple(out.shape)} and targets of shape "
                         f"{tuple(t.shape)} (batch {i}): {exc}") from exc
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        what = f"shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn: expected a scalar tensor (the mean loss of a batch), got {what}")
    loss = loss.reshape(())
    if not torch.isfinite(loss.detach()):
        raise ValueError(f"loss_fn: the loss of batch {i} is {float(loss.detach())} (check the data and the model's "
                         f"outputs)")
    if not loss.requires_grad:
        raise ValueError("loss_fn: the loss does not depend on the parameters (no gradient flows to them)")
    return loss


def _check_callable(loss_fn):
    if not callable(loss_fn):
        raise TypeError(f"loss_fn: expected a callable(outputs, targets) -> scalar, got {type(loss_fn).__name__}")


def _none_connected(grads, what: str = "loss"):
    if all(g is None for g in grads):
        raise ValueError(f"loss_fn: the {what} does not depend on the parameters (no gradient flows to them)")


def _quiet():
    """Silence torch's notes about vmap fallbacks in batched backward passes."""
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.filterwarnings("ignore", message=".*performance drop.*")
    warnings.filterwarnings("ignore", message=".*is_grads_batched.*")
    return ctx


# ---------------------------------------------------------------------------------------------
# operators
# ---------------------------------------------------------------------------------------------

class _ModelOperator(SymmetricOperator):
    """Shared machinery: parameter selection, batches, per-batch autograd state (cached or rebuilt
    on every pass), flat vectors."""

    kind = "operator"

    def __init__(self, model, loss_fn, data, *, params=None, block=None, cache=None, batches: int | None = None):
        super().__init__()
        _check_callable(loss_fn)
        self.model, self.loss_fn = model, loss_fn
        self.names, self.params = _select(model, params, block)
        self.shapes = [tuple(p.shape) for p in self.params]
        self.numels = [p.numel() for p in self.params]
        self.size = int(sum(self.numels))
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        limit = None if batches is None else check_int(batches, "batches")
        self._batches = _Batches(data, self.dtype, self.device, limit)
        self.cache = self._batches.single if cache is None else bool(cache)
        self._batched_ok = True
        self._states, self._weights, n, total = [], [], 0, 0.0
        for i, (x, t) in self._batches:
            state, loss = self._state(x, t, i, first=True)
            if self.cache:
                self._states.append(state)
            self._weights.append(x.shape[0])
            n += x.shape[0]
            total += float(loss) * x.shape[0]
        self.n_examples = n
        self._weights = [w / n for w in self._weights]
        self.loss = total / n
        """The mean loss over all examples at the parameters of construction."""

    # subclasses: the per-batch state and the product of one batch's matrix with rows of V
    def _state(self, x, t, i, first: bool):  # pragma: no cover - abstract
        raise NotImplementedError

    def _apply(self, state, vs):  # pragma: no cover - abstract
        raise NotImplementedError

    def _split(self, V: torch.Tensor) -> list[torch.Tensor]:
        """(m, n) -> per parameter (m, *shape) views."""
        out, off = [], 0
        for shape, k in zip(self.shapes, self.numels):
            out.append(V[:, off:off + k].reshape(V.shape[0], *shape))
            off += k
        return out

    def _flat(self, parts, m: int) -> torch.Tensor:
        cols = [torch.zeros(m, k, dtype=self.dtype, device=self.device) if g is None else g.reshape(m, k)
                for g, k in zip(parts, self.numels)]
        return torch.cat(cols, 1)

    def _passes(self):
        """(weight, state) per batch: the cache or fresh states."""
        if self.cache:
            yield from zip(self._weights, self._states)
            return
        for w, (i, (x, t)) in zip(self._weights, self._batches):
            yield w, self._state(x, t, i, first=False)[0]

    def _products(self, V: torch.Tensor) -> torch.Tensor:
        """The products with the rows of V, one backward pass each per batch (batched backward
        passes through vmap were measured no faster on CPUs)."""
        V = V.to(self.dtype).to(self.device)
        if V.ndim != 2 or V.shape[1] != self.size:
            raise ValueError(f"v: expected vectors of {self.size} entries, got shape {tuple(V.shape)}")
        out = None
        with torch.enable_grad():
            for w, state in self._passes():
                rows = [self._flat([None if p is None else p[None] for p in self._apply(state, vs)], 1)
                        for vs in zip(*self._split(V))]
                part = torch.cat(rows) if len(rows) > 1 else rows[0]
                if w != 1.0:
                    part.mul_(w)
                out = part if out is None else out.add_(part)
        return out

    def _matvec(self, v):
        return self._products(v.reshape(1, -1))[0]

    def _matmat(self, V):
        return self._products(V)


def _second(outputs, inputs, vs, retain: bool = True):
    """d(<outputs, vs>)/d inputs, skipping outputs that carry no graph (None where unused)."""
    pairs = [(g, v) for g, v in zip(outputs, vs) if g is not None and g.requires_grad]
    if not pairs:
        return [None] * len(inputs)
    return list(torch.autograd.grad([g for g, _ in pairs], inputs, [v for _, v in pairs], retain_graph=retain,
                                    allow_unused=True))


class HessianOperator(_ModelOperator):
    """The Hessian of the mean loss as a symmetric operator: ``matvec(v)``, ``matmat(V)`` (rows),
    ``size`` (parameters), ``dtype``, ``device``, ``matvecs`` (products so far), ``loss`` (mean
    loss), ``gradient`` (flat mean gradient), ``n_examples``, ``names`` (the parameters, in order).

    model : nn.Module; loss_fn : callable(outputs, targets) -> the mean loss of a batch (e.g.
    nn.CrossEntropyLoss()); data : (inputs, targets) or an iterable of such batches (a DataLoader),
    weighted by batch size. params / block : a subset of the parameters (names or tensors; a module or
    parameter name, or a list of them). cache : keep each batch's gradient graph (default: when data is
    one pair), making a product one backward pass; the operator then holds the parameter values of its
    construction. batches : use only the first ``batches`` batches.
    H v = d/d theta <grad L(theta), v> (Pearlmutter 1994).
    """

    kind = "hessian"

    def __init__(self, model, loss_fn, data, *, params=None, block=None, cache=None, batches=None):
        self.gradient = None
        super().__init__(model, loss_fn, data, params=params, block=block, cache=cache, batches=batches)
        self.gradient = self.gradient / self.n_examples

    def _state(self, x, t, i, first):
        loss = _loss(self.loss_fn, _forward(self.model, x, i), t, i)
        grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
        if first:
            _none_connected(grads)
            g = self._flat([None if q is None else q.detach()[None] for q in grads], 1)[0] * x.shape[0]
            self.gradient = g if self.gradient is None else self.gradient + g
        return grads, loss.detach()

    def _apply(self, grads, vs):
        return _second(grads, self.params, vs)


class GaussNewtonOperator(_ModelOperator):
    """The generalized Gauss-Newton matrix G = (1/N) sum_i J_i^T H_i J_i as an operator (same
    arguments and attributes as :class:`HessianOperator`), J_i the Jacobian of the model's output
    for example i, H_i the Hessian of the loss with respect to that output (Schraudolph 2002).
    G v = J^T (H_f (J v)): J v by differentiating u -> J^T u (linear in u) with respect to u,
    H_f by double backward of the loss with respect to the outputs, J^T by one backward pass."""

    kind = "ggn"

    def _state(self, x, t, i, first):
        out = _forward(self.model, x, i)
        leaf = out.detach().requires_grad_(True)
        loss = _loss(self.loss_fn, leaf, t, i)
        gl = torch.autograd.grad(loss, leaf, create_graph=True)[0]
        u = torch.zeros_like(out, requires_grad=True)
        gT = torch.autograd.grad(out, self.params, u, create_graph=True, allow_unused=True)
        if first:
            _none_connected(gT, "model's output")
        return (out, leaf, gl, u, gT), loss.detach()

    def _apply(self, state, vs):
        out, leaf, gl, u, gT = state
        jv = _second(gT, [u], vs)[0]
        if jv is None or not gl.requires_grad:
            return [None] * len(self.params)
        hjv = torch.autograd.grad(gl, leaf, jv, retain_graph=True)[0]
        return list(torch.autograd.grad(out, self.params, hjv, retain_graph=True, allow_unused=True))


class ResidualOperator(_ModelOperator):
    """The residual R = H - G = (1/N) sum_i sum_c (d l_i / d f_c) d^2 f_c(x_i) / d theta^2 as an
    operator (arguments as :class:`HessianOperator`): the Hessian-vector product of the surrogate
    s(theta) = sum_i <d l_i / d f (held fixed), f(x_i; theta)>, computed without H or G."""

    kind = "residual"

    def _state(self, x, t, i, first):
        out = _forward(self.model, x, i)
        leaf = out.detach().requires_grad_(True)
        loss = _loss(self.loss_fn, leaf, t, i)
        gl = torch.autograd.grad(loss, leaf)[0]
        grads = torch.autograd.grad((gl * out).sum(), self.params, create_graph=True, allow_unused=True)
        if first:
            _none_connected(grads, "model's output")
        return grads, loss.detach()

    def _apply(self, grads, vs):
        return _second(grads, self.params, vs)


class _LowRank(SymmetricOperator):
    """D^T D for the rows of D (r, n)."""

    def __init__(self, D: torch.Tensor):
        super().__init__()
        self.D, self.size, self.dtype, self.device = D, int(D.shape[1]), D.dtype, D.device

    def _matvec(self, v):
        return self.D.T @ (self.D @ v)

    def _matmat(self, V):
        return (V @ self.D.T) @ self.D


class _Difference(SymmetricOperator):
    """A - B for two operators of one size."""

    def __init__(self, A, B):
        super().__init__()
        self.A, self.B, self.size, self.dtype, self.device = A, B, A.size, A.dtype, A.device

    def _matvec(self, v):
        return self.A.matvec(v) - self.B.matvec(v)

    def _matmat(self, V):
        return self.A.matmat(V) - self.B.matmat(V)


def _hessian_operator(model, loss_fn, data, params, block, cache, batches=None) -> HessianOperator:
    return HessianOperator(model, loss_fn, data, params=params, block=block, cache=cache, batches=batches)


# ---------------------------------------------------------------------------------------------
# products, eigenvalues, traces, densities
# ---------------------------------------------------------------------------------------------

def hessian_vector_product(model, loss_fn, data, v, *, params=None, block=None) -> torch.Tensor:
    """H v for the Hessian H of the mean loss over ``data`` (see :class:`HessianOperator` for the
    arguments) and a flat vector ``v`` of one entry per selected parameter, in the order of
    ``model.named_parameters()``; by double backpropagation (Pearlmutter 1994). Returns a flat tensor
    in the parameters' dtype."""
    op = _hessian_operator(model, loss_fn, data, params, block, cache=None)
    v = as_tensor(v, "v", dtype=op.dtype, device=op.device, ndim=1)
    if v.shape[0] != op.size:
        raise ValueError(f"v: expected {op.size} entries (one per parameter), got {v.shape[0]}")
    return op.matvec(v)


def hessian_eigenvalues(model, loss_fn, data, k: int = 1, which: str = "top", *, tol: float | None = None,
                        max_iter: int | None = None, seed=None, params=None, block=None, eigenvectors: bool = False,
                        ncv: int | None = None, cache=None, progress: bool = False) -> HessianEigenvalues:
    """The k largest (``which="top"``), smallest (``"bottom"``) or both (``"both"``: k of each) eigenvalues
    of the Hessian of the mean loss, by thick-restart Lanczos with full reorthogonalization (Lanczos
    1950; Wu & Simon 2000): see :func:`thermolearn.landscape.lanczos.lanczos_eigenvalues` for ``tol``
    (relative residual, default 1e-6 in float64, 1e-4 otherwise), ``max_iter`` (Hessian-vector products),
    ``ncv`` (basis size) and ``seed`` (start vector); :class:`HessianOperator` for model, loss_fn, data,
    params, block (e.g. "0.weight": one diagonal block of the Hessian) and cache. Eigenvalues are in the
    loss's units per squared parameter unit, descending."""
    op = _hessian_operator(model, loss_fn, data, params, block, cache)
    return lanczos_eigenvalues(op, k, which, tol=tol, max_iter=max_iter, ncv=ncv, seed=seed,
                               eigenvectors=eigenvectors, progress=progress)


def block_eigenvalues(model, loss_fn, data, k: int = 1, which: str = "top", *, by: str = "tensor",
                      tol: float | None = None, max_iter: int | None = None, seed=None, cache=None,
                      progress: bool = False) -> dict[str, HessianEigenvalues]:
    """Eigenvalues of the diagonal blocks of the Hessian: one per parameter tensor (``by="tensor"``,
    keys the parameter names) or per module (``by="module"``, keys the module names, the parameters
    sharing the name before their last dot). k is reduced to a block's size where the block is smaller
    (for ``"both"`` to half of it). Other arguments as :func:`hessian_eigenvalues`; the blocks' start
    vectors come from ``spawn_seeds(seed, blocks)``."""
    names, _ = _select(model)
    if by == "tensor":
        groups = {n: [n] for n in names}
    elif by == "module":
        groups: dict[str, list[str]] = {}
        for n in names:
            groups.setdefault(n.rsplit(".", 1)[0] if "." in n else n, []).append(n)
    else:
        raise ValueError(f"by: expected 'tensor' or 'module', got {by!r}")
    k = check_int(k, "k")
    seeds = spawn_seeds(seed, len(groups))
    out = {}
    for s, (key, members) in zip(seeds, groups.items()):
        op = _hessian_operator(model, loss_fn, data, members, None, cache)
        w = which if (which != "both" or op.size >= 2) else "top"
        kb = max(1, min(k, op.size // 2 if w == "both" else op.size))
        out[key] = lanczos_eigenvalues(op, kb, w, tol=tol, max_iter=max_iter, seed=s, progress=progress)
    return out


def hessian_trace(model, loss_fn, data, probes: int = 100, method: str = "hutchinson", *, seed=None,
                  params=None, block=None, cache=None, progress: bool = False) -> HessianTrace:
    """tr(H) of the Hessian of the mean loss from ``probes`` Hessian-vector products with Rademacher
    vectors: Hutchinson's estimator (Hutchinson 1989) or Hutch++ (Meyer, Musco, Musco & Woodruff 2021),
    with an honest standard error (:func:`thermolearn.landscape.lanczos.stochastic_trace`). Arguments
    as :func:`hessian_eigenvalues`."""
    op = _hessian_operator(model, loss_fn, data, params, block, cache)
    return stochastic_trace(op, probes, method, seed=seed, progress=progress)


def hessian_density(model, loss_fn, data, probes: int = 10, steps: int = 80, *, seed=None, per_batch: bool = False,
                    batches: int | None = None, params=None, block=None, cache=None,
                    progress: bool = False) -> SpectralDensity:
    """The eigenvalue density of the Hessian of the mean loss by stochastic Lanczos quadrature
    (Golub & Meurant 1994; Lin, Saad & Yang 2016; Ghorbani, Krishnan & Xiao 2019): ``probes``
    Rademacher probes with ``steps`` Lanczos steps each (full reorthogonalization),
    probes * steps Hessian-vector products.

    per_batch : one SLQ of ``probes`` probes per batch of ``data`` (the Hessian of that batch's mean
        loss), so that ``density(grid, sigma, over="batches")`` gives the spread over batches; the
        batches' probes come from ``spawn_seeds(seed, batches)``.
    batches : use only the first ``batches`` batches.
    The result's ``moment(j)`` estimates tr(H^j) / n. Other arguments as :func:`hessian_eigenvalues`.
    """
    check_int(probes, "probes")
    check_int(steps, "steps")
    if not per_batch:
        op = _hessian_operator(model, loss_fn, data, params, block, cache, batches)
        return lanczos_quadrature(op, probes, steps, seed=seed, progress=progress)
    names, tensors = _select(model, params, block)
    limit = None if batches is None else check_int(batches, "batches")
    parts = [(x, t) for _, (x, t) in _Batches(data, tensors[0].dtype, tensors[0].device, limit)]
    seeds = spawn_seeds(seed, len(parts))
    out = []
    for b, (batch, s) in enumerate(zip(parts, seeds)):
        op = _hessian_operator(model, loss_fn, batch, names, None, True)
        out.append(lanczos_quadrature(op, probes, steps, seed=s, progress=progress, batch_index=b))
    return concat_densities(out)


# ---------------------------------------------------------------------------------------------
# Gauss-Newton split
# ---------------------------------------------------------------------------------------------

def _dense(op) -> torch.Tensor:
    if op.size > MAX_DENSE:
        raise ValueError(f"dense: {op.size} parameters are too many for dense (n, n) matrices (at most "
                         f"{MAX_DENSE}); use the operators")
    return op.dense()


@dataclass
class GaussNewtonSplit:
    """H = G + R: the Hessian of the mean loss, its generalized Gauss-Newton part and the residual.

    hessian, ggn, residual : :class:`HessianOperator`, :class:`GaussNewtonOperator` and
        :class:`ResidualOperator`, or with ``dense`` the (n, n) matrices they define, built column by
        column (each from its own autograd computation, so G + R = H is a check).
    size : n parameters; n_examples : N; loss : the mean loss.
    """

    hessian: object
    ggn: object
    residual: object
    dense: bool
    size: int
    n_examples: int
    loss: float

    def norms(self, probes: int = 30, seed=None) -> dict:
        """Frobenius norms of H, G and R: exact from dense matrices, else the estimate
        ||A||_F^2 = E ||A z||^2 over ``probes`` Rademacher z (the same z for the three), with the
        standard errors (delta method, keys ``<part>_stderr``; 0 when exact)."""
        out = {}
        if self.dense:
            for key in ("hessian", "ggn", "residual"):
                out[key], out[key + "_stderr"] = float(torch.linalg.norm(getattr(self, key))), 0.0
            return out
        probes = check_int(probes, "probes", 2)
        Z = _rademacher(probes, self.size, as_generator(seed), self.hessian.dtype, self.hessian.device)
        for key in ("hessian", "ggn", "residual"):
            sq = (getattr(self, key).matmat(Z).double() ** 2).sum(1)
            norm = math.sqrt(max(float(sq.mean()), 0.0))
            se = float(sq.std(unbiased=True)) / math.sqrt(probes)
            out[key], out[key + "_stderr"] = norm, se / (2 * norm) if norm > 0 else 0.0
        return out


def gauss_newton_split(model, loss_fn, data, *, dense: bool = False, params=None, block=None,
                       cache=None) -> GaussNewtonSplit:
    """The Gauss-Newton split H = G + R of the Hessian of the mean loss (Schraudolph 2002; Martens
    2020): G = (1/N) sum_i J_i^T H_i J_i, J_i the Jacobian of the model's output at example i and
    H_i the Hessian of the loss with respect to that output (PSD for convex losses such as
    cross-entropy and squared error), and R = (1/N) sum_i sum_c (d l_i / d f_c) d^2 f_c / d theta^2.
    ``dense``: (n, n) matrices instead of operators (at most MAX_DENSE parameters). Other arguments
    as :class:`HessianOperator`."""
    H = _hessian_operator(model, loss_fn, data, params, block, cache)
    G = GaussNewtonOperator(model, loss_fn, data, params=params, block=block, cache=cache)
    R = ResidualOperator(model, loss_fn, data, params=params, block=block, cache=cache)
    parts = (_dense(H), _dense(G), _dense(R)) if dense else (H, G, R)
    return GaussNewtonSplit(*parts, dense=bool(dense), size=H.size, n_examples=H.n_examples, loss=H.loss)


# ---------------------------------------------------------------------------------------------
# class decomposition of the Gauss-Newton matrix
# ---------------------------------------------------------------------------------------------

@dataclass
class ClassDecomposition:
    """Papyan's split of the Gauss-Newton matrix of a cross-entropy classifier:
    G = G_class + G_cross + G_within (see :func:`class_decomposition` for the definitions).

    num_classes : C; n_examples : N; counts : (C,) examples per true class.
    weights : (C, C) float64, W[c, c'] = sum over examples i of class c of p_ic'.
    class_eigenvalues : (C,) eigenvalues of G_class; cross_eigenvalues : (C(C-1),) of G_cross;
        means_eigenvalues : (C^2,) of G_class + G_cross (all from the C^2 x C^2 Gram matrix of the
        weighted means, descending, float64).
    ggn_eigenvalues : eigenvalues of G, descending: all of them with ``dense``, else the top k.
    within_eigenvalues : of G_within, descending: all with ``dense``, else the top ``within_k``.
    bulk_edge : the top eigenvalue of G_within.
    outliers : eigenvalues of G above ``bulk_edge`` (at most rank(G_class + G_cross) <= C(C-1), by
        Weyl's inequality); class_outliers, cross_outliers : eigenvalues of G_class, of G_cross above it.
    ggn, class_means, cross_class, within : (n, n) matrices with ``dense``, else operators
        (``matvec``/``matmat``; G_within = G - G_class - G_cross there).
    means : (C^2, n) the rows d_cc' = sqrt(W_cc' / N) delta_cc' (row c C + c'), G_class + G_cross = means^T means.
    dense : bool; matvecs : Gauss-Newton products used; seconds : wall time.
    """

    num_classes: int
    n_examples: int
    counts: torch.Tensor
    weights: torch.Tensor
    class_eigenvalues: torch.Tensor
    cross_eigenvalues: torch.Tensor
    means_eigenvalues: torch.Tensor
    ggn_eigenvalues: torch.Tensor
    within_eigenvalues: torch.Tensor
    bulk_edge: float
    outliers: int
    class_outliers: int
    cross_outliers: int
    ggn: object
    class_means: object
    cross_class: object
    within: object
    means: torch.Tensor
    dense: bool
    matvecs: int
    seconds: float


def _labels(t: torch.Tensor, C: int, i: int) -> torch.Tensor:
    if t.is_floating_point() or t.dtype == torch.bool or t.ndim != 1:
        raise ValueError(f"data: class_decomposition needs integer class labels, one per example; batch {i} has "
                         f"targets of dtype {t.dtype} and shape {tuple(t.shape)}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= C):
        raise ValueError(f"data: labels of batch {i} lie in [{int(t.min())}, {int(t.max())}], outside [0, {C - 1}] "
                         f"for {C} classes")
    return t.long()


def _descending(values: torch.Tensor) -> torch.Tensor:
    return torch.flip(values, [0])


def _eig_desc(M: torch.Tensor) -> torch.Tensor:
    if M.numel() == 0:
        return torch.zeros(0, dtype=torch.float64)
    return _descending(torch.linalg.eigvalsh(0.5 * (M + M.T).double()))


def _vjp_rows(out, params, U, op) -> torch.Tensor:
    """J^T u for each row u of U (r, *out.shape), flat (r, n)."""
    ctx = _quiet()
    try:
        if op._batched_ok:
            try:
                return op._flat(torch.autograd.grad(out, params, U, retain_graph=True, allow_unused=True,
                                                    is_grads_batched=True), U.shape[0])
            except RuntimeError:
                op._batched_ok = False
        return torch.cat([op._flat([None if g is None else g[None] for g in
                                    torch.autograd.grad(out, params, u, retain_graph=True, allow_unused=True)], 1)
                          for u in U])
    finally:
        ctx.__exit__(None, None, None)


def class_decomposition(model, data, num_classes: int | None = None, *, dense: bool = False, k: int | None = None,
                        within_k: int = 3, tol: float | None = 1e-4, max_iter: int | None = None, seed=None,
                        params=None, block=None, cache=None, progress: bool = False) -> ClassDecomposition:
    """Papyan's (2019, 2020) class structure of the Gauss-Newton matrix of a classifier trained with
    the mean cross-entropy on logits f_i = model(x_i), p_i = softmax(f_i).

    The cross-entropy Hessian in the logits is H_i = diag(p_i) - p_i p_i^T
    = sum_c' p_ic' (e_c' - p_i)(e_c' - p_i)^T, so with g_ic' = J_i^T (e_c' - p_i) (minus the gradient
    the example would have with label c')
        G = (1/N) sum_i sum_c' p_ic' g_ic' g_ic'^T.
    Grouping examples by their true class c, with weights W_cc' = sum_{i in c} p_ic' and weighted
    means delta_cc' = (1/W_cc') sum_{i in c} p_ic' g_ic', this splits exactly into
        G_class  = (1/N) sum_c W_cc delta_cc delta_cc^T                  (C terms, c' = c),
        G_cross  = (1/N) sum_{c != c'} W_cc' delta_cc' delta_cc'^T       (C(C-1) terms),
        G_within = (1/N) sum_{c, c'} sum_{i in c} p_ic' (g_ic' - delta_cc')(g_ic' - delta_cc')^T,
    G = G_class + G_cross + G_within. Since sum_c' p_ic' g_ic' = 0, sum_c' W_cc' delta_cc' = 0: the C^2
    means span at most C(C-1) dimensions. Each sum_{i in c} p_ic' g_ic' is one backward pass
    J^T u (C^2 of them, batched); the eigenvalues of the mean parts are those of the C^2 x C^2 Gram
    matrix of the rows sqrt(W_cc' / N) delta_cc', so they cost nothing in n.

    The outlier count (the eigenvalues of G separated from the bulk) is the number of eigenvalues of G
    above the top eigenvalue of G_within; by Weyl's inequality it is at most rank(G_class + G_cross).
    Papyan (2019) reports C outliers from the class means and C(C-1) smaller ones from the cross-class
    terms [unverified].

    num_classes : C (default: the model's output width; must equal it). dense : (n, n) matrices, each
        part from explicit per-example Jacobians (small models), and full spectra. k : eigenvalues of G
        computed by Lanczos without ``dense`` (default min(n, C^2)); within_k : of G_within. tol,
        max_iter, seed : for those Lanczos runs (tol 1e-4 relative residual by default). params, block,
        cache : as :class:`HessianOperator`. data : (inputs, labels) or batches of them, labels integers.
    """
    t0 = time.perf_counter()
    ggn = GaussNewtonOperator(model, nn.CrossEntropyLoss(), data, params=params, block=block, cache=cache)
    n, N = ggn.size, ggn.n_examples
    C = None
    rows_sum, W, counts, dense_parts = None, None, None, []
    for i, (x, t) in ggn._batches:
        with torch.enable_grad():
            out = _forward(model, x, i)
            if out.ndim != 2:
                raise ValueError(f"data: class_decomposition needs (examples, classes) logits, got outputs of shape "
                                 f"{tuple(out.shape)} for batch {i}")
            if C is None:
                C = int(out.shape[1])
                if num_classes is not None and check_int(num_classes, "num_classes", 2) != C:
                    raise ValueError(f"num_classes: the model has {C} outputs, got num_classes={num_classes}")
                if C < 2:
                    raise ValueError(f"model: a classifier needs at least 2 outputs, got {C}")
                rows_sum = torch.zeros(C * C, n, dtype=ggn.dtype, device=ggn.device)
                W = torch.zeros(C, C, dtype=torch.float64)
                counts = torch.zeros(C, dtype=torch.int64)
            y = _labels(t, C, i)
            p = torch.softmax(out.detach(), dim=1)
            onehot = torch.nn.functional.one_hot(y, C).to(p.dtype)
            E = torch.eye(C, dtype=p.dtype, device=p.device)
            A = p[:, :, None] * (E[None] - p[:, None, :])                # A[i, c'] = p_ic' (e_c' - p_i)
            U = onehot.T[:, None, :, None] * A.permute(1, 0, 2)[None]    # (c, c', i, logit)
            rows_sum += _vjp_rows(out, ggn.params, U.reshape(C * C, *out.shape), ggn)
            W += (onehot.T.double() @ p.double()).cpu()
            counts += onehot.sum(0).long().cpu()
            if dense:
                if x.shape[0] * C * n > 5e7:
                    raise ValueError(f"dense: per-example Jacobians of {x.shape[0]} x {C} x {n} entries are too many; "
                                     f"use dense=False")
                r = x.shape[0] * C
                chunks = []
                for lo in range(0, r, 256):
                    eye = torch.zeros(min(256, r - lo), r, dtype=out.dtype, device=out.device)
                    eye[torch.arange(eye.shape[0]), torch.arange(lo, lo + eye.shape[0])] = 1.0
                    chunks.append(_vjp_rows(out, ggn.params, eye.reshape(-1, *out.shape), ggn))
                J = torch.cat(chunks).reshape(x.shape[0], C, n)
                dense_parts.append((J.double(), p.double(), y))
    scale = torch.sqrt(N * W.reshape(-1)).to(ggn.dtype).to(ggn.device)
    D = torch.where(scale[:, None] > 0, rows_sum / torch.where(scale > 0, scale, 1.0)[:, None],
                    torch.zeros((), dtype=ggn.dtype, device=ggn.device))
    gram = (D.double() @ D.double().T).cpu()
    cls = torch.tensor([c * C + c for c in range(C)])
    crs = torch.tensor([c * C + d for c in range(C) for d in range(C) if d != c])
    class_eigs, cross_eigs = _eig_desc(gram[cls][:, cls]), _eig_desc(gram[crs][:, crs])
    means_eigs = _eig_desc(gram)
    start = ggn.matvecs
    if dense:
        G, Gc, Gx, Gw = _dense_class_parts(dense_parts, C, N, W)
        ggn_eigs, within_eigs = _eig_desc(G), _eig_desc(Gw)
        parts = (G.to(ggn.dtype), Gc.to(ggn.dtype), Gx.to(ggn.dtype), Gw.to(ggn.dtype))
    else:
        kk = min(n, C * C) if k is None else min(check_int(k, "k"), n)
        s1, s2 = spawn_seeds(seed, 2)
        ggn_eigs = lanczos_eigenvalues(ggn, kk, "top", tol=tol, max_iter=max_iter, seed=s1,
                                       progress=progress).eigenvalues
        means_op = _LowRank(D)
        within_op = _Difference(ggn, means_op)
        within_eigs = lanczos_eigenvalues(within_op, min(check_int(within_k, "within_k"), n), "top", tol=tol,
                                          max_iter=max_iter, seed=s2, progress=progress).eigenvalues
        parts = (ggn, _LowRank(D[cls]), _LowRank(D[crs]), within_op)
    edge = float(within_eigs[0])
    return ClassDecomposition(
        num_classes=C, n_examples=N, counts=counts, weights=W, class_eigenvalues=class_eigs,
        cross_eigenvalues=cross_eigs, means_eigenvalues=means_eigs, ggn_eigenvalues=ggn_eigs,
        within_eigenvalues=within_eigs, bulk_edge=edge, outliers=int((ggn_eigs > edge).sum()),
        class_outliers=int((class_eigs > edge).sum()), cross_outliers=int((cross_eigs > edge).sum()),
        ggn=parts[0], class_means=parts[1], cross_class=parts[2], within=parts[3], means=D, dense=bool(dense),
        matvecs=ggn.matvecs - start, seconds=time.perf_counter() - t0)


def _dense_class_parts(parts, C: int, N: int, W: torch.Tensor):
    """G, G_class, G_cross, G_within as float64 matrices from per-example Jacobians J (n_b, C, n)."""
    J = torch.cat([j for j, _, _ in parts])
    P = torch.cat([p for _, p, _ in parts])
    Y = torch.cat([y for _, _, y in parts]).cpu()
    n = J.shape[2]
    JtP = torch.einsum("icn,ic->in", J, P)                          # J_i^T p_i
    G = (torch.einsum("icn,ic,icm->nm", J, P, J) - JtP.T @ JtP) / N   # (1/N) sum_i J_i^T (diag p_i - p_i p_i^T) J_i
    g = J - JtP[:, None, :]                                          # g_ic' = J_i^T (e_c' - p_i)
    Gc = torch.zeros(n, n, dtype=torch.float64, device=J.device)
    Gx, Gw = torch.zeros_like(Gc), torch.zeros_like(Gc)
    for c in range(C):
        members = (Y == c).nonzero().flatten()
        for d in range(C):
            if float(W[c, d]) <= 0:
                continue
            w = P[members, d]
            delta = (w[:, None] * g[members, d]).sum(0) / float(W[c, d])
            term = float(W[c, d]) * torch.outer(delta, delta) / N
            if c == d:
                Gc += term
            else:
                Gx += term
            r = g[members, d] - delta
            Gw += (r.T * w) @ r / N
    return G, Gc, Gx, Gw

"""Flatness measures for ordinary PyTorch networks: local energy under weight noise, and
distances between replicas.

Local energy (Baldassi et al., PNAS 2020; Pittorino et al., ICLR 2021, where it is the training
error after multiplicative weight noise): the training loss / error of a network whose weights
are perturbed, as a function of the perturbation size sigma. A flat minimum keeps a low local
energy up to larger sigma than a sharp one.

* ``kind="multiplicative"``: w -> w (1 + sigma z),
* ``kind="additive"``:       w -> w + sigma z,
* ``kind="layer-scaled"``:   w -> w + sigma rms(W) z,

with z ~ N(0, 1) independently per weight and rms(W) = |W| / sqrt(size of W) the root mean
square of the parameter tensor W that holds w (so the perturbation of each tensor has a norm
close to sigma |W|, independent of the tensor's size).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from .._numerics import check_int, check_reals
from ..results import LocalEnergy
from ..seeding import as_generator

__all__ = ["classification_error", "distance_summary", "local_energy", "replica_distances",
           "squared_distances"]

_KINDS = ("multiplicative", "additive", "layer-scaled")
_METRICS = ("loss", "error", "both")


def classification_error(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fraction of misclassified examples in a batch.

    * ``output`` of shape (n, C), C > 1: predicted class argmax; ``target`` class indices (n,)
      or one-hot / probabilities (n, C) (argmax taken).
    * one output per example, shape (n,) or (n, 1), read as a logit / score with threshold 0:
      targets with a negative entry are read as labels +-1 (error when output * target <= 0),
      otherwise as labels 0/1 (error when (output > 0) != (target > 0.5)).
    """
    if output.ndim >= 2 and output.shape[-1] > 1:
        pred = output.argmax(-1)
        if target.shape == output.shape and target.is_floating_point():
            target = target.argmax(-1)
        return (pred != target.reshape(pred.shape)).to(torch.float64).mean()
    out = output.reshape(-1)
    tgt = target.reshape(-1).to(out.dtype)
    if bool((tgt < 0).any()):
        wrong = out * tgt <= 0
    else:
        wrong = (out > 0) != (tgt > 0.5)
    return wrong.to(torch.float64).mean()


def local_energy(model: nn.Module, loss_fn: Callable, data, sigmas,
                 kind: str = "multiplicative", draws: int = 10, seed=0, metric: str = "loss",
                 *, select: Callable | None = None, error_fn: Callable | None = None):
    """Loss and/or error of ``model`` on ``data`` under random weight perturbations of size sigma.

    Returns a :class:`thermolearn.results.LocalEnergy` (sizes = sigmas, values (len(sigmas),
    draws), base = the unperturbed value; mean, std with ddof = 1, sem); with ``metric="both"``
    a dict ``{"loss": LocalEnergy, "error": LocalEnergy}`` of the same draws.

    Parameters
    ----------
    model : the network; its weights, buffers and train/eval flags are left as they were (the
        perturbed weights are passed with ``torch.func.functional_call``). It is evaluated in
        eval mode (BatchNorm running statistics, no dropout), under ``torch.no_grad``.
    loss_fn : ``loss_fn(output, target)`` returning the mean loss of a batch (torch losses with
        the default reduction). Batches are weighted by their size, so the result is the mean
        over all examples of ``data``.
    data : one batch ``(x, target)`` (a pair of tensors), or an iterable of such batches (a
        DataLoader, a list); ``model(x)`` gives the output. Tensors are moved to the device of
        the model's first parameter. A one-shot iterator is read into a list once.
    sigmas : a number or a 1-d sequence of noise sizes >= 0.
    kind : ``"multiplicative"`` (w (1 + sigma z)), ``"additive"`` (w + sigma z) or
        ``"layer-scaled"`` (w + sigma rms(W) z: a relative perturbation of each tensor).
    draws : number of noise draws per sigma (>= 1).
    seed : int, ``torch.Generator`` or None. The draws use common random numbers: draw k uses
        the same z at every sigma, so the curve is smooth in sigma and the value at one sigma
        does not depend on the other sigmas requested. z is drawn, draw after draw, with
        ``torch.randn(shape, generator=..., dtype=param dtype)`` for each perturbed parameter in
        ``model.named_parameters()`` order.
    metric : ``"loss"``, ``"error"`` or ``"both"``.
    select : optional ``select(name, param) -> bool`` choosing the perturbed parameters
        (default all); the others keep their values.
    error_fn : ``error_fn(output, target)`` giving the batch error rate; default
        :func:`classification_error`.

    sigma = 0 is not evaluated again: every draw gets exactly the unperturbed value.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind: expected one of {_KINDS}, got {kind!r}")
    if metric not in _METRICS:
        raise ValueError(f"metric: expected one of {_METRICS}, got {metric!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    draws = check_int(draws, "draws")
    sig = check_reals(sigmas, "sigmas")
    want_loss = metric in ("loss", "both")
    want_err = metric in ("error", "both")
    err_fn = classification_error if error_fn is None else error_fn
    if want_loss and not callable(loss_fn):
        raise TypeError(f"loss_fn: expected a callable (output, target) -> loss, got {loss_fn!r}")

    named = [(n, p) for n, p in model.named_parameters() if select is None or select(n, p)]
    if not named:
        raise ValueError("model: no parameters to perturb (check `select`)")
    device = named[0][1].device
    batches = _batches(data)
    gen = as_generator(seed)

    def evaluate(params):
        tot_loss, tot_err, n_tot = 0.0, 0.0, 0
        for x, target in batches:
            x, target = _to(x, device), _to(target, device)
            out = model(x) if params is None else functional_call(model, params, (x,))
            n = int(target.shape[0]) if isinstance(target, torch.Tensor) else len(target)
            if want_loss:
                tot_loss += float(loss_fn(out, target)) * n
            if want_err:
                tot_err += float(err_fn(out, target)) * n
            n_tot += n
        if n_tot == 0:
            raise ValueError("data: no examples")
        return tot_loss / n_tot, tot_err / n_tot

    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            base_loss, base_err = evaluate(None)
            L = np.full((sig.size, draws), np.nan)
            E = np.full((sig.size, draws), np.nan)
            zero = sig == 0
            L[zero], E[zero] = base_loss, base_err
            scales = None
            if kind == "layer-scaled":
                scales = [p.detach().norm() / math.sqrt(max(p.numel(), 1)) for _, p in named]
            for k in range(draws):
                zs = [torch.randn(p.shape, generator=gen, device=gen.device, dtype=p.dtype)
                      .to(p.device) for _, p in named]
                if scales is not None:
                    zs = [z * s for z, s in zip(zs, scales)]
                for i, s in enumerate(sig.tolist()):
                    if s == 0:
                        continue
                    if kind == "multiplicative":
                        pert = {n: p.detach() * (1.0 + s * z) for (n, p), z in zip(named, zs)}
                    else:
                        pert = {n: p.detach() + s * z for (n, p), z in zip(named, zs)}
                    L[i, k], E[i, k] = evaluate(pert)
    finally:
        for m, flag in flags:
            m.training = flag

    results = {}
    if want_loss:
        results["loss"] = LocalEnergy(sizes=sig, kind=kind, metric="loss", values=L, base=base_loss)
    if want_err:
        results["error"] = LocalEnergy(sizes=sig, kind=kind, metric="error", values=E, base=base_err)
    return results if metric == "both" else results[metric]


def _batches(data):
    """A re-iterable sequence of (x, target) batches."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor) \
            and isinstance(data[1], torch.Tensor):
        return [tuple(data)]
    try:
        it = iter(data)
    except TypeError:
        raise TypeError("data: expected an (x, target) pair of tensors or an iterable of such "
                        f"batches, got {type(data).__name__}") from None
    if it is data:                      # a one-shot iterator: read it once
        data = list(it)
    return data


def _to(x, device):
    return x.to(device) if isinstance(x, torch.Tensor) and x.device != device else x


# ---------------------------------------------------------------------------------------------
# distances between replicas
# ---------------------------------------------------------------------------------------------

def _flat_params(obj, name: str) -> list[torch.Tensor]:
    ts = list(obj.parameters()) if isinstance(obj, nn.Module) else list(obj)
    if not all(isinstance(t, torch.Tensor) for t in ts):
        raise TypeError(f"{name}: expected an nn.Module or an iterable of tensors")
    return [t.detach() for t in ts]


def squared_distances(stacked, center=None, mean=None):
    """The per-replica squared distances behind every distance of :mod:`thermolearn.deep`.

    ``stacked``: tensors (y, *shape), one per parameter tensor, replica a in row a; ``center``:
    tensors of the shapes ``shape`` (the center c), or None for the replicas' mean; ``mean``: the
    mean to measure the spread from, default the mean over the y rows (a caller that holds only
    some replicas, such as one process of a group, passes the mean over all of them).
    Returns float64 tensors (y,) ``to_center`` = |w_a - c|^2 and ``to_mean`` = |w_a - w_bar|^2,
    summed over all tensors, computed in float64."""
    stacked = [torch.as_tensor(W).detach() for W in stacked]
    if not stacked:
        raise ValueError("stacked: no tensors")
    y = stacked[0].shape[0]
    to_c = torch.zeros(y, dtype=torch.float64)
    to_m = torch.zeros(y, dtype=torch.float64)
    for j, W in enumerate(stacked):
        W = W.to(torch.float64)
        m = W.mean(0) if mean is None else mean[j].detach().to(device=W.device, dtype=torch.float64)
        dm = ((W - m) ** 2).reshape(y, -1).sum(1)
        to_m += dm.cpu()
        if center is None and mean is None:
            to_c += dm.cpu()
        else:
            c = m if center is None else center[j].detach().to(device=W.device, dtype=torch.float64)
            to_c += ((W - c) ** 2).reshape(y, -1).sum(1).cpu()
    return to_c, to_m


def distance_summary(to_center: torch.Tensor, to_mean: torch.Tensor) -> dict:
    """The distance dict of :func:`replica_distances` from the per-replica squared distances of
    :func:`squared_distances`: ``"to_center"`` (y,), ``"mean_to_center"``, and ``"pairwise"`` =
    mean over pairs a < b of |w_a - w_b|^2 = 2 / (y - 1) * sum_a |w_a - w_bar|^2 (NaN for y = 1)."""
    y = int(to_center.shape[0])
    pairwise = 2.0 * float(to_mean.sum()) / (y - 1) if y > 1 else math.nan
    return {"to_center": to_center, "mean_to_center": float(to_center.mean()), "pairwise": pairwise}


def replica_distances(replicas, center=None) -> dict:
    """Squared Euclidean distances (all parameters together) of separate networks to a center
    and between them, e.g. the workers of :class:`~thermolearn.deep.elastic.ElasticAveraging`
    or independently trained networks.

    ``replicas``: a sequence of y >= 1 networks (``nn.Module``) or parameter lists of equal
    shapes; ``center``: a network / parameter list of the same shapes, or None for the replicas'
    mean. Returns the dict that :meth:`thermolearn.deep.Replicated.distances` returns too:

    * ``"to_center"``: float64 tensor (y,), |w_a - c|^2;
    * ``"mean_to_center"``: their mean;
    * ``"pairwise"``: mean over pairs a < b of |w_a - w_b|^2 (NaN for one replica), computed
      from centered values as 2 / (y - 1) * sum_a |w_a - w_bar|^2.

    Computed in float64. Divide by the number of weights for per-weight distances.
    """
    reps = [_flat_params(r, f"replicas[{a}]") for a, r in enumerate(replicas)]
    if not reps:
        raise ValueError("replicas: expected at least one replica")
    shapes = [tuple(t.shape) for t in reps[0]]
    for a, r in enumerate(reps[1:], start=1):
        if [tuple(t.shape) for t in r] != shapes:
            raise ValueError(f"replicas: replica {a} does not have the shapes of replica 0")
    cen = None if center is None else _flat_params(center, "center")
    if cen is not None and [tuple(t.shape) for t in cen] != shapes:
        raise ValueError("center: its tensors do not have the replicas' shapes")
    stacked = [torch.stack([r[j].to(device=reps[0][j].device, dtype=torch.float64) for r in reps])
               for j in range(len(shapes))]
    return distance_summary(*squared_distances(stacked, cen))

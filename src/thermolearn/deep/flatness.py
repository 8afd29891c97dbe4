"""Flatness measures for ordinary PyTorch networks: local energy under weight noise, and
distances between replicas.

Local energy (shared/specs/replicas.md, "Continuous networks"): the training loss / error of
a network whose weights are perturbed, as a function of the perturbation size sigma. A flat
minimum keeps a low local energy up to larger sigma than a sharp one.

* multiplicative noise: w -> w (1 + sigma z),
* additive noise:       w -> w + sigma z, or w + sigma rms(W) z with ``layer_scaled=True``,

with z ~ N(0, 1) independently per weight and rms(W) = |W| / sqrt(size of W) the root mean
square of the parameter tensor W that holds w (so the perturbation of each tensor has a norm
close to sigma |W|, independent of the tensor's size).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from .._numerics import check_int, check_reals
from ..seeding import as_generator

__all__ = ["LocalEnergy", "classification_error", "local_energy", "replica_distances"]

_KINDS = ("multiplicative", "additive")
_METRICS = ("loss", "error", "both")


@dataclass
class LocalEnergy:
    """Result of :func:`local_energy`. Arrays are float64 NumPy arrays indexed like ``sigmas``;
    the metrics that were not requested are None.

    ``*_mean`` / ``*_std``: mean and sample standard deviation (ddof = 1; 0 for one draw) over
    the draws; ``*_draws``: every draw, shape (len(sigmas), draws); ``base_*``: the unperturbed
    network. The standard error of a mean is ``std / sqrt(draws)``.
    """

    sigmas: np.ndarray
    kind: str
    draws: int
    base_loss: float | None
    base_error: float | None
    loss_mean: np.ndarray | None = None
    loss_std: np.ndarray | None = None
    error_mean: np.ndarray | None = None
    error_std: np.ndarray | None = None
    loss_draws: np.ndarray | None = field(default=None, repr=False)
    error_draws: np.ndarray | None = field(default=None, repr=False)


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
                 *, layer_scaled: bool = False, select: Callable | None = None,
                 error_fn: Callable | None = None) -> LocalEnergy:
    """Loss and/or error of ``model`` on ``data`` under random weight perturbations of size sigma.

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
    kind : "multiplicative" (w (1 + sigma z)) or "additive" (w + sigma z).
    draws : number of noise draws per sigma (>= 1).
    seed : int, ``torch.Generator`` or None. The draws use common random numbers: draw k uses
        the same z at every sigma, so the curve is smooth in sigma and the value at one sigma
        does not depend on the other sigmas requested. z is drawn, draw after draw, with
        ``torch.randn(shape, generator=..., dtype=param dtype)`` for each perturbed parameter in
        ``model.named_parameters()`` order.
    metric : "loss", "error" or "both".
    layer_scaled : additive noise only: scale z by the root mean square of its parameter tensor
        (w + sigma rms(W) z), a relative perturbation of each tensor; default unscaled.
    select : optional ``select(name, param) -> bool`` choosing the perturbed parameters
        (default all); the others keep their values.
    error_fn : ``error_fn(output, target)`` giving the batch error rate; default
        :func:`classification_error`.

    sigma = 0 is not evaluated again: it gets exactly the unperturbed value and std 0.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind: expected one of {_KINDS}, got {kind!r}")
    if metric not in _METRICS:
        raise ValueError(f"metric: expected one of {_METRICS}, got {metric!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    draws = check_int(draws, "draws")
    if layer_scaled and kind != "additive":
        raise ValueError("layer_scaled: only meaningful with kind='additive'")
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
            if layer_scaled:
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

    def summary(a, base):
        mean = a.mean(axis=1)
        std = a.std(axis=1, ddof=1) if draws > 1 else np.zeros(sig.size)
        mean[zero], std[zero] = base, 0.0               # exact, whatever the rounding of mean()
        return mean, std

    res = LocalEnergy(sigmas=sig, kind=kind, draws=draws,
                      base_loss=base_loss if want_loss else None,
                      base_error=base_err if want_err else None)
    if want_loss:
        res.loss_mean, res.loss_std = summary(L, base_loss)
        res.loss_draws = L
    if want_err:
        res.error_mean, res.error_std = summary(E, base_err)
        res.error_draws = E
    return res


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


def replica_distances(replicas, center=None) -> dict:
    """Squared Euclidean distances (all parameters together) of separate networks to a center
    and between them, e.g. the workers of :class:`~thermolearn.deep.elastic.ElasticAveraging`
    or independently trained networks.

    ``replicas``: a sequence of y >= 1 networks (``nn.Module``) or parameter lists of equal
    shapes; ``center``: a network / parameter list of the same shapes, or None for the replicas'
    mean. Returns the dict of :meth:`thermolearn.deep.Replicated.distances`:

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
    y = len(reps)
    to_c = torch.zeros(y, dtype=torch.float64)
    spread = 0.0                                        # sum_a |w_a - w_bar|^2
    for j in range(len(shapes)):
        dev = reps[0][j].device
        W = torch.stack([r[j].to(device=dev, dtype=torch.float64) for r in reps])
        mean = W.mean(0)
        spread += float(((W - mean) ** 2).sum())
        c = mean if cen is None else cen[j].to(device=dev, dtype=torch.float64)
        to_c += ((W - c) ** 2).reshape(y, -1).sum(1).cpu()
    pairwise = 2.0 * spread / (y - 1) if y > 1 else math.nan
    return {"to_center": to_c, "mean_to_center": float(to_c.mean()), "pairwise": pairwise}

"""Elastic averaging SGD (EASGD) for y replicas of an ordinary PyTorch network.

Zhang, Choromanska, LeCun, "Deep learning with Elastic Averaging SGD", NIPS 2015
(arXiv:1412.6651), the synchronous update of their Section 3.

Synchronous update of y workers x_1..x_y (each its own network and minibatch) and a center x~,
at step t = 0, 1, 2, ... with gradients g_a evaluated at x_a:

    elastic step (t divisible by tau):
        x_a <- x_a - eta_a (g_a + gamma_a(t) (x_a - x~))         for every worker a
        x~  <- x~  + sum_a eta_a gamma_a(t) (x_a - x~)           (x_a, x~ before the step)
    other steps:
        x_a <- x_a - eta_a g_a,        x~ unchanged

The coupling gamma is the paper's rho (renamed to the library's one name for a coupling
strength); eta_a gamma_a is the paper's moving rate alpha: at an elastic step the center moves a
fraction beta = y * alpha of the way to the workers' mean (the paper's experiments take
beta = 0.9, i.e. gamma = 0.9 / (y * eta)); keep beta below 1 so that the center does not
overshoot. Parameters with ``requires_grad=False`` are left untouched (as torch.optim leaves
them): no gradient, no elastic term, no weight decay, and they do not pull the center.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .._numerics import check_int, check_real
from ..schedules import Constant, as_schedule
from ._functional import GammaInGroups

__all__ = ["ElasticAveraging"]


class ElasticAveraging(GammaInGroups, torch.optim.Optimizer):
    """EASGD (Zhang, Choromanska & LeCun 2015) for y separate networks, holding the center.

    One optimizer drives all workers: each worker is one parameter group, and the center is
    kept inside the optimizer (in its state, so ``state_dict`` saves and restores it)::

        models = [make_net() for _ in range(y)]
        opt = ElasticAveraging([m.parameters() for m in models], lr=0.05, gamma=1.0, tau=4)
        for batches in loader:                      # one minibatch per worker
            opt.zero_grad()
            for m, (x, t) in zip(models, batches):
                loss_fn(m(x), t).backward()
            opt.step()
        center = opt.center_module(models[0])       # a copy of a template with the center weights

    Parameters
    ----------
    workers : a sequence of y >= 1 workers, each an ``nn.Module``, an iterable of parameters, or
        a dict ``{"params": ..., "lr": ...}`` overriding per worker any of lr, gamma, momentum,
        nesterov, weight_decay (as torch parameter groups do; learning-rate schedulers act
        on all workers). All workers must have parameters of the same shapes, in the same order.
    lr : eta, the learning rate of the workers.
    gamma : the elastic coupling (rho in the paper), a number or a schedule from
        :mod:`thermolearn.schedules` of the step count t; gamma = 0 gives y independent SGD runs
        (the center then never moves). ``state_dict`` stores a schedule as its description;
        ``load_state_dict`` keeps the constructor's schedule.
    tau : communication period: the elastic step happens at steps t = 0, tau, 2 tau, ...;
        steps in between are plain SGD steps of the workers and leave the center alone.
    momentum, nesterov : momentum of the gradient part of each worker's step, in the form of
        ``torch.optim.SGD`` (no dampening); the elastic term does not enter the buffer. This is
        heavy-ball / torch-Nesterov momentum on the gradient at x_a, not the look-ahead gradient
        of the paper's EAMSGD.
    weight_decay : L2 coefficient added to each worker's gradient.
    center : the initial center: None (default) for the mean of the workers' initial
        parameters (which is their common value when all start equal, as in the paper), or an
        ``nn.Module`` / iterable of tensors with the workers' shapes.

    ``step(closure=None)``: the optional closure must compute the gradients of all workers
    (e.g. backpropagate the sum of their losses) and return a loss; it is called once, before
    the update. A trainable parameter whose ``.grad`` is None counts as having zero gradient (its
    elastic term still applies); a parameter with ``requires_grad=False`` is not touched.
    """

    def __init__(self, workers, lr: float = 0.01, gamma=1.0, tau: int = 1,
                 momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0,
                 center=None):
        if isinstance(workers, (nn.Module, torch.Tensor, dict)):
            raise TypeError("workers: expected a sequence of workers (modules, parameter iterables "
                            "or parameter-group dicts), one per replica")
        groups = []
        for w in workers:
            if isinstance(w, nn.Module):
                w = {"params": list(w.parameters())}
            elif isinstance(w, dict):
                w = dict(w)
                w["params"] = list(w["params"]) if not isinstance(w["params"], torch.Tensor) \
                    else [w["params"]]
            elif isinstance(w, torch.Tensor):
                w = {"params": [w]}
            else:
                w = {"params": list(w)}
            groups.append(w)
        if not groups:
            raise ValueError("workers: expected at least one worker, got none")
        self.tau = check_int(tau, "tau")
        defaults = dict(lr=lr, gamma=gamma, momentum=momentum, nesterov=nesterov,
                        weight_decay=weight_decay)
        _check_group(defaults)
        super().__init__(groups, defaults)
        for g in self.param_groups:
            _check_group(g)
        shapes = [tuple(p.shape) for p in self.param_groups[0]["params"]]
        for a, g in enumerate(self.param_groups[1:], start=1):
            other = [tuple(p.shape) for p in g["params"]]
            if other != shapes:
                raise ValueError(f"workers: worker {a} has parameter shapes {other}, worker 0 has "
                                 f"{shapes}; all workers must have the same architecture")
        self._init_center(center)

    def add_param_group(self, param_group: dict) -> None:
        if getattr(self, "_center_ready", False):
            raise RuntimeError("ElasticAveraging: workers cannot be added after construction")
        super().add_param_group(param_group)

    # ------------------------------------------------------------------ center bookkeeping

    def _init_center(self, center) -> None:
        lead = self.param_groups[0]["params"]
        if center is None:
            values = []
            with torch.no_grad():
                for j, p in enumerate(lead):
                    acc = torch.zeros_like(p, dtype=torch.float64)
                    for g in self.param_groups:
                        acc += g["params"][j].detach().to(torch.float64)
                    values.append((acc / len(self.param_groups)).to(p.dtype))
        else:
            src = list(center.parameters()) if isinstance(center, nn.Module) else list(center)
            if [tuple(c.shape) for c in src] != [tuple(p.shape) for p in lead]:
                raise ValueError("center: its tensors must have the workers' shapes, in order; got "
                                 f"{[tuple(c.shape) for c in src]}")
            values = [torch.as_tensor(c).detach().to(dtype=p.dtype, device=p.device).clone()
                      for c, p in zip(src, lead)]
        for p, c in zip(lead, values):
            self.state[p]["center"] = c
        self.state[lead[0]]["step"] = 0
        self._center_ready = True

    @property
    def n_workers(self) -> int:
        return len(self.param_groups)

    @property
    def steps(self) -> int:
        """Steps taken so far (t; the next step is elastic when t % tau == 0)."""
        return int(self.state[self.param_groups[0]["params"][0]]["step"])

    def _center(self) -> list[torch.Tensor]:
        return [self.state[p]["center"] for p in self.param_groups[0]["params"]]

    def center_parameters(self) -> list[torch.Tensor]:
        """Copies of the center tensors, in the workers' parameter order."""
        return [c.detach().clone() for c in self._center()]

    def center_module(self, template: nn.Module) -> nn.Module:
        """A deep copy of ``template`` (a network of the workers' architecture) whose parameters
        are the center. Buffers (e.g. BatchNorm statistics) are those of the template."""
        net = copy.deepcopy(template)
        params = list(net.parameters())
        centre = self._center()
        if [tuple(p.shape) for p in params] != [tuple(c.shape) for c in centre]:
            raise ValueError("template: its parameters do not match the workers' shapes")
        with torch.no_grad():
            for p, c in zip(params, centre):
                p.copy_(c)
        return net

    def distances(self):
        """Squared distances of the workers to the center and mean pairwise squared distance:
        the dict of :func:`thermolearn.deep.flatness.replica_distances` ("to_center",
        "mean_to_center", "pairwise"), as :meth:`thermolearn.deep.Replicated.distances` gives,
        over the parameters that require grad."""
        from .flatness import replica_distances
        lead = self.param_groups[0]["params"]
        keep = [j for j, p in enumerate(lead) if p.requires_grad]
        centre = self._center()
        return replica_distances([[g["params"][j] for j in keep] for g in self.param_groups],
                                 center=[centre[j] for j in keep])

    # ------------------------------------------------------------------ the update

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        lead_state = self.state[self.param_groups[0]["params"][0]]
        t = int(lead_state["step"])
        elastic = t % self.tau == 0
        groups = self.param_groups
        gammas = [_coupling(group, t) for group in groups] if elastic else [0.0] * len(groups)
        for j, p0 in enumerate(groups[0]["params"]):
            center = self.state[p0]["center"]
            pull = None
            for group, gamma in zip(groups, gammas):
                p = group["params"][j]
                if not p.requires_grad:
                    continue
                lr, wd, mom = group["lr"], group["weight_decay"], group["momentum"]
                d = p.grad
                if wd != 0:
                    d = p.mul(wd) if d is None else d.add(p, alpha=wd)
                if mom != 0:
                    buf = self.state[p].get("momentum_buffer")
                    g = d if d is not None else torch.zeros_like(p)
                    if buf is None:
                        buf = self.state[p]["momentum_buffer"] = g.detach().clone()
                    else:
                        buf.mul_(mom).add_(g)
                    d = g.add(buf, alpha=mom) if group["nesterov"] else buf
                if elastic and gamma != 0:
                    e = (p - center).mul_(lr * gamma)              # eta gamma (x_a - x~), before the step
                    pull = e.clone() if pull is None else pull.add_(e)
                    p.sub_(e)
                if d is not None:
                    p.add_(d, alpha=-lr)
            if pull is not None:
                center.add_(pull)
        lead_state["step"] = t + 1
        return loss


def _coupling(group: dict, t: int) -> float:
    """gamma of a worker at step t (a number, or its schedule read at t)."""
    gamma = group["gamma"]
    if isinstance(gamma, float):
        return gamma
    return check_real(gamma(t), "gamma", minimum=0.0, strict=False, what=f" at t={t}")


def _check_group(group: dict) -> None:
    group["lr"] = check_real(group["lr"], "lr", minimum=0.0, strict=False)
    gamma = as_schedule(group["gamma"], "gamma", minimum=0.0)
    # a number stays a float (so that state_dict holds plain numbers); schedules are kept
    group["gamma"] = gamma.value if isinstance(gamma, Constant) else gamma
    m = check_real(group["momentum"], "momentum", minimum=0.0, strict=False)
    if m >= 1:
        raise ValueError(f"momentum: expected a number in [0, 1), got {group['momentum']!r}")
    group["momentum"] = m
    group["weight_decay"] = check_real(group["weight_decay"], "weight_decay", minimum=0.0,
                                       strict=False)
    if group["nesterov"] not in (True, False):
        raise ValueError(f"nesterov: expected True or False, got {group['nesterov']!r}")
    group["nesterov"] = bool(group["nesterov"])
    if group["nesterov"] and group["momentum"] == 0:
        raise ValueError("nesterov: needs momentum > 0")

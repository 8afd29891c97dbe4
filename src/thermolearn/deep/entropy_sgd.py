"""Entropy-SGD: gradient descent on the local entropy of the loss, for ordinary PyTorch networks.

Chaudhari, Choromanska, Soatto, LeCun, Baldassi, Borgs, Chayes, Sagun, Zecchina, "Entropy-SGD:
biasing gradient descent into wide valleys", ICLR 2017 (arXiv:1611.01838); J. Stat. Mech. (2019)
124018; Algorithm 1 of the ICLR paper.

Algorithm (one outer step ``t``, weights w, loss f evaluated on a fresh minibatch at each call
of the closure):

* scope g_t = gamma(t)  ("scoping": the coupling grows during training; the paper's
  g_0 (1 + g_1)^t is ``gamma=Geometric(g_0, 1 + g_1)``, a number keeps it constant);
* w' <- w, mu <- w, then ``inner_steps`` = L times (one closure call each)::

      d   = grad f(w') + weight_decay * w'                 (then inner momentum, if any)
      w' <- w' - inner_lr * [d - g_t (w - w')] + sqrt(inner_lr) * noise * z,   z ~ N(0, I)
      mu <- (1 - alpha) mu + alpha w'

* the weights go back to w and take an SGD step (optional momentum / Nesterov) with the
  "gradient" G = (w - mu), or G = g_t (w - mu) with ``scale_by_gamma=True``::

      w <- w - lr * G

The inner loop is stochastic-gradient Langevin dynamics in the coupled energy
f(w') + (g_t / 2) |w - w'|^2; mu estimates the mean <w'> of its Gibbs measure and
g_t (w - <w'>) is the gradient of the negative local entropy at w.
"""

from __future__ import annotations

import math
import numbers

import torch

from .._numerics import check_int, check_real
from ..schedules import Constant, Geometric, as_schedule
from ..seeding import as_generator
from ._functional import GammaInGroups

__all__ = ["EntropySGD"]


class EntropySGD(GammaInGroups, torch.optim.Optimizer):
    """Entropy-SGD (Chaudhari et al. 2017) as a ``torch.optim.Optimizer``.

    Use it like ``torch.optim.LBFGS``: ``step`` needs a closure that draws a fresh minibatch,
    zeroes the gradients, computes the loss, calls ``backward()`` and returns the loss. The
    closure is called ``inner_steps`` times per outer step (once when ``inner_steps == 0``),
    each time at the current inner weights w'; ``step`` returns the value of its first call,
    which is the loss at the weights w before the step.

    Parameters
    ----------
    params : parameters or parameter groups, as for any torch optimizer. Every hyperparameter
        below except ``inner_steps`` and ``seed`` may be set per group.
    lr : outer learning rate (eta). With the default ``scale_by_gamma=False`` the outer step is
        ``w -= lr * (w - mu)``, so ``lr = 1`` moves w onto the Langevin mean mu.
    inner_steps : L, the number of Langevin steps (closure calls) per outer step. ``0`` makes
        the optimizer plain SGD (with the same momentum, Nesterov and weight decay): one closure
        call and ``w -= lr * (grad + weight_decay * w)``.
    inner_lr : eta', the Langevin step size.
    gamma : the scope g_t (coupling of w' to w): a number (constant) or a schedule from
        :mod:`thermolearn.schedules` of t = outer steps already taken. Default
        ``Geometric(0.03, 1.001)``: g0 = 0.03 growing by g1 = 1e-3 per outer step, g0 (1 + g1)^t.
        ``state_dict`` stores a schedule as its description (so that it loads with
        ``torch.load(weights_only=True)``); ``load_state_dict`` keeps the constructor's schedule.
    noise : eps, the thermal-noise amplitude of the Langevin steps; see "Noise convention".
    alpha : weight of the newest inner iterate in the running mean,
        ``mu <- (1 - alpha) mu + alpha w'``; in (0, 1]. ``alpha = 1`` gives mu = w'_L.
    momentum, nesterov : momentum of the outer step, in the form of ``torch.optim.SGD``
        (buffer b <- momentum b + G, step along b, or along G + momentum b with Nesterov;
        no dampening). The buffer persists across outer steps.
    inner_momentum : momentum of the Langevin steps, applied to the loss gradient
        ``grad f(w') + weight_decay * w'`` only (not to the coupling or the noise); its buffer
        restarts from zero at every outer step. Uses the Nesterov form when ``nesterov`` is set.
    weight_decay : L2 coefficient, part of the loss f: added to the gradient in the Langevin
        steps (and in the plain-SGD step when ``inner_steps == 0``), not to the outer step,
        whose direction (w - mu) already carries it.
    scale_by_gamma : use g_t (w - mu) as the outer gradient (the local-entropy gradient of the
        paper's Algorithm 1) instead of (w - mu) (the published reference code).
    seed : int, ``torch.Generator`` or None: source of the Langevin noise. The noise of each
        parameter tensor is drawn with ``torch.randn(shape, generator=..., dtype=param dtype)``
        on the generator's device, in parameter order, one tensor per inner step, and then
        moved to the parameter's device; nothing is drawn when ``noise == 0``. A given seed
        and closure therefore reproduce a run exactly. The generator (``self.generator``) is not
        part of ``state_dict``; save ``generator.get_state()`` too to resume the same stream.

    Noise convention
    ----------------
    This implementation adds ``sqrt(inner_lr) * noise * z`` per Langevin step, as written in
    Algorithm 1 of the paper. For small steps the inner chain then samples
    exp(-[f(w') + g_t |w - w'|^2 / 2] / T) with temperature T = noise^2 / 2.
    The authors' published code adds ``sqrt(2 * inner_lr) * eps * z`` instead (its noise term
    eps / sqrt(inner_lr / 2) is multiplied by the step size), i.e. temperature eps^2: to
    reproduce it pass ``noise = sqrt(2) * eps``; to work at a temperature T (inverse temperature
    beta = 1 / T) pass ``noise = sqrt(2 * T)``.

    Other differences from that code, for reproducing its runs: it keeps 0.75 on the previous
    mean (``alpha = 0.25`` here), adds weight decay to the outer step as well, applies the outer
    momentum also in the inner loop (``inner_momentum=momentum``) and uses the outer gradient
    (w - mu) without the factor g_t (the default here).

    Reductions (tested)
    -------------------
    * ``inner_steps=0``: ``torch.optim.SGD`` with the same lr, momentum, nesterov, weight decay.
    * ``gamma=0, noise=0, alpha=1``: the inner loop is L plain SGD steps of size inner_lr from w
      and the outer step is ``w -= lr * (w - w'_L)``.
    * additionally ``inner_steps=1``: ``w -= lr * inner_lr * (grad f(w) + weight_decay * w)``.

    Parameters whose ``.grad`` is None after a closure call do not move in that inner step
    (and, if never moved, not in the outer step either). After ``step`` each ``.grad`` holds the
    gradient of the last closure call (taken at w'_L, not at w).
    """

    def __init__(self, params, lr: float = 1.0, inner_steps: int = 20, inner_lr: float = 0.1,
                 gamma=Geometric(0.03, 1.001), noise: float = 1e-4,
                 alpha: float = 0.75, momentum: float = 0.0, nesterov: bool = False,
                 inner_momentum: float = 0.0, weight_decay: float = 0.0,
                 scale_by_gamma: bool = False, seed=None):
        self.inner_steps = check_int(inner_steps, "inner_steps", minimum=0)
        defaults = dict(lr=lr, inner_lr=inner_lr, gamma=gamma, noise=noise, alpha=alpha,
                        momentum=momentum, nesterov=nesterov,
                        inner_momentum=inner_momentum, weight_decay=weight_decay,
                        scale_by_gamma=scale_by_gamma)
        _check_group(defaults)
        super().__init__(params, defaults)            # add_param_group checks each group
        self.generator = as_generator(seed)

    def add_param_group(self, param_group: dict) -> None:
        if "inner_steps" in param_group or "seed" in param_group:
            raise ValueError("param_group: inner_steps and seed are shared by all parameter groups; "
                             "set them in the constructor")
        super().add_param_group(param_group)
        _check_group(self.param_groups[-1])

    # -----------------------------------------------------------------------------------------

    def _anchor_state(self) -> dict:
        """The state entry of the first parameter, which holds the outer step counter."""
        return self.state[self.param_groups[0]["params"][0]]

    @property
    def outer_steps(self) -> int:
        """Outer steps taken so far (the clock t of the scope g_t = gamma(t))."""
        return int(self._anchor_state().get("outer_step", 0))

    def scope(self, group: int = 0) -> float:
        """g_t of parameter group ``group`` at the current outer step."""
        return _scope(self.param_groups[group], self.outer_steps)

    def _noise(self, p: torch.Tensor) -> torch.Tensor:
        g = self.generator
        return torch.randn(p.shape, generator=g, device=g.device, dtype=p.dtype).to(p.device)

    @torch.no_grad()
    def step(self, closure=None):
        """One outer step; ``closure`` (required) is called ``max(inner_steps, 1)`` times."""
        if closure is None or not callable(closure):
            raise ValueError("closure: EntropySGD.step needs a closure that evaluates the loss on a fresh "
                             "minibatch, calls backward() and returns the loss (as for LBFGS)")
        t = self.outer_steps
        L = self.inner_steps
        groups = self.param_groups
        if L == 0:
            with torch.enable_grad():
                loss = closure()
            for group in groups:
                wd = group["weight_decay"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    d = p.grad if wd == 0 else p.grad.add(p, alpha=wd)
                    self._outer_update(p, d, group)
            self._anchor_state()["outer_step"] = t + 1
            return loss

        # inner loop: the parameters themselves carry w'; w is kept aside
        anchors, means, inner_bufs, moved = {}, {}, {}, set()
        for group in groups:
            for p in group["params"]:
                anchors[p] = p.detach().clone()
                means[p] = p.detach().clone()
        loss = None
        for k in range(L):
            with torch.enable_grad():
                value = closure()
            if k == 0:
                loss = value
            for group in groups:
                g_t = _scope(group, t)
                eta, eps, alpha = group["inner_lr"], group["noise"], group["alpha"]
                wd, mom, nest = group["weight_decay"], group["inner_momentum"], group["nesterov"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    moved.add(p)
                    d = p.grad if wd == 0 else p.grad.add(p, alpha=wd)
                    if mom != 0:
                        buf = inner_bufs.get(p)
                        if buf is None:
                            buf = inner_bufs[p] = d.detach().clone()
                        else:
                            buf.mul_(mom).add_(d)
                        d = d.add(buf, alpha=mom) if nest else buf
                    if g_t != 0:
                        d = d - g_t * (anchors[p] - p)        # - g (w - w')
                    p.add_(d, alpha=-eta)
                    if eps != 0:
                        p.add_(self._noise(p), alpha=math.sqrt(eta) * eps)
                    mu = means[p]
                    if alpha == 1:
                        mu.copy_(p)
                    else:
                        mu.mul_(1.0 - alpha).add_(p, alpha=alpha)

        # outer step from w along (w - mu)
        for group in groups:
            g_t = _scope(group, t)
            for p in group["params"]:
                p.copy_(anchors[p])
                if p not in moved:
                    continue
                d = anchors[p].sub_(means[p])                 # w - mu (anchor no longer needed)
                if group["scale_by_gamma"]:
                    d.mul_(g_t)
                self._outer_update(p, d, group)
        self._anchor_state()["outer_step"] = t + 1
        return loss

    def _outer_update(self, p: torch.Tensor, d: torch.Tensor, group: dict) -> None:
        """p -= lr * (d with torch.optim.SGD-style momentum)."""
        mom = group["momentum"]
        if mom != 0:
            state = self.state[p]
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = d.detach().clone()
            else:
                buf.mul_(mom).add_(d)
            d = d.add(buf, alpha=mom) if group["nesterov"] else buf
        p.add_(d, alpha=-group["lr"])


def _scope(group: dict, t: int) -> float:
    gamma = group["gamma"]
    if isinstance(gamma, float):
        return gamma
    return check_real(gamma(t), "gamma", minimum=0.0, strict=False, what=f" at t={t}")


def _check_group(group: dict) -> None:
    """Validate (and normalise to float) the hyperparameters of one parameter group."""
    group["lr"] = check_real(group["lr"], "lr", minimum=0.0, strict=False)
    group["inner_lr"] = check_real(group["inner_lr"], "inner_lr", minimum=0.0, strict=False)
    gamma = as_schedule(group["gamma"], "gamma", minimum=0.0)
    # a number stays a float (state_dict then holds plain numbers); schedules are kept as given
    group["gamma"] = gamma.value if isinstance(gamma, Constant) else gamma
    group["noise"] = check_real(group["noise"], "noise", minimum=0.0, strict=False)
    alpha = check_real(group["alpha"], "alpha", minimum=0.0, strict=True)
    if alpha > 1:
        raise ValueError(f"alpha: expected a number in (0, 1], got {group['alpha']!r}")
    group["alpha"] = alpha
    for name in ("momentum", "inner_momentum"):
        m = check_real(group[name], name, minimum=0.0, strict=False)
        if m >= 1:
            raise ValueError(f"{name}: expected a number in [0, 1), got {group[name]!r}")
        group[name] = m
    group["weight_decay"] = check_real(group["weight_decay"], "weight_decay", minimum=0.0,
                                       strict=False)
    for name in ("nesterov", "scale_by_gamma"):
        if not isinstance(group[name], (bool, numbers.Integral)) or group[name] not in (0, 1):
            raise ValueError(f"{name}: expected True or False, got {group[name]!r}")
        group[name] = bool(group[name])
    if group["nesterov"] and group["momentum"] == 0 and group["inner_momentum"] == 0:
        raise ValueError("nesterov: needs momentum > 0 or inner_momentum > 0")

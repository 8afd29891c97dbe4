"""Robust ensembles of ordinary PyTorch networks: y coupled replicas trained side by side.

Replicated SGD on deep networks (Baldassi, Pittorino, Zecchina, PNAS 2020; Pittorino, Lucibello,
Feinauer, Perugini, Baldassi, Demyanenko, Zecchina, "Entropic gradient descent algorithms and wide
flat minima", ICLR 2021) and elastic averaging (Zhang, Choromanska, LeCun, NIPS 2015).

Objective of one step
---------------------
Replica a (a = 1..y) has weights w_a and its own minibatch B_a; with a center c,

    J = sum_a L(w_a; B_a) + (gamma / 2) * sum_a |w_a - c|^2

where L is ``loss_fn`` (a mean over the minibatch, as torch's losses compute it) and |.|^2 sums
over all trainable parameters. The data terms are summed, not averaged, so with gamma = 0 each
replica receives exactly the gradient it would get alone. Two couplings:

* ``coupling="mean"``: c = w_bar = (1/y) sum_b w_b, the barycenter of the replicas (the center
  traced out). Because sum_a (w_a - w_bar) = 0 the dependence of w_bar on w_a drops out and
  grad_{w_a} J = grad L(w_a) + gamma (w_a - w_bar).
* ``coupling="center"``: c = w_c, an explicit center variable (elastic coupling). The replicas get
  grad L(w_a) + gamma (w_a - w_c); the center does plain gradient descent on the same J,

      w_c <- w_c + eta_c * gamma * sum_a (w_a - w_c),

  which is EASGD's center update with rho = gamma. ``center_lr`` = eta_c; by default it is the
  learning rate of the optimizer's first parameter group, read at every step (so learning-rate
  schedulers act on it too). The center has no momentum and no adaptive scaling. Replicas and
  center are updated from the same state (synchronous). Alone, the center contracts towards the
  barycenter by the factor (1 - eta_c gamma y) per step: stable for eta_c gamma y < 2 (a warning
  is given once when it is not), without overshoot for eta_c gamma y <= 1. It starts at the
  barycenter of the initial replicas.

Other conventions map onto this one: an objective sum_a L_a + g sum_a |w_a - c|^2 (no 1/2) is
gamma = 2 g; the per-replica mean (1/y) sum_a [L_a + g |w_a - c|^2] (the form "CE + g mean_a
|w_a - w_center|^2" of Pittorino et al. 2021) has the same minimisers and, trained with learning rate eta, takes
the steps that this objective takes with gamma = 2 g and learning rate eta / y. Buffers (BatchNorm
running statistics) are not coupled; each replica keeps its own.

The coupling gradient is added to the data gradient after the backward pass, before the
optimizer's step, so every optimizer (momentum, Adam, weight decay) sees the gradient of J.

gamma schedule
--------------
``gamma`` is a number or a schedule from :mod:`thermolearn.schedules` (``Geometric(g0, 1 + g1)``
gives the exponential scoping g0 (1 + g1)^t, ``LinearDecay(g0, steps, end=g1)`` a linear ramp).
With ``gamma_clock="step"`` (default) t is the
number of steps done so far (0 at the first step); with ``gamma_clock="epoch"`` it is the epoch
counter, advanced by :meth:`Replicated.next_epoch`.

A torch module
--------------
:class:`Replicated` is an ``nn.Module``. Each parameter of the module is stored once for all
replicas as a (y, *shape) ``nn.Parameter`` (and each buffer as a (y, *shape) buffer) in the
submodule ``stack``, a copy of the module's structure, under the module's own names:
``named_parameters()`` gives ``("stack.0.weight", (y, out, in) tensor)``, and so on.
``rep(x)`` returns the outputs of every replica on the same ``x``, stacked (y, batch, ...), with
gradients; ``rep.train()`` / ``rep.eval()`` switch dropout and batch normalisation of every
replica (the mode ``step`` trains in; a fresh ``Replicated`` is in training mode);
``rep.to(device, dtype)`` moves the replicas, the explicit center and the optimizer's state
together; ``torch.compile(rep)`` compiles the forward pass.

``state_dict()`` holds ``stack.<name>`` (y, *shape) for every parameter and buffer,
``center_weights.<name>`` for the explicit center of ``coupling="center"`` (unstacked shapes;
buffers, so not in ``parameters()``), and an ``_extra_state`` entry with replicas, coupling,
the step and epoch counters (the clock of gamma) and the optimizer's ``state_dict``: loading it
into a ``Replicated`` built with the same module, replicas, coupling and optimizer resumes
training exactly. The gamma schedule itself is not stored (pass it to the constructor again).

Storage and optimizers
----------------------
The optimizer is built on the stacked trainable parameters. Optimizers that act element by element (SGD, momentum,
Nesterov, Adam, AdamW, RMSprop, Adagrad, weight decay) then do exactly what y independent
optimizers would do. Optimizers that use per-tensor norms (LARS, LAMB) or a closure (LBFGS), and
clipping by a global gradient norm, would mix the replicas and are not equivalent. One more
difference: a parameter that some replicas use in a step and others do not (data-dependent
branches) gets a zero gradient for the latter, where a separate optimizer would see no gradient
and skip it (momentum and weight decay then still act on it here).

Evaluation
----------
All replicas are evaluated in one call. Which call (the attribute ``path``):

* ``"bmm"``, plain MLPs: when the module is an ``nn.Sequential`` (nested ones included) made
  only of ``nn.Linear`` (with or without bias), ``nn.Flatten``, ``nn.Dropout`` and the
  element-wise activations without parameters ``nn.ReLU``, ``LeakyReLU``, ``Tanh``, ``Sigmoid``,
  ``GELU``, ``ELU``, ``SiLU``, ``Softplus``, ``Identity`` (these exact classes, without hooks or
  buffers; a lone ``nn.Linear`` qualifies too), the stacked inputs (y, b, ...) go through the
  layers directly: a linear layer is one ``torch.baddbmm`` (``torch.bmm`` without bias) of the
  (y, b, in) activations with the stacked weights, the other modules are applied to the stacked
  (y, b, ...) tensor as they are. Dropout therefore draws independent noise for every replica
  (as each replica's own module would, though not the same draws). Torch's cross-entropy as
  ``loss_fn`` (``F.cross_entropy``, or an ``nn.CrossEntropyLoss`` with ``reduction="mean"`` and
  no class weights) is computed once, per sample, on the outputs folded into one batch of y * b
  samples and averaged per replica (leaving out targets equal to ``ignore_index``, as its mean
  does); any other ``loss_fn`` is called once per replica on its slice of the stacked outputs.
  No vmap is involved, which saves vmap's per-operation overhead and its larger autograd graph.
  Chosen at construction with ``vmap="auto"`` (the default); ``vmap=True`` uses vmap for these
  modules too.
* ``"vmap"``, every other module: ``torch.func.vmap`` over ``torch.func.functional_call`` with the
  stacked parameters and buffers (dropout draws different noise per replica); ``loss_fn`` is
  evaluated per replica inside the vmapped call.
* ``"loop"``: always with ``vmap=False``. With ``"auto"``, modules that vmap cannot trace
  (data-dependent Python control flow, ``.item()`` calls, some custom operators) are detected at
  the first step: a warning names the reason and the replicas are evaluated one after the other
  from then on (same results, slower). The loop is also used, whatever the path, for any step
  whose per-replica batches differ in shape.

The three paths give the same results up to rounding (and dropout's random draws).

Implementation notes: on the ``"bmm"`` path a linear layer has its own backward rule, which
computes the weight gradient directly in the contiguous (y, out, in) layout of the stacked weight
(autograd's rule for a batched product computes its transpose and copies it), and the
cross-entropy of the stacked outputs is written out as logsumexp minus the picked logit
(torch's log-softmax kernel is slow on many short rows). On the other paths the stacked weight of
an ``nn.Linear`` is laid out in memory as the transpose of a contiguous (y, in, out) tensor, the
layout in which vmap produces its gradient. Values, shapes and state dicts are unaffected.

Speed: ``benchmarks/bench_replicas.py`` times a step of the 8 replicas of an MLP 64-128-10 on the
digits against stepping 8 separate modules one after the other, side by side.
"""

from __future__ import annotations

import cmath
import collections
import contextlib
import copy
import warnings

import torch
from torch import nn

from .._numerics import check_int, check_real
from ..schedules import as_schedule
from ..seeding import check_seed, spawn_seeds
from . import _functional as F_
from .flatness import distance_summary, squared_distances

__all__ = ["Replicated", "reset_parameters"]

COUPLINGS = ("mean", "center")


def reset_parameters(module: nn.Module, seed=None) -> nn.Module:
    """Re-initialise ``module`` in place: ``reset_parameters()`` of every submodule that has one
    (parameters of the others are left as they are), drawing from torch's global generators
    seeded with ``spawn_seeds(seed, 1)[0]`` and restored afterwards, so the caller's random
    state is untouched and ``seed=s`` gives what ``seed=torch.Generator().manual_seed(s)``
    gives (None: fresh entropy). Returns ``module``."""
    with F_.seeded(spawn_seeds(check_seed(seed), 1)[0]):
        F_.reset_parameters(module)
    return module


def make_optimizer(optimizer, lr, params: list, who: str = "Replicated"):
    """The optimizer for ``params``: ``optimizer(params)``, or SGD(lr) when ``optimizer`` is None."""
    if optimizer is None:
        lr = 0.01 if lr is None else check_real(lr, "lr")
        return torch.optim.SGD(params, lr=lr)
    if lr is not None:
        raise ValueError(f"lr: only sets the default SGD of {who}; give the learning rate to your "
                         "optimizer factory instead, e.g. optimizer=lambda p: torch.optim.Adam(p, lr=1e-3)")
    if isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError("optimizer: expected a callable params -> Optimizer (e.g. torch.optim.Adam or "
                        "functools.partial(torch.optim.SGD, lr=0.1)), not an Optimizer instance, which "
                        "is already bound to other tensors")
    if not callable(optimizer):
        raise TypeError(f"optimizer: expected a callable params -> Optimizer, got {optimizer!r}")
    opt = optimizer(params)
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(f"optimizer: optimizer(params) returned {type(opt).__name__}, not a torch.optim.Optimizer")
    return opt


def _grads_finite(tensors) -> bool:
    """Whether all gradients are finite: one summing pass per tensor (NaN and Inf propagate into
    the sum; a sum of finite values that overflows also counts as divergence). Much cheaper on a
    CPU than ``torch.isfinite(g).all()``, which makes three passes."""
    sums = [p.grad.sum().abs().double() for p in tensors if p.grad is not None]
    return not sums or bool(torch.isfinite(torch.stack(sums)).all())


class Replicated(F_.GammaClock, nn.Module):
    """y replicas of a torch module, trained together with an optional coupling to a center.

    An ``nn.Module``: ``rep(x)`` gives the stacked outputs (y, batch, ...) of all replicas on
    ``x``; see "A torch module" in the module documentation for parameters, modes, ``.to`` and
    ``state_dict``.

    Parameters
    ----------
    module : an ``nn.Module`` (deep-copied ``replicas`` times) or a factory ``() -> nn.Module``
        called ``replicas`` times (all calls must build the same architecture).
    replicas : y, the number of replicas.
    coupling : ``"mean"`` (center = barycenter of the replicas) or ``"center"`` (explicit elastic
        center variable); see the module documentation for the exact objective.
    gamma : coupling strength, a number or a schedule from :mod:`thermolearn.schedules`
        (0 = independent replicas), read with the clock ``gamma_clock``.
    optimizer : callable ``params -> torch.optim.Optimizer`` applied to the list of stacked
        (y, *shape) trainable parameters, e.g. ``torch.optim.Adam`` or
        ``lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)``; default SGD with ``lr``.
        Learning-rate schedules: torch's ``lr_scheduler`` on ``rep.optimizer``.
    lr : learning rate of the default SGD (0.01); only with ``optimizer=None``.
    center_lr : step size eta_c of the explicit center (``coupling="center"``); default the
        optimizer's current learning rate (``param_groups[0]["lr"]``).
    gamma_clock : ``"step"`` (gamma(t) with t = steps done) or ``"epoch"`` (t = epochs, advanced by
        :meth:`next_epoch`).
    reinit : with a module, re-initialise every copy with ``reset_parameters()`` of its submodules
        (parameters of modules without ``reset_parameters`` are left as copied); default False:
        all replicas start as copies of ``module``.
    seed : int, ``torch.Generator`` or None. With ``reinit`` or a factory, replica a is
        re-initialised / built with torch's global generators seeded with the a-th of
        ``thermolearn.seeding.spawn_seeds(seed, replicas)`` and restored afterwards (so replica a
        starts the same whatever ``replicas`` is); None draws fresh seeds.
    vmap : ``"auto"`` (batched matrix products for plain MLPs, see "Evaluation" in the module
        documentation; otherwise vmap, falling back to a loop with a warning if the module cannot
        be vmapped), ``True`` (always vmap, also for plain MLPs; errors propagate) or ``False``
        (always loop).

    Attributes
    ----------
    stack : the submodule holding the stacked (y, *shape) parameters and buffers.
    stacked, stacked_buffers : dicts name -> those tensors (live; the optimizer updates them).
    optimizer, replicas, coupling, steps, epoch; last_losses: (y,) data losses of the last step.
    path : how the replicas are evaluated: ``"bmm"``, ``"vmap"``, ``"loop"``, or None while
        ``vmap="auto"`` has not tried vmap yet.
    """

    def __init__(self, module, replicas: int = 4, *, coupling: str = "mean", gamma=0.0, optimizer=None,
                 lr=None, center_lr=None, gamma_clock: str = "step", reinit: bool = False, seed=None,
                 vmap="auto"):
        nn.Module.__init__(self)
        y = self.replicas = check_int(replicas, "replicas")
        if coupling not in COUPLINGS:
            raise ValueError(f"coupling: expected one of {COUPLINGS}, got {coupling!r}")
        if gamma_clock not in ("step", "epoch"):
            raise ValueError(f"gamma_clock: expected 'step' or 'epoch', got {gamma_clock!r}")
        if vmap not in ("auto", True, False):
            raise ValueError(f"vmap: expected 'auto', True or False, got {vmap!r}")
        seed = check_seed(seed)
        self.coupling = coupling
        self.gamma_schedule = as_schedule(gamma, "gamma", minimum=0.0)
        self.gamma_clock = gamma_clock
        self.center_lr = None if center_lr is None else check_real(center_lr, "center_lr", 0.0, strict=False)

        if isinstance(module, nn.Module):
            seeds = spawn_seeds(seed, y) if reinit else None
            modules = []
            for a in range(y):
                m = copy.deepcopy(module)
                if reinit:
                    with F_.seeded(seeds[a]):
                        F_.reset_parameters(m)
                modules.append(m)
        elif callable(module):
            modules = []
            for s in spawn_seeds(seed, y):
                with F_.seeded(s):
                    m = module()
                if not isinstance(m, nn.Module):
                    raise TypeError(f"module: the factory returned {type(m).__name__}, not an nn.Module")
                modules.append(m)
        else:
            raise TypeError(f"module: expected an nn.Module or a factory () -> nn.Module, got {type(module).__name__}")

        self.stack = F_.stack_modules(modules)
        del modules
        self._tied = F_.has_tied_tensors(self.stack)
        self._refresh()
        if not self._trainable:
            raise ValueError("module: it has no trainable parameters")
        if coupling == "center":
            self.center_weights = F_.tensor_tree({n: F_.replica_mean(p) for n, p in self._trainable})
            self._refresh()
        # the batched-matrix-product path, for plain MLPs (with vmap="auto" only)
        self._plan = (F_.bmm_plan(self.stack, self._P) if vmap == "auto" and not self._tied else None)
        if self._plan is None:
            F_.vmap_layout(self.stack)
        self.optimizer = make_optimizer(optimizer, lr, [p for _, p in self._trainable])
        self._vmap = {True: True, False: False, "auto": None}[vmap]   # None: not tried yet
        self._vmap_mode = vmap
        self._vmap_forward = self._vmap                                # the same, for rep(x)
        self.steps = 0
        self.epoch = 0
        self.last_losses = None
        self._version = 0
        self._center_cache = None
        self._warned_center = False
        self.train()

    # -----------------------------------------------------------------------------------------
    # torch module plumbing
    # -----------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Re-read the live tensors (after construction, ``.to()`` and ``load_state_dict``)."""
        self._P = dict(self.stack.named_parameters())
        self._B = dict(self.stack.named_buffers())
        self._trainable = [(n, p) for n, p in self._P.items() if p.requires_grad]
        centre = self._modules.get("center_weights")
        self._center = None if centre is None else dict(centre.named_buffers())
        self._version = getattr(self, "_version", 0) + 1

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self._refresh()
        if hasattr(self, "optimizer"):
            # the optimizer's state follows its parameters, by torch's own casting rules
            self.optimizer.load_state_dict(self.optimizer.state_dict())
        return self

    def get_extra_state(self) -> dict:
        return {"replicas": self.replicas, "coupling": self.coupling, "steps": self.steps,
                "epoch": self.epoch, "optimizer": copy.deepcopy(self.optimizer.state_dict())}

    def set_extra_state(self, state) -> None:
        if not isinstance(state, dict):
            raise ValueError("state_dict: its _extra_state is not the state of a Replicated")
        for key in ("replicas", "coupling"):
            if state.get(key) != getattr(self, key):
                raise ValueError(f"state_dict: {key} is {state.get(key)!r}, this module has {getattr(self, key)!r}")
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.steps = check_int(state["steps"], "steps", minimum=0)
        self.epoch = check_int(state["epoch"], "epoch", minimum=0)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load a state written by :meth:`state_dict` (see "A torch module" in the module
        documentation): parameters, buffers, explicit center, counters and optimizer state."""
        before = dict(self._trainable)
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self._refresh()
        if assign:   # new parameter objects: the optimizer follows them
            swap = {id(before[n]): p for n, p in self._trainable if n in before}
            for group in self.optimizer.param_groups:
                group["params"] = [swap.get(id(p), p) for p in group["params"]]
            self.optimizer.state = collections.defaultdict(
                dict, {swap.get(id(p), p): s for p, s in self.optimizer.state.items()})
        return result

    @property
    def stacked(self) -> dict:
        """name -> stacked (y, *shape) parameter (live)."""
        return dict(self._P)

    @property
    def stacked_buffers(self) -> dict:
        """name -> stacked (y, *shape) buffer (live)."""
        return dict(self._B)

    @contextlib.contextmanager
    def _mode(self, training: bool):
        before = self.training
        if before != training:
            self.train(training)
        try:
            yield
        finally:
            if self.training != before:
                self.train(before)

    def extra_repr(self) -> str:
        return (f"replicas={self.replicas}, coupling={self.coupling!r}, "
                f"optimizer={type(self.optimizer).__name__}, steps={self.steps}")

    # -----------------------------------------------------------------------------------------
    # forward
    # -----------------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The outputs of every replica on ``x``, stacked: shape (y, *output shape), with
        gradients, in the current mode (``train()``: dropout draws per replica, batch statistics
        update each replica's running statistics; ``eval()``: deterministic)."""
        y = self.replicas
        if self._plan is not None:
            return F_.bmm_outputs(self._plan, self._P, x.unsqueeze(0).expand(y, *x.shape))
        if self._vmap_forward is not False and self._vmap is not False:
            if self._vmap_forward is True or self._vmap_mode is True:
                out = F_.batched_outputs(self.stack, self._P, self._B, x, self._tied, shared=True)
                self._vmap_forward = True
                return out
            saved = {n: b.clone() for n, b in self._B.items()}
            try:
                out = F_.batched_outputs(self.stack, self._P, self._B, x, self._tied, shared=True)
                self._vmap_forward = True
                return out
            except Exception as exc:  # noqa: BLE001 - vmap failed: loop
                self._restore_buffers(saved)
                self._vmap_forward = False
                warnings.warn(f"Replicated: torch.func.vmap cannot evaluate this module ({F_.first_line(exc)}); "
                              "the replicas are evaluated one after the other", UserWarning, stacklevel=2)
        return torch.stack([F_.replica_output(self.stack, self._P, self._B, a, x, self._tied)
                            for a in range(y)])

    # -----------------------------------------------------------------------------------------
    # training
    # -----------------------------------------------------------------------------------------

    def _split(self, batches):
        y = self.replicas
        if (isinstance(batches, (tuple, list)) and len(batches) == 2 and isinstance(batches[0], torch.Tensor)):
            x, t = batches
            n = x.shape[0]
            if n < y:
                raise ValueError(f"batches: a batch of {n} samples cannot be split across {y} replicas")
            if t.shape[0] != n:
                raise ValueError(f"batches: inputs have {n} samples but targets {t.shape[0]}")
            if n % y == 0:   # views, no copy
                X, T = x.reshape(y, n // y, *x.shape[1:]), t.reshape(y, n // y, *t.shape[1:])
                return list(X), list(T), (X, T)
            return list(x.tensor_split(y)), list(t.tensor_split(y)), None
        try:
            pairs = list(batches)
        except TypeError:
            raise TypeError("batches: expected a list of (x, target) pairs, one per replica, "
                            "or one (x, target) pair to split across the replicas") from None
        if len(pairs) != y:
            raise ValueError(f"batches: expected {y} (x, target) pairs, one per replica, got {len(pairs)}")
        xs, ts = [], []
        for a, pair in enumerate(pairs):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise TypeError(f"batches[{a}]: expected an (x, target) pair")
            xs.append(pair[0])
            ts.append(pair[1])
        same = (all(isinstance(v, torch.Tensor) for v in xs + ts)
                and all(x.shape == xs[0].shape for x in xs) and all(t.shape == ts[0].shape for t in ts))
        return xs, ts, ((torch.stack(xs), torch.stack(ts)) if same else None)

    def _restore_buffers(self, saved):
        with torch.no_grad():
            for name, value in saved.items():
                self._B[name].copy_(value)

    def _losses(self, xs, ts, stacked, loss_fn, saved):
        """(total, per_replica): the sum of the replicas' data losses (to differentiate) and the
        (y,) losses without gradient; on the first vmap attempt, also the fallback decision."""
        base, P, B = self.stack, self._P, self._B
        if stacked is None or self._vmap is False:
            return self._total(F_.looped_losses(base, P, B, xs, ts, loss_fn, self._tied))
        X, T = stacked
        if self._plan is not None:
            out = F_.bmm_outputs(self._plan, P, X)
            return self._total(self._check_shape(F_.stacked_losses(out, T, loss_fn)))

        def batched():
            return self._total(self._check_shape(F_.batched_losses(base, P, B, X, T, loss_fn, self._tied)))

        if self._vmap is True:
            return batched()
        try:
            losses = batched()
        except Exception as exc:  # noqa: BLE001 - any failure of vmap means: use the loop
            reason = F_.first_line(exc)
            self._restore_buffers(saved)
            # a real error surfaces here
            losses = self._total(F_.looped_losses(base, P, B, xs, ts, loss_fn, self._tied))
            self._vmap = False
            warnings.warn(f"Replicated: torch.func.vmap cannot evaluate this module/loss ({reason}); "
                          f"the {self.replicas} replicas are evaluated one after the other instead "
                          "(same results, slower)", UserWarning, stacklevel=3)
            return losses
        self._vmap = True
        return losses

    @property
    def path(self):
        """How the replicas are evaluated when their batches have one shape: ``"bmm"`` (batched
        matrix products, for plain MLPs), ``"vmap"``, ``"loop"``, or None while ``vmap="auto"``
        has not tried vmap yet (steps with per-replica batches of different shapes always loop)."""
        if self._plan is not None:
            return "bmm"
        return {True: "vmap", False: "loop", None: None}[self._vmap]

    @staticmethod
    def _total(losses):
        return losses.sum(), losses.detach()

    def _check_shape(self, losses):
        if losses.shape != (self.replicas,):
            raise ValueError(f"loss_fn: must return a scalar per replica; got shape {tuple(losses.shape[1:])}")
        return losses

    def step(self, batches, loss_fn) -> float:
        """One training step of all replicas; returns the mean over replicas of their data loss.

        ``batches`` is either a list of y pairs ``(x_a, target_a)`` (replica a trains on pair a) or
        one pair ``(x, target)`` whose first dimension is split into y contiguous chunks
        (``torch.tensor_split``: replica a gets the a-th chunk; sizes differ by at most one).
        ``loss_fn(output, target)`` must return a scalar (e.g. ``torch.nn.functional.cross_entropy``).
        The step runs in the module's current mode (training mode unless ``eval()`` was called).

        A NaN or Inf loss or gradient raises :class:`thermolearn.errors.TrainingDiverged` before
        any parameter, buffer, optimizer state or counter changes: the state of the last good
        step is kept.
        """
        xs, ts, stacked = self._split(batches)
        gamma = self.gamma
        saved = {n: b.clone() for n, b in self._B.items()} if self._B else {}
        params = [p for _, p in self._trainable]
        for p in params:
            p.grad = None
        try:
            total, losses = self._losses(xs, ts, stacked, loss_fn, saved)
        except Exception:
            self._restore_buffers(saved)
            raise
        total.backward()
        # one synchronisation for both checks: NaN/Inf in a loss or a gradient propagates into
        # these sums (a sum of finite gradients that overflows also counts as divergence)
        grads = [p.grad for p in params if p.grad is not None]
        checks = torch.stack([total.detach()] + [g.sum() for g in grads]).tolist()
        if not all(cmath.isfinite(v) for v in checks):
            self._restore_buffers(saved)
            for p in params:
                p.grad = None
            bad = (~torch.isfinite(losses)).nonzero().flatten().tolist()
            if bad:
                raise F_.diverged(
                    f"the loss of replica(s) {bad} is NaN/Inf at step {self.steps} (gamma={gamma:g}); "
                    "nothing was updated, the replicas keep the state of the last good step. "
                    "Lower the learning rate or check the data.")
            raise F_.diverged(
                f"the gradients are NaN/Inf (or overflow) at step {self.steps} (gamma={gamma:g}) although "
                "the losses are finite; nothing was updated, the replicas keep the state of the last good step.")
        center_moves, rate = [], 0.0
        if gamma > 0.0:
            # grad += gamma (w_a - c), in place (no (y, ...) temporary: this runs over every weight)
            with torch.no_grad():
                for name, p in self._trainable:
                    w = p.detach()
                    if self.coupling == "mean":
                        c = F_.replica_mean(w)
                    else:
                        c = self._center[name]
                        center_moves.append((c, F_.replica_mean(w)))
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                    p.grad.add_(w, alpha=gamma).sub_(c, alpha=gamma)
            if center_moves:
                rate = F_.center_rate(self, gamma)
        self.optimizer.step()
        with torch.no_grad():
            # w_c += eta_c gamma sum_a (w_a - w_c) = w_c + eta_c gamma y (w_bar - w_c), pre-step w_a
            for c, w_bar in center_moves:
                c.lerp_(w_bar, rate)
        self.steps += 1
        self._version += 1
        self.last_losses = losses
        return complex(checks[0]).real / self.replicas

    # -----------------------------------------------------------------------------------------
    # reading the replicas and the center
    # -----------------------------------------------------------------------------------------

    def _replica_state(self, a: int):
        a = self._index(a)
        return ({n: p.detach()[a] for n, p in self._P.items()}, {n: b[a] for n, b in self._B.items()})

    def _index(self, a) -> int:
        if isinstance(a, bool) or not isinstance(a, int) or not -self.replicas <= a < self.replicas:
            raise IndexError(f"replica index must be an int in [0, {self.replicas}), got {a!r}")
        return a % self.replicas

    def replica(self, a: int) -> nn.Module:
        """A copy of replica ``a`` as an ordinary module (in eval mode; editing it changes nothing here)."""
        return F_.module_from(self.stack, *self._replica_state(a)).eval()

    def center_state(self):
        """(params, buffers) of the center: center weights (barycenter for ``coupling="mean"``,
        w_c for ``"center"``; non-trainable parameters: barycenter), floating buffers averaged over
        the replicas, other buffers (e.g. ``num_batches_tracked``) taken from replica 0."""
        params = {}
        for n, p in self._P.items():
            params[n] = (self._center[n].clone() if self._center is not None and n in self._center
                         else F_.replica_mean(p))
        buffers = {n: (b.mean(0) if b.is_floating_point() or b.is_complex() else b[0].clone())
                   for n, b in self._B.items()}
        return params, buffers

    @property
    def center(self) -> nn.Module:
        """The center as an ordinary module, in eval mode (a copy; BatchNorm running statistics =
        mean of the replicas'). Rebuilt only after the replicas changed."""
        if self._center_cache is None or self._center_cache[0] != self._version:
            self._center_cache = (self._version, F_.module_from(self.stack, *self.center_state()).eval())
        return self._center_cache[1]

    def predict(self, x, which="center", average: str = "probs") -> torch.Tensor:
        """Outputs on ``x`` in eval mode, without gradients (the mode is restored afterwards).

        which : ``"center"`` (the center module's outputs), an int a (replica a's outputs), ``"all"``
            (every replica's outputs, stacked (y, ...)) or ``"ensemble"``.
        average : for ``"ensemble"``: ``"probs"`` returns the mean over replicas of
            softmax(outputs) along the last dimension (class probabilities, not logits);
            ``"outputs"`` returns the mean of the raw outputs.
        """
        if isinstance(which, str):
            if which not in ("center", "all", "ensemble"):
                raise ValueError(f"which: expected 'center', 'ensemble', 'all' or a replica index, got {which!r}")
            if which == "ensemble" and average not in ("probs", "outputs"):
                raise ValueError(f"average: expected 'probs' or 'outputs', got {average!r}")
            with torch.no_grad():
                if which == "center":
                    return self.center(x)
                with self._mode(False):
                    out = self(x)
            if which == "all":
                return out
            return (out.softmax(-1) if average == "probs" else out).mean(0)
        a = self._index(which)
        with self._mode(False), torch.no_grad():
            p, b = self._replica_state(a)
            return F_.call(self.stack, p, {n: v.clone() for n, v in b.items()}, x, self._tied)

    def distances(self) -> dict:
        """Squared distances over the trainable parameters (the dict of
        :func:`thermolearn.deep.replica_distances`): ``"to_center"``: tensor (y,), |w_a - c|^2 with
        c the center (barycenter or w_c); ``"mean_to_center"``: their mean; ``"pairwise"``: mean
        over pairs a < b of |w_a - w_b|^2 (NaN for one replica)."""
        stacked = [p for _, p in self._trainable]
        center = None if self._center is None else [self._center[n] for n, _ in self._trainable]
        return distance_summary(*squared_distances(stacked, center))

    def coupling_energy(self) -> float:
        """The coupling term (gamma / 2) sum_a |w_a - c|^2 of the current state, with the gamma
        the next step will use."""
        return 0.5 * self.gamma * float(self.distances()["to_center"].sum())

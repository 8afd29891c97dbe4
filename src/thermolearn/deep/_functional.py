"""Helpers shared by the replicated trainers of :mod:`thermolearn.deep`.

* stacking the parameters and buffers of y structurally identical modules into (y, *shape) tensors,
  and reading one replica (or an average) back into an ordinary :class:`torch.nn.Module`;
* evaluating y replicas of a module in one batched call (``torch.func.functional_call`` under
  ``torch.func.vmap``, or, for an ``nn.Sequential`` of linear layers and element-wise functions,
  batched matrix products on the stacked weights) or replica by replica;
* the divergence error (:class:`thermolearn.errors.TrainingDiverged`).
"""

from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn

from .._numerics import check_real
from ..errors import TrainingDiverged


def diverged(message: str) -> Exception:
    """A :class:`TrainingDiverged` carrying ``message`` (raise it)."""
    return TrainingDiverged(message)


# ---------------------------------------------------------------------------------------------
# stacking modules
# ---------------------------------------------------------------------------------------------

def _signature(module: nn.Module):
    ps = [(n, tuple(p.shape), p.dtype, p.device, p.requires_grad) for n, p in module.named_parameters()]
    bs = [(n, tuple(b.shape), b.dtype, b.device) for n, b in module.named_buffers()]
    return ps, bs


def stack_modules(modules: list[nn.Module]) -> nn.Module:
    """A deep copy of ``modules[0]`` whose parameters and buffers are replaced by (y, *shape)
    tensors stacking those of all ``modules``: the stacked parameters are new ``nn.Parameter``
    leaves (requiring grad where the originals do), registered under the same names, so that
    ``named_parameters()`` / ``state_dict()`` of the copy list them. Tied tensors stay tied.
    The copy is a container and a template for ``torch.func.functional_call``: calling it
    directly would not work (its tensors have the extra replica dimension).

    All modules must have the same parameter and buffer names, shapes, dtypes and devices.
    """
    first = _signature(modules[0])
    for a, m in enumerate(modules[1:], 1):
        if _signature(m) != first:
            raise ValueError(f"module: replica {a} differs from replica 0 in its parameters or buffers "
                             "(names, shapes, dtypes, devices or requires_grad): the factory must "
                             "build the same architecture every time")
    stacked = {}
    for name, _shape, _, _, req in first[0]:
        w = torch.stack([m.get_parameter(name).detach() for m in modules])
        stacked[id(modules[0].get_parameter(name))] = nn.Parameter(w, requires_grad=req)
    for name, *_ in first[1]:
        stacked[id(modules[0].get_buffer(name))] = torch.stack([m.get_buffer(name).detach() for m in modules])
    return _copy_with(modules[0], stacked)


def vmap_layout(stack: nn.Module) -> None:
    """Lay the stacked weight of every ``nn.Linear`` of ``stack`` out in place as the transpose of
    a contiguous (y, in, out) tensor (values and shapes unchanged), the layout in which the
    linear layer's weight gradient arrives under ``torch.func.vmap``: it is then taken as it is
    instead of being copied through a transpose at every step (costly on a CPU). The batched
    matrix products of :func:`bmm_outputs` want the plain contiguous (y, out, in) layout."""
    with torch.no_grad():
        for sub in stack.modules():
            if isinstance(sub, nn.Linear) and sub.weight.dim() == 3:
                sub.weight.data = sub.weight.data.transpose(1, 2).contiguous().transpose(1, 2)


def _copy_with(template: nn.Module, replacements: dict) -> nn.Module:
    """``copy.deepcopy(template)`` with the tensors whose ``id`` is a key of ``replacements``
    replaced by the values (never copied: the deep copy's memo maps them); aliases of one tensor
    (tied weights) get the same replacement."""
    memo = dict(replacements)
    memo[id(memo)] = list(replacements.values())      # keeps them alive, as deepcopy's memo does
    return copy.deepcopy(template, memo)


def module_from(template: nn.Module, params: dict, buffers: dict) -> nn.Module:
    """A copy of ``template`` (a module or a stacked container of :func:`stack_modules`) holding
    ``params`` and ``buffers`` (name -> tensor; copied), on their dtype and device. The template's
    own tensors are not copied."""
    repl = {}
    for name, value in params.items():
        p = template.get_parameter(name)
        repl[id(p)] = nn.Parameter(value.detach().clone(), requires_grad=p.requires_grad)
    for name, value in buffers.items():
        repl[id(template.get_buffer(name))] = value.detach().clone()
    return _copy_with(template, repl)


def tensor_tree(tensors: dict) -> nn.Module:
    """An ``nn.Module`` holding ``tensors`` (name -> tensor, dotted names) as buffers at those
    names, so that its ``state_dict`` keys are the names and ``.to()`` moves them."""
    root = nn.Module()
    for name, value in tensors.items():
        *path, leaf = name.split(".")
        node = root
        for part in path:
            if part not in node._modules:
                node.add_module(part, nn.Module())
            node = node._modules[part]
        node.register_buffer(leaf, value)
    return root


def replica_mean(p: torch.Tensor) -> torch.Tensor:
    """Mean over the replica dimension 0, laid out in memory like ``p[0]`` (a reduction into a
    differently laid out result is several times slower on a CPU, and so is arithmetic mixing
    the two layouts)."""
    p = p.detach()
    out = torch.empty_like(p[0])
    return torch.mean(p, 0, out=out)


def reset_parameters(module: nn.Module) -> int:
    """Call ``reset_parameters()`` on every submodule that has one; the number of calls."""
    n = 0
    for sub in module.modules():
        fn = getattr(sub, "reset_parameters", None)
        if callable(fn):
            fn()
            n += 1
    return n


@contextlib.contextmanager
def seeded(seed: int):
    """Run the block with torch's global generators seeded by the integer ``seed``, restored
    afterwards (for code that draws from them, such as ``reset_parameters``)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield


# ---------------------------------------------------------------------------------------------
# evaluating replicas
# ---------------------------------------------------------------------------------------------

def has_tied_tensors(module: nn.Module) -> bool:
    """Whether a parameter or buffer is registered under more than one name."""
    everything = (list(module.named_parameters(remove_duplicate=False))
                  + list(module.named_buffers(remove_duplicate=False)))
    return len({id(t) for _, t in everything}) != len(everything)


def call(base: nn.Module, params: dict, buffers: dict, x, tied: bool = True):
    """``base(x)`` with the given parameters and buffers (``torch.func.functional_call``; the
    bookkeeping for tied weights is skipped when ``tied`` is False)."""
    return torch.func.functional_call(base, (params, buffers), (x,), tie_weights=tied)


def batched_outputs(base: nn.Module, params: dict, buffers: dict, X: torch.Tensor, tied: bool = True,
                    shared: bool = False) -> torch.Tensor:
    """Outputs of all replicas in one vmapped call, shape (y, ...): replica a sees ``X[a]``, or
    ``X`` itself with ``shared=True``."""
    def one(p, b, x):
        return call(base, p, b, x, tied)
    return torch.func.vmap(one, in_dims=(0, 0, None if shared else 0), randomness="different")(params, buffers, X)


def batched_losses(base: nn.Module, params: dict, buffers: dict, X: torch.Tensor, T: torch.Tensor,
                   loss_fn, tied: bool = True) -> torch.Tensor:
    """Losses ``loss_fn(replica_a(X[a]), T[a])`` of all replicas in one vmapped call, shape (y,)."""
    def one(p, b, x, t):
        return loss_fn(call(base, p, b, x, tied), t)
    return torch.func.vmap(one, randomness="different")(params, buffers, X, T)


def replica_output(base: nn.Module, params: dict, buffers: dict, a: int, x: torch.Tensor, tied: bool = True):
    """Output of replica ``a`` (slices of the stacked tensors; buffer updates write through)."""
    p = {n: v[a] for n, v in params.items()}
    b = {n: v[a] for n, v in buffers.items()}
    return call(base, p, b, x, tied)


def looped_losses(base, params, buffers, xs, ts, loss_fn, tied: bool = True) -> torch.Tensor:
    """Losses of the replicas evaluated one after the other, shape (y,)."""
    # unbind: one backward node per parameter gathers the y gradients (indexing p[a] y times
    # would allocate a full (y, ...) gradient per replica)
    slices = {n: v.unbind(0) for n, v in params.items()}
    losses = []
    for a, (x, t) in enumerate(zip(xs, ts)):
        p = {n: v[a] for n, v in slices.items()}
        b = {n: v[a] for n, v in buffers.items()}
        losses.append(loss_fn(call(base, p, b, x, tied), t))
    return stack_scalars(losses)


def stack_scalars(losses: list) -> torch.Tensor:
    """The per-replica losses, checked to be scalar tensors, stacked into shape (y,)."""
    for a, loss in enumerate(losses):
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError(f"loss_fn: must return a scalar tensor; replica {a} got "
                             f"{type(loss).__name__}{'' if not isinstance(loss, torch.Tensor) else tuple(loss.shape)}")
    return torch.stack([loss.reshape(()) for loss in losses])


# ---------------------------------------------------------------------------------------------
# the batched path of plain MLPs: nn.Sequential of Linear layers and element-wise functions
# ---------------------------------------------------------------------------------------------

# modules without parameters applied as they are to the stacked (y, b, ...) activations: all act
# element by element (dropout then draws independent noise for every replica)
ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.SiLU, nn.Softplus,
               nn.Identity, nn.Dropout)


def _hooked(m: nn.Module) -> bool:
    return bool(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks)


def bmm_plan(module: nn.Module, param_names) -> list | None:
    """The layers of ``module`` as a list for :func:`bmm_outputs`, or None unless ``module`` is an
    ``nn.Linear`` or an ``nn.Sequential`` (possibly nested) made only of ``nn.Linear``,
    ``nn.Flatten`` and the modules in :data:`ELEMENTWISE` (exact types, no hooks, no buffers),
    whose parameters are exactly ``param_names``. Entries: ``("linear", weight name, bias name
    or None)``, ``("flatten", start, end)`` (dims of the stacked tensor), ``("call", the module's forward)``."""
    plan, names = [], []

    def walk(m, prefix) -> bool:
        if _hooked(m) or m._buffers:
            return False
        kind = type(m)
        if kind is nn.Sequential:
            return not m._parameters and all(sub is not None and walk(sub, f"{prefix}{key}.")
                                             for key, sub in m._modules.items())
        if kind is nn.Linear:
            bias = None if m.bias is None else prefix + "bias"
            plan.append(("linear", prefix + "weight", bias))
            names.extend(n for n in (prefix + "weight", bias) if n is not None)
            return True
        if kind is nn.Flatten:   # per-replica dims d >= 0 are dims d + 1 of the stacked tensor
            plan.append(("flatten", *(d + 1 if d >= 0 else d for d in (m.start_dim, m.end_dim))))
            return True
        if kind in ELEMENTWISE and not m._parameters:
            plan.append(("call", m.forward))   # hooks were checked above
            return True
        return False

    ok = walk(module, "")
    return plan if ok and sorted(names) == sorted(param_names) else None


class _StackedLinear(torch.autograd.Function):
    """x (y, b, in), weight (y, out, in), bias (y, out) or None -> x W^T + b, (y, b, out).

    Written out so that the weight gradient is computed as go^T x, directly in the (y, out, in)
    layout of the weight: autograd's rule for ``bmm(x, W^T)`` computes x^T go, (y, in, out), and
    then copies it through a transpose; for narrow layers (few outputs) that product is also
    several times slower on a CPU. The backward pass is made of differentiable operations, so
    double backward works."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        wt = weight.transpose(1, 2)
        return torch.bmm(x, wt) if bias is None else torch.baddbmm(bias.unsqueeze(1), x, wt)

    @staticmethod
    def backward(ctx, go):
        x, weight = ctx.saved_tensors
        gx = torch.bmm(go, weight) if ctx.needs_input_grad[0] else None
        gw = torch.bmm(go.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        gb = go.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb


def bmm_outputs(plan: list, params: dict, X: torch.Tensor) -> torch.Tensor:
    """Outputs (y, ...) of all replicas of a module planned by :func:`bmm_plan`: replica a sees
    ``X[a]``. A linear layer is one ``baddbmm`` (``bmm`` without bias) on the stacked weights."""
    y = X.shape[0]
    for op, *args in plan:
        if op == "linear":
            weight, bias = params[args[0]], (None if args[1] is None else params[args[1]])
            h = X if X.dim() == 3 else X.reshape(y, -1, X.shape[-1])
            h = _StackedLinear.apply(h, weight, bias)
            X = h if X.dim() == 3 else h.reshape(*X.shape[:-1], h.shape[-1])
        elif op == "flatten":
            X = X.flatten(*args)
        else:
            X = args[0](X)
    return X


def _cross_entropy_options(loss_fn) -> dict | None:
    """The options of torch's cross-entropy when ``loss_fn`` is it with the mean over the batch
    (``F.cross_entropy`` itself, or an ``nn.CrossEntropyLoss`` with ``reduction="mean"`` and no
    class weights); otherwise None."""
    if loss_fn is nn.functional.cross_entropy:
        return {"ignore_index": -100, "label_smoothing": 0.0}
    if (type(loss_fn) is nn.CrossEntropyLoss and loss_fn.reduction == "mean" and loss_fn.weight is None
            and not _hooked(loss_fn)):
        return {"ignore_index": loss_fn.ignore_index, "label_smoothing": loss_fn.label_smoothing}
    return None


class _StackedCrossEntropy(torch.autograd.Function):
    """out (y, b, C) logits, T (y, b) class indices -> (y,) mean cross-entropy of each replica
    over its samples whose target is not ``ignore_index`` (torch's mean reduction, replica by
    replica). logsumexp minus the picked logit forward, softmax minus one-hot backward: a few
    operations on the whole (y, b, C) tensor, where torch's log-softmax kernel is slow on many
    short rows. First derivatives only (it is used inside the training step)."""

    @staticmethod
    def forward(ctx, out, T, ignore_index):
        valid = T != ignore_index
        index = torch.where(valid, T, 0).unsqueeze(-1)
        lse = torch.logsumexp(out, -1)
        count = valid.sum(1)
        losses = ((lse - out.gather(-1, index).squeeze(-1)) * valid).sum(1) / count
        ctx.save_for_backward(out, lse, index, valid, count)
        return losses

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        out, lse, index, valid, count = ctx.saved_tensors
        grad = torch.exp(out - lse.unsqueeze(-1))
        grad.scatter_add_(-1, index, torch.full_like(index, -1, dtype=grad.dtype))
        scale = (g / count).unsqueeze(1) * valid
        return grad.mul_(scale.unsqueeze(-1)), None, None


def stacked_losses(out: torch.Tensor, T: torch.Tensor, loss_fn) -> torch.Tensor:
    """Losses ``loss_fn(out[a], T[a])`` of stacked outputs and targets, shape (y,).

    Torch's cross-entropy (see :func:`_cross_entropy_options`) is computed once, per sample, on
    the outputs folded into one batch (y * b, ...); each replica's loss is then the mean of its
    samples (targets equal to ``ignore_index`` left out), which is what torch's mean reduction
    gives replica by replica. Any other ``loss_fn`` is called replica by replica on slices of
    ``out``."""
    options = _cross_entropy_options(loss_fn)
    if (options is not None and out.dim() == 3 and T.dim() == 2 and T.shape == out.shape[:2]
            and not T.is_floating_point() and options["label_smoothing"] == 0.0):
        return _StackedCrossEntropy.apply(out, T, options["ignore_index"])
    if options is not None and out.dim() >= 3 and T.shape[:2] == out.shape[:2]:
        y = out.shape[0]
        per_sample = nn.functional.cross_entropy(out.flatten(0, 1), T.flatten(0, 1), reduction="none",
                                                 **options).reshape(y, -1)
        if T.is_floating_point():     # class probabilities: nothing is ignored
            return per_sample.mean(1)
        return per_sample.sum(1) / (T != options["ignore_index"]).reshape(y, -1).sum(1)
    return stack_scalars([loss_fn(o, t) for o, t in zip(out.unbind(0), T.unbind(0))])


def first_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` of an exception, first line, shortened."""
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    if len(msg) > limit:
        msg = msg[:limit] + "..."
    return f"{type(exc).__name__}: {msg}"


def center_rate(owner, gamma: float) -> float:
    """eta_c * gamma * y, the fraction of the way the explicit center moves towards the
    barycenter in one step (``owner``: a Replicated or DistributedReplica with ``center_lr``,
    ``optimizer``, ``replicas`` and ``_warned_center``). eta_c defaults to the optimizer's
    current learning rate. Warns once when the rate reaches 2 (the center then oscillates with
    growing amplitude)."""
    import warnings

    eta_c = owner.center_lr
    if eta_c is None:
        try:
            eta_c = float(owner.optimizer.param_groups[0]["lr"])
        except KeyError:
            raise ValueError("center_lr: needed with coupling='center' when the optimizer has no 'lr'") from None
    rate = eta_c * gamma * owner.replicas
    if rate >= 2.0 and not owner._warned_center:
        owner._warned_center = True
        warnings.warn(f"{type(owner).__name__}: center_lr * gamma * replicas = {rate:.3g} >= 2: the explicit "
                      "center oscillates with growing amplitude; lower center_lr", UserWarning, stacklevel=3)
    return rate


class GammaClock:
    """The coupling schedule of a replicated trainer: ``gamma_schedule(t)`` with t the number of
    steps done (``gamma_clock="step"``) or the epoch counter (``"epoch"``)."""

    @property
    def gamma(self) -> float:
        """The coupling strength the next step will use."""
        t = self.steps if self.gamma_clock == "step" else self.epoch
        return check_real(self.gamma_schedule(t), "gamma", 0.0, strict=False, what=f" at t={t}")

    def next_epoch(self) -> None:
        """Advance the epoch counter (the clock of gamma when ``gamma_clock="epoch"``)."""
        self.epoch += 1


class GammaInGroups:
    """For the optimizers whose parameter groups hold ``gamma`` as a float or a schedule:
    ``state_dict`` stores a schedule as its description (a string, so that the state loads
    with ``torch.load(weights_only=True)``), and ``load_state_dict`` keeps the schedule this
    optimizer was built with where the saved state has such a description (the schedule is given
    to the constructor again, as for :class:`thermolearn.deep.Replicated`)."""

    def state_dict(self):
        from ..schedules import describe

        state = super().state_dict()
        for group in state["param_groups"]:
            if not isinstance(group["gamma"], float):
                group["gamma"] = str(describe(group["gamma"]) or "a callable schedule")
        return state

    def load_state_dict(self, state_dict):
        mine = [group["gamma"] for group in self.param_groups]
        super().load_state_dict(state_dict)
        for group, gamma in zip(self.param_groups, mine):
            if isinstance(group["gamma"], str):
                group["gamma"] = gamma

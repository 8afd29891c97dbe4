"""Training an RBM by stochastic gradient ascent on the log-likelihood.

    d log p(v) / dW = beta ( <v h^T>_data - <v h^T>_model ),   likewise for a (v) and b (h).

The positive phase uses p(h|v) of the data rows. The negative phase (the model average) is
estimated by one of:

- ``"cd"``   contrastive divergence: k Gibbs sweeps started at the data (Hinton 2002);
- ``"pcd"``  persistent chains, one per batch row, carried across updates (Tieleman 2008);
- ``"mf"``, ``"tap2"``, ``"tap3"``: magnetizations relaxed by ``k`` damped sweeps of the naive,
  second- or third-order TAP fixed point (Gabrie, Tramel & Krzakala 2015), persistent across
  updates (``magnetizations="persistent"``, the default) or started at each update from the
  batch itself (``"data"``, as in the authors' reference codes; the TAP analogue of CD).

Updates use momentum and L2 weight decay on W (Hinton, "A practical guide to training
restricted Boltzmann machines", 2010). Each epoch records the mean free energy of a fixed
training subset and of the validation data (the guide's overfitting monitor: a growing gap
means overfitting), the mean-field reconstruction error and the seconds spent.

Checkpoints. With ``checkpoint=PATH`` the full state (parameters, momenta, chains, random
streams, history) and every setting that changes the trajectory (see :data:`TRAJECTORY`) are
saved, and nothing good is ever replaced by a failed run:

- during a run, the state after each epoch is written atomically to ``PATH.part`` (the
  in-progress checkpoint, :func:`in_progress_path`); ``PATH`` itself is replaced, by a rename,
  only when the run has done all its epochs;
- with ``resume=True`` (the default) a run continues ``PATH.part`` when there is one (an
  interrupted run), else ``PATH``. Its settings must equal the ones asked for, otherwise
  :class:`~thermolearn.errors.CheckpointMismatch` names the first differing setting; asking for
  more epochs than it holds continues it (the number of epochs is not a trajectory setting);
- ``resume=False`` starts over; ``PATH`` is still replaced only when the new run finishes;
- a run that diverges to NaN/Inf raises :class:`~thermolearn.errors.TrainingDiverged`: the
  model in memory is put back to its last finite state, ``PATH.part`` is removed (it holds a
  trajectory that diverges) and ``PATH`` is left as it was. An interrupted run (Ctrl-C, an
  exception in ``callback``) leaves ``PATH.part`` for the next run to resume.

A learning rate that decays to 0 over the run (``LinearDecay(lr, epochs)``) depends on the
number of epochs, so a longer run with it is another trajectory and is refused; continue with a
constant or epoch-independent schedule, or start over.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .._numerics import as_tensor, check_int, check_real
from .._numerics import binarize as _binarize
from .._random import BernoulliSampler
from ..errors import CheckpointMismatch, ModelFileError, TrainingDiverged
from ..io import load_tensors, save_tensors
from ..results import Result, json_ready
from ..schedules import as_schedule, describe
from ..seeding import as_generator, check_seed
from .rbm import RBM

METHODS = ("cd", "pcd", "mf", "tap2", "tap3")
TAP_ORDER = {"mf": 1, "tap2": 2, "tap3": 3}
BINARIZE = (None, "threshold", "stochastic")

#: The settings a checkpoint records and a resumed run must repeat, in the order they are
#: compared. ``data`` is a SHA-1 of the training rows after binarization.
TRAJECTORY = ("n_visible", "n_hidden", "beta", "dtype", "method", "k", "batch_size", "lr",
              "momentum", "weight_decay", "damping", "monitor_size", "seed", "binarize", "probabilities",
              "n_data", "data", "magnetizations")

_SETTING_DEFAULTS = {"magnetizations": "persistent"}
"""Values of settings added after a checkpoint format was fixed: a checkpoint without the key
was written with this value."""
MAGNETIZATIONS = ("persistent", "data")

CHECKPOINT_FORMAT = 2


@dataclass
class TrainResult(Result):
    """What :func:`train` returns (the model itself is trained in place).

    history : one JSON-ready dict per epoch done, including epochs read from a checkpoint;
        ``step`` is the number of epochs done after it (1, 2, ...), and the record holds
        ``free_energy_train`` (mean F of the monitor rows), ``free_energy_valid`` and
        ``free_energy_gap`` (with validation data), ``reconstruction_error``, ``seconds``
        (of that epoch), ``lr`` and ``momentum`` (used during it).
    settings : the trajectory settings (:data:`TRAJECTORY`), JSON-ready.
    seconds : wall time of this call.
    steps : epochs done in all (``len(history)``); ``step_unit`` is ``"epoch"``.
    resumed_steps : epochs read from a checkpoint (0 for a fresh run).
    negative_hidden : (batch_size, n_hidden) hidden states of the negative phase after the last
        update: the persistent chains (pcd), the last Gibbs sample (cd), the magnetizations
        (mf, tap); None when this call ran no epoch.
    """

    history: list[dict] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    seconds: float = 0.0
    steps: int = 0
    step_unit: str = "epoch"
    resumed_steps: int = 0
    negative_hidden: torch.Tensor | None = None


def check_magnetizations(magnetizations, method: str) -> str:
    """``magnetizations`` if it is valid for ``method``, else ValueError naming it."""
    if magnetizations not in MAGNETIZATIONS:
        raise ValueError(f"magnetizations: expected 'persistent' or 'data', got {magnetizations!r}")
    if magnetizations != "persistent" and method not in TAP_ORDER:
        raise ValueError(f"magnetizations: {magnetizations!r} applies to mf, tap2 and tap3 only, "
                         f"not to method={method!r}")
    return magnetizations


def in_progress_path(checkpoint) -> Path:
    """Where a run writes its checkpoint until it finishes: ``checkpoint`` + ``.part``."""
    return Path(str(checkpoint) + ".part")


def train(rbm: RBM, data, method: str = "pcd", k: int | None = None, epochs: int = 10,
          batch_size: int = 100, lr=0.01, momentum=0.5, weight_decay: float = 1e-4,
          validation=None, binarize: str | None = None, probabilities: bool = False,
          monitor_size: int = 1000,
          damping: float = 0.5, magnetizations: str = "persistent", seed=0, checkpoint=None, resume: bool = True,
          progress: bool = False, callback=None) -> TrainResult:
    """Train ``rbm`` in place on the rows of ``data`` (shape (n, n_visible), binary).

    Parameters
    ----------
    method : "cd", "pcd", "mf", "tap2" or "tap3" (see the module docstring).
    k : Gibbs sweeps per update (cd/pcd, default 1), damped fixed-point sweeps per update
        (mf/tap, default 3 as in the reference codes); >= 1.
    epochs : passes over the data in all (epochs read from a checkpoint count), >= 1.
    batch_size : rows per update, >= 1 (at most the number of rows is used).
    lr, momentum : numbers or schedules of the epoch ``t = 0, 1, ...`` (thermolearn.schedules);
        every value must satisfy lr > 0 and 0 <= momentum < 1 (checked for all epochs before
        training). The learning rate multiplies the gradient averaged over the batch. Hinton's
        guide raises the momentum from 0.5 to 0.9 after 5 epochs (``Step(0.5, 0.9, at=5)``);
        with PCD on MNIST that switch destabilised the chains at lr 0.01-0.05, so the default
        stays at 0.5. Only schedule objects (and numbers) can be compared with a checkpoint.
    weight_decay : L2 penalty on W, >= 0.
    validation : held-out rows; their mean free energy is recorded every epoch.
    binarize : None (data must be 0/1), "threshold" or "stochastic" for data in [0, 1].
    probabilities : train on data in [0, 1] as they are (pixel intensities read as the
        probabilities of the visible units): the positive phase uses them in place of binary
        rows and CD chains start from them; the negative phase stays binary. Some published
        recipes train so and test on binarized data. Default False: rows must be 0/1 (or
        binarized by ``binarize``); with True, ``binarize`` must be None.
    monitor_size : rows of the fixed training subset used for the free-energy monitor, >= 1.
    damping : of the mf/tap fixed-point sweeps, in [0, 1).
    magnetizations : where the fixed-point sweeps of mf/tap start at each update: "persistent"
        (the magnetizations the previous update reached) or "data" (the batch rows, with the
        hidden magnetizations p(h | row)). Only "persistent" is accepted for cd and pcd.
    seed : int, torch.Generator or None (thermolearn.seeding): shuffling, chain initialisation
        and sampling. Only an int seed is recorded in a checkpoint.
    checkpoint, resume : see the module docstring; the initial parameters of ``rbm`` are
        replaced by the checkpoint's when a run is resumed.
    progress : draw a progress bar on standard error.
    callback : called as callback(record, rbm) after each epoch.

    The last partial batch of each (shuffled) epoch is skipped, so every update uses
    ``batch_size`` rows and ``batch_size`` persistent chains.
    """
    t_start = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    if binarize not in BINARIZE:
        raise ValueError(f"binarize: expected None, 'threshold' or 'stochastic', got {binarize!r}")
    if not isinstance(probabilities, bool):
        raise TypeError(f"probabilities: expected True or False, got {probabilities!r}")
    if probabilities and binarize is not None:
        raise ValueError(f"probabilities: training on probabilities uses the data as they are; "
                         f"it cannot be combined with binarize={binarize!r}")
    check_magnetizations(magnetizations, method)
    if k is None:
        k = 3 if method in TAP_ORDER else 1
    k, batch_size = check_int(k, "k"), check_int(batch_size, "batch_size")
    epochs, monitor_size = check_int(epochs, "epochs"), check_int(monitor_size, "monitor_size")
    weight_decay = check_real(weight_decay, "weight_decay", strict=False)
    damping = check_real(damping, "damping", strict=False)
    if damping >= 1.0:
        raise ValueError(f"damping: expected a number in [0, 1), got {damping!r}")
    lr_at = _checked_schedule(lr, "lr", epochs, low=0.0, strict=True)
    momentum_at = _checked_schedule(momentum, "momentum", epochs, low=0.0, strict=False, high=1.0)
    seed = check_seed(seed)
    gen = as_generator(seed)
    X = _prepare(data, "data", rbm, binarize, gen, probabilities)
    V = _prepare(validation, "validation", rbm, binarize, gen, probabilities) if validation is not None else None
    n = X.shape[0]
    B = min(batch_size, n)
    settings = json_ready(dict(
        n_visible=rbm.n_visible, n_hidden=rbm.n_hidden, beta=rbm.beta,
        dtype=str(rbm.dtype).removeprefix("torch."), data=_digest(X) if checkpoint is not None else None,
        n_data=n, binarize=binarize, probabilities=probabilities, method=method, k=k, batch_size=B, lr=describe(lr),
        momentum=describe(momentum), weight_decay=weight_decay, damping=damping,
        monitor_size=monitor_size, seed=seed if isinstance(seed, int) else None,
        magnetizations=magnetizations))
    monitor = torch.randperm(n, generator=gen)[:min(monitor_size, n)]
    state = new_state(rbm, method, X, B, gen)
    state.from_data = magnetizations == "data"
    state.monitor = monitor
    history: list[dict] = []

    final = Path(checkpoint) if checkpoint is not None else None
    part = in_progress_path(final) if final is not None else None
    if final is not None and resume:
        source = part if part.exists() else final if final.exists() else None
        if source is not None:
            history = _load_checkpoint(source, rbm, state, settings, (lr, momentum))
            if len(history) > epochs:
                raise CheckpointMismatch(
                    f"epochs: the checkpoint {source} holds {len(history)} epochs, more than the "
                    f"{epochs} asked for; ask for at least {len(history)} or pass resume=False",
                    setting="epochs", saved=len(history), requested=epochs)
            if source == part and len(history) == epochs:   # finished, but not yet renamed
                os.replace(part, final)
    resumed = len(history)
    X_monitor = X[state.monitor]

    bar = None
    if progress and epochs > resumed:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, initial=resumed, desc=f"{method} epochs", unit="epoch")
    try:
        for epoch in range(resumed, epochs):
            good = [t.clone() for t in _learned(rbm, state)]
            t0 = time.perf_counter()
            with torch.inference_mode():
                _epoch(rbm, state, X, B, method, k, lr_at(epoch), momentum_at(epoch), weight_decay,
                       damping)
            seconds = time.perf_counter() - t0
            if not all(bool(torch.isfinite(t).all()) for t in _learned(rbm, state)):
                for t, saved in zip(_learned(rbm, state), good):
                    t.copy_(saved)
                raise _diverged(epoch, method, lr_at(epoch), momentum_at(epoch), final, part)
            record = {"step": epoch + 1, **_monitor(rbm, X_monitor, V), "seconds": seconds,
                      "lr": float(lr_at(epoch)), "momentum": float(momentum_at(epoch))}
            history.append(record)
            if part is not None:
                _save_checkpoint(part, rbm, state, settings, history)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(F_train=f"{record['free_energy_train']:.2f}",
                                F_valid=f"{record.get('free_energy_valid', float('nan')):.2f}",
                                recon=f"{record['reconstruction_error']:.4f}")
            if callback is not None:
                callback(record, rbm)
    finally:
        if bar is not None:
            bar.close()
    if part is not None and len(history) > resumed:
        os.replace(part, final)             # the run is complete: it becomes the checkpoint
    negative = None
    if len(history) > resumed:
        negative = {"pcd": state.chain_h, "cd": state.buffers.get("h")}.get(method, state.m_h)
        negative = None if negative is None else negative.clone()
    return TrainResult(history=history, settings=settings, seconds=time.perf_counter() - t_start,
                       steps=len(history), resumed_steps=resumed, negative_hidden=negative)


def _checked_schedule(value, name, epochs, low, strict, high=None):
    """``as_schedule`` plus a check of the values at the epochs 0..epochs-1 (cheap: one call
    per epoch), errors naming ``name`` and the epoch."""
    schedule = as_schedule(value, name, minimum=low, strict=strict)
    for t in range(epochs):
        try:
            v = float(schedule(t))
        except Exception as exc:
            raise ValueError(f"{name}: the schedule failed at epoch {t}: {exc}") from None
        bad = not (v > low if strict else v >= low) or (high is not None and v >= high) or v != v \
            or v in (float("inf"), float("-inf"))
        if bad:
            span = f"in [{low:g}, {high:g})" if high is not None else f"> {low:g}"
            raise ValueError(f"{name}: expected values {span}, got {v!r} at epoch {t}")
    return schedule


def _diverged(epoch, method, lr, momentum, final, part) -> TrainingDiverged:
    """Remove the in-progress checkpoint and say what was kept."""
    if part is not None and part.exists():
        part.unlink()
    if final is None:
        kept = "no checkpoint was asked for"
    elif final.exists():
        kept = f"the checkpoint {final} was left as it was"
    else:
        kept = "no checkpoint was written"
    back = f"the end of epoch {epoch}" if epoch else "its initial state"
    return TrainingDiverged(
        f"parameters became NaN/Inf during epoch {epoch + 1} (method={method}, lr={lr:g}, "
        f"momentum={momentum:g}); the model in memory was reset to {back} and {kept}. "
        "Lower the learning rate or the momentum.")


def _digest(X: torch.Tensor) -> str:
    """SHA-1 of the rows (identifies the data of a resumed run)."""
    h = hashlib.sha1(str(tuple(X.shape)).encode())
    h.update(X.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# one epoch
# ---------------------------------------------------------------------------------------------

def _epoch(rbm, st, X, B, method, k, lr, mom, wd, damping):
    W, a, b = rbm.W, rbm.visible_bias, rbm.hidden_bias
    perm = torch.randperm(X.shape[0], generator=st.gen).to(X.device)
    step_size = lr * rbm.beta / B  # the gradient of the mean log-likelihood carries a factor beta
    n_batches = X.shape[0] // B
    for i in range(n_batches):
        batch = X.index_select(0, perm[i * B:(i + 1) * B])
        if mom == 0 and i < n_batches - 1:
            # no velocity: the GEMMs write into the parameters, the decay is their beta factor
            # (W <- (1 - lr wd) W + step (data term - model term)); the last batch goes the
            # general way, so the velocity a later epoch's momentum reads is the last step
            batch_gradient(rbm, st, batch, method, k, damping, out=(W, a, b), scale=step_size,
                           momentum=1.0 - lr * wd, bias_momentum=1.0)
            continue
        # v <- mom v + step (data term - model term) - lr wd W, accumulated by the GEMMs
        batch_gradient(rbm, st, batch, method, k, damping,
                       out=(st.vW, st.va, st.vb), scale=step_size, momentum=mom)
        if wd:
            st.vW.add_(W, alpha=-lr * wd)
        W.add_(st.vW)
        a.add_(st.va)
        b.add_(st.vb)


def batch_gradient(rbm, st, v0, method, k, damping=0.5, out=None, scale=1.0, momentum=0.0,
                   bias_momentum=None):
    """Sums over the batch of v h^T, v and h: data term minus the method's model term.

    Divided by the batch size (and times beta) this is the estimated gradient of the mean
    log-likelihood. ``st`` carries the persistent chains or magnetizations between calls.
    With ``out=(gW, ga, gb)`` the result is accumulated as out <- momentum * out + scale * sums
    (the matrix products write into gW directly; the biases use ``bias_momentum``, by default
    ``momentum``); returns the three tensors. ``out`` may be the model's own parameters: they
    are read only before the accumulation starts.
    """
    B = v0.shape[0]
    if out is None:
        out = (torch.zeros_like(rbm.W), torch.zeros_like(rbm.visible_bias),
               torch.zeros_like(rbm.hidden_bias))
    gW, ga, gb = out
    ph0 = st.buf("ph0", (B, rbm.n_hidden))
    _activate(ph0, v0, rbm.W, rbm.hidden_bias, rbm.beta)              # p(h | data)
    if method in TAP_ORDER:
        if st.from_data:
            st.m_v.copy_(v0)
            st.m_h.copy_(ph0)
        vneg, hneg, dW = _tap_negative(rbm, st, TAP_ORDER[method], k, damping)
        gW.mul_(momentum).add_(dW, alpha=-scale * vneg.shape[0])
    else:
        vneg, hneg = _gibbs_negative(rbm, st, v0, ph0, method, k)
        gW.addmm_(vneg.T, hneg, beta=momentum, alpha=-scale)
    gW.addmm_(v0.T, ph0, alpha=scale)
    bias_momentum = momentum if bias_momentum is None else bias_momentum
    for g, pos, neg in ((ga, v0, vneg), (gb, ph0, hneg)):
        if bias_momentum != 1.0:
            g.mul_(bias_momentum)
        g.add_(pos.sum(0) - neg.sum(0), alpha=scale)
    return gW, ga, gb


def _activate(out, x, W, bias, beta):
    """out = sigmoid(beta (bias + x W)), in place."""
    torch.addmm(bias, x, W, out=out)
    if beta != 1.0:
        out.mul_(beta)
    return out.sigmoid_()


def _gibbs_negative(rbm, st, v0, ph0, method, k):
    """k block-Gibbs sweeps from the data (cd) or from the persistent chains (pcd)."""
    W, a, b, beta = rbm.W, rbm.visible_bias, rbm.hidden_bias, rbm.beta
    B = v0.shape[0]
    pv, v = st.buf("pv", (B, rbm.n_visible)), st.buf("v", (B, rbm.n_visible))
    ph = st.buf("ph", (B, rbm.n_hidden))
    h = st.chain_h if method == "pcd" else st.sampler.sample_(st.buf("h", ph0.shape), ph0)
    for _ in range(k):
        _activate(pv, h, W.T, a, beta)
        st.sampler.sample_(v, pv)
        _activate(ph, v, W, b, beta)
        st.sampler.sample_(h, ph)         # for pcd, h is the chain state carried to the next update
    return v, ph


def _tap_negative(rbm, st, order, k, damping):
    from .tap import tap_fixed_point, tap_negative_statistics

    W, a, b = rbm.scaled_parameters()
    st.m_v, st.m_h = tap_fixed_point(W, a, b, st.m_v, st.m_h, order, damping=damping, k=k)
    dW, _, _ = tap_negative_statistics(W, st.m_v, st.m_h, order)
    return st.m_v, st.m_h, dW


# ---------------------------------------------------------------------------------------------
# state: momenta, chains, random streams, buffers
# ---------------------------------------------------------------------------------------------

@dataclass
class _State:
    gen: torch.Generator
    sampler: BernoulliSampler
    vW: torch.Tensor
    va: torch.Tensor
    vb: torch.Tensor
    chain_h: torch.Tensor | None = None        # pcd
    m_v: torch.Tensor | None = None            # mf / tap
    m_h: torch.Tensor | None = None
    monitor: torch.Tensor | None = None
    from_data: bool = False                    # mf / tap: sweeps start at the batch
    buffers: dict = field(default_factory=dict)

    @classmethod
    def new(cls, rbm, method, X, B, gen):
        z = lambda t: torch.zeros_like(t)  # noqa: E731
        st = cls(gen=gen, sampler=BernoulliSampler(gen, rbm.device), vW=z(rbm.W),
                 va=z(rbm.visible_bias), vb=z(rbm.hidden_bias))
        start = X[torch.randperm(X.shape[0], generator=gen)[:B].to(X.device)]
        if method == "pcd":
            st.chain_h = st.sampler.sample(rbm.hidden_probabilities(start))
        elif method in TAP_ORDER:
            st.m_v = start.clamp(0.01, 0.99).clone()
            st.m_h = rbm.hidden_probabilities(st.m_v)
        return st

    def buf(self, name, shape):
        t = self.buffers.get(name)
        if t is None or tuple(t.shape) != tuple(shape):
            t = self.buffers[name] = torch.empty(shape, dtype=self.vW.dtype, device=self.vW.device)
        return t

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"vW": self.vW, "va": self.va, "vb": self.vb, "monitor": self.monitor,
               "generator": self.gen.get_state()}
        out.update({f"sampler.{k}": v for k, v in self.sampler.get_state().items()})
        for name in ("chain_h", "m_v", "m_h"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


def new_state(rbm, method, X, B, seed=0) -> _State:
    """Training state (momenta, chains started from B random rows of X, random streams)."""
    return _State.new(rbm, method, X, B, as_generator(seed))


def _learned(rbm, st):
    """The tensors an epoch changes and a divergence must restore: parameters and momenta."""
    return (rbm.W, rbm.visible_bias, rbm.hidden_bias, st.vW, st.va, st.vb)


# ---------------------------------------------------------------------------------------------
# monitoring
# ---------------------------------------------------------------------------------------------

def _monitor(rbm, Xm, V) -> dict:
    with torch.inference_mode():
        rec = {"free_energy_train": float(rbm.free_energy(Xm).double().mean())}
        if V is not None:
            rec["free_energy_valid"] = float(rbm.free_energy(V).double().mean())
            rec["free_energy_gap"] = rec["free_energy_valid"] - rec["free_energy_train"]
        recon = rbm.visible_probabilities(rbm.hidden_probabilities(Xm))
        rec["reconstruction_error"] = float(((recon - Xm) ** 2).double().mean())
    return rec


def _prepare(data, name, rbm, how, gen, probabilities=False):
    X = as_tensor(data, name, ndim=2).to(device=rbm.device, dtype=rbm.dtype)
    if X.shape[1] != rbm.n_visible:
        raise ValueError(f"{name}: expected {rbm.n_visible} columns (n_visible), got shape {tuple(X.shape)}")
    if X.shape[0] < 1:
        raise ValueError(f"{name}: no rows")
    if probabilities:
        lo, hi = float(X.min()), float(X.max())
        if not (0.0 <= lo and hi <= 1.0):
            raise ValueError(f"{name}: probabilities=True needs values in [0, 1], got [{lo:g}, {hi:g}]")
        return X.contiguous()
    return _binarize(X, how, name, generator=gen if X.device.type == "cpu" else None).contiguous()


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------

def _save_checkpoint(path, rbm, st, settings, history):
    tensors = {"W": rbm.W, "visible_bias": rbm.visible_bias, "hidden_bias": rbm.hidden_bias}
    tensors.update({f"state.{k}": v for k, v in st.tensors().items()})
    meta = {"kind": "rbm-checkpoint", "format": CHECKPOINT_FORMAT, "beta": rbm.beta,
            "settings": settings, "history": history}
    save_tensors(path, tensors, json_ready(meta))


def _load_checkpoint(path, rbm, st, settings, schedules) -> list[dict]:
    """Read ``path`` into ``rbm`` and ``st`` after checking its settings; return its history."""
    tensors, meta = load_tensors(path, kind="rbm-checkpoint")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{path}: a checkpoint of another format ({meta.get('format')!r}); "
                             "remove it or pass resume=False")
    saved = meta.get("settings", {})
    for name, value in zip(("lr", "momentum"), schedules):
        if settings[name] is None:
            raise CheckpointMismatch(
                f"{name}: {value!r} is a callable that is not a thermolearn.schedules object, so it "
                f"cannot be compared with the checkpoint {path}; use a schedule object, or pass "
                "resume=False to start over", setting=name, saved=saved.get(name), requested=None)
    for key in TRAJECTORY:
        was = saved.get(key, _SETTING_DEFAULTS.get(key))
        if was != settings[key]:
            what = ("the training data differ from the checkpoint's" if key == "data" else
                    f"the checkpoint {path} was written with {key}={was!r}, now {settings[key]!r}")
            raise CheckpointMismatch(
                f"{key}: {what}; pass resume=False to start over (the checkpoint is replaced only "
                "when the new run finishes)", setting=key, saved=was, requested=settings[key])
    try:
        for name, t in (("W", rbm.W), ("visible_bias", rbm.visible_bias), ("hidden_bias", rbm.hidden_bias),
                        ("state.vW", st.vW), ("state.va", st.va), ("state.vb", st.vb)):
            t.copy_(tensors[name])
        for name in ("chain_h", "m_v", "m_h"):
            if f"state.{name}" in tensors:
                setattr(st, name, tensors[f"state.{name}"].to(device=rbm.device, dtype=rbm.dtype))
        st.monitor = tensors["state.monitor"]
        st.gen.set_state(tensors["state.generator"])
        st.sampler.set_state({"streams": tensors["state.sampler.streams"],
                              "torch_generator": tensors["state.sampler.torch_generator"]})
    except (KeyError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: incomplete or inconsistent checkpoint ({exc})") from None
    return list(meta.get("history", []))

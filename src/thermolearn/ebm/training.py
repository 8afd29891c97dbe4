"""Training an RBM by stochastic gradient ascent on the log-likelihood.

    d log p(v) / dW = beta ( <v h^T>_data - <v h^T>_model ),   likewise for a (v) and b (h).

The positive phase uses p(h|v) of the data rows. The negative phase (the model average) is
estimated by one of:

- ``"cd"``   contrastive divergence: k Gibbs sweeps started at the data (Hinton 2002);
- ``"pcd"``  persistent chains, one per batch row, carried across updates (Tieleman 2008);
- ``"mf"``, ``"tap2"``, ``"tap3"``: persistent magnetizations relaxed by ``k`` damped sweeps of
  the naive, second- or third-order TAP fixed point, with the statistics of ebm/tap.py
  (Gabrie, Tramel & Krzakala 2015).

Updates use momentum and L2 weight decay on W (Hinton's practical guide, 2010). Each epoch
records the mean free energy of a fixed training subset and of the validation data (the
guide's overfitting monitor: a growing gap means overfitting), the mean-field reconstruction
error and the seconds spent. With ``checkpoint=PATH`` the full state (parameters, momenta,
chains, random streams, history) is written atomically after every epoch and training resumes
from it; a run that diverges to NaN/Inf stops with :class:`TrainingDiverged`, the model is put
back to its last good state and the last checkpoint is left untouched.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .._numerics import as_tensor, check_int, check_real
from .._numerics import binarize as _binarize
from .._random import BernoulliSampler
from ..errors import ModelFileError, TrainingDiverged
from ..io import load_tensors, save_tensors
from ..schedules import as_schedule
from ..seeding import as_generator
from .rbm import RBM

METHODS = ("cd", "pcd", "mf", "tap2", "tap3")
TAP_ORDER = {"mf": 1, "tap2": 2, "tap3": 3}


@dataclass
class TrainHistory:
    """Per-epoch records (dicts) and the settings of the run."""

    records: list[dict] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def __getitem__(self, key):
        """history["free_energy_train"] -> list over epochs."""
        return [r.get(key) for r in self.records]

    def __len__(self):
        return len(self.records)

    @property
    def last(self) -> dict:
        return self.records[-1] if self.records else {}


def train(rbm: RBM, data, method: str = "pcd", k: int | None = None, epochs: int = 10, batch_size: int = 100,
          lr=0.01, momentum=0.5, weight_decay: float = 1e-4, validation=None,
          binarize: str | None = None, monitor_size: int = 1000, damping: float = 0.5,
          seed=0, checkpoint=None, resume: bool = True, progress: bool = False,
          callback=None) -> TrainHistory:
    """Train ``rbm`` in place on the rows of ``data`` (shape (n, n_visible), binary).

    Parameters
    ----------
    method : "cd", "pcd", "mf", "tap2" or "tap3" (see the module docstring).
    k : Gibbs sweeps per update (cd/pcd, default 1), damped fixed-point sweeps per update
        (mf/tap, default 3 as in the reference codes).
    lr, momentum : numbers or callables epoch -> number (see thermolearn.schedules). The
        learning rate multiplies the gradient averaged over the batch. Hinton's guide raises
        the momentum from 0.5 to 0.9 after 5 epochs (``schedules.step(0.5, 0.9, at=5)``); with
        PCD on MNIST that switch destabilised the chains at lr 0.01-0.05 (benchmarks/BENCHMARKS.md),
        so the default stays at 0.5.
    weight_decay : L2 penalty on W.
    validation : held-out rows; their mean free energy is recorded every epoch.
    binarize : None (data must be 0/1), "threshold" or "stochastic" for data in [0, 1].
    monitor_size : rows of the fixed training subset used for the free-energy monitor.
    seed : int or torch.Generator: shuffling, chain initialisation and sampling.
    checkpoint : path of a checkpoint written after every epoch; with ``resume`` an existing
        checkpoint of a compatible run is continued (epochs already done are skipped).
    callback : called as callback(epoch_record, rbm) after each epoch.

    The last partial batch of each (shuffled) epoch is skipped, so every update uses
    ``batch_size`` rows and ``batch_size`` persistent chains.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if k is None:
        k = 3 if method in TAP_ORDER else 1
    k, batch_size = check_int(k, "k"), check_int(batch_size, "batch_size")
    epochs = check_int(epochs, "epochs", minimum=0)
    weight_decay = check_real(weight_decay, "weight_decay", strict=False)
    lr_at, momentum_at = as_schedule(lr, "lr"), as_schedule(momentum, "momentum")
    gen = as_generator(seed)
    X = _prepare(data, "data", rbm, binarize, gen)
    V = _prepare(validation, "validation", rbm, binarize, gen) if validation is not None else None
    n = X.shape[0]
    B = min(batch_size, n)
    settings = dict(method=method, k=k, batch_size=B, weight_decay=weight_decay, beta=rbm.beta,
                    n_visible=rbm.n_visible, n_hidden=rbm.n_hidden, n_data=n)
    if checkpoint is not None:     # identifies the data of a resumed run
        settings["data_checksum"] = float(X.sum(dtype=torch.float64))
    monitor = torch.randperm(n, generator=gen)[:min(monitor_size, n)]
    state = new_state(rbm, method, X, B, gen)
    history = TrainHistory(settings=settings)

    if checkpoint is not None and resume and Path(checkpoint).exists():
        history = _load_checkpoint(checkpoint, rbm, state, settings)
        monitor = state.monitor
    state.monitor = monitor
    X_monitor = X[monitor]

    start = len(history)
    bar = None
    if progress and epochs > start:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, initial=start, desc=f"{method} epochs", unit="epoch")
    try:
        for epoch in range(start, epochs):
            good = [t.clone() for t in _learned(rbm, state)]
            t0 = time.perf_counter()
            with torch.inference_mode():
                _epoch(rbm, state, X, B, method, k, lr_at(epoch), momentum_at(epoch), weight_decay,
                       damping)
            seconds = time.perf_counter() - t0
            if not all(bool(torch.isfinite(t).all()) for t in _learned(rbm, state)):
                for t, saved in zip(_learned(rbm, state), good):
                    t.copy_(saved)
                where = f"; the last good checkpoint is {checkpoint}" if checkpoint else ""
                raise TrainingDiverged(
                    f"parameters became NaN/Inf during epoch {epoch} (method={method}, "
                    f"lr={lr_at(epoch):g}); the model was reset to the end of epoch {epoch - 1}"
                    f"{where}. Lower the learning rate or momentum.")
            record = _monitor(rbm, X_monitor, V)
            record.update(epoch=epoch, seconds=seconds, lr=lr_at(epoch), momentum=momentum_at(epoch))
            history.records.append(record)
            if checkpoint is not None:
                _save_checkpoint(checkpoint, rbm, state, history)
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
    return history


# ---------------------------------------------------------------------------------------------
# one epoch
# ---------------------------------------------------------------------------------------------

def _epoch(rbm, st, X, B, method, k, lr, mom, wd, damping):
    W, a, b = rbm.W, rbm.visible_bias, rbm.hidden_bias
    perm = torch.randperm(X.shape[0], generator=st.gen).to(X.device)
    step_size = lr * rbm.beta / B  # the gradient of the mean log-likelihood carries a factor beta
    for i in range(X.shape[0] // B):
        # v <- mom v + step (data term - model term) - lr wd W, accumulated by the GEMMs
        batch_gradient(rbm, st, X.index_select(0, perm[i * B:(i + 1) * B]), method, k, damping,
                       out=(st.vW, st.va, st.vb), scale=step_size, momentum=mom)
        if wd:
            st.vW.add_(W, alpha=-lr * wd)
        W.add_(st.vW)
        a.add_(st.va)
        b.add_(st.vb)


def batch_gradient(rbm, st, v0, method, k, damping=0.5, out=None, scale=1.0, momentum=0.0):
    """Sums over the batch of v h^T, v and h: data term minus the method's model term.

    Divided by the batch size (and times beta) this is the estimated gradient of the mean
    log-likelihood. ``st`` carries the persistent chains or magnetizations between calls.
    With ``out=(gW, ga, gb)`` the result is accumulated as out <- momentum * out + scale * sums
    (the matrix products write into gW directly); returns the three tensors.
    """
    B = v0.shape[0]
    if out is None:
        out = (torch.zeros_like(rbm.W), torch.zeros_like(rbm.visible_bias),
               torch.zeros_like(rbm.hidden_bias))
    gW, ga, gb = out
    ph0 = st.buf("ph0", (B, rbm.n_hidden))
    _activate(ph0, v0, rbm.W, rbm.hidden_bias, rbm.beta)              # p(h | data)
    if method in TAP_ORDER:
        vneg, hneg, dW = _tap_negative(rbm, st, TAP_ORDER[method], k, damping)
        gW.mul_(momentum).add_(dW, alpha=-scale * vneg.shape[0])
    else:
        vneg, hneg = _gibbs_negative(rbm, st, v0, ph0, method, k)
        gW.addmm_(vneg.T, hneg, beta=momentum, alpha=-scale)
    gW.addmm_(v0.T, ph0, alpha=scale)
    ga.mul_(momentum).add_(v0.sum(0) - vneg.sum(0), alpha=scale)
    gb.mul_(momentum).add_(ph0.sum(0) - hneg.sum(0), alpha=scale)
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
    st.m_v, st.m_h = tap_fixed_point(W, a, b, st.m_v, st.m_h, order, damping=damping, n_iter=k)
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


def _prepare(data, name, rbm, how, gen):
    X = as_tensor(data, name, ndim=2).to(device=rbm.device, dtype=rbm.dtype)
    if X.shape[1] != rbm.n_visible:
        raise ValueError(f"{name}: expected {rbm.n_visible} columns (n_visible), got shape {tuple(X.shape)}")
    if X.shape[0] < 1:
        raise ValueError(f"{name}: no rows")
    return _binarize(X, how, name, generator=gen if X.device.type == "cpu" else None).contiguous()


# ---------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------

_COMPARED = ("method", "k", "batch_size", "beta", "n_visible", "n_hidden", "n_data", "weight_decay")


def _save_checkpoint(path, rbm, st, history):
    tensors = {"W": rbm.W, "visible_bias": rbm.visible_bias, "hidden_bias": rbm.hidden_bias}
    tensors.update({f"state.{k}": v for k, v in st.tensors().items()})
    meta = {"kind": "rbm-checkpoint", "beta": rbm.beta, "settings": history.settings,
            "records": history.records}
    save_tensors(path, tensors, json.loads(json.dumps(meta, default=float)))


def _load_checkpoint(path, rbm, st, settings) -> TrainHistory:
    tensors, meta = load_tensors(path, kind="rbm-checkpoint")
    saved = meta.get("settings", {})
    diff = [f"{key}: checkpoint {saved.get(key)!r}, now {settings[key]!r}"
            for key in _COMPARED if saved.get(key) != settings[key]]
    if not math.isclose(saved.get("data_checksum", math.nan), settings["data_checksum"], rel_tol=1e-9):
        diff.append("data: the training data differ from the checkpoint's")
    if diff:
        raise ValueError(f"checkpoint {path} belongs to a different run ({'; '.join(diff)}); "
                         "remove it or pass resume=False")
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
    return TrainHistory(records=list(meta.get("records", [])), settings=settings)

"""Replicated training with one replica per process (``torch.distributed``).

The scale-out path of :class:`thermolearn.deep.Replicated`: every process of a process group holds
one replica (an ordinary module, trained in place) and its own optimizer; the world size is the
number of replicas y. The coupling and its conventions are those of
:mod:`thermolearn.deep.replicated`:

    J = sum_a L(w_a; B_a) + (gamma / 2) sum_a |w_a - c|^2,

* ``coupling="mean"``: c = the barycenter w_bar of the replicas, replica a steps with
  grad L(w_a) + gamma (w_a - w_bar);
* ``coupling="center"``: c = w_c, an explicit center held identically by every process, moved by
  w_c += eta_c gamma sum_a (w_a - w_c) = eta_c gamma y (w_bar - w_c) (eta_c = ``center_lr``,
  default the optimizer's learning rate).

Communication. The barycenter is computed with one ``all_reduce`` of all trainable parameters
(flattened into one buffer) after the optimizer step, every ``tau`` steps (and once at
construction). The coupling of a step uses the barycenter of the last synchronisation: with
``tau=1`` (default) that is the barycenter of the current replicas and the run equals
``Replicated(..., replicas=world_size)`` step for step; with ``tau > 1`` it is up to tau - 1 steps
old (less communication, a lagged coupling; the explicit center also moves towards this lagged
barycenter). Each step also all-reduces two numbers (the data loss and a divergence flag), so that
all processes return the same mean loss and all stop together on a NaN/Inf loss or gradient with
:class:`thermolearn.errors.TrainingDiverged`, before anything is updated.

:attr:`DistributedReplica.center` and :meth:`DistributedReplica.distances` are collective: every
process must call them (they all-reduce the current parameters and buffers).

:func:`launch` runs a function in ``world_size`` fresh processes on this machine (gloo on CPU,
NCCL on GPUs, rendezvous on tcp://127.0.0.1 at a free port), for tests and examples.
"""

from __future__ import annotations

import copy
import os
import socket
import tempfile

import torch
import torch.distributed as dist
from torch import nn

from .._numerics import check_int, check_real
from ..schedules import as_schedule
from . import _functional as F_
from .flatness import distance_summary, squared_distances
from .replicated import COUPLINGS, _grads_finite, make_optimizer

__all__ = ["DistributedReplica", "free_port", "launch"]


class DistributedReplica(F_.GammaClock):
    """This process's replica of a replicated ensemble spread over a process group.

    Parameters
    ----------
    module : this process's replica (trained in place). All processes must pass the same
        architecture; the initial weights may differ.
    gamma, coupling, optimizer, lr, center_lr, gamma_clock : as in :class:`Replicated`.
    tau : synchronise the barycenter every ``tau`` steps (default 1: every step).
    group : the process group (default: the global one, which must be initialised).
    """

    def __init__(self, module: nn.Module, *, gamma=0.0, coupling: str = "mean", optimizer=None, lr=None,
                 center_lr=None, gamma_clock: str = "step", tau: int = 1, group=None):
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("DistributedReplica needs an initialised torch.distributed process group "
                               "(torch.distributed.init_process_group, or thermolearn.deep.launch)")
        if not isinstance(module, nn.Module):
            raise TypeError(f"module: expected an nn.Module, got {type(module).__name__}")
        if coupling not in COUPLINGS:
            raise ValueError(f"coupling: expected one of {COUPLINGS}, got {coupling!r}")
        if gamma_clock not in ("step", "epoch"):
            raise ValueError(f"gamma_clock: expected 'step' or 'epoch', got {gamma_clock!r}")
        self.module = module
        self.group = group
        self.replicas = dist.get_world_size(group)
        self.rank = dist.get_rank(group)
        self.coupling = coupling
        self.gamma_schedule = as_schedule(gamma, "gamma")
        self.gamma_clock = gamma_clock
        self.center_lr = None if center_lr is None else check_real(center_lr, "center_lr", 0.0, strict=False)
        self.tau = check_int(tau, "tau")
        self._trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if not self._trainable:
            raise ValueError("module: it has no trainable parameters")
        self.optimizer = make_optimizer(optimizer, lr, [p for _, p in self._trainable], "DistributedReplica")
        self.steps = 0
        self.epoch = 0
        self.last_loss = None
        self._mean = [torch.empty_like(p, requires_grad=False) for _, p in self._trainable]
        self._sync()
        self._center = [m.clone() for m in self._mean] if coupling == "center" else None
        self._warned_center = False

    # -----------------------------------------------------------------------------------------

    def _all_mean(self, tensors):
        """Mean over processes of ``tensors`` (one flat all_reduce)."""
        if not tensors:
            return []
        flat = torch.cat([t.detach().reshape(-1) for t in tensors])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=self.group)
        flat /= self.replicas
        return list(torch.split(flat, [t.numel() for t in tensors]))

    def _sync(self):
        with torch.no_grad():
            for m, v in zip(self._mean, self._all_mean([p for _, p in self._trainable])):
                m.copy_(v.view_as(m))

    def step(self, batch, loss_fn) -> float:
        """One step of this replica on ``batch = (x, target)`` (collective: every process calls it);
        returns the mean data loss over all replicas."""
        x, target = batch
        gamma = self.gamma
        params = [p for _, p in self._trainable]
        saved = {n: b.clone() for n, b in self.module.named_buffers()}
        for p in params:
            p.grad = None
        self.module.train()
        loss = loss_fn(self.module(x), target)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError("loss_fn: must return a scalar tensor")
        finite = bool(torch.isfinite(loss.detach()))
        if finite:
            loss.backward()
            finite = _grads_finite(params)
        info = torch.tensor([float(loss.detach()) if finite else 0.0, 0.0 if finite else 1.0],
                            dtype=torch.float64, device=loss.device)
        dist.all_reduce(info, op=dist.ReduceOp.SUM, group=self.group)
        if info[1] > 0:
            with torch.no_grad():
                for n, b in self.module.named_buffers():
                    b.copy_(saved[n])
            for p in params:
                p.grad = None
            raise F_.diverged(
                f"{int(info[1])} of {self.replicas} replicas had a NaN/Inf loss or gradient at step "
                f"{self.steps} (gamma={gamma:g}; this is rank {self.rank}, "
                f"{'finite' if finite else 'not finite'} here); nothing was updated.")
        moves, rate = [], 0.0
        if gamma > 0.0:
            with torch.no_grad():
                for i, p in enumerate(params):
                    c = self._center[i] if self._center is not None else self._mean[i]
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                    p.grad.add_(p.detach(), alpha=gamma).sub_(c, alpha=gamma)
                    if self._center is not None:
                        moves.append((c, self._mean[i]))
            if moves:
                rate = F_.center_rate(self, gamma)
        self.optimizer.step()
        if moves:
            with torch.no_grad():
                for c, w_bar in moves:   # w_c += eta_c gamma y (w_bar - w_c)
                    c.lerp_(w_bar, rate)
        self.steps += 1
        if self.steps % self.tau == 0:
            self._sync()
        self.last_loss = float(info[0]) / self.replicas
        return self.last_loss

    # -----------------------------------------------------------------------------------------

    @property
    def center(self) -> nn.Module:
        """The center as a module in eval mode (collective). Parameters: the current barycenter
        (``coupling="mean"``) or w_c (``"center"``; non-trainable parameters: barycenter);
        floating buffers: mean over the replicas; other buffers: this process's."""
        named_p = list(self.module.named_parameters())
        means = self._all_mean([p for _, p in named_p])
        params = {n: m.view_as(p) for (n, p), m in zip(named_p, means)}
        if self._center is not None:
            for (n, _), c in zip(self._trainable, self._center):
                params[n] = c
        named_b = [(n, b) for n, b in self.module.named_buffers() if b.is_floating_point()]
        buffers = {n: m.view_as(b) for (n, b), m in zip(named_b, self._all_mean([b for _, b in named_b]))}
        return F_.module_from(self.module, params, buffers).eval()

    def distances(self) -> dict:
        """Collective: the dict of :func:`thermolearn.deep.replica_distances` over the replicas of
        the group, by rank: ``"to_center"``: tensor (y,) of |w_a - c|^2 (c: barycenter or w_c, of
        the current parameters); ``"mean_to_center"``; ``"pairwise"``: mean over pairs of
        |w_a - w_b|^2."""
        params = [p.detach() for _, p in self._trainable]
        mean = [m.view_as(p) for m, p in zip(self._all_mean(params), params)]
        center = self._center if self._center is not None else mean
        to_c, to_m = squared_distances([p.unsqueeze(0) for p in params], center=center, mean=mean)
        d = torch.zeros(self.replicas, 2, dtype=torch.float64, device=params[0].device)
        d[self.rank, 0], d[self.rank, 1] = to_c[0], to_m[0]
        dist.all_reduce(d, op=dist.ReduceOp.SUM, group=self.group)
        d = d.cpu()
        return distance_summary(d[:, 0], d[:, 1])

    def state_dict(self) -> dict:
        """This process's training state (module, optimizer, center, barycenter, counters)."""
        return {"module": copy.deepcopy(self.module.state_dict()),
                "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "mean": [m.clone() for m in self._mean],
                "center": None if self._center is None else [c.clone() for c in self._center],
                "steps": self.steps, "epoch": self.epoch, "coupling": self.coupling}

    def load_state_dict(self, state: dict) -> None:
        if state.get("coupling") != self.coupling:
            raise ValueError(f"state_dict: coupling is {state.get('coupling')!r}, this replica has {self.coupling!r}")
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        with torch.no_grad():
            for m, v in zip(self._mean, state["mean"]):
                m.copy_(v)
            if self._center is not None:
                for c, v in zip(self._center, state["center"]):
                    c.copy_(v)
        self.steps = check_int(state["steps"], "steps", minimum=0)
        self.epoch = check_int(state["epoch"], "epoch", minimum=0)


# ---------------------------------------------------------------------------------------------
# launcher
# ---------------------------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank, world_size, backend, port, fn, args, outdir, timeout_s):
    import datetime
    if backend == "nccl":
        torch.cuda.set_device(rank % torch.cuda.device_count())
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=timeout_s))
    try:
        result = fn(rank, world_size, *args)
        tmp = os.path.join(outdir, f"{rank}.tmp")
        torch.save(result, tmp)
        os.replace(tmp, os.path.join(outdir, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


def launch(fn, world_size: int, args=(), *, backend: str | None = None, port: int | None = None,
           start_method: str | None = None, timeout_s: float = 300.0) -> list:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` new processes with torch.distributed
    initialised; return the values returned by each rank (in rank order).

    ``backend``: default ``"nccl"`` when CUDA is available (rank r uses GPU r modulo the device
    count), else ``"gloo"``. The rendezvous is on tcp://127.0.0.1 at ``port`` (default: a free
    port). ``start_method``: default ``"fork"`` where the platform has it, the backend is gloo,
    CUDA is not initialised here and torch runs on one thread here (``torch.get_num_threads() ==
    1``); else ``"spawn"``. A forked child starts in milliseconds, a spawned one imports torch
    again (seconds). Fork is unsafe once this process has run torch's OpenMP thread pool (a forked
    child that enters a parallel region can hang), hence the one-thread condition; for the same
    reason ``fn`` should keep one thread in a forked child. With ``"spawn"`` ``fn`` must be
    picklable (defined at the top level of an importable module). Return values go through
    ``torch.save``. An exception in any rank is raised here
    (``torch.multiprocessing.ProcessRaisedException``).
    """
    import multiprocessing

    import torch.multiprocessing as mp
    world_size = check_int(world_size, "world_size")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if start_method is None:
        forkable = "fork" in multiprocessing.get_all_start_methods()
        start_method = ("fork" if forkable and backend == "gloo" and not torch.cuda.is_initialized()
                        and torch.get_num_threads() == 1 else "spawn")
    port = free_port() if port is None else check_int(port, "port")
    with tempfile.TemporaryDirectory(prefix="thermolearn-launch-") as outdir:
        mp.start_processes(_entry, args=(world_size, backend, port, fn, tuple(args), outdir, float(timeout_s)),
                           nprocs=world_size, join=True, start_method=start_method)
        return [torch.load(os.path.join(outdir, f"{r}.pt"), weights_only=False) for r in range(world_size)]

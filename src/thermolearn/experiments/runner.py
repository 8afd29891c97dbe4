"""Sweeps: run the points of experiments on Dask distributed, store each result as it arrives.

    from thermolearn.experiments import run_experiments
    run_experiments(["rbm-small-exact"], quick=True, workers=2, db="runs/thermolearn.sqlite")

1. The grids are expanded; points already ``done`` in the database are skipped, and so are
   ``failed`` ones unless ``retry_failed``.
2. The rest go to Dask: a LocalCluster of ``workers`` processes (1 thread each) on this machine,
   or the existing cluster at ``scheduler`` ("tcp://host:8786").
3. On the worker, :func:`execute` limits the numerical threads (torch, OpenMP, numba) to
   ``threads``, calls the experiment's plain function and catches its exception, if any; it
   returns the records or the error and traceback, the timings and where it ran.
4. The driver collects results in completion order and writes each one to SQLite in its own
   transaction. Killing the driver at any moment (even kill -9) loses only the points in
   flight; the same command resumes with the rest, and a point is never stored twice.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import time
import traceback as tb_module
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from .registry import Experiment, canonical, resolve
from .store import PointResult, Store, split_points

DEFAULT_DB = Path("runs") / "thermolearn.sqlite"
DEFAULT_WORKERS = 2


# ---------------------------------------------------------------------------------------------
# on the worker
# ---------------------------------------------------------------------------------------------

def limit_threads(n: int = 1) -> None:
    """Make torch, OpenMP/MKL and numba use ``n`` threads in this process.

    One thread per point is the right default: points run in parallel, and oversubscribed
    BLAS/OpenMP/numba threads slow small linear algebra down by orders of magnitude. torch and
    numba read the environment when they are first imported, so a library that is not loaded
    yet is not imported here (a point that does not need torch does not pay for its import).
    """
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    if "numba" not in sys.modules:              # numba reads it when first imported
        os.environ["NUMBA_NUM_THREADS"] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@functools.lru_cache(maxsize=1)
def _git_commit() -> Optional[str]:
    """HEAD of the git checkout holding this package, or None (not a checkout, no git)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else None


@functools.cache
def describe_device(device: str = "cpu") -> str:
    """'cpu (model name, N cores)' or 'cuda:0 (GPU name)'."""
    if str(device).startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{device} ({model}, {os.cpu_count()} cores)"


@functools.cache
def _version(distribution: str) -> Optional[str]:
    """The installed version of a distribution, read from its metadata (nothing is imported)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(device: str = "cpu") -> dict:
    """Where a point ran: host, device, package version, git commit, library versions."""
    from .. import __version__

    return {"host": socket.gethostname(), "device": describe_device(device),
            "package_version": __version__, "git_commit": _git_commit(),
            "python": platform.python_version(), "torch": _version("torch"),
            "numpy": _version("numpy"), "dask": _version("dask")}


def _to_plain(value):
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:   # numpy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"record value {value!r} of type {type(value).__name__} is not JSON data")


def plain_records(records) -> list[dict]:
    """The experiment's return value as a list of JSON-ready dicts (numpy/torch scalars and
    arrays converted); a TypeError says what is wrong otherwise."""
    if isinstance(records, dict):
        records = [records]
    if not isinstance(records, (list, tuple)) or not all(isinstance(r, dict) for r in records):
        raise TypeError(f"an experiment must return a list of dicts, got {type(records).__name__}")
    return json.loads(json.dumps(list(records), default=_to_plain))


def execute(run: Callable[[dict], list], point: dict, seed: int, threads: int = 1) -> dict:
    """Run one point (on a Dask worker); never raises for an error of the experiment itself."""
    limit_threads(threads)
    started, t0 = _utc_now(), time.perf_counter()
    out = {"status": "done", "records": None, "error": None, "traceback": None}
    try:
        out["records"] = plain_records(run({**point, "seed": seed}))
    except Exception as exc:  # noqa: BLE001 - a failing point is recorded, the sweep goes on
        out.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=tb_module.format_exc())
    out.update(seconds=time.perf_counter() - t0, started_at=started, finished_at=_utc_now(),
               env=environment(str(point.get("device", "cpu"))))
    return out


# ---------------------------------------------------------------------------------------------
# on the driver
# ---------------------------------------------------------------------------------------------

@dataclass
class SweepSummary:
    """What a call of :func:`run_experiments` did."""

    experiments: list[str]
    total: int = 0                     # points of the selected variants
    skipped_done: int = 0              # already done in the database
    skipped_failed: int = 0            # failed before and not retried
    done: int = 0                      # run now, succeeded
    failed: int = 0                    # run now, failed (error stored)
    lost: int = 0                      # cancelled in flight (not stored; rerun next time)
    seconds: float = 0.0
    failures: list = field(default_factory=list)   # (experiment, point, seed, error)

    @property
    def ran(self) -> int:
        return self.done + self.failed


def _start_client(stack: ExitStack, workers: Optional[int], scheduler: Optional[str], threads: int):
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            return stack.enter_context(Client(scheduler, timeout="20s"))
        except OSError as exc:
            raise ConnectionError(f"could not reach the Dask scheduler at {scheduler}: {exc}") from exc
    n = DEFAULT_WORKERS if workers is None else int(workers)
    if n < 1:
        raise ValueError(f"workers: expected a positive number of worker processes, got {workers!r}")
    env = {v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                      "NUMBA_NUM_THREADS")}
    cluster = stack.enter_context(LocalCluster(
        n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=logging.ERROR, env=env))
    return stack.enter_context(Client(cluster))


def _collect(future) -> Optional[dict]:
    """The worker's outcome dict; a failure dict when the task itself died; None if cancelled."""
    if future.status == "cancelled":
        return None
    if future.status == "error":                 # e.g. KilledWorker: the process crashed
        exc = future.exception()
        tb = "".join(tb_module.format_tb(future.traceback())) if future.traceback() else None
        return {"status": "failed", "records": None, "error": f"{type(exc).__name__}: {exc}",
                "traceback": tb, "seconds": None, "started_at": None, "finished_at": _utc_now(),
                "env": {}}
    return future.result()


def run_experiments(names, quick: bool = False, workers: Optional[int] = None,
                    scheduler: Optional[str] = None, db=DEFAULT_DB, retry_failed: bool = False,
                    progress: bool = True, threads: int = 1, log: Callable[[str], None] = print
                    ) -> SweepSummary:
    """Run every point of the named experiments that the database does not hold yet.

    names : experiment names (``"all"``: every registered, non-hidden one) or Experiment objects.
    quick : the ``--quick`` variants (smaller grids, fewer epochs, small data).
    workers : processes of the local Dask cluster (default 2); ignored with ``scheduler``.
    scheduler : address of an existing Dask scheduler, e.g. "tcp://10.0.0.5:8786".
    db : the SQLite results file (created, with its folder, when missing); a file that is not
        SQLite or another program's database is a StoreError before anything runs.
    retry_failed : run the points whose earlier attempt failed again.
    threads : numerical threads per point (torch, OpenMP, numba) on the workers.
    log : where to print the plan and the summary (``None``: silent).
    """
    if isinstance(names, (str, Experiment)):
        names = [names]
    experiments: list[Experiment] = []
    for name in names:
        for exp in [name] if isinstance(name, Experiment) else resolve([name]):
            if exp not in experiments:
                experiments.append(exp)
    log = log or (lambda _msg: None)
    variant = "quick" if quick else "full"
    t0 = time.perf_counter()
    summary = SweepSummary(experiments=[e.name for e in experiments])

    with Store(db) as store:
        plan = []
        for exp in experiments:
            points = exp.points(quick)
            todo, done, failed = split_points(store, exp.name, points, retry_failed)
            summary.total += len(points)
            summary.skipped_done += len(done)
            summary.skipped_failed += len(failed)
            plan += [(exp, p, s) for p, s in todo]
            note = f", {len(failed)} failed before (--retry-failed reruns them)" if failed else ""
            log(f"{exp.name} ({variant}): {len(points)} points, {len(done)} done already{note}, "
                f"{len(todo)} to run")
        if not plan:
            summary.seconds = time.perf_counter() - t0
            return summary

        with ExitStack() as stack:
            client = _start_client(stack, workers, scheduler, threads)
            log(f"running {len(plan)} points on {_describe_cluster(client)}; results go to {store.path}")
            from dask.distributed import as_completed

            futures = {}
            for exp, point, seed in plan:
                key = f"{exp.name}-seed{seed}-{uuid.uuid4().hex[:8]}"
                fut = client.submit(execute, exp.run, point, seed, threads, key=key, pure=False)
                futures[fut] = (exp, point, seed)
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = stack.enter_context(tqdm(total=len(plan), unit="point", desc=f"sweep ({variant})"))
            for fut in as_completed(futures):
                exp, point, seed = futures.pop(fut)
                out = _collect(fut)
                fut.release()
                if out is None:
                    summary.lost += 1
                    continue
                store.put(PointResult(experiment=exp.name, point=point, seed=seed, variant=variant, **out))
                if out["status"] == "done":
                    summary.done += 1
                else:
                    summary.failed += 1
                    summary.failures.append((exp.name, point, seed, out["error"]))
                if bar is not None:
                    bar.update(1)
                    if summary.failed:
                        bar.set_postfix(failed=summary.failed)
    summary.seconds = time.perf_counter() - t0
    for name, point, seed, error in summary.failures:
        log(f"failed: {name} {canonical(point)} seed {seed}: {error}")
    return summary


def _describe_cluster(client) -> str:
    try:
        info = client.scheduler_info()
        workers = info.get("workers", {})
        threads = sum(w.get("nthreads", 0) for w in workers.values())
        return f"Dask at {client.scheduler.address} ({len(workers)} workers, {threads} threads)"
    except Exception:  # noqa: BLE001 - only a description
        return "Dask"

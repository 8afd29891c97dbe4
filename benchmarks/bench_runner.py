"""Per-point overhead of the experiment runner (Dask scheduling + SQLite storage) against the work.

    python benchmarks/bench_runner.py [--points 40] [--work 0.2] [--repeats 2]

N points of a fixed CPU workload (a pure-Python loop calibrated to --work seconds) are run
(a) in a plain loop in this process and (b) through ``run_experiments`` on a Dask cluster of
ONE worker process with one thread, so the work is serial in both cases and the difference is
the runner's cost: submission, scheduling, transfer, the worker-side wrapper (thread limits,
timing, environment) and one SQLite transaction per point. The cluster is started once and
warmed up (its first task imports the package); its start-up time is printed separately, as
it is paid once per sweep, not per point. Also printed: the cost of the SQLite write alone.
Each figure is the best of --repeats runs (the machine may be shared).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from thermolearn.experiments import _selftest
from thermolearn.experiments.registry import Experiment, register
from thermolearn.experiments.runner import run_experiments
from thermolearn.experiments.store import PointResult, Store


def calibrate(target_seconds: float) -> int:
    """Iterations of ``_selftest.work`` that take about ``target_seconds``."""
    n = 20_000
    while True:
        t0 = time.perf_counter()
        _selftest.work({"iterations": n, "seed": 0})
        dt = time.perf_counter() - t0
        if dt > 0.05:
            return max(1, int(n * target_seconds / dt))
        n *= 4


def loop(iterations: int, points: int) -> float:
    t0 = time.perf_counter()
    for seed in range(points):
        _selftest.work({"iterations": iterations, "seed": seed})
    return time.perf_counter() - t0


def sweep(exp: Experiment, address: str, db: Path) -> tuple[float, float]:
    """Wall time of the sweep and the summed in-task seconds stored for its points."""
    t0 = time.perf_counter()
    s = run_experiments([exp], scheduler=address, db=db, progress=False, log=None)
    wall = time.perf_counter() - t0
    assert s.done == len(exp.points()), s
    with Store(db) as store:
        inside = sum(r.seconds for r in store.results(exp.name))
    return wall, inside


def store_only(points: int, db: Path) -> float:
    with Store(db) as store:
        t0 = time.perf_counter()
        for seed in range(points):
            store.put(PointResult("bench-store", {"iterations": 1}, seed, "done", records=[{"value": seed}],
                                  seconds=0.2, env={"package_version": "x", "torch": "y"}))
        return (time.perf_counter() - t0) / points


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", type=int, default=40)
    p.add_argument("--work", type=float, default=0.2, help="seconds of work per point")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()

    from dask.distributed import LocalCluster

    iterations = calibrate(args.work)
    exp = register(Experiment(name="bench-runner-work", description="fixed CPU work", run=_selftest.work,
                              grid={"iterations": [iterations]}, seeds=list(range(args.points)), hidden=True),
                   replace=True)
    warm = Experiment(name="bench-runner-warmup", description="", run=_selftest.work,
                      grid={"iterations": [1]}, seeds=[0], hidden=True)
    t0 = time.perf_counter()
    env = {v: "1" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
            silence_logs=logging.ERROR, env=env) as cluster:
        startup = time.perf_counter() - t0
        t0 = time.perf_counter()
        sweep(warm, cluster.scheduler_address, Path(tmp) / "warm.sqlite")
        first = time.perf_counter() - t0
        loops, walls, insides = [], [], []
        for i in range(args.repeats):
            loops.append(loop(iterations, args.points))
            wall, inside = sweep(exp, cluster.scheduler_address, Path(tmp) / f"r{i}.sqlite")
            walls.append(wall)
            insides.append(inside)
        put = store_only(args.points, Path(tmp) / "store.sqlite")

    n = args.points
    work = min(loops) / n
    wall = min(walls) / n
    overhead = wall - work
    print(f"{n} points of {work * 1000:.0f} ms of CPU work each, 1 worker process x 1 thread, best of {args.repeats}")
    print(f"  plain loop                       {min(loops):7.2f} s  ({work * 1000:7.1f} ms/point)")
    print(f"  run_experiments (Dask + SQLite)  {min(walls):7.2f} s  ({wall * 1000:7.1f} ms/point; "
          f"in-task {min(insides) / n * 1000:.1f} ms/point)")
    print(f"  runner overhead per point        {overhead * 1000:7.1f} ms  = {overhead / work:.1%} of the work")
    print(f"  of which one SQLite write        {put * 1000:7.2f} ms")
    print(f"  once per sweep: cluster start {startup:.1f} s, first point on a fresh worker {first:.1f} s")


if __name__ == "__main__":
    main()

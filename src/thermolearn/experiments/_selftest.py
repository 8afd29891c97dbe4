"""Tiny experiments that exercise the runner, the store and the report (tests, benchmarks).

Not imported by default; ``THERMOLEARN_EXPERIMENTS=thermolearn.experiments._selftest`` makes
the command line see them. They are hidden: ``all`` does not include them.

- ``selftest-sleep``: each point sleeps ``sleep`` seconds and returns two records whose values
  are a deterministic function of (x, seed), so a resumed sweep can be compared with a clean one.
- :func:`value` also fails on purpose while the file ``fail_unless`` is missing (to test
  failures and ``--retry-failed``); :func:`work` burns a fixed amount of CPU (benchmarks).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time

from .plotting import axis_label, styles
from .registry import Anchor, Experiment, register


def deterministic_value(x, seed) -> float:
    """A number in [0, 1) determined by (x, seed) alone, the same in every process."""
    digest = hashlib.sha256(f"{x}/{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def value(params: dict) -> list[dict]:
    """Sleep ``sleep`` s, fail while file ``fail_unless`` is missing, else two records (with
    ``torch`` true, torch is imported first, to see the threads the runner set for it)."""
    if params.get("torch"):
        import torch  # noqa: F401
    time.sleep(float(params.get("sleep", 0.0)))
    marker = params.get("fail_unless")
    if marker and not os.path.exists(marker):
        raise RuntimeError(f"selftest failure on purpose: {marker} does not exist")
    x, seed = params["x"], params["seed"]
    v = deterministic_value(x, seed)
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    return [{"kind": "a", "value": v, "pid": os.getpid(), "torch_threads": threads},
            {"kind": "b", "value": v * x}]


def work(params: dict) -> list[dict]:
    """A fixed CPU workload: ``iterations`` steps of an integer recurrence (pure Python)."""
    acc = params["seed"] + 1
    for i in range(int(params["iterations"])):
        acc = (acc * 1103515245 + 12345 + i) & 0x7FFFFFFF
    return [{"value": acc}]


def plot_value(records, fig) -> None:
    """Each record kind is one series (its own colour and marker)."""
    ax = fig.add_subplot(1, 1, 1)
    kinds = sorted({r["kind"] for r in records if "kind" in r})
    look = styles(kinds)
    for kind in kinds:
        rows = sorted((r for r in records if r.get("kind") == kind), key=lambda r: r["x"])
        ax.plot([r["x"] for r in rows], [r["value"] for r in rows], label=f"kind {kind}", ls="none", **{
            k: v for k, v in look[kind].items() if k != "linestyle"})
    ax.set_xlabel(axis_label("x"))
    ax.set_ylabel(axis_label("value", "arbitrary units"))
    ax.legend()


SLEEP = register(Experiment(
    name="selftest-sleep",
    description="Test experiment: sleeps, then returns values determined by (x, seed).",
    run=value,
    grid={"x": [0, 1, 2], "sleep": [0.2]},
    seeds=list(range(6)),
    quick_grid={"x": [0, 1], "sleep": [0.0]},
    quick_seeds=[0, 1],
    expected_seconds=(5, 1),
    anchors=[Anchor("value", 0.5, "mean of a uniform variable on [0, 1) (exact)",
                    source="Feller (1968), An Introduction to Probability Theory and Its Applications, vol. 1",
                    where={"kind": "a"})],
    plot=plot_value,
    table={"value": "value (arbitrary units)"},
    hidden=True,
), replace=True)

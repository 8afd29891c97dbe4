"""Named experiments: a registry, a Dask runner, SQLite storage and a report.

    thermolearn experiments list
    thermolearn reproduce --quick all          # local Dask cluster, results in runs/thermolearn.sqlite
    thermolearn report                         # runs/report/index.html

From Python:

    from thermolearn.experiments import run_experiments, make_report
    run_experiments(["rbm-small-exact"], quick=True, workers=2, db="runs/r.sqlite")
    make_report("runs/r.sqlite", "runs/report")

Modules: registry (Experiment, Anchor, register/get), store (SQLite), runner (Dask sweeps),
report (plots, HTML, Markdown), cli (the commands); one module per named experiment.
"""

from importlib import import_module

_WHERE = {
    "Experiment": "registry", "Anchor": "registry", "register": "registry", "get": "registry",
    "all_experiments": "registry", "expand": "registry",
    "Store": "store", "PointResult": "store",
    "run_experiments": "runner", "SweepSummary": "runner",
    "make_report": "report",
}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__

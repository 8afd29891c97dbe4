"""Named experiments: a registry, a Dask runner, SQLite storage and a report.

    thermolearn experiments list
    thermolearn reproduce --quick all          # local Dask cluster, results in runs/thermolearn.sqlite
    thermolearn report                         # runs/report/index.html

From Python:

    from thermolearn.experiments import run_experiments, make_report
    run_experiments(["rbm-small-exact"], quick=True, workers=2, db="runs/r.sqlite")
    make_report("runs/r.sqlite", "runs/report")

Modules: registry (Experiment, Anchor, register/get), store (SQLite), runner (Dask sweeps),
report (plots, HTML, Markdown), plotting (one style per series, axis and fit labels); one
module per named experiment in ebm/, binary/, deep/. The commands are in thermolearn.cli.
"""

from .._lazy import lazy_exports

_WHERE = {
    "Experiment": "registry", "Anchor": "registry", "register": "registry", "get": "registry",
    "all_experiments": "registry", "expand": "registry",
    "Store": "store", "PointResult": "store",
    "run_experiments": "runner", "SweepSummary": "runner",
    "make_report": "report",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _WHERE)

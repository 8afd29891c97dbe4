"""The binary-network experiments: perceptron-capacity and committee-rsgd (grids, one quick point
each, records checked against an independent error count, plots on fake records)."""

import io
import json

import numpy as np
import pytest

from binary_check import np_errors
from thermolearn.binary import random_patterns
from thermolearn.experiments.binary import _common as _binary
from thermolearn.experiments.binary import committee_rsgd, perceptron_capacity
from thermolearn.experiments.registry import expand, get
from thermolearn.experiments.runner import plain_records


def _quick_point(module, seed=0, **where):
    return next({**p, "seed": s} for p, s in module.EXPERIMENT.points(quick=True)
                if s == seed and all(p.get(k) == v for k, v in where.items()))


# -- grids ------------------------------------------------------------------------------------------

def test_grids_expand():
    pc = perceptron_capacity.EXPERIMENT
    full, quick = expand(pc.grid), expand(pc.quick_grid)
    assert len(full) == 5 * len(perceptron_capacity.FULL_ALPHAS) and len(quick) == 5 * 3
    assert {p["algo"] for p in full} == {"fbp", "rsgd", "sgd", "rsa", "sa"} == {p["algo"] for p in quick}
    assert {p["N"] for p in full} == {1001} and {p["N"] for p in quick} == {101}
    assert min(p["alpha"] for p in full) == 0.5 and 0.76 in {p["alpha"] for p in full}
    assert len(pc.points()) == len(full) * 5 and len(pc.points(quick=True)) == len(quick) * 2
    for p in full + quick:                       # every point maps to valid solver arguments
        args = perceptron_capacity.solver_arguments(p)
        assert set(args) <= {"steps", "replicas", "max_epochs", "max_moves", "patience", "options"}
    sgd = [p for p in full if p["algo"] == "sgd"]
    assert all(p["replicas"] == 1 for p in sgd)
    assert all(perceptron_capacity.solver_arguments(p)["options"].get("gamma", 0.0) == 0.0
               for p in full if p["algo"] == "sa")

    cr = committee_rsgd.EXPERIMENT
    full, quick = expand(cr.grid), expand(cr.quick_grid)
    assert len(full) == 2 * 8 and len(quick) == 2 * 3 and len(cr.seeds) == 10
    ref = [p for p in full if p["method"] == "replicated"]
    assert all((p["N"], p["K"], p["replicas"], p["batch"], p["lr"], p["coupling"], p["gamma"],
                p["gamma_step"]) == (321, 5, 7, 80, 2.0, 0.75, 0.05, 0.001) for p in ref)
    assert all(p["replicas"] == 1 and p["coupling"] == 0.0 for p in full + quick if p["method"] == "plain")
    assert min(p["alpha"] for p in full) == 0.3 and max(p["alpha"] for p in full) == 0.65
    assert {(p["N"], p["K"]) for p in quick} == {(81, 3)}


def test_registered_and_anchors_in_the_full_grid():
    for module in (perceptron_capacity, committee_rsgd):
        exp = module.EXPERIMENT
        assert get(exp.name) is exp
        assert exp.anchors and exp.plot is not None and exp.table
        points = expand(exp.grid)
        for a in exp.anchors:                       # each anchor is measured by the full variant
            assert any(all(p.get(k) == v for k, v in a.where.items()) for p in points), a


# -- one quick point each ------------------------------------------------------------------------------

@pytest.mark.parametrize("algo", ["fbp", "rsgd", "sgd", "rsa", "sa"])
def test_perceptron_capacity_quick_point(algo):
    params = _quick_point(perceptron_capacity, algo=algo, alpha=0.5)
    (rec,) = perceptron_capacity.run(params)
    json.dumps(plain_records([rec]))
    for key in ("algo", "N", "alpha", "M", "solved", "success", "errors", "energy", "seconds", "steps"):
        assert key in rec, key
    assert rec["algo"] == algo and rec["N"] == 101 and rec["M"] == round(0.5 * 101)
    assert rec["solved"] == (rec["errors"] == 0) and rec["success"] == int(rec["solved"])
    assert (rec["energy"] == 0) == rec["solved"] and rec["steps"] >= 0 and rec["seconds"] >= 0
    # recount: the same problem and solver seeds give the same weights; count their errors in NumPy
    s_problem, s_solver, _ = _binary.split_seed(params["seed"])
    X, y = random_patterns(101, 0.5, s_problem)
    res = _binary.solve(algo, X, y, seed=s_solver, **perceptron_capacity.solver_arguments(params))
    assert np_errors(res.weights, X, y, 1) == rec["errors"]
    assert res.steps == rec["steps"]


def test_perceptron_capacity_failure_is_recorded():
    params = {**_quick_point(perceptron_capacity, algo="sgd", alpha=0.8), "max_epochs": 2}
    (rec,) = perceptron_capacity.run(params)
    assert rec["solved"] is False and rec["errors"] > 0 and rec["success"] == 0 and rec["steps"] == 2


@pytest.mark.parametrize("method,alpha", [("replicated", 0.3), ("plain", 0.65)])
def test_committee_rsgd_quick_point(method, alpha):
    params = _quick_point(committee_rsgd, method=method, alpha=alpha)
    if method == "plain":
        params["max_epochs"] = 20                  # unsolvable for plain SGD: keep it short
    (rec,) = committee_rsgd.run(params)
    json.dumps(plain_records([rec]))
    assert rec["method"] == method and (rec["N"], rec["K"]) == (81, 3)
    assert rec["M"] == round(alpha * 81 * 3)
    assert rec["solved"] == (rec["errors"] == 0) and rec["error_rate"] == rec["errors"] / rec["M"]
    if rec["solved"]:
        assert rec["epochs_to_solve"] == rec["epochs"] <= params["max_epochs"]
    else:
        assert rec["epochs_to_solve"] is None and rec["epochs"] == params["max_epochs"]
    if method == "replicated":
        assert rec["solved"]                       # alpha = 0.3 is easy for 7 replicas
    else:
        assert not rec["solved"]
    s_problem, s_solver, _ = _binary.split_seed(params["seed"])
    X, y = random_patterns(81, alpha, s_problem, K=3)
    options = {k: params[k] for k in ("batch", "lr", "coupling", "gamma", "gamma_step")}
    res = _binary.solve(committee_rsgd.METHODS[method], X, y, K=3, seed=s_solver,
                        replicas=params["replicas"], max_epochs=params["max_epochs"], options=options)
    assert res.weights.shape == (3, 81)
    assert np_errors(res.weights, X, y, 3) == rec["errors"]


def test_solve_helper_maps_algorithms_and_rejects_misplaced_budgets():
    X, y = random_patterns(31, 0.3, seed=1)
    r = _binary.solve("sa", X, y, seed=2, max_moves=50_000)
    assert r.replicas.shape[0] == 1                           # sa: one replica
    r = _binary.solve("rsgd", X, y, seed=2, max_epochs=5)
    assert r.replicas.shape[0] == 7                           # rsgd: the solver's default y = 7
    with pytest.raises(ValueError, match="max_epochs: applies to rsgd, sgd only"):
        _binary.solve("fbp", X, y, max_epochs=3)
    with pytest.raises(ValueError, match="coupling: sgd means coupling = 0"):
        _binary.solve("sgd", X, y, options={"coupling": 0.5})
    with pytest.raises(ValueError, match="gamma: sa means gamma = 0"):
        _binary.solve("sa", X, y, options={"gamma": 0.5})
    with pytest.raises(ValueError, match="algo"):
        _binary.solve("bp", X, y)
    with pytest.raises(ValueError, match="nonsense: not an option"):
        _binary.solve("rsgd", X, y, options={"nonsense": 1})


def test_solve_helper_passes_K_and_tree_and_reports_unsupported(monkeypatch):
    seen = {}

    def with_tree(X, y, K=1, seed=0, tree=False, **kw):
        seen.update(K=K, tree=tree, **kw)
        raise NotImplementedError("not yet")

    def without_tree(X, y, K=1, seed=0, replicas=1):
        seen.update(K=K, replicas=replicas)
        return "ran"

    X, y = random_patterns(45, 0.3, seed=1, K=3, tree=True)
    monkeypatch.setattr(_binary, "solver_function", lambda algo: with_tree)
    with pytest.raises(NotImplementedError):
        _binary.solve("fbp", X, y, K=3, tree=True, steps=4)
    assert seen == {"K": 3, "tree": True, "steps": 4}
    monkeypatch.setattr(_binary, "solver_function", lambda algo: without_tree)
    seen.clear()
    assert _binary.solve("rsgd", X, y, K=3, tree=False, replicas=5) == "ran"
    assert seen == {"K": 3, "replicas": 5}
    with pytest.raises(NotImplementedError, match="tree"):
        _binary.solve("rsgd", X, y, K=3, tree=True)


def test_split_seed_gives_distinct_streams():
    a = _binary.split_seed(0)
    assert len(set(a)) == 3 and a == _binary.split_seed(0) and a != _binary.split_seed(1)


# -- plots on fake records ----------------------------------------------------------------------------

def _draw(plot, records):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4))
    FigureCanvasAgg(fig)
    plot(records, fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"
    return fig


def test_plots_draw_fake_records():
    rng = np.random.default_rng(0)
    recs = [{"algo": a, "N": 101, "alpha": al, "seed": s, "success": int(rng.random() < 0.5),
             "solved": False, "errors": 1, "seconds": float(rng.random()) + 0.01, "steps": 5}
            for a in ("fbp", "rsgd", "sgd", "rsa", "sa") for al in (0.5, 0.6) for s in (0, 1)]
    fig = _draw(perceptron_capacity.plot, recs)
    left, right = fig.axes
    assert len(left.get_lines()) == 5 + 2            # one per algorithm + the two reference lines
    xs, ys = left.get_lines()[0].get_data()
    assert list(xs) == [0.5, 0.6] and all(0 <= v <= 1 for v in ys)
    assert len(right.get_lines()) == 5

    recs = [{"method": m, "N": 81, "K": 3, "alpha": al, "seed": s, "success": s, "error_rate": 0.1 * s}
            for m in ("replicated", "plain") for al in (0.3, 0.5, 0.65) for s in (0, 1)]
    fig = _draw(committee_rsgd.plot, recs)
    assert len(fig.axes) == 2
    for ax in fig.axes:
        data = [line.get_data() for line in ax.get_lines() if len(line.get_xdata()) == 3]
        assert len(data) == 2 and all(np.allclose(y, 0.5 if ax is fig.axes[0] else 0.05) for _x, y in data)


def test_annealing_schedule_defaults_and_overrides(monkeypatch):
    seen = {}

    def anneal(X, y, K=1, seed=0, replicas=1, beta=1.0, beta_rate=1.0, gamma=0.1, gamma_rate=1.0,
               max_moves=1, patience=None, tree=False):
        seen.update(beta=beta, beta_rate=beta_rate, gamma=gamma, gamma_rate=gamma_rate)
        return "ran"

    X, y = random_patterns(21, 0.3, seed=1)
    monkeypatch.setattr(_binary, "solver_function", lambda algo: anneal)
    _binary.solve("rsa", X, y)
    assert seen == {"beta": 0.2, "beta_rate": 1.0001, "gamma": 0.1, "gamma_rate": 1.0001}
    _binary.solve("sa", X, y, options={"beta": 2.0})
    assert seen["beta"] == 2.0 and seen["beta_rate"] == 1.0001 and seen["gamma"] == 0.0

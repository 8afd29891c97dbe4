"""The binary-network experiments: perceptron-capacity and committee-rsgd (grids, one quick point
each, records checked against an independent error count, plots on fake records)."""

import io
import json

import numpy as np
import pytest

import thermolearn.binary.algorithms as _binary
from binary_check import np_errors
from thermolearn.binary import random_patterns
from thermolearn.experiments.binary import committee_rsgd, perceptron_capacity
from thermolearn.experiments.binary._common import point_seeds
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
        assert set(args) <= {"steps", "replicas", "max_iter", "patience", "options"}
    sgd = [p for p in full if p["algo"] == "sgd"]
    assert all(p["replicas"] == 1 for p in sgd)
    assert all("gamma" not in perceptron_capacity.solver_arguments(p)["options"]
               for p in full if p["algo"] == "sa")

    cr = committee_rsgd.EXPERIMENT
    full, quick = expand(cr.grid), expand(cr.quick_grid)
    assert len(full) == 2 * 8 and len(quick) == 2 * 3 and len(cr.seeds) == 10
    ref = [p for p in full if p["method"] == "replicated"]
    assert all((p["N"], p["K"], p["replicas"], p["batch_size"], p["lr"], p["coupling"], p["gamma"],
                p["gamma_step"]) == (321, 5, 7, 80, 2.0, 0.75, 0.05, 0.001) for p in ref)
    ramp = committee_rsgd.solver_options(ref[0])["gamma"]
    assert ramp(0) == pytest.approx(0.05) and ramp(1000) == pytest.approx(1.05)
    assert all(p["replicas"] == 1 and p["coupling"] == 0.0 for p in full + quick if p["method"] == "plain")
    assert min(p["alpha"] for p in full) == 0.3 and max(p["alpha"] for p in full) == 0.65
    assert {(p["N"], p["K"]) for p in quick} == {(81, 3)}


def test_registered_and_anchors_in_the_full_grid():
    for module in (perceptron_capacity, committee_rsgd):
        exp = module.EXPERIMENT
        assert get(exp.name) is exp
        assert exp.anchors and exp.plot is not None and exp.table
        assert isinstance(exp.table, dict) and all("(" in h or " " in h for h in exp.table.values())
        points = expand(exp.grid)
        for a in exp.anchors:                       # each anchor is measured by the full variant
            assert any(all(p.get(k) == v for k, v in a.where.items()) for p in points), a
            # a published number names its paper, a measured one the command that printed it
            assert a.source.startswith("measured here: ") or "(19" in a.source or "(20" in a.source, a
            assert "spec" not in a.source and "shared/" not in a.source


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
    s_problem, s_solver, _ = point_seeds(params["seed"])
    X, y = random_patterns(101, 0.5, s_problem)
    res = _binary.solve(algo, X, y, seed=s_solver, **perceptron_capacity.solver_arguments(params))
    assert np_errors(res.weights, X, y, 1) == rec["errors"]
    assert res.steps == rec["steps"]


def test_perceptron_capacity_failure_is_recorded():
    params = {**_quick_point(perceptron_capacity, algo="sgd", alpha=0.8), "max_iter": 2}
    (rec,) = perceptron_capacity.run(params)
    assert rec["solved"] is False and rec["errors"] > 0 and rec["success"] == 0 and rec["steps"] == 2


@pytest.mark.parametrize("method,alpha", [("replicated", 0.3), ("plain", 0.65)])
def test_committee_rsgd_quick_point(method, alpha):
    params = _quick_point(committee_rsgd, method=method, alpha=alpha)
    if method == "plain":
        params["max_iter"] = 20                    # unsolvable for plain SGD: keep it short
    (rec,) = committee_rsgd.run(params)
    json.dumps(plain_records([rec]))
    assert rec["method"] == method and (rec["N"], rec["K"]) == (81, 3)
    assert rec["M"] == round(alpha * 81 * 3)
    assert rec["solved"] == (rec["errors"] == 0) and rec["error_rate"] == rec["errors"] / rec["M"]
    if rec["solved"]:
        assert rec["epochs_to_solve"] == rec["epochs"] <= params["max_iter"]
    else:
        assert rec["epochs_to_solve"] is None and rec["epochs"] == params["max_iter"]
    if method == "replicated":
        assert rec["solved"]                       # alpha = 0.3 is easy for 7 replicas
    else:
        assert not rec["solved"]
    s_problem, s_solver, _ = point_seeds(params["seed"])
    X, y = random_patterns(81, alpha, s_problem, K=3)
    res = _binary.solve(committee_rsgd.METHODS[method], X, y, K=3, seed=s_solver, replicas=params["replicas"],
                        max_iter=params["max_iter"], options=committee_rsgd.solver_options(params))
    assert res.weights.shape == (3, 81)
    assert np_errors(res.weights, X, y, 3) == rec["errors"]


def test_solve_helper_maps_algorithms_and_rejects_misplaced_budgets():
    X, y = random_patterns(31, 0.3, seed=1)
    r = _binary.solve("sa", X, y, seed=2, max_iter=50_000)
    assert r.replicas.shape[0] == 1 and r.step_unit == _binary.STEP_UNITS["sa"] == "move"
    r = _binary.solve("rsgd", X, y, seed=2, max_iter=5)
    assert r.replicas.shape[0] == 7 and r.step_unit == "epoch"   # rsgd: the solver's default y = 7
    assert _binary.solve("fbp", X, y, steps=5).step_unit == "sweep"
    with pytest.raises(ValueError, match="steps: applies to fbp only"):
        _binary.solve("rsgd", X, y, steps=3)
    with pytest.raises(ValueError, match="patience: applies to rsa, sa only"):
        _binary.solve("fbp", X, y, patience=3)
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


def test_point_seeds_give_distinct_streams():
    a = point_seeds(0)
    assert len(set(a)) == 3 and a == point_seeds(0) and a != point_seeds(1) and 0 not in a


def test_capacity_warning():
    assert _binary.capacity_warning(0.5) is None and _binary.capacity_warning(0.9, K=3) is None
    assert "0.833" in _binary.capacity_warning(0.84) and "above 1" in _binary.capacity_warning(100.0, K=5)
    assert _binary.capacity_warning(100.0, teacher=True) is None


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

    from thermolearn.schedules import Geometric

    def anneal(X, y, K=1, seed=0, replicas=1, beta=1.0, gamma=0.1, max_iter=1, patience=None, tree=False,
               progress=False):
        seen.update(beta=beta, gamma=gamma, progress=progress)
        return "ran"

    X, y = random_patterns(21, 0.3, seed=1)
    monkeypatch.setattr(_binary, "solver_function", lambda algo: anneal)
    _binary.solve("rsa", X, y)
    assert seen == {"beta": Geometric(0.2, 1.0001), "gamma": Geometric(0.1, 1.0001), "progress": False}
    _binary.solve("sa", X, y, options={"beta": 2.0}, progress=True)
    assert seen == {"beta": 2.0, "gamma": 0.0, "progress": True}

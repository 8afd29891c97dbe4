"""rsa-scaling experiment: time to solution of replicated vs independent annealing."""

import math
import time

import numpy as np
import pytest

from thermolearn.binary import errors, random_patterns
from thermolearn.experiments.binary import rsa_scaling as rs
from thermolearn.experiments.registry import expand, get


def test_fit_recovers_known_exponents():
    N = np.array([51, 101, 151, 201, 301, 401])
    f = rs.fit_scaling(N, 3.0 * N ** 2.5)
    a, b, rms = f["poly"]
    assert b == pytest.approx(2.5, abs=1e-9) and a == pytest.approx(math.log(3.0), abs=1e-9)
    assert rms < 1e-9 and f["exp"][2] > 0.1 and f["better"] == "polynomial" and f["n"] == 6
    f = rs.fit_scaling(N, 5.0 * np.exp(0.02 * N))
    a, c, rms = f["exp"]
    assert c == pytest.approx(0.02, abs=1e-12) and a == pytest.approx(math.log(5.0), abs=1e-9)
    assert rms < 1e-9 and f["better"] == "exponential"
    # with multiplicative noise the exponent is still recovered to about the noise level
    rng = np.random.default_rng(0)
    Nn = np.repeat(N, 20)
    f = rs.fit_scaling(Nn, 2.0 * Nn ** 1.7 * np.exp(rng.normal(0, 0.1, Nn.size)))
    assert f["poly"][1] == pytest.approx(1.7, abs=0.05) and f["poly"][2] == pytest.approx(0.1, abs=0.02)
    assert f["better"] == "polynomial"


def test_fit_drops_failures_and_needs_two_points():
    f = rs.fit_scaling([51, 101, 201, 401], [10.0, 100.0, math.inf, math.nan])
    assert f["n"] == 2 and f["better"] == "tie"
    assert f["poly"][1] == pytest.approx(math.log(10) / math.log(101 / 51))
    f = rs.fit_scaling([51, 101], [10.0, math.inf])
    assert f["n"] == 1 and f["better"] == "undetermined" and math.isnan(f["poly"][1])


def test_summarize_medians_count_failures_as_infinite():
    recs = [{"method": "replicated", "N": 51, "moves": m, "seconds": m / 100, "solved": s}
            for m, s in [(100, 1), (300, 1), (200, 1), (10**6, 0)]]
    recs += [{"method": "independent", "N": 51, "moves": m, "seconds": 1.0, "solved": s}
             for m, s in [(100, 1), (10**6, 0), (10**6, 0)]]
    by = {s["method"]: s for s in rs.summarize(recs)}
    r = by["replicated"]
    assert (r["seeds"], r["solved"]) == (4, 3)
    assert r["median_moves"] == 250.0 and r["median_seconds"] == 2.5      # (200 + 300) / 2
    assert r["geomean_moves_solved"] == pytest.approx((100 * 300 * 200) ** (1 / 3))
    i = by["independent"]
    assert i["solved"] == 1 and math.isinf(i["median_moves"]) and i["geomean_moves_solved"] == pytest.approx(100)
    assert rs._median([1.0, math.inf]) == math.inf and rs._median([3.0, 1.0, math.inf]) == 3.0


def _quick_params(N, method, seed):
    points = expand(rs.QUICK_GRID)
    p = next(p for p in points if p["N"] == N and p["method"] == method)
    return {**p, "seed": seed}


def test_quick_point_records_are_sane_and_reproducible():
    p = _quick_params(51, "replicated", 0)
    assert p["alpha"] == 0.5 and p["replicas"] == 5 and p["budget"] == 2_000_000
    rec = rs.run(p)
    assert len(rec) == 1
    r = rec[0]
    assert r["M"] == round(0.5 * 51) and r["solved"] == 1 and r["errors"] == 0 and r["energy"] == 0
    assert 0 < r["moves"] <= p["budget"] and r["attempts"] >= 1 and r["seconds"] > 0
    assert r["log10_moves"] == pytest.approx(math.log10(r["moves"]))
    assert rs.run(p)[0]["moves"] == r["moves"]                      # deterministic given the seed
    ind = rs.run({**p, "method": "independent"})[0]
    assert ind["solved"] == 1 and ind["errors"] == 0


def test_budget_failure_and_restarts():
    X, y = random_patterns(101, 0.8, seed=3)           # near capacity: not solved within these budgets
    kw = dict(replicas=3, beta=1.0, gamma=1.0, rate=0.01, seed=0)
    r = rs.time_to_solution(X, y, method="independent", patience=1000, budget=5_000, **kw)
    assert r["solved"] == 0 and r["moves"] == 5_000 and r["attempts"] == 1
    assert r["energy"] > 0 and r["errors"] > 0
    # a patience of one sweep restarts often; every attempt's proposals are counted
    r = rs.time_to_solution(X, y, method="independent", patience=1, budget=20_000, **kw)
    assert r["attempts"] > 2 and r["moves"] <= 20_000
    assert rs.attempt_seed(0, 1) != rs.attempt_seed(0, 2) == rs.attempt_seed(0, 2)
    with pytest.raises(ValueError, match="^method:"):
        rs.time_to_solution(X, y, method="sa", patience=10, budget=10, **kw)


def test_registered_quick_variant_is_fast_and_plots():
    exp = get("rsa-scaling")
    assert exp is rs.EXPERIMENT
    points = exp.points(quick=True)
    assert len(points) == 3 * 2 * 2
    t0 = time.process_time()
    records = [{**p, "seed": s, **rs.run({**p, "seed": s})[0]} for p, s in points]
    assert time.process_time() - t0 < 20
    assert all(r["solved"] == 1 and r["errors"] == 0 for r in records)
    summary = rs.summarize(records)
    assert {(s["method"], s["N"]) for s in summary} == {(m, n) for m in rs.METHODS for n in (31, 51, 71)}
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    fig = Figure(figsize=(10, 4))
    exp.plot(records, fig)
    assert len(fig.axes) == 2 and all(ax.get_yscale() == "log" for ax in fig.axes)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(lab.startswith("replicated, fit: moves = A N^b, b = ") for lab in labels), labels
    assert any("fit: moves = A e^(c N), c = " in lab for lab in labels), labels
    assert exp.anchors and all(a.source.startswith("measured here: ") for a in exp.anchors)


def test_errors_recount_matches_solution():
    # the record's error count is the library's recount on the returned weights: check it once
    X, y = random_patterns(31, 0.5, seed=1)
    from thermolearn.binary import replicated_annealing
    from thermolearn.schedules import Geometric
    r = replicated_annealing(X, y, replicas=5, beta=Geometric(1.0, 1 + 0.01 / 31), gamma=Geometric(1.0, 1 + 0.01 / 31),
                             max_iter=2_000_000, seed=rs.attempt_seed(1, 0))
    assert r.converged and int(errors(r.weights, X, y)) == 0
    rec = rs.run(_quick_params(31, "replicated", 1))[0]
    assert rec["solved"] == 1 and rec["moves"] == r.steps

"""The fbp-local-entropy experiment: one small point end to end, and its plot."""

import math

import matplotlib
import pytest

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from thermolearn.experiments import registry  # noqa: E402
from thermolearn.experiments.binary.fbp_local_entropy import EXPERIMENT, run  # noqa: E402


def test_point_records_and_plot():
    params = dict(N=51, alpha=0.4, replicas=5, gamma_max=1.5, gamma_points=4, max_iter=500, tol=1e-8, seed=0)
    recs = run(params)
    assert [r["gamma"] for r in recs] == pytest.approx([0.0, 0.5, 1.0, 1.5])
    assert recs[0]["overlap"] == 0.0 and recs[0]["distance"] == 0.5
    S = [r["overlap"] for r in recs]
    assert all(b > a for a, b in zip(S, S[1:]))               # the replicas approach the reference
    for r in recs:
        assert r["distance"] == pytest.approx((1 - r["overlap"]) / 2)
        assert r["local_entropy"] == pytest.approx(r["free_entropy"] - r["gamma"] * r["overlap"])
        assert 0 <= r["errors"] <= round(0.4 * 51)
    # zero coupling: phi = entropy of solutions + log(2) / y (free reference), below log 2 + log 2 / y
    assert 0 < recs[0]["free_entropy"] - math.log(2) / 5 < math.log(2)
    fig = Figure()
    EXPERIMENT.plot([dict(r, alpha=0.4, replicas=5, seed=0) for r in recs], fig)
    assert len(fig.axes) == 2 and fig.axes[0].lines


def test_registered_grids():
    assert registry.get("fbp-local-entropy") is EXPERIMENT
    assert len(EXPERIMENT.points(quick=True)) == 2 and len(EXPERIMENT.points()) == 27
    points = [p for p, _ in EXPERIMENT.points()]
    for a in EXPERIMENT.anchors:
        assert "PRL" in a.source and "[unverified]" in a.label
        assert any(all(p.get(k) == v for k, v in a.where.items() if k != "gamma") for p in points)

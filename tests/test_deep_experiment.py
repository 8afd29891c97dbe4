"""The deep-mnist-flatness experiment: one small point per trainer on the digits data."""

import math

import matplotlib
import pytest

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from thermolearn.experiments.deep.deep_mnist_flatness import EXPERIMENT, QUICK_GRID, SIGMAS, TRAINERS, run  # noqa: E402


@pytest.mark.parametrize("trainer", TRAINERS)
def test_point_records(trainer):
    p = {k: v[0] for k, v in QUICK_GRID.items()}
    p.update(trainer=trainer, model="mlp", budget=40, evals=2, subset=300, draws=2, seed=1)
    recs = run(p)
    cost = {"sgd": 1, "replicated": 4, "elastic": 4, "entropy-sgd": 5}[trainer]
    assert [r["evaluations"] for r in recs] == [r["step"] * cost for r in recs]
    assert recs[-1]["evaluations"] <= 40 and recs[-1]["step"] == 40 // cost
    for r in recs:
        assert 0.0 <= r["test_error"] <= 1.0 and math.isfinite(r["train_loss"])
    last = recs[-1]
    # sigma = 0 of the local-energy curve is the unperturbed network: the recorded training error
    assert SIGMAS[0] == 0.0 and last["local_error_0"] == pytest.approx(last["train_error"])
    assert last["local_loss_0"] == pytest.approx(last["train_loss"], rel=1e-5)
    replicated = trainer == "replicated"
    assert (last["distance"] is not None) == (trainer in ("replicated", "elastic"))
    assert (last["ensemble_test_error"] is not None) == replicated
    for r in recs:
        assert r["local_error_0"] == pytest.approx(r["train_error"])
    if trainer in ("replicated", "elastic"):
        assert last["distance"] > 0
    fig = Figure()
    EXPERIMENT.plot([dict(r, trainer=trainer, model="mlp", budget=40, seed=1) for r in recs], fig)
    assert fig.axes[0].lines and fig.axes[1].lines


def fake_records():
    recs = []
    for i, (trainer, budget) in enumerate([(t, 600) for t in TRAINERS] + [("replicated", 2400)]):
        for j, model in enumerate(["mlp", "cnn"]):
            for seed in (0, 1):
                for ev in (100, 200):
                    r = {"trainer": trainer, "budget": budget, "model": model, "seed": seed,
                         "evaluations": ev, "test_error": 0.1 / (1 + i + j + ev / 100)}
                    r.update({f"local_error_{s:g}": 0.01 * (1 + i) + s * (j + 1) for s in SIGMAS})
                    recs.append(r)
    return recs


def test_plot_gives_every_series_its_own_marker_and_colour():
    fig = Figure()
    EXPERIMENT.plot(fake_records(), fig)
    for ax in fig.axes:
        labelled = [ln for ln in ax.lines if not ln.get_label().startswith("_")]
        assert len(labelled) == 10                   # 5 (trainer, budget) runs x 2 models
        assert len({ln.get_marker() for ln in labelled}) == 10
        assert len({ln.get_color() for ln in labelled}) == 10
        # the single seeds share their series' marker and colour
        for ln in ax.lines:
            if ln.get_label().startswith("_"):
                assert (ln.get_marker(), ln.get_color()) in {(s.get_marker(), s.get_color()) for s in labelled}
        assert "(" in ax.get_xlabel() and "(" in ax.get_ylabel()   # units named
    assert any("4x budget" in ln.get_label() for ln in fig.axes[0].lines)


def test_table_headers_and_anchors_name_quantities_and_papers():
    assert isinstance(EXPERIMENT.table, dict) and "test_error" in EXPERIMENT.table
    assert all("(" in h or "per weight" in h for h in EXPERIMENT.table.values())
    assert EXPERIMENT.anchors
    for a in EXPERIMENT.anchors:
        assert "2017" in a.source and "Table 1" in a.source
        assert "[unverified" in a.label and "not comparable" in a.label
        assert 0 < a.value < 0.05 and a.metric == "test_error" and a.where["data"] == "mnist"

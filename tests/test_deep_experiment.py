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
    assert [r["evaluations"] for r in recs] == [r["steps"] * cost for r in recs]
    assert recs[-1]["evaluations"] <= 40 and recs[-1]["steps"] == 40 // cost
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

"""deep-mnist-flatness: SGD, replicated SGD, Entropy-SGD and elastic averaging at equal cost.

The question (Baldassi et al., PNAS 2016, carried to deep networks by Chaudhari et al. 2017 and
Pittorino et al. 2021): do trainers that couple replicas, or smooth the loss locally, end in
flatter minima that generalise at least as well? Four trainers train the same architecture
from the same initialisation with the same budget of gradient evaluations (one evaluation = the
gradient of the loss on one minibatch of ``batch`` examples):

* ``sgd``: SGD with momentum 0.9; one evaluation per step.
* ``replicated``: :class:`thermolearn.deep.Replicated`, y replicas coupled to their barycenter
  (``coupling="mean"``), gamma growing geometrically from ``gamma_start`` to ``gamma_end`` over
  the run; y evaluations per step (each replica its own minibatch). Evaluated: the center.
* ``entropy-sgd``: :class:`thermolearn.deep.EntropySGD` with L = ``inner_steps`` Langevin steps
  (inner_lr = lr, noise 1e-4, the class defaults otherwise); L evaluations per outer step.
* ``elastic``: :class:`thermolearn.deep.ElasticAveraging` with y workers (SGD with momentum 0.9
  on each) and rho chosen so that lr * rho * y = 0.9; y evaluations per step. Evaluated: the center.

So ``replicated`` and ``elastic`` take budget / y steps and ``entropy-sgd`` budget / L outer steps.
The full grid adds ``replicated`` (MLP) with y times the budget (the same number of epochs per replica
as SGD), to separate the effect of the coupling from that of the smaller budget per replica.
At ``evals`` points during training each record holds the evaluations used, the test error,
the training error and loss (on a fixed subset), for replicated SGD and elastic averaging the
mean squared replica-center distance per parameter, for replicated SGD the test error of the
ensemble (mean of the replicas' probabilities), and the local energy
(thermolearn.deep.local_energy): training error and loss on the subset after multiplicative
weight noise w (1 + sigma z), mean over ``draws`` draws, for each sigma in SIGMAS (keys
``local_error_<sigma>``, ``local_loss_<sigma>``).

Full variant: MNIST (pixels in [0, 1], no binarisation), an MLP 784-256-10 and a small CNN, budget
4,690 evaluations (10 epochs of SGD at batch 128), y = 4, 3 seeds. Quick variant: scikit-learn
digits (8x8), MLP 64-128-10 and the small CNN, budget 600 evaluations at batch 32, 1 seed.
"""

from __future__ import annotations

import numpy as np

from ..registry import Experiment, register

SIGMAS = [0.0, 0.05, 0.1, 0.2, 0.3, 0.5]
TRAINERS = ["sgd", "replicated", "entropy-sgd", "elastic"]

_FULL = {"data": ["mnist"], "model": ["mlp", "cnn"], "trainer": TRAINERS, "budget": [4690],
         "batch": [128], "lr": [0.05], "replicas": [4], "inner_steps": [5],
         "gamma_start": [0.01], "gamma_end": [1.0], "evals": [5], "subset": [5000], "draws": [5]}
# and replicated SGD (MLP) with y times the budget: as many epochs per replica as SGD has
FULL_GRID = [_FULL, {**_FULL, "model": ["mlp"], "trainer": ["replicated"], "budget": [4 * 4690]}]
QUICK_GRID = {"data": ["digits"], "model": ["mlp", "cnn"], "trainer": TRAINERS, "budget": [600],
              "batch": [32], "lr": [0.05], "replicas": [4], "inner_steps": [5],
              "gamma_start": [0.01], "gamma_end": [1.0], "evals": [3], "subset": [1437], "draws": [5]}


def run(params: dict) -> list[dict]:
    """One point: train with params["trainer"] and measure (thermolearn.experiments.deep._training)."""
    from ._training import train_and_measure

    return train_and_measure(params)


# ---------------------------------------------------------------------------------------------
# presentation
# ---------------------------------------------------------------------------------------------

def plot(records, fig) -> None:
    """Left: test error against gradient evaluations. Right: local energy (training error after
    multiplicative weight noise) against sigma at the end. One colour per trainer, one line style
    per model; dots are seeds, lines their mean."""
    models = sorted({r["model"] for r in records})
    styles = {m: s for m, s in zip(models, ["-", "--", ":"])}
    base = min(r["budget"] for r in records)
    runs = sorted({(r["trainer"], r["budget"]) for r in records},
                  key=lambda tb: (TRAINERS.index(tb[0]) if tb[0] in TRAINERS else 99, tb[1]))
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for ti, (trainer, budget) in enumerate(runs):
        name = trainer if budget == base else f"{trainer} ({budget / base:g}x budget)"
        for m in models:
            rows = [r for r in records if (r["trainer"], r["budget"]) == (trainer, budget) and r["model"] == m]
            if not rows:
                continue
            ev = sorted({r["evaluations"] for r in rows})
            err = [np.mean([r["test_error"] for r in rows if r["evaluations"] == e]) for e in ev]
            ax1.plot(ev, err, styles[m], color=f"C{ti}", marker="o", ms=3, label=f"{name} ({m})")
            finals = [r for r in rows if r["evaluations"] == ev[-1] and r.get(f"local_error_{SIGMAS[-1]:g}") is not None]
            if finals:
                le = [np.mean([r[f"local_error_{s:g}"] for r in finals]) for s in SIGMAS]
                ax2.plot(SIGMAS, le, styles[m], color=f"C{ti}", marker="o", ms=3, label=f"{name} ({m})")
                for r in finals:
                    ax2.plot(SIGMAS, [r[f"local_error_{s:g}"] for s in SIGMAS], ".", color=f"C{ti}", alpha=0.4)
    ax1.set_xlabel("gradient evaluations (minibatches)")
    ax1.set_ylabel("test error")
    ax1.set_yscale("log")
    ax1.set_title("test error (center for replicated / elastic)")
    ax2.set_xlabel("multiplicative weight noise sigma")
    ax2.set_ylabel("training error after noise")
    ax2.set_title("local energy at the end (lower = flatter)")
    ax1.legend(fontsize=6)


EXPERIMENT = register(Experiment(
    name="deep-mnist-flatness",
    description="MLP and small CNN on MNIST: SGD, replicated SGD, Entropy-SGD and elastic averaging at "
                "an equal budget of gradient evaluations; test error and local-energy curves "
                "(--quick: sklearn digits).",
    run=run,
    grid=FULL_GRID,
    seeds=[0, 1, 2],
    quick_grid=QUICK_GRID,
    quick_seeds=[0],
    expected_seconds=(1800, 30),
    plot=plot,
    table=["test_error", "ensemble_test_error", "train_error", "distance", "local_error_0.1",
           "local_error_0.3", "local_error_0.5"],
))

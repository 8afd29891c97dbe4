"""deep-mnist-flatness: SGD, replicated SGD, Entropy-SGD and elastic averaging at equal cost.

The question (Baldassi et al., PNAS 2016, carried to deep networks by Chaudhari et al. 2017 and
Pittorino et al. 2021): do trainers that couple replicas, or smooth the loss locally, end in
flatter minima that generalise at least as well? Four trainers train the same architecture
from the same initialisation with the same budget of gradient evaluations (one evaluation = the
gradient of the loss on one minibatch of ``batch_size`` examples):

* ``sgd``: SGD with momentum 0.9; one evaluation per step.
* ``replicated``: :class:`thermolearn.deep.Replicated`, y replicas coupled to their barycenter
  (``coupling="mean"``), gamma growing geometrically from ``gamma_start`` to ``gamma_end`` over
  the run; y evaluations per step (each replica its own minibatch). Evaluated: the center.
  Replica a starts from :func:`thermolearn.deep.reset_parameters` with the a-th of
  ``spawn_seeds(seed, y)``, as does elastic averaging's worker a.
* ``entropy-sgd``: :class:`thermolearn.deep.EntropySGD` with L = ``inner_steps`` Langevin steps
  (inner_lr = lr, noise 1e-4, the class defaults otherwise); L evaluations per outer step.
* ``elastic``: :class:`thermolearn.deep.ElasticAveraging` with y workers (SGD with momentum 0.9
  on each) and the coupling gamma (rho in Zhang et al. 2015) chosen so that lr * gamma * y = 0.9
  (their moving rate beta = 0.9); y evaluations per step. Evaluated: the center.

So ``replicated`` and ``elastic`` take budget / y steps and ``entropy-sgd`` budget / L outer steps.
The full grid adds ``replicated`` (MLP) with y times the budget (the same number of epochs per replica
as SGD), to separate the effect of the coupling from that of the smaller budget per replica.
At ``evals`` points during training each record holds the outer steps done (``step``), the
gradient evaluations used (``evaluations``), the test error,
the training error and loss (on a fixed subset), for replicated SGD and elastic averaging the
mean squared replica-center distance per parameter, for replicated SGD the test error of the
ensemble (mean of the replicas' probabilities), and the local energy
(thermolearn.deep.local_energy): training error and loss on the subset after multiplicative
weight noise w (1 + sigma z), mean over ``draws`` draws, for each sigma in SIGMAS (keys
``local_error_<sigma>``, ``local_loss_<sigma>``).

Full variant: MNIST (pixels in [0, 1], no binarisation), an MLP 784-256-10 and a small CNN, budget
4,690 evaluations (10 epochs of SGD at batch 128), y = 4, 3 seeds. Quick variant: scikit-learn
digits (8x8), MLP 64-128-10 and the small CNN, budget 600 evaluations at batch 32, 1 seed.

Anchors: the MNIST test errors that Chaudhari et al. (2017, Section 5.1) report for Entropy-SGD
and Adam on their fully connected network and on LeNet. Their networks are larger (784-1024-1024-10
with batch normalisation and dropout; LeNet) and trained to convergence, so they are a floor for
this experiment's 10-epoch runs, not a number it should reproduce.
"""

from __future__ import annotations

import numpy as np

from ..registry import Anchor, Experiment, register

SIGMAS = [0.0, 0.05, 0.1, 0.2, 0.3, 0.5]
TRAINERS = ["sgd", "replicated", "entropy-sgd", "elastic"]

_FULL = {"data": ["mnist"], "model": ["mlp", "cnn"], "trainer": TRAINERS, "budget": [4690],
         "batch_size": [128], "lr": [0.05], "replicas": [4], "inner_steps": [5],
         "gamma_start": [0.01], "gamma_end": [1.0], "evals": [5], "subset": [5000], "draws": [5]}
# and replicated SGD (MLP) with y times the budget: as many epochs per replica as SGD has
FULL_GRID = [_FULL, {**_FULL, "model": ["mlp"], "trainer": ["replicated"], "budget": [4 * 4690]}]
QUICK_GRID = {"data": ["digits"], "model": ["mlp", "cnn"], "trainer": TRAINERS, "budget": [600],
              "batch_size": [32], "lr": [0.05], "replicas": [4], "inner_steps": [5],
              "gamma_start": [0.01], "gamma_end": [1.0], "evals": [3], "subset": [1437], "draws": [5]}


def run(params: dict) -> list[dict]:
    """One point: train with params["trainer"] and measure (thermolearn.experiments.deep._training)."""
    from ._training import train_and_measure

    return train_and_measure(params)


# ---------------------------------------------------------------------------------------------
# presentation
# ---------------------------------------------------------------------------------------------

MARKERS = ["o", "s", "^", "v", "D", "P", "X", "*", "h", "<", ">", "p"]


def plot(records, fig) -> None:
    """Left: test error against gradient evaluations. Right: local energy (training error after
    multiplicative weight noise) against sigma at the end. One series per (trainer, budget,
    model), each with its own colour and marker; lines are means over seeds, the small
    transparent markers of the right panel the single seeds. Nothing is fitted."""
    models = sorted({r["model"] for r in records})
    base = min(r["budget"] for r in records)
    runs = sorted({(r["trainer"], r["budget"]) for r in records},
                  key=lambda tb: (TRAINERS.index(tb[0]) if tb[0] in TRAINERS else 99, tb[1]))
    series = [(trainer, budget, m) for trainer, budget in runs for m in models
              if any((r["trainer"], r["budget"], r["model"]) == (trainer, budget, m) for r in records)]
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for i, (trainer, budget, m) in enumerate(series):
        style = {"color": f"C{i % 10}", "marker": MARKERS[i % len(MARKERS)]}
        name = trainer if budget == base else f"{trainer} ({budget / base:g}x budget)"
        label = f"{name}, {m}"
        rows = [r for r in records if (r["trainer"], r["budget"], r["model"]) == (trainer, budget, m)]
        ev = sorted({r["evaluations"] for r in rows})
        err = [np.mean([r["test_error"] for r in rows if r["evaluations"] == e]) for e in ev]
        ax1.plot(ev, err, ms=4, label=label, **style)
        finals = [r for r in rows if r["evaluations"] == ev[-1] and r.get(f"local_error_{SIGMAS[-1]:g}") is not None]
        if finals:
            le = [np.mean([r[f"local_error_{s:g}"] for r in finals]) for s in SIGMAS]
            ax2.plot(SIGMAS, le, ms=4, label=label, **style)
            for r in finals:
                ax2.plot(SIGMAS, [r[f"local_error_{s:g}"] for s in SIGMAS], linestyle="none", ms=3,
                         alpha=0.4, **style)
    ax1.set_xlabel("gradient evaluations (minibatches of batch_size examples)")
    ax1.set_ylabel("test error (fraction misclassified)")
    ax1.set_yscale("log")
    ax1.set_title("test error (center for replicated / elastic)")
    ax2.set_xlabel("multiplicative weight noise sigma (relative to each weight)")
    ax2.set_ylabel("training error after noise (fraction misclassified)")
    ax2.set_title("local energy at the end (lower = flatter)")
    ax1.legend(fontsize=6)


_CHAUDHARI = ("Chaudhari, Choromanska, Soatto, LeCun, Baldassi, Borgs, Chayes, Sagun, Zecchina (2017), "
              "Entropy-SGD: biasing gradient descent into wide valleys, ICLR, Section 5.1 and Table 1 [unverified]")
_NOT_COMPARABLE = ("not comparable: a larger network trained to convergence, a floor for this 10-epoch run "
                   "[unverified: recalled, not read in the paper]")

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
    anchors=[
        Anchor("test_error", 0.0137, "Entropy-SGD on mnistfc (784-1024-1024-10, batch normalisation, "
               "dropout), MNIST test error 1.37% against this MLP 784-256-10; " + _NOT_COMPARABLE,
               source=_CHAUDHARI, where={"data": "mnist", "model": "mlp", "trainer": "entropy-sgd"}),
        Anchor("test_error", 0.0139, "Adam on mnistfc, MNIST test error 1.39%, beside this experiment's "
               "SGD with momentum on the MLP 784-256-10; " + _NOT_COMPARABLE,
               source=_CHAUDHARI, where={"data": "mnist", "model": "mlp", "trainer": "sgd"}),
        Anchor("test_error", 0.0050, "Entropy-SGD on LeNet, MNIST test error 0.50%, against this small CNN "
               "(two 3x3 convolutions with 8 and 16 channels); " + _NOT_COMPARABLE,
               source=_CHAUDHARI, where={"data": "mnist", "model": "cnn", "trainer": "entropy-sgd"}),
        Anchor("test_error", 0.0051, "Adam on LeNet, MNIST test error 0.51%, beside this experiment's SGD "
               "with momentum on the small CNN; " + _NOT_COMPARABLE,
               source=_CHAUDHARI, where={"data": "mnist", "model": "cnn", "trainer": "sgd"}),
    ],
    plot=plot,
    table={"test_error": "test error (fraction)",
           "ensemble_test_error": "ensemble test error (fraction)",
           "train_error": "training error (fraction)",
           "distance": "replica-center distance^2 per weight",
           "local_error_0.1": "train. error, noise sigma 0.1 (fraction)",
           "local_error_0.3": "train. error, noise sigma 0.3 (fraction)",
           "local_error_0.5": "train. error, noise sigma 0.5 (fraction)"},
))

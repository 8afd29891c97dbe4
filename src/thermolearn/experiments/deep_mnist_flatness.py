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

import copy
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .registry import Experiment, register

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


# ---------------------------------------------------------------------------------------------
# data and models
# ---------------------------------------------------------------------------------------------

def load(data: str):
    """(x_train, y_train, x_test, y_test): images (n, 1, side, side) in [0, 1], labels int64."""
    from thermolearn.data import load_dataset

    ds = load_dataset(data, binarize=None)
    side = int(round(math.sqrt(ds.train.shape[1])))
    shape = (-1, 1, side, side)
    return (ds.train.reshape(shape), ds.train_labels.long(), ds.test.reshape(shape), ds.test_labels.long())


def make_model(kind: str, side: int) -> nn.Module:
    """An MLP (side^2 - hidden - 10, hidden 256 for 28x28 images, else 128) or a small CNN (two
    3x3 convolutions with 8 and 16 channels, each followed by ReLU and 2x2 max pooling, then a
    linear read-out)."""
    if kind == "mlp":
        hidden = 256 if side >= 28 else 128
        return nn.Sequential(nn.Flatten(), nn.Linear(side * side, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    if kind == "cnn":
        return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(16 * (side // 4) ** 2, 10))
    raise ValueError(f"model: expected 'mlp' or 'cnn', got {kind!r}")


class _Batches:
    """Minibatches drawn without replacement within an epoch, from one seeded stream."""

    def __init__(self, x, t, batch, seed):
        self.x, self.t, self.batch = x, t, batch
        self.g = torch.Generator().manual_seed(seed)
        self.order, self.pos = torch.randperm(len(x), generator=self.g), 0

    def __call__(self, n_batches: int = 1):
        size = n_batches * self.batch
        if self.pos + size > len(self.order):
            self.order, self.pos = torch.randperm(len(self.x), generator=self.g), 0
        idx = self.order[self.pos:self.pos + size]
        self.pos += size
        return self.x[idx], self.t[idx]


@torch.no_grad()
def _error(model, x, t, chunk=2000) -> float:
    model.eval()
    wrong = sum(int((model(x[i:i + chunk]).argmax(1) != t[i:i + chunk]).sum()) for i in range(0, len(x), chunk))
    return wrong / len(x)


@torch.no_grad()
def _loss(model, x, t) -> float:
    model.eval()
    return float(F.cross_entropy(model(x), t))


# ---------------------------------------------------------------------------------------------
# one run
# ---------------------------------------------------------------------------------------------

def run(params: dict) -> list[dict]:
    from thermolearn.deep import ElasticAveraging, EntropySGD, Replicated, exponential_growth, local_energy
    from thermolearn.deep._functional import reset_parameters, seeded

    seed = int(params["seed"])
    xtr, ytr, xte, yte = load(params["data"])
    side = xtr.shape[-1]
    gsub = torch.Generator().manual_seed(10_000 + seed)
    sub = torch.randperm(len(xtr), generator=gsub)[:int(params["subset"])]
    xs, ys = xtr[sub], ytr[sub]
    torch.manual_seed(seed)
    init = make_model(params["model"], side)
    trainer, budget, lr = params["trainer"], int(params["budget"]), float(params["lr"])
    y, L = int(params["replicas"]), int(params["inner_steps"])
    cost = {"sgd": 1, "replicated": y, "elastic": y, "entropy-sgd": L}[trainer]
    steps = budget // cost
    checkpoints = sorted({max(1, round(steps * (k + 1) / int(params["evals"]))) for k in range(int(params["evals"]))})
    batches = _Batches(xtr, ytr, int(params["batch"]), seed)

    def closure():                     # one gradient evaluation of ``net`` on a fresh minibatch
        net.train()
        x, t = batches()
        opt.zero_grad()
        loss = F.cross_entropy(net(x), t)
        loss.backward()
        return loss

    if trainer in ("sgd", "entropy-sgd"):
        net = init
        opt = (torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9) if trainer == "sgd" else
               EntropySGD(net.parameters(), lr=1.0, inner_steps=L, inner_lr=lr, seed=seed))

        def step():
            opt.step(closure)

        def current():
            return net, None, None
    elif trainer == "replicated":
        g0, g1 = float(params["gamma_start"]), float(params["gamma_end"])
        growth = (g1 / g0) ** (1.0 / max(steps - 1, 1)) - 1.0
        rep = Replicated(init, replicas=y, coupling="mean", gamma=exponential_growth(g0, growth),
                         optimizer=lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9),
                         reinit=True, seed=seed)

        def step():
            rep.step(batches(y), F.cross_entropy)

        def current():
            return rep.center, rep, rep
    elif trainer == "elastic":
        workers = []
        for a in range(y):
            w = copy.deepcopy(init)
            with seeded(seed * 1000 + a):
                reset_parameters(w)
            workers.append(w)
        opt = ElasticAveraging(workers, lr=lr, rho=0.9 / (lr * y), momentum=0.9)

        def step():
            opt.zero_grad()
            for w in workers:
                w.train()
                x, t = batches()
                F.cross_entropy(w(x), t).backward()
            opt.step()

        def current():
            return opt.center_module(init), opt, None
    else:
        raise ValueError(f"trainer: expected one of {TRAINERS}, got {trainer!r}")

    n_params = sum(p.numel() for p in init.parameters())
    records, done = [], 0
    for target in checkpoints:
        while done < target:
            step()
            done += 1
        model, spread, ensemble = current()
        rec = {"evaluations": done * cost, "steps": done, "test_error": _error(model, xte, yte),
               "train_error": _error(model, xs, ys), "train_loss": _loss(model, xs, ys),
               "distance": None, "ensemble_test_error": None}
        if spread is not None:              # mean squared replica-center distance per parameter
            rec["distance"] = spread.distances()["mean_to_center"] / n_params
        if ensemble is not None:
            with torch.no_grad():
                pred = ensemble.predict(xte, which="ensemble")
            rec["ensemble_test_error"] = float((pred.argmax(1) != yte).double().mean())
        le = local_energy(model, F.cross_entropy, (xs, ys), SIGMAS, kind="multiplicative",
                          draws=int(params["draws"]), seed=seed, metric="both")
        for s, em, lm in zip(SIGMAS, le.error_mean, le.loss_mean):
            rec[f"local_error_{s:g}"] = float(em)
            rec[f"local_loss_{s:g}"] = float(lm)
        records.append(rec)
    return records


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

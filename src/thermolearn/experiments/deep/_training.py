"""The training side of the deep-mnist-flatness experiment: data, models, the four trainers at an
equal budget of gradient evaluations, and the per-checkpoint measurements (see
:mod:`thermolearn.experiments.deep.deep_mnist_flatness` for the protocol). Imported only when a point
runs, so that listing experiments does not load torch."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

from .deep_mnist_flatness import SIGMAS, TRAINERS

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

    def __init__(self, x, t, batch_size, seed):
        self.x, self.t, self.batch_size = x, t, batch_size
        self.g = torch.Generator().manual_seed(seed)
        self.order, self.pos = torch.randperm(len(x), generator=self.g), 0

    def __call__(self, n_batches: int = 1):
        size = n_batches * self.batch_size
        if self.pos + size > len(self.order):
            self.order, self.pos = torch.randperm(len(self.x), generator=self.g), 0
        idx = self.order[self.pos:self.pos + size]
        self.pos += size
        return self.x[idx], self.t[idx]


@torch.no_grad()
def _error(model, x, t, chunk=2000) -> float:
    from thermolearn.deep import classification_error

    model.eval()
    wrong = sum(float(classification_error(model(x[i:i + chunk]), t[i:i + chunk])) * len(t[i:i + chunk])
                for i in range(0, len(x), chunk))
    return wrong / len(x)


@torch.no_grad()
def _loss(model, x, t) -> float:
    model.eval()
    return float(F.cross_entropy(model(x), t))


# ---------------------------------------------------------------------------------------------
# one run
# ---------------------------------------------------------------------------------------------

def train_and_measure(params: dict) -> list[dict]:
    """One point of deep-mnist-flatness (see that module): train, then log at each checkpoint."""
    from thermolearn.deep import ElasticAveraging, EntropySGD, Replicated, local_energy, reset_parameters
    from thermolearn.schedules import Geometric
    from thermolearn.seeding import spawn_seeds

    seed = int(params["seed"])
    xtr, ytr, xte, yte = load(params["data"])
    side = xtr.shape[-1]
    gsub = torch.Generator().manual_seed(10_000 + seed)
    sub = torch.randperm(len(xtr), generator=gsub)[:int(params["subset"])]
    xs, ys = xtr[sub], ytr[sub]
    init = reset_parameters(make_model(params["model"], side), seed)
    trainer, budget, lr = params["trainer"], int(params["budget"]), float(params["lr"])
    y, L = int(params["replicas"]), int(params["inner_steps"])
    cost = {"sgd": 1, "replicated": y, "elastic": y, "entropy-sgd": L}[trainer]
    steps = budget // cost
    checkpoints = sorted({max(1, round(steps * (k + 1) / int(params["evals"]))) for k in range(int(params["evals"]))})
    batches = _Batches(xtr, ytr, int(params["batch_size"]), seed)

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
        rep = Replicated(init, replicas=y, coupling="mean", gamma=Geometric(g0, 1 + growth),
                         optimizer=lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9),
                         reinit=True, seed=seed)

        def step():
            rep.step(batches(y), F.cross_entropy)

        def current():
            return rep.center, rep, rep
    elif trainer == "elastic":
        # worker a starts where replica a of ``replicated`` starts
        workers = [reset_parameters(copy.deepcopy(init), s) for s in spawn_seeds(seed, y)]
        opt = ElasticAveraging(workers, lr=lr, gamma=0.9 / (lr * y), momentum=0.9)

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
        rec = {"step": done, "evaluations": done * cost, "test_error": _error(model, xte, yte),
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
        for s, em, lm in zip(SIGMAS, le["error"].mean, le["loss"].mean):
            rec[f"local_error_{s:g}"] = float(em)
            rec[f"local_loss_{s:g}"] = float(lm)
        records.append(rec)
    return records

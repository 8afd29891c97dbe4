"""weight-spectra: how the layers' weight spectra of an MLP change over training, set against null models.

An MLP (ReLU, PyTorch's default initialisation from the run's seed) is trained by SGD with
momentum 0.9 on the cross-entropy of the class labels (pixels in [0, 1], no binarisation).
Before training (epoch 0) and after every epoch, thermolearn.landscape.weight_spectra analyses
every Linear layer: the ESD of X = W^T W / N (N x M, N >= M), its Marchenko-Pastur fit
(sigma^2, bulk edge lambda_+, spikes above lambda_+ plus a Tracy-Widom margin; Marchenko &
Pastur 1967, Johnstone 2001) and the power-law exponent alpha of its tail (continuous MLE with
the KS-chosen xmin, Clauset, Shalizi & Newman 2009; bootstrap 95% interval), as in the
heavy-tailed self-regularisation analysis of Martin & Mahoney (2019, 2021). Two null models are
analysed the same way at each snapshot:

* init: the same layer at its initialisation (a copy of the network taken before training, so
  at epoch 0 it is the network itself);
* shuffle: the layer's current weights with their entries randomly permuted, which keeps the
  distribution of the entries and destroys their correlations.

Spikes present in the trained weights but absent in the shuffled ones come from correlations
that training put into W (low-rank signal), not from the size of its entries; an alpha below
both nulls' is a heavier tail than random matrices of the same entry statistics have.

Full variant: MNIST, MLP 784-1000-1000-500-10, 10 epochs, lr 0.01, batch sizes 16 and 256
(Martin & Mahoney 2021 report heavier tails, lower alpha, with smaller batches), 50 bootstrap
replicates, 1 seed. Quick variant: scikit-learn digits (8x8), MLP 64-256-256-10, 6 epochs, batch
32, 20 bootstrap replicates.

One record per (epoch, layer): epoch, layer (its name in the nn.Sequential), train_loss,
train_accuracy, test_accuracy, and the fields of LayerSpectrum.record(): N, M, Q, sigma2,
lambda_plus, spikes, mp_ks, alpha, alpha_ci_low, alpha_ci_high, xmin, n_tail, ks, lambda_max,
spectral_norm, stable_rank, alpha_weighted, and the same with the prefixes init_ and shuffle_
for the nulls.
"""

from __future__ import annotations

import math

from ..plotting import axis_label, styles
from ..registry import Anchor, Experiment, register

FULL_GRID = {"data": ["mnist"], "hidden": ["1000-1000-500"], "epochs": [10], "batch_size": [16, 256],
             "lr": [0.01], "bootstrap": [50]}
QUICK_GRID = {"data": ["digits"], "hidden": ["256-256"], "epochs": [6], "batch_size": [32], "lr": [0.01],
              "bootstrap": [20]}

_DROP = ("kind", "shape", "n_matrices", "lambda_minus", "init_lambda_minus", "shuffle_lambda_minus")


def run(p: dict) -> list[dict]:
    import copy

    import torch
    from torch import nn

    from ...data import load_dataset
    from ...landscape import mlp, weight_spectra
    from ...seeding import as_generator, spawn_seeds

    ds = load_dataset(p["data"], binarize=None)
    x, y = ds.train, ds.train_labels.long()
    xt, yt = ds.test, ds.test_labels.long()
    sizes = [x.shape[1], *(int(h) for h in str(p["hidden"]).split("-")), 10]
    s_init, s_batches, s_spectra = spawn_seeds(p["seed"], 3)
    model = mlp(sizes, "relu", seed=s_init)
    start = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=p["lr"], momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    gen = as_generator(s_batches)
    spectra_seeds = spawn_seeds(s_spectra, p["epochs"] + 1)
    records = []

    def snapshot(epoch: int) -> None:
        with torch.no_grad():
            out = model(x)
            train = {"train_loss": float(loss_fn(out, y)),
                     "train_accuracy": float((out.argmax(1) == y).double().mean()),
                     "test_accuracy": float((model(xt).argmax(1) == yt).double().mean())}
        for spec in weight_spectra(model, null=("init", "shuffle"), init_module=start,
                                   bootstrap=p["bootstrap"], seed=spectra_seeds[epoch]):
            rec = {k: v for k, v in spec.record().items() if k not in _DROP}
            records.append({"epoch": epoch, **train, **rec})

    snapshot(0)
    for epoch in range(1, p["epochs"] + 1):
        for idx in torch.randperm(x.shape[0], generator=gen).split(p["batch_size"]):
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            if not torch.isfinite(loss):
                raise RuntimeError(f"loss is {float(loss)} at epoch {epoch}: lower lr")
            loss.backward()
            opt.step()
        snapshot(epoch)
    return records


def _series(r) -> str:
    return f"{r['data']} {r['hidden']}, batch {r['batch_size']}"


def _num(v):
    return math.nan if v is None else v


def plot(records, fig) -> None:
    """One row per series (data, widths, batch size). Left: alpha of each layer (one colour each)
    over the epochs, solid with its bootstrap 95% band for the trained weights, dashed for the
    init null, dotted for the shuffle null (first seed). Right: the number of Marchenko-Pastur
    spikes of each layer, solid for the trained weights, dotted for the shuffle null."""
    from matplotlib.ticker import FuncFormatter

    names = sorted({_series(r) for r in records})
    layers = sorted({r["layer"] for r in records}, key=lambda s: [int(t) for t in s.split(".")])
    look = styles(layers)
    for row, name in enumerate(names):
        rows = [r for r in records if _series(r) == name]
        seed = min(r["seed"] for r in rows)
        rows = [r for r in rows if r["seed"] == seed]
        ax_a = fig.add_subplot(len(names), 2, 2 * row + 1)
        ax_s = fig.add_subplot(len(names), 2, 2 * row + 2)
        for layer in layers:
            rs = sorted((r for r in rows if r["layer"] == layer), key=lambda r: r["epoch"])
            if not rs:
                continue
            st = look[layer]
            e = [r["epoch"] for r in rs]
            label = f"layer {layer} ({rs[0]['N']}x{rs[0]['M']})"
            ax_a.plot(e, [_num(r["alpha"]) for r in rs], color=st["color"], marker=st["marker"], ms=4, lw=1.4,
                      label=label)
            ax_a.fill_between(e, [_num(r["alpha_ci_low"]) for r in rs], [_num(r["alpha_ci_high"]) for r in rs],
                              color=st["color"], alpha=0.15, lw=0)
            ax_a.plot(e, [_num(r["init_alpha"]) for r in rs], color=st["color"], ls="--", lw=1.0)
            ax_a.plot(e, [_num(r["shuffle_alpha"]) for r in rs], color=st["color"], ls=":", lw=1.2)
            ax_s.plot(e, [r["spikes"] for r in rs], color=st["color"], marker=st["marker"], ms=4, lw=1.4, label=label)
            ax_s.plot(e, [r["shuffle_spikes"] for r in rs], color=st["color"], ls=":", lw=1.2)
        acc = {r["epoch"]: r["test_accuracy"] for r in rows}
        last = max(acc)
        ax_a.set_yscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax_a.yaxis.set_major_formatter(plain)
        ax_a.yaxis.set_minor_formatter(plain)
        ax_a.tick_params(axis="y", which="minor", labelsize=7)
        ax_a.set_xlabel(axis_label("epoch"))
        ax_a.set_ylabel(axis_label("power-law alpha of the ESD"))
        ax_a.set_title(f"{name} (test acc. {acc[last]:.3f} at epoch {last})\nalpha: weights (band: 95% bootstrap), "
                       "- - init, ··· shuffled", fontsize=8)
        ax_s.set_xlabel(axis_label("epoch"))
        ax_s.set_ylabel(axis_label("spikes above the MP edge"))
        ax_s.set_title("Marchenko-Pastur spikes: weights (solid), shuffled (dotted)", fontsize=8)
        if row == 0:
            ax_s.legend(fontsize=6)


EXPERIMENT = register(Experiment(
    name="weight-spectra",
    description="Weight spectra of an MLP over training: per layer the power-law alpha of the ESD and the "
                "Marchenko-Pastur fit (sigma^2, spikes), against the layer at initialisation and with shuffled "
                "entries (--quick: digits, 64-256-256-10).",
    run=run,
    grid=FULL_GRID,
    seeds=[0],
    quick_grid=QUICK_GRID,
    quick_seeds=[0],
    expected_seconds=(800, 15),          # estimated from timed steps: batch 16 about 10 min on one core
    anchors=[
        Anchor("alpha", (2.0, 4.0), "alpha of well-trained layers, heavy-tailed phase [unverified]",
               source="Martin & Mahoney (2021), JMLR 22(165), Section 5 [unverified]",
               where={"data": "mnist", "epoch": 10, "layer": "2"}),
    ],
    plot=plot,
    table={"batch_size": "batch size", "epoch": "epoch", "layer": "layer", "test_accuracy": "test accuracy",
           "alpha": "alpha", "init_alpha": "alpha at init", "shuffle_alpha": "alpha shuffled",
           "spikes": "MP spikes", "shuffle_spikes": "spikes shuffled", "sigma2": "MP sigma^2",
           "stable_rank": "stable rank", "spectral_norm": "||W||_2"},
))

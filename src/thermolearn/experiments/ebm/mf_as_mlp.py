"""mf-as-mlp: is unrolled RBM mean field a tied-weight network worth fine-tuning as one?

Martin (2017, "Why deep learning works 3: backprop minimizes the free energy?") observes that
``steps`` rounds of naive mean field of an RBM clamped at v,

    h_0 = sigmoid(b + v W),    h_r = sigmoid(b + sigmoid(a + h_{r-1} W^T) W),

are a sigmoid network of 2 steps + 1 layers with tied weights, and conjectures that training such
a network by backpropagation and training the RBM by mean field minimise related free energies,
suggesting that untying the layers' weights may relax the constraint of the mean-field RBM. The
claim is a conjecture; this experiment measures the part of it that can be measured.

Each run trains an RBM by CD-1 on the training images (no labels), unrolls it into
:class:`~thermolearn.ebm.MeanFieldMLP` with ``steps`` rounds, puts a softmax (linear) classifier
on the hidden means h_steps, and fine-tunes everything by backpropagation of the cross-entropy
(Adam, the same epochs, batches and learning rate for both variants), either with the tied
weights of the RBM (``weights = tied``: 3 parameter tensors, the network stays an RBM) or with
every layer its own copy of them (``weights = untied``: the same function at the start, 2 steps
+ 1 weight matrices). The classifier starts at zero and the batch order depends only on the
seed, so tied and untied runs of a seed are paired. steps = 0 is the one-layer network, where
both variants are the same model (a check).

Records (one per run): test_error_percent, test_loss (mean cross-entropy, nats),
train_error_percent, train_loss, parameters (number of trained values), rbm_seconds, seconds.

Quick variant: scikit-learn digits (threshold-binarized, 1,438 training rows), 100 hidden units,
RBM 20 epochs, fine-tuning 20 epochs of batches of 100 (Adam, lr 0.01). Full variant: MNIST
(S&M08 stochastic binarization), 500 hidden units, RBM 10 epochs, fine-tuning 5 epochs of
batches of 100 (Adam, lr 0.001).
"""

from __future__ import annotations

import functools

from ..registry import Experiment, register
from ._common import dataset

WEIGHTS = ("tied", "untied")

FULL_GRID = {"data": ["mnist"], "hidden": [500], "rbm_epochs": [10], "rbm_lr": [0.05], "steps": [0, 1, 2, 5],
             "weights": list(WEIGHTS), "epochs": [5], "batch_size": [100], "lr": [1e-3]}
QUICK_GRID = {"data": ["digits"], "hidden": [100], "rbm_epochs": [20], "rbm_lr": [0.05], "steps": [0, 1, 2, 5],
              "weights": list(WEIGHTS), "epochs": [20], "batch_size": [100], "lr": [1e-2]}


@functools.lru_cache(maxsize=4)
def _pretrained(data: str, hidden: int, epochs: int, lr: float, seed: int):
    """(W, a, b, seconds) of the RBM that every point of (data, hidden, epochs, lr, seed) unrolls."""
    import time

    from ...ebm import RBM, base_rate_bias, train

    ds = dataset(data)
    t0 = time.perf_counter()
    rbm = RBM(ds.train.shape[1], hidden, seed=seed)
    rbm.visible_bias.copy_(base_rate_bias(ds.train))
    train(rbm, ds.train, method="cd", k=1, epochs=epochs, batch_size=20 if data == "digits" else 100,
          lr=lr, momentum=0.5, weight_decay=1e-4, seed=seed)
    return rbm.W.clone(), rbm.visible_bias.clone(), rbm.hidden_bias.clone(), time.perf_counter() - t0


def run(p: dict) -> list[dict]:
    import time

    import torch
    from torch import nn
    from torch.nn import functional as F

    from ...ebm import RBM, MeanFieldMLP

    ds = dataset(p["data"])
    W, a, b, rbm_seconds = _pretrained(p["data"], p["hidden"], p["rbm_epochs"], p["rbm_lr"], p["seed"])
    rbm = RBM.from_weights(W, a, b)
    net = MeanFieldMLP.from_rbm(rbm, p["steps"], tied=p["weights"] == "tied")
    head = nn.Linear(p["hidden"], 10)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
    model = nn.Sequential(net, head)
    opt = torch.optim.Adam(model.parameters(), lr=p["lr"])
    x, y = ds.train, ds.train_labels
    g = torch.Generator().manual_seed(p["seed"])
    t0 = time.perf_counter()
    for _ in range(p["epochs"]):
        for idx in torch.randperm(x.shape[0], generator=g).split(p["batch_size"]):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    seconds = time.perf_counter() - t0

    def scores(xs, ys):
        with torch.no_grad():
            out = torch.cat([model(c) for c in xs.split(5000)])
            return 100.0 * float((out.argmax(1) != ys).double().mean()), float(F.cross_entropy(out, ys))

    test_error, test_loss = scores(ds.test, ds.test_labels)
    train_error, train_loss = scores(x, y)
    return [{"test_error_percent": test_error, "test_loss": test_loss, "train_error_percent": train_error,
             "train_loss": train_loss, "parameters": sum(q.numel() for q in model.parameters()),
             "rbm_seconds": rbm_seconds, "seconds": seconds}]


def plot(records, fig) -> None:
    """Test error and test loss against the number of unrolled rounds, tied against untied: the
    mean over seeds with its standard deviation, and each seed as a small point."""
    from ..plotting import axis_label, styles

    series = sorted({(r["data"], r["weights"]) for r in records})
    look = styles([f"{w} ({d})" for d, w in series])
    for i, (key, quantity, unit) in enumerate((("test_error_percent", "test error", "%"),
                                               ("test_loss", "test cross-entropy", "nats"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for j, (d, w) in enumerate(series):
            name = f"{w} ({d})"
            st = look[name]
            rows = [r for r in records if (r["data"], r["weights"]) == (d, w)]
            steps = sorted({r["steps"] for r in rows})
            shift = 0.08 * (j - (len(series) - 1) / 2)          # side by side, not on top
            vals = [[r[key] for r in rows if r["steps"] == s] for s in steps]
            means = [sum(v) / len(v) for v in vals]
            sds = [(sum((u - m) ** 2 for u in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else 0.0
                   for v, m in zip(vals, means)]
            ax.errorbar([s + shift for s in steps], means, yerr=sds, color=st["color"], marker=st["marker"],
                        linestyle=st["linestyle"], capsize=3, label=f"{name}, mean ± sd over seeds")
            for s, v in zip(steps, vals):
                ax.plot([s + shift] * len(v), v, color=st["color"], marker=st["marker"], linestyle="none",
                        markersize=3, alpha=0.4)
        ax.set_xlabel(axis_label("mean-field rounds unrolled (steps; 2 steps + 1 layers)"))
        ax.set_ylabel(axis_label(quantity, unit))
        ax.set_title(f"{quantity} after fine-tuning")
        ax.legend(fontsize=8)


EXPERIMENT = register(Experiment(
    name="mf-as-mlp",
    description="Unrolled RBM mean field as a sigmoid network with a softmax head, fine-tuned by backprop "
                "with tied against untied weights: test error and loss against the number of rounds "
                "(--quick: sklearn digits).",
    run=run,
    grid=FULL_GRID,
    seeds=[0, 1, 2],
    quick_grid=QUICK_GRID,
    quick_seeds=[0, 1, 2],
    expected_seconds=(3000, 40),
    plot=plot,
    table={"weights": "weights", "steps": "rounds (steps)", "test_error_percent": "test error (%)",
           "test_loss": "test loss (nats)", "train_loss": "train loss (nats)", "parameters": "parameters"},
))

"""dbn-rg-flow: a greedily stacked DBN, its variational bound and its free energies layer by layer.

A stack of RBMs is read by Mehta & Schwab (2014) as Kadanoff's variational renormalisation
group: each layer coarse-grains the one below and its free energy is the effective Hamiltonian
of the layer below. This experiment trains the stack (thermolearn.ebm.DBN, greedy, each RBM on
one sample of q(h|v) of the layer below per row) and records, for training and held-out rows:

- per layer k, the free energy F_k of the data represented at layer k-1 (one sample per row, as
  in training) under RBM k, per example and per unit of that layer, with standard errors over
  rows, and the per-layer log-likelihood where log Z_k is known (exact for <= 20 units in the
  smaller layer, AIS otherwise);
- the variational lower bound on the test log-likelihood of the DBN (Salakhutdinov & Murray
  2008): exact where h_1 has at most 20 units (then also the exact DBN log-likelihood and the
  gap), and by sampling h_1 ~ q with log Z of the top RBM by AIS (± its standard error);
- mean-field reconstructions of the first test digits through each layer (in the figure).

Full variant: MNIST (S&M08 stochastic binarization) with the 784-500-2000 DBN of S&M08, and a
784-16-16 DBN whose bound is also exact. The training recipe is this project's (PCD-1, lr
decaying linearly to 0, momentum 0.5, batch 100; fewer epochs than the 150 of the project's best
RBM), not S&M08's. AIS with the S&M08 ladder of 14,501 temperatures and 100 chains. Quick
variant: scikit-learn digits, 64-16-16 and 64-16-64 (exact bounds; the second with RBM 2
started as RBM 1 transposed, so that the bound starts tight and greedy training should raise it
above RBM 1's log-likelihood, Hinton, Osindero & Teh 2006) and 64-100-20 (AIS bound).
"""

from __future__ import annotations

import math

from ..plotting import styles
from ..registry import Anchor, Experiment, register
from ._common import dataset

RECON_DIGITS = 6

# name: (sizes, method, k, epochs per layer, initial lr per layer, batch size, bound samples per
# row, tied: RBM 2 starts as RBM 1 transposed, Hinton, Osindero & Teh 2006)
CONFIGS = {
    "exact-784-16-16": ("784-16-16", "pcd", 1, "30,30", "0.01,0.01", 100, 20, False),
    "sm08-784-500-2000": ("784-500-2000", "pcd", 1, "60,30", "0.01,0.01", 100, 5, False),
}
QUICK_CONFIGS = {
    "exact-64-16-16": ("64-16-16", "cd", 1, "30,30", "0.05,0.05", 20, 20, False),
    "tied-64-16-64": ("64-16-64", "cd", 1, "30,30", "0.05,0.01", 20, 20, True),
    "ais-64-100-20": ("64-100-20", "cd", 1, "30,30", "0.05,0.05", 20, 20, False),
}


def grid(configs: dict, data: str, ais_betas) -> list[dict]:
    return [{"model": [name], "data": [data], "sizes": [s], "method": [m], "k": [k], "epochs": [e],
             "lr": [lr], "batch_size": [b], "bound_samples": [n], "tied_init": [tied], "ais_chains": [100],
             "ais_betas": [ais_betas]}
            for name, (s, m, k, e, lr, b, n, tied) in configs.items()]


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.split("-")]


def run(p: dict) -> list[dict]:
    import time

    import torch

    from ...ebm import MAX_EXACT_UNITS
    from ...ebm.dbn import DBN
    from ...schedules import LinearDecay

    ds = dataset(p["data"])
    sizes = _sizes(p["sizes"])
    epochs = [int(e) for e in str(p["epochs"]).split(",")]
    lrs = [float(x) for x in str(p["lr"]).split(",")]
    dbn = DBN(sizes, seed=p["seed"])
    t0 = time.perf_counter()
    fit = dbn.fit(ds.train, epochs=epochs, method=p["method"], k=p["k"], batch_size=p["batch_size"],
                  lr=[LinearDecay(lr, e) for lr, e in zip(lrs, epochs)], momentum=0.5, weight_decay=1e-4,
                  validation=ds.test[:2000], tied_init=bool(p.get("tied_init", False)), seed=p["seed"])
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    rec = {"layers": len(sizes) - 1, "train_seconds": train_seconds}
    test = ds.test
    bound = dbn.log_likelihood_bound(test, method="ais", samples=p["bound_samples"], ais_chains=p["ais_chains"],
                                     n_betas=p["ais_betas"], seed=p["seed"])
    rec.update(bound_ais_test=bound.value, bound_ais_test_stderr=bound.stderr,
               bound_ais_test_sample_stderr=bound.sample_stderr, bound_ais_test_row_stderr=bound.row_stderr,
               log_z_top_ais=bound.log_z, log_z_top_ais_stderr=bound.log_z_stderr,
               entropy_q_test=bound.entropy)
    exact = sum(sizes[1:-1]) <= MAX_EXACT_UNITS
    if exact:
        rec["bound_exact_test"] = dbn.log_likelihood_bound(test, method="exact")
        rec["log_p_exact_test"] = dbn.log_likelihood(test)
        rec["bound_gap_test"] = rec["log_p_exact_test"] - rec["bound_exact_test"]
        rec["bound_ais_error"] = rec["bound_ais_test"] - rec["bound_exact_test"]
    top_given = None if min(sizes[-2:]) <= MAX_EXACT_UNITS else (bound.log_z, bound.log_z_stderr)
    fe = dbn.free_energies(ds.train, test, upward="sample", log_z=[None] * (len(sizes) - 2) + [top_given],
                           ais={"n_chains": p["ais_chains"], "n_betas": p["ais_betas"]}, seed=p["seed"])
    for r in fe.records:
        k = r["layer"]
        for key in ("free_energy_train", "free_energy_test"):
            for suffix in ("", "_sem", "_per_unit", "_per_unit_sem"):
                rec[f"{key}{suffix}_{k}"] = r[key + suffix]
        rec[f"free_energy_gap_{k}"] = r["free_energy_gap"]
        if "log_z" in r:
            rec[f"log_z_{k}"], rec[f"log_z_stderr_{k}"] = r["log_z"], r["log_z_stderr"]
            for split in ("train", "test"):
                rec[f"log_likelihood_{split}_{k}"] = r[f"log_likelihood_{split}"]
                rec[f"log_likelihood_{split}_sem_{k}"] = r[f"log_likelihood_{split}_sem"]
                rec[f"log_likelihood_{split}_per_unit_{k}"] = r[f"log_likelihood_{split}_per_unit"]
    # the first RBM alone is a model of v: the DBN bound should beat its log-likelihood
    if "log_likelihood_test_1" in rec:
        rec["rbm1_test_ll"] = rec["log_likelihood_test_1"]
        rec["bound_minus_rbm1"] = rec["bound_ais_test"] - rec["rbm1_test_ll"]
    digits = test[:RECON_DIGITS]
    with torch.no_grad():
        images = [digits] + [dbn.reconstruct(digits, layer=k) for k in range(1, len(sizes))]
    rec["reconstructions"] = [[[round(float(x), 3) for x in row] for row in img] for img in images]
    rec["image_side"] = int(round(math.sqrt(sizes[0])))
    rec["final_reconstruction_error_1"] = fit.history[0]["reconstruction_error"]
    rec["eval_seconds"] = time.perf_counter() - t0
    return [rec]


def plot(records, fig) -> None:
    """Three panels: free energy per unit against layer (train and held-out, ± standard error, one
    marker and colour per model and split); the test bound per model (AIS ± 1 standard error, exact
    where known, the exact DBN log-likelihood and the first RBM alone), with the published DBN
    bound on MNIST; reconstructions of test digits through the layers of the first model."""
    left, middle, right = fig.subfigures(1, 3, width_ratios=[1.0, 1.0, 1.1])
    models = list(dict.fromkeys(r["model"] for r in records))
    series = [f"{m}, {s}" for m in models for s in ("train", "held-out")]
    look = styles(series)
    ax = left.subplots()
    for m in models:
        r = next(r for r in records if r["model"] == m)
        layers = list(range(1, r["layers"] + 1))
        for split, key in (("train", "train"), ("held-out", "test")):
            ys = [r[f"free_energy_{key}_per_unit_{k}"] for k in layers]
            es = [r[f"free_energy_{key}_per_unit_sem_{k}"] for k in layers]
            st = look[f"{m}, {split}"]
            ax.errorbar(layers, ys, yerr=es, capsize=3, label=f"{m}, {split}", color=st["color"],
                        marker=st["marker"], linestyle=st["linestyle"])
        ax.set_xticks(layers)
    ax.set_xlabel("layer k (RBM k scores the data at layer k-1)")
    ax.set_ylabel("free energy per unit of layer k-1 (nats)")
    ax.set_title("free-energy flow (± s.e. over rows)", fontsize=9)
    ax.legend(fontsize=6)

    ax = middle.subplots()
    estimators = [("bound_ais_test", "bound, AIS (± s.e.)"), ("bound_exact_test", "bound, exact"),
                  ("log_p_exact_test", "exact DBN log p(v)"), ("rbm1_test_ll", "RBM 1 alone")]
    est_look = styles([label for _, label in estimators])
    for ei, (key, label) in enumerate(estimators):
        for mi, m in enumerate(models):
            r = next(r for r in records if r["model"] == m)
            if key not in r:
                continue
            x = mi + (ei - 1.5) * 0.12
            st = est_look[label]
            err = r["bound_ais_test_stderr"] if key == "bound_ais_test" else None
            ax.errorbar([x], [r[key]], yerr=err, fmt=st["marker"], color=st["color"], capsize=3,
                        label=label if mi == _first(records, models, key) else None)
    if any(r["data"] == "mnist" for r in records):
        for a in EXPERIMENT.anchors:
            ax.axhline(a.value, color="0.4", ls="--", lw=0.8, label="S&M08 DBN bound [unverified]")
    ax.set_xticks(range(len(models)), [m.replace("-", "-\n", 1) for m in models], fontsize=7)
    ax.set_xlim(-0.6, len(models) - 0.4)
    ax.set_ylabel("test log-likelihood (nats per example)")
    ax.set_title(f"{records[0]['data']}: bound on log p(v)", fontsize=9)
    ax.legend(fontsize=6)

    r = max(records, key=lambda q: _sizes(q["sizes"])[1])     # the widest first layer
    imgs = r["reconstructions"]
    side = r["image_side"]
    axes = right.subplots(len(imgs), len(imgs[0]), squeeze=False)
    names = ["data"] + [f"via layer {k}" for k in range(1, len(imgs))]
    for i, row in enumerate(imgs):
        for j, pix in enumerate(row):
            a = axes[i][j]
            a.imshow([pix[t * side:(t + 1) * side] for t in range(side)], cmap="gray_r", vmin=0, vmax=1)
            a.set_xticks([])
            a.set_yticks([])
            if j == 0:
                a.set_ylabel(names[i], fontsize=7)
    right.suptitle(f"{r['model']}: test digits, mean-field\nup to a layer and back down", fontsize=8)


def _first(records, models, key):
    """Index of the first model whose record has ``key`` (its legend entry is the one shown)."""
    for i, m in enumerate(models):
        if key in next(r for r in records if r["model"] == m):
            return i
    return -1


EXPERIMENT = register(Experiment(
    name="dbn-rg-flow",
    description="Greedy DBNs (MNIST 784-500-2000 as in S&M08, and 784-16-16 with an exact bound): per-layer "
                "free energies, the variational bound on the test log-likelihood (exact and AIS) and "
                "reconstructions through the layers (--quick: digits 64-16-16, 64-16-64 tied, 64-100-20).",
    run=run,
    grid=grid(CONFIGS, "mnist", "sm08"),
    seeds=[0],
    quick_grid=grid(QUICK_CONFIGS, "digits", 2000),
    quick_seeds=[0],
    expected_seconds=(3600, 60),
    anchors=[Anchor(
        "bound_ais_test", -86.22,
        "DBN 784-500-2000 on MNIST, AIS estimate of the variational lower bound on the test "
        "log-probability, about -86.2 [unverified: not read in the paper]",
        source="Salakhutdinov & Murray (2008), On the quantitative analysis of deep belief networks, ICML, "
               "DBN results (table not checked) [unverified]",
        where={"data": "mnist", "sizes": "784-500-2000"})],
    plot=plot,
    table={"model": "model", "bound_ais_test": "test bound, AIS (nats)",
           "bound_ais_test_stderr": "its s.e. (nats)", "bound_exact_test": "test bound, exact (nats)",
           "log_p_exact_test": "exact DBN test LL (nats)", "rbm1_test_ll": "RBM 1 alone, test LL (nats)",
           "free_energy_test_per_unit_1": "F1 per unit, test (nats)",
           "free_energy_test_per_unit_2": "F2 per unit, test (nats)", "train_seconds": "training (s)"},
))

"""hessian-outliers: the outliers of the Hessian spectrum of trained classifiers against the number
of classes C, and their origin in the class structure of the Gauss-Newton matrix.

Protocol. The first C digit classes of MNIST (or of scikit-learn's 8x8 digits for the quick variant)
are kept; an MLP d-h-h-C (ReLU, thermolearn.landscape.mlp, seed = the run's seed) is trained in
float32 by SGD with momentum 0.9 (thermolearn.landscape.train_classifier) on ``train_examples``
training images of those classes to a high training accuracy. A float64 copy is then measured on
``hessian_examples`` of the same training images (the loss: mean cross-entropy):

* the top C^2 + 5 eigenvalues of the Hessian H and of the Gauss-Newton matrix G (thick-restart
  Lanczos, relative residual 1e-4), the top and bottom 3 eigenvalues of the residual R = H - G
  (relative residual 1e-3), and the Frobenius norms of H, G and R (Hutchinson estimates from 30
  probes);
* Papyan's class decomposition G = G_class + G_cross + G_within (thermolearn.landscape.hessian
  .class_decomposition, weights p_ic' and weighted class means as documented there): the spectra of
  the class-mean part (C values), the cross-class part (C(C-1)), both (C^2, at most C(C-1) non-zero),
  the top of the within-class part (its top eigenvalue is the bulk edge) and the outlier counts:
  ``outliers`` = eigenvalues of G above the bulk edge (at most C(C-1) by Weyl's inequality),
  ``hessian_outliers`` = eigenvalues of H above it, ``class_outliers`` / ``cross_outliers`` =
  eigenvalues of G_class / G_cross above it.

Papyan (2019, 2020) reports about C outliers in the spectra of deep-net Hessians, attributed to
the class means, and C(C-1) smaller ones from the cross-class terms; Sagun et al. (2017) C outliers
[unverified]. The anchors quote C for the Hessian outliers [unverified].

Full variant: MNIST, MLP 784-100-100-C, 5000 training images, 50 epochs at lr 0.1 (batch 50), the
Hessian on 1000 of them; C = 2, 5, 10; seeds 0, 1, 2 (about 5 minutes on 2 cores). Quick variant:
digits, MLP 64-32-32-C on all training images of the classes (at most 500 of them for the Hessian),
100 epochs at lr 0.1, seed 0.
Shorter training leaves a wider within-class bulk (a higher edge) and fewer outliers above it.

Record fields: classes, n_params, n_examples, train_accuracy, test_accuracy, hessian_top, ggn_top
(lists, descending), residual_top, residual_bottom, hessian_fro, ggn_fro, residual_fro,
class_eigenvalues, cross_eigenvalues, means_eigenvalues, within_top (lists), bulk_edge, outliers,
hessian_outliers, class_outliers, cross_outliers, hessian_matvecs, seconds.
"""

from __future__ import annotations

from ..plotting import axis_label, styles
from ..registry import Anchor, Experiment, register

FULL_GRID = {"data": ["mnist"], "classes": [2, 5, 10], "hidden": [100], "train_examples": [5000],
             "hessian_examples": [1000], "epochs": [50], "lr": [0.1], "batch_size": [50]}
QUICK_GRID = {"data": ["digits"], "classes": [2, 5, 10], "hidden": [32], "train_examples": [1500],
              "hessian_examples": [500], "epochs": [100], "lr": [0.1], "batch_size": [50]}


def _subset(x, y, classes: int, limit: int):
    keep = (y < classes).nonzero().flatten()[:limit]
    return x[keep], y[keep].long()


def run(p: dict) -> list[dict]:
    import time

    from torch import nn

    from ...data import load_dataset
    from ...landscape import mlp, train_classifier
    from ...landscape.hessian import (
        class_decomposition,
        gauss_newton_split,
        hessian_eigenvalues,
    )
    from ...landscape.lanczos import lanczos_eigenvalues
    from ...seeding import spawn_seeds

    t0 = time.perf_counter()
    C, seed = int(p["classes"]), int(p["seed"])
    ds = load_dataset(p["data"], binarize=None)
    x, y = _subset(ds.train, ds.train_labels, C, int(p["train_examples"]))
    xt, yt = _subset(ds.test, ds.test_labels, C, 10**9)
    d, h = x.shape[1], int(p["hidden"])
    model = mlp([d, h, h, C], "relu", seed=seed)
    fit = train_classifier(model, x, y, epochs=int(p["epochs"]), batch_size=int(p["batch_size"]), lr=float(p["lr"]),
                           test=(xt, yt), seed=seed)
    model = model.double()
    m = min(int(p["hessian_examples"]), x.shape[0])
    data = (x[:m].double(), y[:m])
    loss = nn.CrossEntropyLoss()
    n = sum(q.numel() for q in model.parameters())
    top_k = min(n, C * C + 5)
    s = spawn_seeds(seed, 5)
    H = hessian_eigenvalues(model, loss, data, k=top_k, tol=1e-4, seed=s[0], max_iter=20 * top_k + 500)
    split = gauss_newton_split(model, loss, data)
    G = lanczos_eigenvalues(split.ggn, top_k, tol=1e-4, seed=s[1], max_iter=20 * top_k + 500)
    R = lanczos_eigenvalues(split.residual, 3, "both", tol=1e-3, seed=s[2], max_iter=300)
    norms = split.norms(probes=30, seed=s[3])
    cd = class_decomposition(model, data, num_classes=C, k=top_k, tol=1e-4, seed=s[4],
                             max_iter=20 * top_k + 500)
    edge = cd.bulk_edge
    return [{
        "n_params": n, "n_examples": m, "train_accuracy": fit.train_accuracy, "test_accuracy": fit.test_accuracy,
        "hessian_top": H.eigenvalues.tolist(), "ggn_top": G.eigenvalues.tolist(),
        "hessian_converged": H.converged, "ggn_converged": G.converged,
        "residual_top": R.eigenvalues[:3].tolist(), "residual_bottom": R.eigenvalues[3:].tolist(),
        "hessian_fro": norms["hessian"], "ggn_fro": norms["ggn"], "residual_fro": norms["residual"],
        "class_eigenvalues": cd.class_eigenvalues.tolist(), "cross_eigenvalues": cd.cross_eigenvalues.tolist(),
        "means_eigenvalues": cd.means_eigenvalues.tolist(), "within_top": cd.within_eigenvalues.tolist(),
        "bulk_edge": edge, "outliers": cd.outliers, "hessian_outliers": int((H.eigenvalues > edge).sum()),
        "class_outliers": cd.class_outliers, "cross_outliers": cd.cross_outliers,
        "hessian_matvecs": H.matvecs, "seconds": time.perf_counter() - t0,
    }]


def plot(records, fig) -> None:
    """Left: the top eigenvalues of H (filled markers, solid) and of G (open, dotted) against their
    rank, one colour per C (the first seed), the bulk edge (top eigenvalue of G_within) as a dashed
    line of the same colour. Right: outlier counts against C (mean over seeds, error bars one sd):
    eigenvalues of G (large open markers), of H, of G_class and of G_cross above the bulk edge, with
    the lines C, C(C-1) and C^2."""
    import numpy as np

    Cs = sorted({r["classes"] for r in records})
    look = styles([f"C = {c}" for c in Cs])
    ax = fig.add_subplot(1, 2, 1)
    for c in Cs:
        r = min((r for r in records if r["classes"] == c), key=lambda r: r["seed"])
        st = look[f"C = {c}"]
        rank = np.arange(1, len(r["hessian_top"]) + 1)
        ax.plot(rank, r["hessian_top"], color=st["color"], marker=st["marker"], ms=3, lw=1.0,
                label=f"C = {c}: H (G open; seed {r['seed']})")
        ax.plot(np.arange(1, len(r["ggn_top"]) + 1), r["ggn_top"], color=st["color"], marker=st["marker"], ms=4,
                mfc="none", ls=":", lw=0.8)
        ax.axhline(r["bulk_edge"], color=st["color"], ls="--", lw=0.8)
        ax.axvline(c, color=st["color"], ls=(0, (1, 3)), lw=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(axis_label("eigenvalue rank (dotted verticals: rank C)"))
    ax.set_ylabel(axis_label("eigenvalue of H or G", "loss per parameter^2"))
    ax.set_title("top of the spectrum; dashed: bulk edge\n(top eigenvalue of the within-class part)", fontsize=9)
    ax.legend(fontsize=7)

    ax = fig.add_subplot(1, 2, 2)
    keys = [("outliers", "G above the edge"), ("hessian_outliers", "H above the edge"),
            ("class_outliers", "G_class above the edge"), ("cross_outliers", "G_cross above the edge")]
    marks = styles([k for k, _ in keys])
    for key, label in keys:
        means, sds = [], []
        for c in Cs:
            v = np.array([r[key] for r in records if r["classes"] == c], dtype=float)
            means.append(v.mean())
            sds.append(v.std(ddof=1) if v.size > 1 else 0.0)
        st = marks[key]
        big = key == "outliers"                      # drawn open and larger: H's counts often coincide
        ax.errorbar(Cs, means, yerr=sds if any(sds) else None, color=st["color"], marker=st["marker"], lw=1.2,
                    capsize=2, label=label, ms=10 if big else 5, mfc="none" if big else st["color"])
    cc = np.array([min(Cs), max(Cs)], dtype=float)
    grid = np.linspace(cc[0], cc[1], 50)
    ax.plot(grid, grid, color="0.4", ls="--", lw=0.8, label="C")
    ax.plot(grid, grid * (grid - 1), color="0.4", ls=":", lw=0.8, label="C(C-1)")
    ax.plot(grid, grid ** 2, color="0.4", ls="-.", lw=0.8, label="C^2")
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylim(bottom=0)
    ax.minorticks_off()
    ax.set_xticks(Cs)
    ax.set_xticklabels([str(c) for c in Cs])
    ax.set_xlabel(axis_label("number of classes C"))
    ax.set_ylabel(axis_label("eigenvalues above the bulk edge"))
    ax.set_title("outlier count against C (symlog axis, 0 at the bottom)", fontsize=9)
    ax.legend(fontsize=7)


EXPERIMENT = register(Experiment(
    name="hessian-outliers",
    description="Outliers of the Hessian and Gauss-Newton spectra of trained MLPs against the number of classes C, "
                "with Papyan's class / cross-class / within-class decomposition (--quick: 8x8 digits).",
    run=run,
    grid=FULL_GRID,
    seeds=[0, 1, 2],
    quick_grid=QUICK_GRID,
    quick_seeds=[0],
    expected_seconds=(300, 20),
    anchors=[Anchor("hessian_outliers", (c - 1, c), f"about C outliers for C = {c} [unverified]",
                    source="Papyan (2019), ICML; Sagun et al. (2017) [unverified]", where={"classes": c})
             for c in (2, 5, 10)],
    plot=plot,
    table={"data": "data", "classes": "classes C", "train_accuracy": "train accuracy", "test_accuracy": "test accuracy",
           "bulk_edge": "bulk edge (top of G_within)", "outliers": "G outliers", "hessian_outliers": "H outliers",
           "class_outliers": "G_class outliers", "cross_outliers": "G_cross outliers", "ggn_fro": "||G||_F",
           "residual_fro": "||R||_F", "seconds": "seconds"},
))

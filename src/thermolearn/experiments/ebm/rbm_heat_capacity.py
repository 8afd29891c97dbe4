"""rbm-heat-capacity: the heat capacity C(beta) of trained RBMs and their effective temperature.

Small RBMs, where log Z(beta) is an exact sum over the hidden layer, are trained by PCD-1 at
beta = 1 (constant lr, momentum 0.5, visible biases started at the base rates) with several L2
weight decays. At every ``record_every`` epochs the model's
thermodynamics is computed exactly over a grid of inverse temperatures (thermolearn.ebm
.thermodynamics): the heat capacity C(beta) = beta^2 Var_beta E and the beta of its peak, and
the effective inverse temperature beta_eff, the beta that maximises the exact held-out
log-likelihood mean_v [-beta F_beta(v)] - log Z(beta) with the weights fixed. Both are set
against the weight norm ||W||_F as training grows it.

beta_eff = 1 means that rescaling all the parameters cannot improve the held-out likelihood
(at a maximum of the training likelihood, beta = 1 is a stationary point of the training
likelihood in this direction, so beta_eff on the training data is 1 up to the trainer's
approximate gradient and the weight decay); beta_eff < 1 means the model is too cold for the
test data, i.e. overfits. A peak of C near beta = 1 is the signature of criticality
reported for maximum-entropy models of neural and other data (Mora & Bialek 2011; Tkacik et
al. 2015) [unverified]: this experiment measures where trained RBMs put theirs.

Full variant: scikit-learn digits (64 pixels, threshold-binarized) with 16 hidden units, and
MNIST (784 pixels, S&M08 stochastic binarization) with 12 hidden units; 3 weight decays; betas
0.1 to 3. 20 hidden units would need 2^20-state sums for each of ~60 betas per snapshot, minutes
per snapshot on 2 cores, so the full variant stays at 12-16. Quick variant: digits with 8
hidden units, 10 epochs, one weight decay. One record per snapshot (epoch). The peak of C is
refined by golden-section search between grid points, so it can be higher than the plotted grid
curve where the peak is narrower than the grid spacing (MNIST).

Record fields: epoch, weight_norm (Frobenius), weight_rms, beta_peak, heat_capacity_peak,
heat_capacity_peak_per_unit (C / (n_visible + n_hidden)), peak_on_edge, beta_eff, eff_on_edge,
test_ll_beta_eff and test_ll_beta1 (exact mean test log-likelihood at beta_eff and at 1, nats),
train_beta_eff (the same maximiser on 1000 training rows), heat_capacity_beta1, and the curve
itself: betas, heat_capacity, energy, entropy (lists).
"""

from __future__ import annotations

from ..plotting import axis_label, styles
from ..registry import Anchor, Experiment, register
from ._common import dataset

FULL_GRID = [
    {"data": ["digits"], "hidden": [16], "epochs": [60], "record_every": [10], "batch_size": [20], "lr": [0.05],
     "weight_decay": [0.0, 1e-3, 1e-2], "beta_min": [0.1], "beta_max": [3.0], "n_betas": [30]},
    {"data": ["mnist"], "hidden": [12], "epochs": [20], "record_every": [5], "batch_size": [100], "lr": [0.05],
     "weight_decay": [0.0, 1e-3, 1e-2], "beta_min": [0.1], "beta_max": [3.0], "n_betas": [30]},
]
QUICK_GRID = {"data": ["digits"], "hidden": [8], "epochs": [10], "record_every": [5], "batch_size": [20],
              "lr": [0.05], "weight_decay": [1e-3], "beta_min": [0.1], "beta_max": [3.0], "n_betas": [15]}


def _snapshot(rbm, epoch: int, ds, betas) -> dict:
    from ...ebm.exact import exact_log_partition
    from ...ebm.thermo import effective_beta, heat_capacity_peak

    n_units = rbm.n_visible + rbm.n_hidden
    peak = heat_capacity_peak(rbm, betas, tol=1e-4)
    grid = peak.grid
    eff = effective_beta(rbm, ds.test, betas, grid=grid)
    train_eff = effective_beta(rbm, ds.train[:1000], betas, grid=grid)
    ll1 = rbm.log_likelihood(ds.test, exact_log_partition(rbm))      # rbm.beta is 1
    k1 = int(abs(grid.betas - 1.0).argmin())
    W = rbm.W.double()
    return {
        "epoch": epoch, "weight_norm": float(W.norm()), "weight_rms": float(W.pow(2).mean().sqrt()),
        "beta_peak": peak.beta, "heat_capacity_peak": peak.heat_capacity,
        "heat_capacity_peak_per_unit": peak.heat_capacity / n_units, "peak_on_edge": peak.on_edge,
        "beta_eff": eff.beta, "eff_on_edge": eff.on_edge, "test_ll_beta_eff": eff.log_likelihood,
        "test_ll_beta1": ll1, "train_beta_eff": train_eff.beta,
        "heat_capacity_beta1": float(grid.heat_capacity[k1]) if abs(float(grid.betas[k1]) - 1) < 1e-12 else None,
        "n_units": n_units, "betas": grid.betas.tolist(), "heat_capacity": grid.heat_capacity.tolist(),
        "energy": grid.energy.tolist(), "entropy": grid.entropy.tolist(),
    }


def run(p: dict) -> list[dict]:
    import torch

    from ...ebm import RBM, base_rate_bias, train

    ds = dataset(p["data"])
    rbm = RBM(ds.train.shape[1], p["hidden"], seed=p["seed"])
    rbm.visible_bias.copy_(base_rate_bias(ds.train))
    # the grid always holds beta = 1 (the model as trained)
    betas = sorted(set(torch.linspace(p["beta_min"], p["beta_max"], p["n_betas"], dtype=torch.float64).tolist())
                   | {1.0})
    snapshots = []

    def keep(record, model):
        if record["step"] % p["record_every"] == 0 or record["step"] == p["epochs"]:
            snapshots.append((record["step"], model.copy()))

    train(rbm, ds.train, method="pcd", k=1, epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
          momentum=0.5, weight_decay=p["weight_decay"], seed=p["seed"], callback=keep)
    return [_snapshot(model, epoch, ds, betas) for epoch, model in snapshots]


def _series(r) -> str:
    return f"{r['data']}, {r['hidden']} hidden, decay {r['weight_decay']:g}"


def _mean_sd(values) -> tuple[float, float]:
    m = sum(values) / len(values)
    sd = (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return m, sd


def plot(records, fig) -> None:
    """Left: C(beta) per unit of the last snapshot of each run, one colour, marker and line style
    per series (data, hidden units, weight decay), one curve per seed, its refined peak marked.
    Right: beta_eff (filled, solid) and the beta of the peak of C (open, dotted) against the weight
    norm, one point per snapshot epoch (mean over seeds, error bars one sd)."""
    names = sorted({_series(r) for r in records})
    look = styles(names)
    ax = fig.add_subplot(1, 2, 1)
    for name in names:
        rows = [r for r in records if _series(r) == name]
        st = look[name]
        seeds = sorted({r["seed"] for r in rows})
        for seed in seeds:
            r = max((r for r in rows if r["seed"] == seed), key=lambda r: r["epoch"])
            ax.plot(r["betas"], [x / r["n_units"] for x in r["heat_capacity"]], color=st["color"],
                    linestyle=st["linestyle"], marker=st["marker"], ms=3, lw=1.2,
                    label=f"{name} (epoch {r['epoch']}, {len(seeds)} seed{'s' * (len(seeds) > 1)})"
                    if seed == seeds[0] else None)
            ax.plot([r["beta_peak"]], [r["heat_capacity_peak_per_unit"]], marker=st["marker"], ms=9,
                    color=st["color"], mec="k", ls="none")
    ax.axvline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set_yscale("log")
    top = max(r["heat_capacity_peak_per_unit"] for r in records)
    ax.set_ylim(top=top * 12)                             # room for the legend above the curves
    ax.set_xlabel(axis_label("inverse temperature beta"))
    ax.set_ylabel(axis_label("heat capacity per unit C / (n_v + n_h)", "k_B"))
    ax.set_title("C(beta) at the last epoch\n(large markers: peaks, refined between grid points)", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")

    ax = fig.add_subplot(1, 2, 2)
    for name in names:
        rows = [r for r in records if _series(r) == name]
        st = look[name]
        epochs = sorted({r["epoch"] for r in rows})
        stats = {key: [_mean_sd([r[key] for r in rows if r["epoch"] == e]) for e in epochs]
                 for key in ("weight_norm", "beta_eff", "beta_peak")}
        x = [m for m, _ in stats["weight_norm"]]
        for key, fill, ls in (("beta_eff", st["color"], "-"), ("beta_peak", "none", ":")):
            sds = [sd for _, sd in stats[key]]
            ax.errorbar(x, [m for m, _ in stats[key]], yerr=sds if any(sds) else None, color=st["color"],
                        marker=st["marker"], mfc=fill, linestyle=ls, lw=1.0, capsize=2,
                        label=name if key == "beta_eff" else None)
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel(axis_label("weight norm ||W||_F (one point per snapshot epoch)"))
    ax.set_ylabel(axis_label("inverse temperature beta"))
    ax.set_title("beta_eff = argmax test log-lik. (filled, solid)\nbeta of the peak of C (open, dotted)", fontsize=9)
    ax.legend(fontsize=6)


EXPERIMENT = register(Experiment(
    name="rbm-heat-capacity",
    description="Exact heat capacity C(beta) of small PCD-trained RBMs, the beta of its peak and the "
                "effective beta maximising the held-out likelihood, against the weight norm "
                "(--quick: digits, 8 hidden).",
    run=run,
    grid=FULL_GRID,
    seeds=[0, 1],
    quick_grid=QUICK_GRID,
    quick_seeds=[0],
    expected_seconds=(2300, 10),                 # measured: 2285 s and 9 s on 2 busy cores
    anchors=[
        Anchor("beta_eff", (0.80, 1.00), "digits, 16 hidden, epoch 60: range over 3 weight decays x 2 seeds",
               source="measured here: thermolearn reproduce rbm-heat-capacity (full variant)",
               where={"data": "digits", "epoch": 60}),
        Anchor("beta_eff", (0.92, 1.06), "MNIST, 12 hidden, epoch 20: range over 3 weight decays x 2 seeds",
               source="measured here: thermolearn reproduce rbm-heat-capacity (full variant)",
               where={"data": "mnist", "epoch": 20}),
    ],
    plot=plot,
    table={"data": "data", "hidden": "hidden units", "weight_decay": "weight decay", "epoch": "epoch",
           "weight_norm": "||W||_F", "beta_peak": "beta of peak C", "heat_capacity_peak_per_unit": "peak C per unit",
           "beta_eff": "beta_eff (test)", "train_beta_eff": "beta_eff (train)",
           "test_ll_beta1": "test LL at beta 1 (nats)", "test_ll_beta_eff": "test LL at beta_eff (nats)"},
))

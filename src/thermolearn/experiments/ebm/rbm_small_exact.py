"""rbm-small-exact: 20-hidden-unit RBMs, where log Z is known exactly, test the estimators.

With 20 hidden units the partition function is an exact float64 sum over the 2^20 hidden
states, so the errors of forward AIS (log Z ± 3 sigma, Salakhutdinov & Murray 2008), reverse AIS
(Burda, Grosse & Salakhutdinov 2015) and the TAP2/TAP3 free energies (Gabrie, Tramel & Krzakala
2015) can be read off directly, for models trained by CD-1, CD-3, CD-25 (the methods of S&M08's
small models) and PCD-1. S&M08 used 25 hidden units; enumerating 2^25 states of a 784-25 model
takes about 12 minutes on one core here (estimated from the time of one chunk of 2^14 states;
2^20 states: about 20 s), so the experiment stays at 20.

Full variant: MNIST (S&M08 stochastic binarization), the settings of the "cd1-20" ... "pcd-20"
rows of benchmarks/mnist_likelihood.py (100 epochs, lr 0.02 decaying linearly to 0, batches of
100), the S&M08 ladder of 14,501 temperatures, 3 seeds per method. Quick variant: scikit-learn
digits (64 pixels), 100 short epochs, a ladder of 2,000 equally spaced temperatures.

Records (one per point): everything evaluate_rbm returns (exact_log_z, exact_test_ll, ais_*,
raise_*, tap2_*, tap3_*) plus the errors of the estimated test log-likelihood against the
exact one: ais_test_ll_error, raise_test_ll_error (on the same examples as reverse AIS),
tap2_test_ll_error, tap3_test_ll_error; and ais_log_z_error = ais_log_z - exact_log_z.
"""

from __future__ import annotations

from ..registry import Anchor, Experiment, register
from ._common import train_and_evaluate

ESTIMATORS = [("ais", "AIS"), ("raise", "reverse AIS"), ("tap2", "TAP2"), ("tap3", "TAP3")]

_MNIST = {"data": ["mnist"], "hidden": [20], "epochs": [100], "batch_size": [100],
          "lr": [0.02], "ais_chains": [100], "ais_betas": ["sm08"], "raise_examples": [50], "raise_chains": [4]}
FULL_GRID = [{**_MNIST, "method": ["cd"], "k": [1, 3, 25]}, {**_MNIST, "method": ["pcd"], "k": [1]}]
QUICK_GRID = {"data": ["digits"], "hidden": [20], "method": ["cd", "pcd"], "k": [1], "epochs": [100],
              "batch_size": [20], "lr": [0.05],
              "ais_chains": [100], "ais_betas": [2000], "raise_examples": [100], "raise_chains": [1]}


def run(params: dict) -> list[dict]:
    r = train_and_evaluate(params)
    exact = r["exact_test_ll"]
    r["ais_log_z_error"] = r["ais_log_z"] - r["exact_log_z"]
    r["ais_test_ll_error"] = r["ais_test_ll"] - exact
    for order in (2, 3):
        r[f"tap{order}_test_ll_error"] = r[f"tap{order}_test_ll"] - exact
    if "raise_test_ll" in r:
        # exact log-likelihood of the reverse-AIS examples: their AIS value, corrected by log Z
        exact_same = r["ais_test_ll_same_examples"] + r["ais_log_z"] - r["exact_log_z"]
        r["raise_test_ll_error"] = r["raise_test_ll"] - exact_same
    return [r]


MARKERS = "os^Dv"


def _method(r) -> str:
    return f"{r['method']}-{r.get('k', 1)}"


def plot(records, fig) -> None:
    """Left: estimated minus exact test log-likelihood per estimator, one marker and colour per
    (dataset, training method). Right: the exact test log-likelihood per training method, with the
    published range on MNIST."""
    groups = sorted({(r["data"], _method(r)) for r in records})
    style = {g: dict(marker=MARKERS[i % len(MARKERS)], color=f"C{i}", ls="none")
             for i, g in enumerate(groups)}
    ax = fig.add_subplot(1, 2, 1)
    width = 0.8 / max(len(groups), 1)
    for gi, group in enumerate(groups):
        rows = [r for r in records if (r["data"], _method(r)) == group]
        for ei, (key, _label) in enumerate(ESTIMATORS):
            ys = [r[f"{key}_test_ll_error"] for r in rows if f"{key}_test_ll_error" in r]
            x = ei - 0.4 + width * (gi + 0.5)
            ax.plot([x] * len(ys), ys, alpha=0.7, label=f"{group[1]} ({group[0]})" if ei == 0 else None,
                    **style[group])
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(range(len(ESTIMATORS)), [label for _k, label in ESTIMATORS])
    ax.set_ylabel("estimated - exact test log-likelihood (nats)")
    ax.set_title("estimator error (one point per seed)")
    ax.legend(fontsize=8, title="trained by (data)", title_fontsize=8)

    ax = fig.add_subplot(1, 2, 2)
    for gi, group in enumerate(groups):
        ys = [r["exact_test_ll"] for r in records if (r["data"], _method(r)) == group]
        ax.plot([gi] * len(ys), ys, **style[group])
    if any(r["data"] == "mnist" for r in records):
        ax.axhspan(-165, -150, color="0.85", zorder=0,
                   label="Salakhutdinov & Murray 2008, 20/25 hidden [unverified]")
        ax.legend(fontsize=8)
    ax.set_xticks(range(len(groups)), [f"{m}\n({d})" for d, m in groups])
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_xlabel("training method (data)")
    ax.set_ylabel("exact test log-likelihood (nats)")
    ax.set_title(f"{'/'.join(sorted({str(r['hidden']) for r in records}))} hidden units, exact log Z")


EXPERIMENT = register(Experiment(
    name="rbm-small-exact",
    description="20-hidden-unit RBMs trained by CD-1, CD-3, CD-25 and PCD-1: exact log Z and test "
                "log-likelihood against AIS, reverse AIS and TAP2/TAP3 estimates (--quick: sklearn digits).",
    run=run,
    grid=FULL_GRID,
    seeds=[0, 1, 2],
    quick_grid=QUICK_GRID,
    quick_seeds=[0, 1, 2],
    expected_seconds=(1800, 30),
    anchors=[Anchor(
        "exact_test_ll", (-165.0, -150.0),
        "MNIST test log-likelihood of 20/25-hidden RBMs with exact log Z, a range "
        "[unverified: not read in the paper]",
        source="Salakhutdinov & Murray (2008), On the quantitative analysis of deep belief "
               "networks, ICML, Table 1 [unverified]",
        where={"data": "mnist"})],
    plot=plot,
    table={"method": "trained by", "exact_test_ll": "exact test LL (nats)",
           "ais_test_ll_error": "AIS error (nats)", "raise_test_ll_error": "reverse AIS error (nats)",
           "tap2_test_ll_error": "TAP2 error (nats)", "tap3_test_ll_error": "TAP3 error (nats)"},
))

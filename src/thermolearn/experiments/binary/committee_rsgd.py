"""committee-rsgd: replicated SGD against plain SGD on a binary committee machine.

The reference setting of Baldassi, Borgs, Chayes, Ingrosso, Lucibello, Saglietti, Zecchina, PNAS
113, E7655 (2016), Fig. 3: a fully connected committee machine with N = 321 inputs and K = 5
hidden units (N K = 1605 binary weights), random labels, M = round(alpha N K) patterns;
replicated SGD with y = 7 replicas, minibatches of 80, lr 2, coupling 0.75 to the traced-out
center, gamma 0.05 increased by 0.001 per epoch (``LinearDecay(0.05, max_iter, 0.05 + 0.001
max_iter)``); the baseline is the same least-action SGD with one replica and no coupling. The
paper reports the capacity of the algorithm raised from about 0.3 (plain) to almost 0.6
(replicated) patterns per synapse [unverified]. Measured here (OMP_NUM_THREADS=1 python
benchmarks/committee_rsgd.py --alpha 0.5 --seeds 0 1 2 3 4 5 6 7 8 9): at alpha = 0.5 replicated
SGD solved 10/10 seeds in 302-470 epochs, plain SGD 0/10.

Full variant: the reference setting, alpha from 0.3 to 0.65, 10 seeds, at most 2000 epochs.
Quick variant: N = 81, K = 3 (243 weights), alpha 0.3, 0.5, 0.65, 2 seeds, at most 300 epochs.
Both methods see the same problem for a given (alpha, seed).

Records (one per run): method ("replicated" or "plain"), N, K, alpha, seed, M, solved (zero
errors), success (1 / 0), errors (of the returned network, recounted with
thermolearn.binary.models.errors), error_rate = errors / M, energy, epochs, epochs_to_solve
(None when unsolved), seconds.
"""

from __future__ import annotations

from ..registry import Anchor, Experiment, register
from ._common import point_seeds, solve_record, success_curves

METHODS = {"replicated": "rsgd", "plain": "sgd"}

FULL_ALPHAS = [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65]
QUICK_ALPHAS = [0.3, 0.5, 0.65]


def _grid(N: int, K: int, alphas: list, max_epochs: int) -> list[dict]:
    common = {"N": [N], "K": [K], "alpha": alphas, "batch_size": [80], "lr": [2.0], "gamma": [0.05],
              "gamma_step": [0.001], "max_iter": [max_epochs]}
    return [{"method": ["replicated"], **common, "replicas": [7], "coupling": [0.75]},
            {"method": ["plain"], **common, "replicas": [1], "coupling": [0.0]}]


FULL_GRID = _grid(321, 5, FULL_ALPHAS, 2000)
QUICK_GRID = _grid(81, 3, QUICK_ALPHAS, 300)


def solver_options(params: dict) -> dict:
    """The replicated_sgd options of a grid point: gamma + gamma_step per epoch as a LinearDecay ramp."""
    from thermolearn.schedules import LinearDecay


    T = params["max_iter"]
    gamma = LinearDecay(params["gamma"], T, params["gamma"] + params["gamma_step"] * T) if T else params["gamma"]
    return {"batch_size": params["batch_size"], "lr": params["lr"], "coupling": params["coupling"],
            "gamma": gamma}


def run(params: dict) -> list[dict]:
    """One run of replicated (or plain) SGD on the committee problem of (N, K, alpha, seed)."""
    from thermolearn.binary import random_patterns  # torch is loaded only when a point runs

    method = params["method"]
    if method not in METHODS:
        raise ValueError(f"method: expected 'replicated' or 'plain', got {method!r}")
    s_problem, s_solver, _ = point_seeds(params["seed"])
    N, K = params["N"], params["K"]
    X, y = random_patterns(N, params["alpha"], s_problem, K=K)
    rec = solve_record(METHODS[method], X, y, K=K, seed=s_solver, replicas=params["replicas"],
                       max_iter=params["max_iter"], options=solver_options(params))
    epochs = rec.pop("steps")
    return [{"method": method, "N": N, "K": K, "alpha": params["alpha"], **rec,
             "error_rate": rec["errors"] / rec["M"], "epochs": epochs,
             "epochs_to_solve": epochs if rec["solved"] else None}]


def plot(records, fig) -> None:
    """Left: fraction of seeds solved against alpha, replicated against plain. Right: mean final
    training error rate (errors / M of the returned network)."""
    several = len({(r.get("N"), r.get("K")) for r in records}) > 1
    style = {"replicated": ("C0", "o-"), "plain": ("C3", "s--")}

    def label(method, N, K):
        return f"{method}, N = {N}, K = {K}" if several else str(method)

    for col, (key, ylabel, title) in enumerate([
            ("success", "fraction of seeds solved", "success"),
            ("error_rate", "final training errors / M", "final training error")]):
        ax = fig.add_subplot(1, 2, col + 1)
        for (method, N, K), (xs, ys, _ns) in success_curves(records, ("method", "N", "K"), y_key=key).items():
            color, fmt = style.get(method, ("C7", "x-"))
            ax.plot(xs, ys, fmt, color=color, label=label(method, N, K))
        ax.axvline(0.3, color=style["plain"][0], ls=":", lw=1,
                   label="reported reach of plain SGD ~0.3 [unverified]")
        ax.axvline(0.6, color=style["replicated"][0], ls=":", lw=1,
                   label="reported reach of replicated SGD ~0.6 [unverified]")
        ax.set_xlabel("alpha = M / (N K)")
        ax.set_ylabel(ylabel)
        if key == "success":
            ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"committee machine, {title}")
        ax.legend(fontsize=7)


_PAPER = ("C. Baldassi, C. Borgs, J. Chayes, A. Ingrosso, C. Lucibello, L. Saglietti, R. Zecchina, "
          "PNAS 113, E7655 (2016), Fig. 3")
_MEASURED = ("measured here: OMP_NUM_THREADS=1 python benchmarks/committee_rsgd.py --alpha 0.5 "
             "--seeds 0 1 2 3 4 5 6 7 8 9")
_REF = {"N": 321, "K": 5}

EXPERIMENT = register(Experiment(
    name="committee-rsgd",
    description="Binary committee machine (N = 321, K = 5, random labels): success and final training "
                "errors against alpha for replicated SGD (y = 7) and plain SGD, the reference setting "
                "of Baldassi et al. 2016 (--quick: N = 81, K = 3).",
    run=run,
    grid=FULL_GRID,
    seeds=list(range(10)),
    quick_grid=QUICK_GRID,
    quick_seeds=[0, 1],
    expected_seconds=(3000, 20),
    anchors=[
        Anchor("success", 1.0, "replicated SGD, alpha = 0.5: solved 10/10 seeds", source=_MEASURED,
               where={"method": "replicated", **_REF, "alpha": 0.5}),
        Anchor("epochs_to_solve", (302.0, 470.0), "replicated SGD, alpha = 0.5: epochs to solve",
               source=_MEASURED, where={"method": "replicated", **_REF, "alpha": 0.5}),
        Anchor("success", 0.0, "plain SGD, alpha = 0.5: solved 0/10", source=_MEASURED,
               where={"method": "plain", **_REF, "alpha": 0.5}),
        Anchor("success", 1.0, "plain SGD solves up to about alpha = 0.3 [unverified]", source=_PAPER,
               where={"method": "plain", **_REF, "alpha": 0.3}),
        Anchor("success", 1.0, "replicated SGD solves up to almost alpha = 0.6 [unverified]", source=_PAPER,
               where={"method": "replicated", **_REF, "alpha": 0.55}),
    ],
    plot=plot,
    table={"success": "solved (fraction of seeds)", "error_rate": "final training errors / M",
           "epochs": "epochs run (epochs)", "epochs_to_solve": "epochs to a solution (epochs)",
           "seconds": "wall time (s)"},
))

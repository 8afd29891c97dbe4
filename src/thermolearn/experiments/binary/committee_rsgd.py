"""committee-rsgd: replicated SGD against plain SGD on a binary committee machine.

The reference setting of Baldassi et al., PNAS 2016 (spec: shared/specs/replicas.md,
"Replicated SGD on binary committee machines"): a fully connected committee machine with N = 321
inputs and K = 5 hidden units (N K = 1605 binary weights), random labels, M = round(alpha N K)
patterns; replicated SGD with y = 7 replicas, minibatches of 80, lr 2, coupling 0.75 to the
traced-out center, gamma 0.05 increased by 0.001 per epoch; the baseline is the same least-action
SGD with one replica and no coupling. The paper reports the capacity of the algorithm raised from
about 0.3 (plain) to about 0.6 (replicated) patterns per synapse [unverified]; measured for the
spec at alpha = 0.5: replicated 4/4 seeds in 333-558 epochs, plain 0/4 (plain solves alpha = 0.3
in 3/4 seeds).

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
from ._common import solve_record, split_seed, success_curves

METHODS = {"replicated": "rsgd", "plain": "sgd"}

FULL_ALPHAS = [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65]
QUICK_ALPHAS = [0.3, 0.5, 0.65]


def _grid(N: int, K: int, alphas: list, max_epochs: int) -> list[dict]:
    common = {"N": [N], "K": [K], "alpha": alphas, "batch": [80], "lr": [2.0], "gamma": [0.05],
              "gamma_step": [0.001], "max_epochs": [max_epochs]}
    return [{"method": ["replicated"], **common, "replicas": [7], "coupling": [0.75]},
            {"method": ["plain"], **common, "replicas": [1], "coupling": [0.0]}]


FULL_GRID = _grid(321, 5, FULL_ALPHAS, 2000)
QUICK_GRID = _grid(81, 3, QUICK_ALPHAS, 300)


def run(params: dict) -> list[dict]:
    """One run of replicated (or plain) SGD on the committee problem of (N, K, alpha, seed)."""
    from ...binary.patterns import random_patterns  # torch is loaded only when a point runs

    method = params["method"]
    if method not in METHODS:
        raise ValueError(f"method: expected 'replicated' or 'plain', got {method!r}")
    s_problem, s_solver, _ = split_seed(params["seed"])
    N, K = params["N"], params["K"]
    X, y = random_patterns(N, params["alpha"], s_problem, K=K)
    options = {k: params[k] for k in ("batch", "lr", "coupling", "gamma", "gamma_step")}
    rec = solve_record(METHODS[method], X, y, K=K, seed=s_solver, replicas=params["replicas"],
                       max_epochs=params["max_epochs"], options=options)
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
        ax.axvline(0.3, color="0.6", ls=":", lw=1)
        ax.axvline(0.6, color="0.3", ls=":", lw=1, label="reported reach: plain ~0.3, replicated ~0.6 [unverified]")
        ax.set_xlabel("alpha = M / (N K)")
        ax.set_ylabel(ylabel)
        if key == "success":
            ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"committee machine, {title}")
        ax.legend(fontsize=7)


_SPEC = ("shared/specs/replicas.md, 'Replicated SGD on binary committee machines' (run for the spec "
         "at the reference setting)")

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
        Anchor("success", 1.0, "replicated SGD, alpha = 0.5: solved 4/4 seeds", source=_SPEC,
               where={"method": "replicated", "N": 321, "K": 5, "alpha": 0.5}),
        Anchor("epochs_to_solve", (333.0, 558.0), "replicated SGD, alpha = 0.5: epochs to solve",
               source=_SPEC, where={"method": "replicated", "N": 321, "K": 5, "alpha": 0.5}),
        Anchor("success", 0.0, "plain SGD, alpha = 0.5: solved 0/4", source=_SPEC,
               where={"method": "plain", "N": 321, "K": 5, "alpha": 0.5}),
        Anchor("success", 0.75, "plain SGD, alpha = 0.3: solved 3/4", source=_SPEC,
               where={"method": "plain", "N": 321, "K": 5, "alpha": 0.3}),
    ],
    plot=plot,
    table=["success", "error_rate", "epochs", "epochs_to_solve", "seconds"],
))

"""perceptron-capacity: how close to the capacity do the solvers get on the binary perceptron?

Random classification problems (Baldassi et al., PNAS 113, E7655 (2016)): M = round(alpha N)
patterns xi in {-1, +1}^N with random labels, N odd. A solution (zero training errors) exists with
high probability up to the capacity alpha_c = 0.833 for large N (Krauth & Mezard, J. Phys. France
50, 3057 (1989) [unverified]), but solutions are isolated except in rare dense regions; algorithms
that find those regions (focusing BP, replicated SGD, replicated SA) reach much higher loads than
their non-interacting counterparts (Baldassi et al., PNAS 2016). Reinforced BP is reported to work
up to about 0.74-0.75 (Braunstein & Zecchina, PRL 96, 030201 (2006) [unverified]). For every
(algorithm, alpha, seed) the same problem (drawn from the seed) is given to

* fbp  -- focusing BP, pseudo-reinforcement protocol (thermolearn.binary.fbp.focusing_bp);
* rsgd -- replicated SGD with y = 7 replicas and the solver's defaults (batch_size 80, lr 2,
  coupling 0.75, gamma 0.05 + 0.001 per epoch), K = 1;
* sgd  -- the same solver with replicas = 1, coupling = 0: plain clipped-perceptron SGD;
* rsa  -- replicated simulated annealing, 3 replicas, gamma 0.1;
* sa   -- plain simulated annealing (gamma = 0, one replica),

with a per-algorithm budget that is part of the grid (protocol_steps and max_iter of fBP,
max_iter epochs of SGD, max_iter moves and patience of SA; the annealing is
``beta = Geometric(0.2, rate)`` and ``gamma = Geometric(gamma, rate)`` per accepted move).

Measured here (OMP_NUM_THREADS=1 python benchmarks/fbp_capacity.py; N = 1001, 10 seeds): focusing
BP solved 10/10 problems at alpha = 0.70 and 0.72, 5/10 at 0.74, 0/10 at 0.80.

Full variant: N = 1001, alpha from 0.5 to 0.8, 5 seeds. Quick variant: N = 101, alpha 0.5, 0.65,
0.8, 2 seeds, smaller budgets.

Records (one per run): algo, N, alpha, seed, M, solved (zero errors), success (1 / 0), errors
(recounted with thermolearn.binary.models.errors), energy, seconds, steps (fBP sweeps, SGD epochs
or proposed SA moves).
"""

from __future__ import annotations

from ..registry import Anchor, Experiment, register
from ._common import point_seeds, solve_record, success_curves

ALPHA_C = 0.833          # Krauth & Mezard (1989), binary perceptron, random labels [unverified]
ALPHA_RBP = 0.74         # reinforced BP, Braunstein & Zecchina (2006) [unverified]

ALGOS = ("fbp", "rsgd", "sgd", "rsa", "sa")
# one colour and one marker per algorithm; a replicated algorithm and its plain baseline share
# neither (solid line for the replicated / focusing one, dashed for the baseline)
STYLE = {"fbp": ("C0", "o-"), "rsgd": ("C1", "s-"), "sgd": ("C3", "D--"), "rsa": ("C2", "^-"),
         "sa": ("C4", "v--")}

FULL_ALPHAS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.72, 0.74, 0.76, 0.78, 0.8]
QUICK_ALPHAS = [0.5, 0.65, 0.8]


def _grid(N: int, alphas: list, iters: int, epochs: int, moves: int, patience: int) -> list[dict]:
    common = {"N": [N], "alpha": alphas}
    anneal = {"beta": [0.2], "rate": [1.0001], "max_iter": [moves], "patience": [patience]}
    return [
        {"algo": ["fbp"], **common, "protocol_steps": [100], "max_iter": [iters]},
        {"algo": ["rsgd"], **common, "replicas": [7], "max_iter": [epochs]},
        {"algo": ["sgd"], **common, "replicas": [1], "max_iter": [epochs]},
        {"algo": ["rsa"], **common, "replicas": [3], "gamma": [0.1], **anneal},
        {"algo": ["sa"], **common, "replicas": [1], **anneal},
    ]


FULL_GRID = _grid(1001, FULL_ALPHAS, iters=200, epochs=2000, moves=300_000_000, patience=20_000_000)
QUICK_GRID = _grid(101, QUICK_ALPHAS, iters=50, epochs=200, moves=3_000_000, patience=300_000)


def solver_arguments(params: dict) -> dict:
    """The keyword arguments of :func:`thermolearn.binary.solve` for one grid point."""
    algo = params["algo"]
    if algo == "fbp":
        return {"steps": params["protocol_steps"], "max_iter": params["max_iter"]}
    if algo in ("rsgd", "sgd"):
        return {"replicas": params["replicas"], "max_iter": params["max_iter"]}
    if algo in ("rsa", "sa"):
        from thermolearn.schedules import Geometric

        options = {"beta": Geometric(params["beta"], params["rate"])}
        if algo == "rsa":
            options["gamma"] = Geometric(params["gamma"], params["rate"])
        return {"replicas": params["replicas"], "max_iter": params["max_iter"],
                "patience": params["patience"], "options": options}
    raise ValueError(f"algo: expected one of {', '.join(ALGOS)}, got {algo!r}")


def run(params: dict) -> list[dict]:
    """One run: the problem of (N, alpha, seed), solved by params["algo"]."""
    from thermolearn.binary import random_patterns  # torch is loaded only when a point runs

    s_problem, s_solver, _ = point_seeds(params["seed"])
    X, y = random_patterns(params["N"], params["alpha"], s_problem)
    rec = solve_record(params["algo"], X, y, K=1, seed=s_solver, **solver_arguments(params))
    return [{"algo": params["algo"], "N": params["N"], "alpha": params["alpha"], **rec}]


def plot(records, fig) -> None:
    """Left: fraction of seeds solved against alpha, one line per algorithm (and N), with the
    capacity alpha_c and the reported reach of reinforced BP (replicated or focusing algorithms
    solid, their plain baselines dashed in the same colour). Right: mean wall time per run."""
    ax = fig.add_subplot(1, 2, 1)
    several_n = len({r.get("N") for r in records}) > 1
    curves = success_curves(records, ("algo", "N"))
    for (algo, N), (xs, ys, _ns) in curves.items():
        label = f"{algo}, N = {N}" if several_n else str(algo)
        color, fmt = STYLE.get(algo, ("C7", "x-"))
        ax.plot(xs, ys, fmt, color=color, label=label)
    ax.axvline(ALPHA_C, color="k", ls="--", lw=1,
               label=f"capacity $\\alpha_c$ = {ALPHA_C} (Krauth & Mezard 1989) [unverified]")
    ax.axvline(ALPHA_RBP, color="0.5", ls=":", lw=1.5,
               label=f"reinforced BP ~ {ALPHA_RBP} (Braunstein & Zecchina 2006) [unverified]")
    ax.set_xlabel("alpha = M / N")
    ax.set_ylabel("fraction of seeds solved")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("binary perceptron, random labels")
    ax.legend(fontsize=7)

    ax = fig.add_subplot(1, 2, 2)
    times = success_curves(records, ("algo", "N"), y_key="seconds")
    for (algo, N), (xs, ys, _ns) in times.items():
        color, fmt = STYLE.get(algo, ("C7", "x-"))
        ax.plot(xs, ys, fmt, color=color, label=f"{algo}, N = {N}" if several_n else str(algo))
    ax.set_yscale("log")
    ax.set_xlabel("alpha = M / N")
    ax.set_ylabel("mean seconds per run (solved or not)")
    ax.set_title("cost (budgets cap the failures)")
    ax.legend(fontsize=7)


_MEASURED = "measured here: OMP_NUM_THREADS=1 python benchmarks/fbp_capacity.py (N = 1001, seeds 0-9)"

EXPERIMENT = register(Experiment(
    name="perceptron-capacity",
    description="Binary perceptron with random labels: fraction of problems solved against the load "
                "alpha by focusing BP, replicated SGD, plain SGD, replicated SA and plain SA "
                "(--quick: N = 101).",
    run=run,
    grid=FULL_GRID,
    seeds=[0, 1, 2, 3, 4],
    quick_grid=QUICK_GRID,
    quick_seeds=[0, 1],
    expected_seconds=(4000, 20),
    anchors=[
        Anchor("success", 1.0, "fBP, N = 1001, alpha = 0.70: solved 10/10", source=_MEASURED,
               where={"algo": "fbp", "N": 1001, "alpha": 0.7}),
        Anchor("success", 1.0, "fBP, N = 1001, alpha = 0.72: solved 10/10", source=_MEASURED,
               where={"algo": "fbp", "N": 1001, "alpha": 0.72}),
        Anchor("success", 0.5, "fBP, N = 1001, alpha = 0.74: solved 5/10", source=_MEASURED,
               where={"algo": "fbp", "N": 1001, "alpha": 0.74}),
        Anchor("success", 0.0, "fBP, N = 1001, alpha = 0.80: solved 0/10", source=_MEASURED,
               where={"algo": "fbp", "N": 1001, "alpha": 0.8}),
    ],
    plot=plot,
    table={"success": "solved (fraction of seeds)", "errors": "training errors left (patterns)",
           "seconds": "wall time (s)", "steps": "steps (fBP sweeps, SGD epochs, SA moves)"},
))

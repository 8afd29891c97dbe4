"""rsa-scaling: time to solution against N, replicated annealing against independent annealing.

The claim to test (Baldassi, Borgs, Chayes, Ingrosso, Lucibello, Saglietti, Zecchina, PNAS 113,
E7655 (2016), Fig. 2 and appendix on replicated simulated annealing): at a fixed load alpha, the
time replicated simulated annealing (y coupled replicas, gamma > 0 with scoping) needs to find a
zero-energy binary perceptron grows polynomially with N, and that of y independent simulated-
annealing runs (the same code with gamma = 0, stopped when any replica solves) exponentially.

One point = one random problem (N, alpha, problem seed = ``seed``) and one method:

* ``replicated``: :func:`thermolearn.binary.replicated_annealing` with ``replicas`` replicas,
  coupling ``gamma`` scoped geometrically per accepted move;
* ``independent``: the same call with gamma = 0 (``replicas`` independent SA runs in parallel).

Both use the same annealing protocol: beta starts at ``beta`` and grows by the factor
1 + ``rate`` / N per accepted move of a replica (so that the schedule per sweep does not depend on
N), ``beta = Geometric(beta, 1 + rate / N)``; gamma likewise. A run that makes no new lowest energy for ``patience``
sweeps (patience * N * replicas proposals) is frozen: it is restarted from fresh random weights
(new seeds, the same for both methods), and the proposals of every attempt are counted. The
point fails when ``budget`` proposals in all are spent without a solution.

Records (one per point): moves (proposals in all attempts, all replicas), log10_moves, seconds
(wall, annealing only) and cpu_seconds (the whole point), solved (1 or 0), attempts, energy and
errors of the last attempt's lowest-energy replica (recounted by thermolearn.binary.models), M.
:func:`summarize` gives per (method, N) the median time to solution (failures count as infinitely
long, so the median is finite only when more than half of the seeds solved) and
:func:`fit_scaling` the fits

    log t = a + b log N   (polynomial, exponent b)      log t = a + c N   (exponential, rate c)

with their root-mean-square residuals in log t.

Protocol (``PROTOCOL``, chosen in short trial runs so that independent annealing visibly
struggles within the range): alpha = 0.5, y = 5 replicas, beta = 1, gamma = 1 (replicated),
rate = 0.01, patience = 1000 sweeps. Measured here with it (OMP_NUM_THREADS=1
NUMBA_NUM_THREADS=1 python benchmarks/rsa_scaling.py, 12 seeds per N): independent annealing
needs a median 5.7e6 proposals at N = 401 and solves 1 of 12 problems at N = 601 within 1e8;
replicated annealing solves all, a median 1.5e5 proposals at N = 601. The paper shows the same
contrast (polynomial against exponential growth, Fig. 2) without numbers to compare.
Full variant: N = 51..601, 12 problem seeds, budget 1e8 proposals per point
(benchmarks/rsa_scaling.py runs the same protocol from the command line). Quick variant: N = 31,
51, 71, 2 seeds, budget 2e6 proposals per point.
"""

from __future__ import annotations

import math
import statistics
import time

import numpy as np

from ..registry import Anchor, Experiment, register

METHODS = ("replicated", "independent")
MARKERS = {"replicated": "o", "independent": "s"}

PROTOCOL = {"alpha": 0.5, "replicas": 5, "beta": 1.0, "gamma": 1.0, "rate": 0.01, "patience": 1000,
            "budget": 100_000_000}
FULL_NS = [51, 101, 151, 201, 251, 301, 401, 501, 601]

FULL_GRID = {"N": FULL_NS, "method": list(METHODS),
             **{k: [v] for k, v in PROTOCOL.items()}}
QUICK_GRID = {"N": [31, 51, 71], "method": list(METHODS),
              **{k: [v] for k, v in {**PROTOCOL, "budget": 2_000_000}.items()}}


def attempt_seed(seed: int, attempt: int) -> int:
    """The annealing seed of attempt ``attempt`` on problem ``seed`` (the same for both methods)."""
    return int(np.random.SeedSequence([int(seed), int(attempt), 7]).generate_state(1, np.uint32)[0])


def time_to_solution(X, y, *, method: str, replicas: int, beta: float, gamma: float, rate: float,
                     patience: int, budget: int, seed: int) -> dict:
    """Anneal with restarts until a replica has zero energy or ``budget`` proposals are spent.

    ``method`` is "replicated" (coupling ``gamma``) or "independent" (gamma = 0); the protocol
    is described in the module docstring. Returns moves, seconds, solved, attempts, energy,
    errors (of the last attempt's returned weights).
    """
    from thermolearn.binary import replicated_annealing
    from thermolearn.schedules import Geometric

    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    N = X.shape[1]
    g = gamma if method == "replicated" else 0.0
    factor = 1.0 + rate / N
    moves, attempt, seconds = 0, 0, 0.0
    res = None
    while moves < budget:
        res = replicated_annealing(X, y, replicas=replicas, beta=Geometric(beta, factor),
                                   gamma=Geometric(g, factor), max_iter=budget - moves,
                                   patience=patience * N * replicas, seed=attempt_seed(seed, attempt),
                                   history_every=budget)
        moves += res.steps
        seconds += res.seconds
        attempt += 1
        if res.converged:
            break
    return {"moves": int(moves), "log10_moves": math.log10(max(moves, 1)), "seconds": seconds,
            "solved": int(bool(res.converged)), "attempts": attempt, "energy": int(res.energy),
            "errors": int(res.errors)}


_warm = False


def _warm_up() -> None:
    """Load (or compile) the annealing kernel once per process, so that no point's time has it."""
    global _warm
    if not _warm:
        from thermolearn.binary import random_patterns, replicated_annealing

        replicated_annealing(*random_patterns(21, 0.3, seed=0), replicas=2, max_iter=1000)
        _warm = True


def run(params: dict) -> list[dict]:
    """One point: the problem random_patterns(N, alpha, seed) solved by ``method``."""
    from thermolearn.binary import random_patterns

    _warm_up()
    X, y = random_patterns(int(params["N"]), params["alpha"], seed=int(params["seed"]))
    t0 = time.process_time()
    rec = time_to_solution(X, y, method=params["method"], replicas=int(params["replicas"]),
                           beta=params["beta"], gamma=params["gamma"], rate=params["rate"],
                           patience=int(params["patience"]), budget=int(params["budget"]),
                           seed=int(params["seed"]))
    rec["cpu_seconds"] = time.process_time() - t0
    rec["M"] = int(X.shape[0])
    return [rec]


# ---------------------------------------------------------------------------------------------
# Analysis
# ---------------------------------------------------------------------------------------------

def fit_scaling(N, t) -> dict:
    """Least-squares fits of log t against log N (polynomial) and against N (exponential).

    Returns {"poly": (a, b, rms), "exp": (a, c, rms), "better": "polynomial" | "exponential",
    "n": number of points}: log t = a + b log N, log t = a + c N (natural logs), rms the
    root-mean-square residual in log t. Needs at least 2 points with t > 0 (NaN fits otherwise);
    with 2 points both fits are exact and "better" is decided by nothing ("tie").
    """
    N = np.asarray(N, dtype=float)
    t = np.asarray(t, dtype=float)
    keep = np.isfinite(t) & (t > 0) & np.isfinite(N) & (N > 0)
    N, lt = N[keep], np.log(t[keep])
    nan3 = (math.nan, math.nan, math.nan)
    if len(N) < 2 or np.ptp(N) == 0:
        return {"poly": nan3, "exp": nan3, "better": "undetermined", "n": len(N)}

    def line(x):
        A = np.stack([np.ones_like(x), x], axis=1)
        coef, *_ = np.linalg.lstsq(A, lt, rcond=None)
        rms = float(np.sqrt(np.mean((A @ coef - lt) ** 2)))
        return float(coef[0]), float(coef[1]), rms

    poly, expo = line(np.log(N)), line(N)
    if len(N) == 2 or math.isclose(poly[2], expo[2], rel_tol=1e-9, abs_tol=1e-12):
        better = "tie"
    else:
        better = "polynomial" if poly[2] < expo[2] else "exponential"
    return {"poly": poly, "exp": expo, "better": better, "n": len(N)}


def summarize(records) -> list[dict]:
    """Per (method, N): seeds, solved, median moves and seconds (failures count as infinite, so
    the median is inf unless more than half solved), geometric mean of moves over the solved."""
    out = []
    for method in METHODS:
        for N in sorted({r["N"] for r in records if r["method"] == method}):
            rows = [r for r in records if r["method"] == method and r["N"] == N]
            moves = [r["moves"] if r["solved"] else math.inf for r in rows]
            secs = [r["seconds"] if r["solved"] else math.inf for r in rows]
            solved = [r["moves"] for r in rows if r["solved"]]
            out.append({"method": method, "N": N, "seeds": len(rows), "solved": sum(r["solved"] for r in rows),
                        "median_moves": _median(moves), "median_seconds": _median(secs),
                        "geomean_moves_solved": math.exp(statistics.fmean(math.log(m) for m in solved))
                        if solved else math.nan})
    return out


def _median(xs) -> float:
    """Median with +inf allowed: finite only when more than half of the values are finite."""
    xs = sorted(xs)
    n = len(xs)
    if n == 0:
        return math.nan
    return 0.5 * (xs[(n - 1) // 2] + xs[n // 2])


def fits_by_method(summary, min_N: int = 0) -> dict:
    """fit_scaling of the finite median moves against N (N >= min_N), for each method."""
    return {m: fit_scaling([s["N"] for s in summary if s["method"] == m and s["N"] >= min_N],
                           [s["median_moves"] for s in summary if s["method"] == m and s["N"] >= min_N])
            for m in METHODS}


def plot(records, fig) -> None:
    """Median proposals to solution against N per method, log-log (left) and log-linear (right),
    with the polynomial (dotted) and exponential (dashed) fits of the medians, whose parameters
    the legend gives; faint markers are single runs, open markers the seeds that failed (at the
    budget). One colour and one marker per method."""
    summary = summarize(records)
    fits = fits_by_method(summary)
    for pi, (xscale, title) in enumerate([("log", "log-log: polynomial is a line"),
                                          ("linear", "log-linear: exponential is a line")]):
        ax = fig.add_subplot(1, 2, pi + 1)
        for mi, method in enumerate(METHODS):
            color = f"C{mi}"
            runs = [r for r in records if r["method"] == method]
            ax.plot([r["N"] for r in runs if r["solved"]], [r["moves"] for r in runs if r["solved"]],
                    MARKERS[method], color=color, alpha=0.25, ms=3)
            ax.plot([r["N"] for r in runs if not r["solved"]], [r["moves"] for r in runs if not r["solved"]],
                    MARKERS[method], mfc="none", color=color, alpha=0.6)
            rows = [s for s in summary if s["method"] == method and math.isfinite(s["median_moves"])]
            f = fits[method]
            marker = MARKERS[method]
            ax.plot([s["N"] for s in rows], [s["median_moves"] for s in rows], marker + "-", color=color,
                    label=f"{method}: median over seeds")
            if rows and f["n"] >= 2 and math.isfinite(f["poly"][1]):
                Ns = np.linspace(min(s["N"] for s in rows), max(s["N"] for s in rows), 50)
                a, b, rms_p = f["poly"]
                ax.plot(Ns, np.exp(a + b * np.log(Ns)), ":", color=color,
                        label=f"{method}, fit: moves = A N^b, b = {b:.2f} (rms {rms_p:.2f} in ln)")
                a, c, rms_e = f["exp"]
                ax.plot(Ns, np.exp(a + c * Ns), "--", color=color,
                        label=f"{method}, fit: moves = A e^(c N), c = {c:.3g} (rms {rms_e:.2f} in ln)")
        ax.set_xscale(xscale)
        ax.set_yscale("log")
        ax.set_xlabel("N")
        ax.set_ylabel("proposals to solution (median over seeds)")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)


_MEASURED = "measured here: OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/rsa_scaling.py (seeds 0-11)"

EXPERIMENT = register(Experiment(
    name="rsa-scaling",
    description="Binary perceptron, fixed alpha: proposals to a solution against N for replicated "
                "simulated annealing (y=5, scoping) and 5 independent SA runs (gamma=0), with "
                "polynomial and exponential fits.",
    run=run,
    grid=FULL_GRID,
    seeds=list(range(12)),
    quick_grid=QUICK_GRID,
    quick_seeds=[0, 1],
    expected_seconds=(60, 10),
    anchors=[
        Anchor("solved", 1.0, "replicated SA, N = 601: solved 12/12 (polynomial growth, as in the paper's Fig. 2)",
               source=_MEASURED, where={"method": "replicated", "N": 601}),
        Anchor("solved", 1 / 12, "independent SA, N = 601: solved 1/12 within 1e8 proposals "
               "(exponential growth, as in the paper's Fig. 2)",
               source=_MEASURED, where={"method": "independent", "N": 601}),
        Anchor("log10_moves", math.log10(5.694e6), "independent SA, N = 401: median 5.7e6 proposals",
               source=_MEASURED, where={"method": "independent", "N": 401}),
    ],
    plot=plot,
    table={"solved": "solved (fraction of seeds)", "log10_moves": "log10 proposals to solution",
           "moves": "proposals to solution (moves)", "seconds": "annealing wall time (s)",
           "attempts": "annealing attempts (restarts + 1)"},
))

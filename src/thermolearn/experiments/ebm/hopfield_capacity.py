"""hopfield-capacity: how many patterns a Hebbian Hopfield network retrieves, against the load.

For each point (N, alpha, T, noise) and seed, P = round(alpha N) random patterns are stored
(thermolearn.ebm.Hopfield) and up to ``targets`` of them are each used as a start, with a
fraction ``noise`` of the spins flipped. At T = 0 the asynchronous zero-temperature dynamics
runs to a fixed point (at most ``max_iter`` sweeps); at T > 0 Glauber (heat-bath) dynamics at
beta = 1/T runs ``sweeps`` sweeps and the overlap is averaged over the last half of them.

A pattern counts as retrieved when that overlap exceeds 0.9 at T = 0, and 0.9 m_0(T) at T > 0,
where m_0(T) solves m = tanh(m / T) (the overlap of a single stored pattern at temperature T,
0.9856 at T = 0.4): thermal fluctuations lower the overlap of a retrieval state by themselves.

Theory (the anchor). The replica-symmetric solution of Amit, Gutfreund & Sompolinsky (1985, PRL
55, 1530; 1987, Ann. Phys. 173, 30) [unverified: not read in the papers] has retrieval states
up to alpha_c ~ 0.138 at T = 0, with overlap ~ 0.967 there, and up to a line alpha_M(T) that
falls to 0 at T = 1. thermolearn.ebm.hopfield.rs_retrieval / rs_capacity solve those
equations; solved here they give alpha_c = 0.13791 and m = 0.9674, and alpha_M = 0.1226 (T =
0.2), 0.0810 (T = 0.4). Each record carries the theory at its point (rs_overlap, rs_alpha_m).
At finite N the transition is smeared and, from the pattern itself, shifted to larger alpha.

Full variant: N in {250, 500, 1000, 2000}, T in {0, 0.1, 0.2, 0.3, 0.4}, 13 loads from 0.02 to
0.24 (0.137, just below alpha_c, included), starts at the patterns; plus T = 0 with 10 % of the spins flipped;
5 seeds, 50 targets per network. Quick variant: N in {200, 500}, T in {0, 0.4}, 5 loads, one
seed, 40 targets: seconds.

Records (one per point and seed): N, alpha, T, noise, P, starts (patterns used as starts:
min(P, targets)), retrieved (fraction of them), overlap (mean final overlap with the target),
overlap_sd, sweeps_done (mean sweeps done), converged (fraction at a fixed point; T = 0),
threshold, rs_overlap (theory m at this alpha and T, 0 if none), rs_alpha_m (theory capacity
at this T), seconds.
"""

from __future__ import annotations

import functools
import math

from ..plotting import styles
from ..registry import Anchor, Experiment, register

THRESHOLD = 0.9
ALPHA_C = 0.138          # Amit, Gutfreund & Sompolinsky (1985) [unverified]
M_C = 0.967              # overlap at alpha_c, the same theory [unverified]

FULL_ALPHAS = [0.02, 0.05, 0.08, 0.1, 0.12, 0.13, 0.137, 0.145, 0.15, 0.16, 0.18, 0.2, 0.24]
QUICK_ALPHAS = [0.05, 0.1, 0.137, 0.16, 0.2]

_DYN = {"max_iter": [200], "sweeps": [100]}
FULL_GRID = [
    {"N": [250, 500, 1000, 2000], "alpha": FULL_ALPHAS, "T": [0.0, 0.1, 0.2, 0.3, 0.4], "noise": [0.0],
     "targets": [50], **_DYN},
    {"N": [250, 500, 1000, 2000], "alpha": FULL_ALPHAS, "T": [0.0], "noise": [0.1], "targets": [50], **_DYN},
]
QUICK_GRID = {"N": [200, 500], "alpha": QUICK_ALPHAS, "T": [0.0, 0.4], "noise": [0.0], "targets": [40],
              "max_iter": [200], "sweeps": [40]}


def curie_weiss_overlap(T: float) -> float:
    """The positive root of m = tanh(m / T) (1 at T = 0, 0 for T >= 1), by fixed-point iteration."""
    if T <= 0:
        return 1.0
    if T >= 1:
        return 0.0
    m = 1.0
    for _ in range(10_000):
        m_new = math.tanh(m / T)
        if abs(m_new - m) < 1e-14:
            break
        m = m_new
    return m


def threshold(T: float) -> float:
    """The retrieval threshold on the overlap at temperature T (module docstring)."""
    return THRESHOLD * curie_weiss_overlap(T)


@functools.lru_cache(maxsize=64)
def _rs_capacity(T: float) -> float:
    from thermolearn.ebm.hopfield import rs_capacity

    return rs_capacity(math.inf if T == 0 else 1.0 / T, tol=1e-5)[0]


def run(params: dict) -> list[dict]:
    """One network of (N, alpha, seed), its targets retrieved at temperature T."""
    from thermolearn.ebm.hopfield import Hopfield, rs_retrieval
    from thermolearn.seeding import spawn_seeds

    N, alpha, T = int(params["N"]), float(params["alpha"]), float(params["T"])
    s_net, s_start, s_dyn = spawn_seeds(int(params["seed"]), 3)
    P = max(1, round(alpha * N))
    net = Hopfield.random(N, P, seed=s_net)
    n_targets = min(P, int(params["targets"]))
    starts, targets = net.pattern_starts(params["noise"], indices=range(n_targets), seed=s_start)
    if T == 0:
        res = net.retrieve(starts, targets, max_iter=params["max_iter"], seed=s_dyn)
        m = res.final_target_overlap()
    else:
        res = net.glauber(starts, 1.0 / T, sweeps=params["sweeps"], target=targets, seed=s_dyn)
        m = res.final_target_overlap(max(1, params["sweeps"] // 2))
    thr = threshold(T)
    return [{
        "N": N, "alpha": alpha, "T": T, "noise": float(params["noise"]), "P": P, "starts": n_targets,
        "retrieved": float((m > thr).double().mean()), "overlap": float(m.mean()),
        "overlap_sd": float(m.std()) if n_targets > 1 else 0.0,
        "sweeps_done": float(res.sweeps.double().mean()),
        "converged": float(res.converged.double().mean()) if T == 0 else None,
        "threshold": thr, "rs_overlap": rs_retrieval(alpha, math.inf if T == 0 else 1.0 / T),
        "rs_alpha_m": _rs_capacity(T), "seconds": float(res.seconds),
    }]


def curves(records, key: str, group=("N", "T", "noise")) -> dict:
    """{group values: (alphas, mean of key over seeds)} sorted by group and alpha."""
    acc: dict = {}
    for r in records:
        if r.get(key) is None:
            continue
        acc.setdefault(tuple(r[g] for g in group), {}).setdefault(r["alpha"], []).append(float(r[key]))
    out = {}
    for g in sorted(acc):
        xs = sorted(acc[g])
        out[g] = (xs, [sum(acc[g][x]) / len(acc[g][x]) for x in xs])
    return out


def collapse_load(alphas, fractions, level: float = 0.5):
    """The first load at which the fraction retrieved falls below ``level`` (linear
    interpolation between grid loads), or None when it never does."""
    for (a0, f0), (a1, f1) in zip(zip(alphas, fractions), zip(alphas[1:], fractions[1:])):
        if f0 >= level > f1:
            return a0 + (f0 - level) * (a1 - a0) / (f0 - f1)
    return None


def theory_curve(T: float, alpha_max: float, points: int = 15):
    """(alphas, m): the replica-symmetric overlap from alpha = 0 to alpha_M(T), its drop to 0
    there, and 0 up to ``alpha_max``."""
    from thermolearn.ebm.hopfield import rs_retrieval

    beta = math.inf if T == 0 else 1.0 / T
    a_m = _rs_capacity(T)
    xs = [a_m * k / points for k in range(points)] + [a_m * (1 - 1e-6)]
    ys = [rs_retrieval(x, beta) for x in xs]
    return xs + [a_m, max(alpha_max, a_m)], ys + [0.0, 0.0]


def plot(records, fig) -> None:
    """Left: fraction retrieved against alpha at T = 0, one series per (N, noise), with alpha_c.
    Middle: the same at the largest N, one series per temperature, with the replica-symmetric
    capacity alpha_M(T) as dashed lines of the series' colour. Right: the mean final overlap at
    the largest N per temperature, with the replica-symmetric overlap m(alpha, T) as thin
    lines of the series' colour (computed, not read from the records)."""
    ret = curves(records, "retrieved")
    ovl = curves(records, "overlap")
    cap = {r["T"]: r["rs_alpha_m"] for r in records}
    n_max = max(r["N"] for r in records)
    span = (0.0, max(r["alpha"] for r in records) * 1.04)
    temps = sorted({r["T"] for r in records})
    cold = [g for g in ret if g[1] == 0.0]
    look = styles([f"N = {g[0]}, noise {g[2]:g}" for g in cold] + [f"T = {t:g}" for t in temps])

    ax = fig.add_subplot(1, 3, 1)
    for g in cold:
        name = f"N = {g[0]}, noise {g[2]:g}"
        ax.plot(*ret[g], label=name, **look[name])
    ax.axvline(ALPHA_C, color="k", ls="--", lw=1,
               label=f"$\\alpha_c$ = {ALPHA_C} (Amit, Gutfreund & Sompolinsky 1985) [unverified]")
    ax.set_xlabel("load alpha = P / N")
    ax.set_ylabel(f"fraction of patterns retrieved (overlap > {THRESHOLD})")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlim(*span)
    ax.set_title("T = 0, zero-temperature asynchronous dynamics")
    ax.legend(fontsize=7)

    ax = fig.add_subplot(1, 3, 2)
    for t in temps:
        g = (n_max, t, 0.0)
        if g not in ret:
            continue
        name = f"T = {t:g}"
        ax.plot(*ret[g], label=f"{name} (threshold {threshold(t):.3f})", **look[name])
        ax.axvline(cap[t], color=look[name]["color"], ls="--", lw=1)
    ax.plot([], [], color="0.4", ls="--", lw=1, label="replica-symmetric $\\alpha_M(T)$, solved here")
    ax.set_xlabel("load alpha = P / N")
    ax.set_ylabel("fraction of patterns retrieved")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlim(*span)
    ax.set_title(f"N = {n_max}, by temperature (start at the pattern)")
    ax.legend(fontsize=7)

    ax = fig.add_subplot(1, 3, 3)
    for t in temps:
        g = (n_max, t, 0.0)
        if g not in ovl:
            continue
        name = f"T = {t:g}"
        ax.plot(*ovl[g], label=name, **look[name])
        ax.plot(*theory_curve(t, max(ovl[g][0])), color=look[name]["color"], ls="-", lw=1, alpha=0.6)
    ax.plot([], [], color="0.4", ls="-", lw=1, alpha=0.6,
            label="RS theory m(alpha, T), solved here")
    ax.plot([ALPHA_C], [M_C], "k*", ms=10, ls="none", label=f"AGS m = {M_C} [unverified]")
    ax.set_xlabel("load alpha = P / N")
    ax.set_ylabel("mean final overlap with the target")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlim(*span)
    ax.set_title(f"N = {n_max}: overlap against theory")
    ax.legend(fontsize=7, loc="center right")


_AGS85 = "Amit, Gutfreund & Sompolinsky (1985), Phys. Rev. Lett. 55, 1530 [unverified]"
_AGS87 = "Amit, Gutfreund & Sompolinsky (1987), Ann. Phys. 173, 30 [unverified]"

EXPERIMENT = register(Experiment(
    name="hopfield-capacity",
    description="Hebbian Hopfield network: fraction of patterns retrieved and final overlap against the "
                "load alpha = P/N at several sizes and temperatures, against the AGS capacity "
                "(--quick: N = 200, 500; T = 0, 0.4).",
    run=run,
    grid=FULL_GRID,
    seeds=[0, 1, 2, 3, 4],
    quick_grid=QUICK_GRID,
    quick_seeds=[0],
    expected_seconds=(1800, 15),
    anchors=[
        Anchor("rs_alpha_m", ALPHA_C, "storage capacity alpha_c at T = 0 (replica symmetric) "
               "[unverified: recalled; the record holds the value solved here]", source=_AGS85,
               where={"T": 0.0}),
        Anchor("overlap", M_C, "retrieval overlap at alpha_c, T = 0 (measured at alpha = 0.137, N = 2000) "
               "[unverified: recalled; 0.9674 solved here]", source=_AGS87,
               where={"alpha": 0.137, "T": 0.0, "noise": 0.0, "N": 2000}),
    ],
    plot=plot,
    table={"retrieved": "fraction retrieved", "overlap": "final overlap", "rs_overlap": "RS overlap (theory)",
           "sweeps_done": "sweeps done (mean)", "seconds": "wall time (s)"},
))

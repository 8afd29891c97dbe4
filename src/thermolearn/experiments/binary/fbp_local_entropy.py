"""fbp-local-entropy: local entropy and overlaps of the robust ensemble against the coupling gamma.

Focusing BP on the binary perceptron (Baldassi et al., PNAS 113, E7655 (2016)) is run with a fixed
number of replicas y and an increasing coupling gamma (``LinearDecay(0, points - 1, gamma_max)``
over the protocol steps) to the traced-out reference, without stopping at
the first solution, so that every gamma gives one BP fixed point of the replicated system
(warm-started from the previous gamma). Each fixed point gives (thermolearn.binary.fbp):

* overlap S between a replica and the reference, distance d = (1 - S) / 2;
* replica_overlap q between two replicas (q = S^2 when the replicas are conditionally
  independent given the reference, larger when the reference's own fluctuations matter);
* free_entropy phi (Bethe, per replica and weight) and local_entropy = phi - gamma S: the entropy
  density of solutions at distance d from the reference (plus the reference's entropy / y);
* errors of sign(m) on the training set.

The plot shows S against gamma (the replica overlap rises steeply where the replicas collapse
into a dense region) and the local entropy against the distance d, one curve per (alpha, y).
The dense regions that these curves probe are those of Baldassi, Ingrosso, Lucibello, Saglietti,
Zecchina, "Subdominant dense clusters allow for simple learning and high computational
performance in neural networks with discrete synapses", PRL 115, 128101 (2015): below
alpha ~ 0.77 [unverified] the local entropy stays positive down to small distances (Fig. 1
there [unverified]), which the anchor compares at alpha = 0.6.

Full variant: N = 401, alpha in {0.4, 0.6, 0.7}, y in {3, 7, 21}, 31 values of gamma in [0, 3],
3 seeds. Quick variant: N = 101, alpha 0.5, y in {3, 7}, 12 values of gamma in [0, 2], 1 seed.
"""

from __future__ import annotations

import numpy as np

from ..registry import Anchor, Experiment, register

FULL_GRID = {"N": [401], "alpha": [0.4, 0.6, 0.7], "replicas": [3, 7, 21], "gamma_max": [3.0],
             "gamma_points": [31], "max_iter": [1000], "tol": [1e-6]}
QUICK_GRID = {"N": [101], "alpha": [0.5], "replicas": [3, 7], "gamma_max": [2.0], "gamma_points": [12],
              "max_iter": [500], "tol": [1e-6]}

def run(params: dict) -> list[dict]:
    from thermolearn.binary import focusing_bp, random_patterns
    from thermolearn.schedules import LinearDecay

    X, y = random_patterns(int(params["N"]), float(params["alpha"]), int(params["seed"]))
    points = int(params["gamma_points"])
    gamma = LinearDecay(0.0, points - 1, float(params["gamma_max"])) if points > 1 else 0.0
    res = focusing_bp(X, y, protocol=None, steps=points, gamma=gamma, replicas=float(params["replicas"]),
                      messages="full", free_entropy=True, stop_on_solution=False,
                      max_iter=int(params["max_iter"]), tol=float(params["tol"]), seed=int(params["seed"]))
    keys = ("gamma", "overlap", "distance", "replica_overlap", "free_entropy", "local_entropy",
            "errors", "bp_converged", "iterations", "polarization")
    return [{k: h[k] for k in keys} for h in res.history]

def plot(records, fig) -> None:
    """Left: replica-reference overlap S against gamma. Right: local entropy against distance."""
    curves = sorted({(r["alpha"], r["replicas"]) for r in records})
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for ci, (alpha, yy) in enumerate(curves):
        rows = [r for r in records if (r["alpha"], r["replicas"]) == (alpha, yy) and r["bp_converged"]]
        if not rows:
            continue
        gam = sorted({r["gamma"] for r in rows})
        S = [np.mean([r["overlap"] for r in rows if r["gamma"] == g]) for g in gam]
        d = [np.mean([r["distance"] for r in rows if r["gamma"] == g]) for g in gam]
        loc = [np.mean([r["local_entropy"] for r in rows if r["gamma"] == g]) for g in gam]
        style = dict(color=f"C{ci % 10}", marker="osD^v<>ph*"[ci % 10], ms=3, label=f"alpha={alpha:g}, y={yy:g}")
        ax1.plot(gam, S, **style)
        ax2.plot(d, loc, **style)
    ax1.set_xlabel("coupling gamma")
    ax1.set_ylabel("overlap S (replica, reference)")
    ax1.set_title("robust ensemble: overlap")
    ax2.set_xlabel("distance d = (1 - S) / 2")
    ax2.set_ylabel("local entropy per weight")
    ax2.axhline(0.0, color="k", lw=0.8)
    ax2.set_title("local entropy (converged BP only)")
    ax1.legend(fontsize=7)

EXPERIMENT = register(Experiment(
    name="fbp-local-entropy",
    description="Focusing BP on the binary perceptron: replica-reference overlap, local entropy and "
                "free entropy against the coupling gamma, for several loads alpha and replica numbers y.",
    run=run,
    grid=FULL_GRID,
    seeds=[0, 1, 2],
    quick_grid=QUICK_GRID,
    quick_seeds=[0],
    expected_seconds=(450, 10),
    anchors=[
        Anchor("local_entropy", (0.0, 0.6931), "local entropy per weight positive (and below log 2) in the "
               "dense region at alpha = 0.6 [unverified]",
               source="C. Baldassi, A. Ingrosso, C. Lucibello, L. Saglietti, R. Zecchina, PRL 115, 128101 "
                      "(2015), Fig. 1", where={"alpha": 0.6, "replicas": 21, "gamma": 3.0}),
    ],
    plot=plot,
    table={"gamma": "coupling gamma", "overlap": "overlap S (replica, reference)",
           "replica_overlap": "overlap q (two replicas)", "local_entropy": "local entropy (nats per weight)",
           "errors": "training errors of sign(m) (patterns)"},
))

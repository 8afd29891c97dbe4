"""Summary of an fbp-local-entropy sweep: where the replicas collapse, and the local entropy.

    thermolearn reproduce fbp-local-entropy --db runs/fle.sqlite
    python benchmarks/fbp_local_entropy_summary.py runs/fle.sqlite

Per load alpha and number of replicas y (mean over seeds, converged BP fixed points only): the
coupling gamma at which the replica-reference overlap S first exceeds 0.5 and 0.9, and the local
entropy (free entropy - gamma S, per weight) interpolated at distances d = (1 - S)/2 of 0.02,
0.05 and 0.1; the last column counts the protocol steps whose BP did not converge.
"""

from __future__ import annotations

import argparse
import json
import sqlite3

import numpy as np


def _first(gam, S, level):
    above = [g for g, s in zip(gam, S) if s > level]
    return above[0] if above else float("nan")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("db")
    args = p.parse_args()
    rows = sqlite3.connect(args.db).execute(
        "select point, records from results where experiment = 'fbp-local-entropy' and status = 'done'").fetchall()
    groups: dict = {}
    for point, records in rows:
        pt = json.loads(point)
        groups.setdefault((pt["N"], pt["alpha"], pt["replicas"]), []).append(json.loads(records))
    print(f"{'N':>4} {'alpha':>5} {'y':>3} {'seeds':>5} {'gamma(S>0.5)':>12} {'gamma(S>0.9)':>12} "
          f"{'s(d=0.02)':>9} {'s(d=0.05)':>9} {'s(d=0.1)':>9} {'unconverged':>11}")
    for (N, alpha, y), runs in sorted(groups.items()):
        g5, g9, ent, bad = [], [], [], 0
        for recs in runs:
            ok = [r for r in recs if r["bp_converged"]]
            bad += len(recs) - len(ok)
            gam = [r["gamma"] for r in ok]
            S = [r["overlap"] for r in ok]
            g5.append(_first(gam, S, 0.5))
            g9.append(_first(gam, S, 0.9))
            d = np.array([r["distance"] for r in ok])
            s = np.array([r["local_entropy"] for r in ok])
            order = np.argsort(d)
            ent.append([np.interp(x, d[order], s[order]) for x in (0.02, 0.05, 0.1)])
        e = np.nanmean(np.array(ent), 0)
        print(f"{N:4d} {alpha:5.2f} {y:3d} {len(runs):5d} {np.nanmean(g5):12.2f} {np.nanmean(g9):12.2f} "
              f"{e[0]:9.3f} {e[1]:9.3f} {e[2]:9.3f} {bad:11d}")


if __name__ == "__main__":
    main()

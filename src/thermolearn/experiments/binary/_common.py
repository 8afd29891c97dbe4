"""Helpers shared by the binary-network experiments (the solvers are reached through
:func:`thermolearn.binary.solve`)."""

from __future__ import annotations

import math


def solve_record(algo: str, X, y, *, K: int = 1, tree: bool = False, seed=0, **budgets) -> dict:
    """Run :func:`thermolearn.binary.solve` and return a flat record: M, errors (recounted),
    energy, solved, success (1 / 0, for means), seconds, steps (in the solver's step_unit)."""
    from thermolearn.binary import recount, solve

    r = solve(algo, X, y, K=K, tree=tree, seed=seed, **budgets)
    errs, en = recount(r, X, y, K)
    return {"M": int(X.shape[0]), "errors": errs, "energy": en, "solved": errs == 0,
            "success": int(errs == 0), "seconds": float(r.seconds), "steps": int(r.steps)}


def point_seeds(seed: int) -> tuple[int, int, int]:
    """The seeds of a point's problem, solver and test set: ``spawn_seeds(seed, 3)`` (separate
    streams; the same integer for all three would make, e.g., a solver's initial weights equal
    to the first pattern)."""
    from thermolearn.seeding import spawn_seeds

    a, b, c = spawn_seeds(int(seed), 3)
    return a, b, c


def success_curves(records, group_keys, x_key="alpha", y_key="success"):
    """{group: (xs, mean of y_key per x, count per x)} over records, groups sorted, x sorted;
    records without a finite y_key are skipped."""
    acc: dict = {}
    for r in records:
        v = r.get(y_key)
        if v is None or isinstance(v, str) or not math.isfinite(float(v)):
            continue
        g = tuple(r.get(k) for k in group_keys)
        acc.setdefault(g, {}).setdefault(r[x_key], []).append(float(v))
    out = {}
    for g in sorted(acc, key=lambda t: tuple(str(x) for x in t)):
        xs = sorted(acc[g])
        out[g] = (xs, [sum(acc[g][x]) / len(acc[g][x]) for x in xs], [len(acc[g][x]) for x in xs])
    return out

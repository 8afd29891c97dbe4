"""Shared helpers of the binary-network experiments and of ``thermolearn binary solve``.

:func:`solve` maps a short algorithm name to a solver of :mod:`thermolearn.binary` with the
settings that make it that algorithm (spec: shared/specs/replicas.md):

* ``fbp``  -- focusing BP, :func:`~thermolearn.binary.fbp.focusing_bp` (pseudo-reinforcement);
* ``rsgd`` -- replicated SGD, :func:`~thermolearn.binary.rsgd.replicated_sgd` with its defaults
  (y = 7 replicas, batch 80, lr 2, coupling 0.75, gamma 0.05, gamma_step 0.001);
* ``sgd``  -- plain SGD, the same solver with replicas = 1 and coupling = 0 (the clipped-perceptron
  / least-action rule without interaction);
* ``rsa``  -- replicated simulated annealing, :func:`~thermolearn.binary.rsa.replicated_annealing`
  (beta from 0.2, beta and gamma times 1.0001 per accepted move, unless options say otherwise);
* ``sa``   -- plain simulated annealing, the same solver with gamma = 0 and replicas = 1.

K and ``tree`` are passed through to every solver (all of them handle perceptrons and both
committee layouts); a solver that did not handle an architecture would raise
NotImplementedError, which callers report.
"""

from __future__ import annotations

import inspect
import math

ALGORITHMS = {
    "fbp": "focusing BP (pseudo-reinforcement)",
    "rsgd": "replicated SGD",
    "sgd": "plain SGD (replicas = 1, coupling = 0)",
    "rsa": "replicated simulated annealing",
    "sa": "simulated annealing (gamma = 0, replicas = 1)",
}

STEP_UNITS = {"fbp": "sweeps", "rsgd": "epochs", "sgd": "epochs", "rsa": "moves", "sa": "moves"}

# which budget argument belongs to which algorithms
_BUDGETS = {"steps": ("fbp",), "max_epochs": ("rsgd", "sgd"), "max_moves": ("rsa", "sa"),
            "patience": ("rsa", "sa"), "replicas": ("rsgd", "sgd", "rsa", "sa")}

# settings that define an algorithm: they cannot be overridden through ``options``
_FIXED = {"sgd": {"coupling": 0.0}, "sa": {"gamma": 0.0}}
# annealing schedule used unless options say otherwise: the solver's own defaults (beta 1, rates
# 1.0005) freeze large problems within a few sweeps; these solve the N = 1001 perceptron at
# alpha 0.6 with replicas (benchmarks/perceptron_baselines.py)
_ANNEALING = {"rsa": {"beta": 0.2, "beta_rate": 1.0001, "gamma_rate": 1.0001},
              "sa": {"beta": 0.2, "beta_rate": 1.0001}}
_DEFAULT_REPLICAS = {"sgd": 1, "sa": 1}


def check_algo(algo: str) -> str:
    if algo not in ALGORITHMS:
        raise ValueError(f"algo: expected one of {', '.join(ALGORITHMS)}, got {algo!r}")
    return algo


def solver_function(algo: str):
    """The library function behind an algorithm name (imported on demand)."""
    algo = check_algo(algo)
    if algo == "fbp":
        from ...binary.fbp import focusing_bp
        return focusing_bp
    if algo in ("rsgd", "sgd"):
        from ...binary.rsgd import replicated_sgd
        return replicated_sgd
    from ...binary.rsa import replicated_annealing
    return replicated_annealing


def check_budgets(algo: str, **budgets) -> None:
    """Raise ValueError naming the first budget (replicas, steps, max_epochs, max_moves, patience)
    that is given (not None) for an algorithm it does not apply to."""
    check_algo(algo)
    for name, value in budgets.items():
        if name not in _BUDGETS:
            raise ValueError(f"{name}: not a budget; expected one of {', '.join(_BUDGETS)}")
        if value is not None and algo not in _BUDGETS[name]:
            raise ValueError(f"{name}: applies to {', '.join(_BUDGETS[name])} only, not to {algo}")


def solve(algo: str, X, y, *, K: int = 1, tree: bool = False, seed=0, replicas=None, steps=None,
          max_epochs=None, max_moves=None, patience=None, options: dict | None = None):
    """Run algorithm ``algo`` on patterns X (M, N) and labels y (M,); return its SolverResult.

    replicas : number of replicas (rsgd, sgd, rsa, sa; default: the solver's, 1 for sgd and sa).
    steps : protocol steps (fbp). max_epochs : epoch cap (rsgd, sgd). max_moves, patience : move
        budget and early stop (rsa, sa). A budget given for an algorithm it does not apply to is a
        ValueError naming it. options : further keyword arguments of the solver (e.g. batch, lr,
        beta, beta_rate); the settings that define sgd (coupling = 0) and sa (gamma = 0) cannot be
        changed through them.

    Raises NotImplementedError when the solver does not handle the architecture (K, tree).
    """
    fn = solver_function(algo)
    kwargs = {**_ANNEALING.get(algo, {}), **(options or {})}
    budgets = {"replicas": replicas, "steps": steps, "max_epochs": max_epochs,
               "max_moves": max_moves, "patience": patience}
    check_budgets(algo, **budgets)
    kwargs.update({name: value for name, value in budgets.items() if value is not None})
    if replicas is None and algo in _DEFAULT_REPLICAS:
        kwargs["replicas"] = _DEFAULT_REPLICAS[algo]
    for name, value in _FIXED.get(algo, {}).items():
        if name in kwargs and kwargs[name] != value:
            raise ValueError(f"{name}: {algo} means {name} = {value:g}; use "
                             f"{'rsgd' if algo == 'sgd' else 'rsa'} for {name} = {kwargs[name]!r}")
        kwargs[name] = value
    params = inspect.signature(fn).parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = sorted(k for k in kwargs if k not in params)
    if unknown and not open_ended:
        raise ValueError(f"{unknown[0]}: not an option of {fn.__name__} ({algo})")
    if "tree" in params or open_ended:
        kwargs["tree"] = bool(tree)
    elif tree and K > 1:
        raise NotImplementedError(f"tree: {fn.__name__} ({algo}) does not handle tree-like committee "
                                  f"machines yet")
    return fn(X, y, K=K, seed=seed, **kwargs)


def recount(result, X, y, K: int) -> tuple[int, int]:
    """(errors, energy) of ``result.weights`` recounted with thermolearn.binary.models."""
    from ...binary.models import energy, errors

    W = result.weights
    Xd, yd = X.to(W.device), y.to(W.device)
    return int(errors(W, Xd, yd, K)), int(energy(W, Xd, yd, K))


def solve_record(algo: str, X, y, *, K: int = 1, tree: bool = False, seed=0, **budgets) -> dict:
    """Run :func:`solve` and return a flat record: M, errors (recounted), energy, solved,
    success (1 / 0, for means), seconds, steps (in the solver's unit, see STEP_UNITS)."""
    r = solve(algo, X, y, K=K, tree=tree, seed=seed, **budgets)
    errs, en = recount(r, X, y, K)
    return {"M": int(X.shape[0]), "errors": errs, "energy": en, "solved": errs == 0,
            "success": int(errs == 0), "seconds": float(r.seconds), "steps": int(r.steps)}


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


def split_seed(seed: int, n: int = 3) -> list[int]:
    """``n`` independent 32-bit seeds derived from one integer seed: the problem, the solver and
    the test set draw from separate streams (the same integer would give them identical torch
    streams, e.g. a solver's initial weights equal to the first pattern)."""
    import numpy as np

    return [int(s) for s in np.random.SeedSequence(int(seed)).generate_state(n, np.uint32)]

"""One entry point for the binary-network solvers: an algorithm name -> a solver call.

:func:`solve` maps a short algorithm name to a solver of :mod:`thermolearn.binary` with the
settings that make it that algorithm (Baldassi et al., PNAS 2016):

* ``fbp``  -- focusing BP, :func:`~thermolearn.binary.fbp.focusing_bp` (pseudo-reinforcement);
* ``rsgd`` -- replicated SGD, :func:`~thermolearn.binary.rsgd.replicated_sgd` with its defaults
  (y = 7 replicas, batch_size 80, lr 2, coupling 0.75, gamma 0.05 + 0.001 per epoch);
* ``sgd``  -- plain SGD, the same solver with replicas = 1 and coupling = 0 (the clipped-perceptron
  / least-action rule without interaction);
* ``rsa``  -- replicated simulated annealing, :func:`~thermolearn.binary.rsa.replicated_annealing`
  (beta = Geometric(0.2, 1.0001), gamma = Geometric(0.1, 1.0001) unless options say otherwise);
* ``sa``   -- plain simulated annealing, the same solver with gamma = 0 and replicas = 1.

``max_iter`` is every solver's cap, in its own unit (:data:`STEP_UNITS`): epochs (rsgd, sgd),
proposed moves (rsa, sa), sweeps per protocol step (fbp). K and ``tree`` are passed to every
solver (all handle perceptrons and both committee layouts); a solver that did not handle an
architecture would raise NotImplementedError, which callers report.

:func:`capacity_warning` says when a random-label problem is loaded beyond what binary networks
can store (the perceptron's capacity alpha_c = 0.833, Krauth & Mezard 1989 [unverified]; and
alpha <= 1 for any network of binary weights, by counting: 2^N_w networks realise at most 2^N_w
of the 2^M labelings).
"""

from __future__ import annotations

import inspect

from ..schedules import Geometric

__all__ = ["ALGORITHMS", "STEP_UNITS", "PERCEPTRON_CAPACITY", "check_algo", "solver_function",
           "check_budgets", "solve", "recount", "capacity_warning"]

ALGORITHMS = {
    "fbp": "focusing BP (pseudo-reinforcement)",
    "rsgd": "replicated SGD",
    "sgd": "plain SGD (replicas = 1, coupling = 0)",
    "rsa": "replicated simulated annealing",
    "sa": "simulated annealing (gamma = 0, replicas = 1)",
}

STEP_UNITS = {"fbp": "sweep", "rsgd": "epoch", "sgd": "epoch", "rsa": "move", "sa": "move"}
"""The step_unit of each algorithm's result (max_iter counts these; fbp: per protocol step)."""

PERCEPTRON_CAPACITY = 0.833
"""Capacity of the binary perceptron with random labels, alpha_c = 0.833 (Krauth & Mezard,
J. Phys. France 50, 3057 (1989) [unverified])."""

# which budget argument belongs to which algorithms
_BUDGETS = {"max_iter": tuple(ALGORITHMS), "steps": ("fbp",), "patience": ("rsa", "sa"),
            "replicas": ("rsgd", "sgd", "rsa", "sa")}

# settings that define an algorithm: they cannot be overridden through ``options``
_FIXED = {"sgd": {"coupling": 0.0}, "sa": {"gamma": 0.0}}
# annealing schedule used unless options say otherwise: the solver's own defaults (beta 1, rate
# 1.0005) freeze large problems within a few sweeps; these solve the N = 1001 perceptron at
# alpha 0.6 with replicas (benchmarks/perceptron_baselines.py)
_ANNEALING = {"rsa": {"beta": Geometric(0.2, 1.0001), "gamma": Geometric(0.1, 1.0001)},
              "sa": {"beta": Geometric(0.2, 1.0001)}}
_DEFAULT_REPLICAS = {"sgd": 1, "sa": 1}


def check_algo(algo: str) -> str:
    """``algo`` when it names an algorithm; otherwise a ValueError listing the valid names."""
    if algo not in ALGORITHMS:
        raise ValueError(f"algo: expected one of {', '.join(ALGORITHMS)}, got {algo!r}")
    return algo


def solver_function(algo: str):
    """The library function behind an algorithm name (imported on demand)."""
    algo = check_algo(algo)
    if algo == "fbp":
        from .fbp import focusing_bp
        return focusing_bp
    if algo in ("rsgd", "sgd"):
        from .rsgd import replicated_sgd
        return replicated_sgd
    from .rsa import replicated_annealing
    return replicated_annealing


def check_budgets(algo: str, **budgets) -> None:
    """Raise ValueError naming the first budget (max_iter, steps, patience, replicas) that is
    given (not None) for an algorithm it does not apply to."""
    check_algo(algo)
    for name, value in budgets.items():
        if name not in _BUDGETS:
            raise ValueError(f"{name}: not a budget; expected one of {', '.join(_BUDGETS)}")
        if value is not None and algo not in _BUDGETS[name]:
            raise ValueError(f"{name}: applies to {', '.join(_BUDGETS[name])} only, not to {algo}")


def solve(algo: str, X, y, *, K: int = 1, tree: bool = False, seed=0, replicas=None, max_iter=None,
          steps=None, patience=None, progress: bool = False, options: dict | None = None):
    """Run algorithm ``algo`` on patterns X (M, N) and labels y (M,); return its SolverResult.

    replicas : number of replicas (rsgd, sgd, rsa, sa; default: the solver's, 1 for sgd and sa).
    max_iter : the solver's cap in its unit (STEP_UNITS; fbp: sweeps per protocol step).
    steps : protocol steps (fbp). patience : early stop of rsa, sa (proposals without progress).
    A budget given for an algorithm it does not apply to is a ValueError naming it.
    seed : int, torch.Generator or None. progress : the solver's progress bar on stderr.
    options : further keyword arguments of the solver (e.g. batch_size, lr, beta, gamma); the
    settings that define sgd (coupling = 0) and sa (gamma = 0) cannot be changed through them.

    Raises NotImplementedError when the solver does not handle the architecture (K, tree).
    """
    fn = solver_function(algo)
    kwargs = {**_ANNEALING.get(algo, {}), **(options or {})}
    budgets = {"replicas": replicas, "max_iter": max_iter, "steps": steps, "patience": patience}
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
    if progress and ("progress" in params or open_ended):
        kwargs["progress"] = True
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
    from .models import energy, errors

    W = result.weights
    Xd, yd = X.to(W.device), y.to(W.device)
    return int(errors(W, Xd, yd, K)), int(energy(W, Xd, yd, K))


def capacity_warning(alpha: float, K: int = 1, teacher: bool = False) -> str | None:
    """A sentence when random labels at load ``alpha`` (patterns per weight) are beyond what the
    network can store, so that a solver will almost surely fail; None otherwise (and always with
    teacher labels, which the teacher itself classifies without error)."""
    if teacher:
        return None
    if alpha > 1.0:
        return (f"alpha = {alpha:g} patterns per weight is above 1, the bound for any network of binary "
                f"weights with random labels (2^weights networks cannot realise 2^M labelings): "
                f"no solution is expected")
    if K == 1 and alpha > PERCEPTRON_CAPACITY:
        return (f"alpha = {alpha:g} is above the binary perceptron's capacity alpha_c = {PERCEPTRON_CAPACITY} "
                f"(Krauth & Mezard 1989): for large N no solution is expected")
    return None

"""Binary networks (perceptron, committee machines) and the robust-ensemble toolkit (issue 4).

This package currently holds the foundation: models, error counts and local-search energies
(:mod:`.models`), random and teacher-student problems (:mod:`.patterns`). Equations:
shared/specs/replicas.md. Names are imported lazily so that ``import thermolearn.binary`` stays cheap.
"""

from .._lazy import lazy_exports

_WHERE = {
    "Architecture": "models", "hidden_fields": "models", "output": "models", "errors": "models",
    "energies": "models", "energy": "models", "as_pm1": "models", "check_pm1": "models",
    "n_patterns": "patterns", "random_patterns": "patterns", "teacher_student": "patterns",
    "generalization_error": "patterns",
    "SolverResult": "result",
    "focusing_bp": "fbp",
    "replicated_sgd": "rsgd",
    "replicated_annealing": "rsa",
    "local_energy": "diagnostics", "LocalEnergy": "diagnostics",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _WHERE)

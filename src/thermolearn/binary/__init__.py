"""Binary networks (perceptron, committee machines) and the robust-ensemble toolkit.

Models, error counts and local-search energies (:mod:`.models`), random and teacher-student
problems (:mod:`.patterns`), the solvers of Baldassi et al., PNAS 2016 -- focusing BP
(:mod:`.fbp`), replicated SGD (:mod:`.rsgd`), replicated simulated annealing (:mod:`.rsa`) --
with their common :class:`SolverResult`, replica overlaps (:mod:`.overlaps`), the local energy
around a solution (:mod:`.diagnostics`) and the algorithm registry :func:`solve`
(:mod:`.algorithms`). Names are imported lazily so that ``import thermolearn.binary`` stays cheap.
"""

from .._lazy import lazy_exports

_WHERE = {
    "Architecture": "models", "hidden_fields": "models", "output": "models", "errors": "models",
    "energies": "models", "energy": "models", "as_pm1": "models", "check_pm1": "models",
    "check_training_set": "models",
    "n_patterns": "patterns", "random_patterns": "patterns", "teacher_student": "patterns",
    "generalization_error": "patterns",
    "SolverResult": "result",
    "focusing_bp": "fbp", "protocol_schedules": "fbp",
    "replicated_sgd": "rsgd", "default_replica_seeds": "rsgd",
    "replicated_annealing": "rsa",
    "replica_overlap": "overlaps", "center_overlap": "overlaps",
    "local_energy": "diagnostics", "flip_counts": "diagnostics",
    "ALGORITHMS": "algorithms", "STEP_UNITS": "algorithms", "PERCEPTRON_CAPACITY": "algorithms",
    "solve": "algorithms",
    "check_algo": "algorithms", "check_budgets": "algorithms", "recount": "algorithms",
    "capacity_warning": "algorithms",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _WHERE)

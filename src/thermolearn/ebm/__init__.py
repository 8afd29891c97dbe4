"""Energy-based models: RBMs, their training, partition functions and free energies.

Names are imported lazily so that ``import thermolearn.ebm`` stays cheap.
"""

from .._lazy import lazy_exports

_WHERE = {
    "RBM": "rbm",
    "train": "training", "TrainHistory": "training", "TrainingDiverged": "training",
    "exact_log_partition": "exact", "exact_log_likelihood": "exact",
    "ais_log_partition": "ais", "AISResult": "ais", "base_rate_bias": "ais",
    "raise_log_likelihood": "reverse_ais", "RAISEResult": "reverse_ais",
    "tap_free_energy": "tap", "tap_log_likelihood": "tap", "TAPResult": "tap",
    "evaluate_rbm": "evaluate",
    "BernoulliRBM": "estimator",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _WHERE)

"""Energy-based models: RBMs, their training, partition functions and free energies.

Names are imported lazily so that ``import thermolearn.ebm`` stays cheap.
"""

from importlib import import_module

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

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__

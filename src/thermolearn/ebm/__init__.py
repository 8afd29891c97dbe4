"""Energy-based models: RBMs, their training, partition functions and free energies.

Binary restricted Boltzmann machines (Smolensky 1986; Hinton 2002), trained by contrastive
divergence, persistent chains (Tieleman 2008) or TAP mean field (Gabrie, Tramel & Krzakala
2015); log Z exactly, by annealed importance sampling (Salakhutdinov & Murray 2008) and its
reverse (Burda, Grosse & Salakhutdinov 2015). Errors are in :mod:`thermolearn.errors`.

Names are imported lazily so that ``import thermolearn.ebm`` stays cheap.
"""

from .._lazy import lazy_exports

_WHERE = {
    "RBM": "rbm",
    "train": "training", "TrainResult": "training", "in_progress_path": "training",
    "exact_log_partition": "exact", "exact_log_likelihood": "exact", "MAX_EXACT_UNITS": "exact",
    "independent_log_likelihood": "evaluate",
    "ais_log_partition": "ais", "AISResult": "ais", "base_rate_bias": "ais",
    "raise_log_likelihood": "reverse_ais", "RAISEResult": "reverse_ais",
    "tap_free_energy": "tap", "tap_log_likelihood": "tap", "TAPResult": "tap",
    "evaluate_rbm": "evaluate",
    "BernoulliRBM": "estimator",
    "thermodynamics": "thermo", "Thermodynamics": "thermo", "heat_capacity_peak": "thermo",
    "HeatCapacityPeak": "thermo", "effective_beta": "thermo", "EffectiveBeta": "thermo",
    "effective_couplings": "effective", "EffectiveCouplings": "effective",
    "DiscriminativeRBM": "drbm", "ClassRBM": "drbm", "train_class_rbm": "drbm", "ClassRBMTrainResult": "drbm",
    "Hopfield": "hopfield", "GaussianHiddenRBM": "hopfield", "RetrievalResult": "hopfield",
    "rs_retrieval": "hopfield", "rs_capacity": "hopfield",
    "DBN": "dbn", "DBNBound": "dbn", "DBNFitResult": "dbn", "LayerFreeEnergies": "dbn",
    "MeanFieldMLP": "unrolled",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _WHERE)

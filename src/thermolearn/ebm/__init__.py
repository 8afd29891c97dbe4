"""Energy-based models: RBMs, their training, partition functions and free energies."""

from .rbm import RBM
from .exact import exact_log_partition, exact_log_likelihood

__all__ = ["RBM", "exact_log_partition", "exact_log_likelihood"]

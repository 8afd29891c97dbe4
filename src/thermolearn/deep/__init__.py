"""Robust ensembles and flatness for ordinary PyTorch networks.

* :class:`Replicated`: y coupled replicas of any ``nn.Module`` trained side by side in one
  process; itself an ``nn.Module`` (stacked parameters, one batched forward/backward: batched
  matrix products for plain Linear/activation stacks, torch.func.vmap otherwise).
* :class:`DistributedReplica`, :func:`launch`: the same with one replica per process
  (``torch.distributed``).
* :class:`EntropySGD`, :class:`ElasticAveraging`: optimizers.
* :func:`local_energy` (flatness, a :class:`thermolearn.results.LocalEnergy`),
  :func:`replica_distances`, :func:`classification_error`; :func:`reset_parameters`: seeded
  re-initialisation of a module.
Errors (:class:`TrainingDiverged` on NaN/Inf losses) are in :mod:`thermolearn.errors`.

Names are imported lazily so that ``import thermolearn.deep`` stays cheap.
"""

from .._lazy import lazy_exports

_WHERE = {
    "Replicated": "replicated", "reset_parameters": "replicated",
    "DistributedReplica": "distributed", "launch": "distributed", "free_port": "distributed",
    "EntropySGD": "entropy_sgd",
    "ElasticAveraging": "elastic",
    "local_energy": "flatness", "replica_distances": "flatness", "classification_error": "flatness",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _WHERE)

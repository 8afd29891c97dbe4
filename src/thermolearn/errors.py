"""The library's exceptions, in one neutral module that imports nothing heavy.

Bad arguments stay ``ValueError`` / ``TypeError``, as in NumPy, PyTorch and scikit-learn; the
classes here name the failures a caller may want to catch on their own.
"""

from __future__ import annotations


class ThermolearnError(Exception):
    """Base class of the library's own exceptions."""


class TrainingDiverged(ThermolearnError, RuntimeError):
    """A loss, gradient or parameter became NaN or infinite. Nothing was written after the last
    good step: the model keeps its last finite parameters and no checkpoint is replaced."""


class ModelFileError(ThermolearnError, ValueError):
    """A model or checkpoint file is missing, unreadable, or of another kind."""


class CheckpointMismatch(ThermolearnError, ValueError):
    """A checkpoint was written with settings other than the ones asked for now.

    ``setting`` names the first differing setting; ``saved`` and ``requested`` are its values.
    """

    def __init__(self, message: str, setting: str | None = None, saved=None, requested=None):
        super().__init__(message)
        self.setting, self.saved, self.requested = setting, saved, requested


class StoreError(ThermolearnError, ValueError):
    """An experiment database that is not SQLite, or is another program's database."""

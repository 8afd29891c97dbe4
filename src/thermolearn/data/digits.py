"""The scikit-learn 8x8 digits (1797 images, intensities 0..16), split into train and test.

A small, always-available stand-in for MNIST: it ships with scikit-learn, so loading it needs
no download and no extra package.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..seeding import as_generator
from .mnist import Dataset, check_binarize, check_dtype, prepare_pixels

__all__ = ["load_digits"]

DIGITS_MAX = 16.0


@functools.lru_cache(maxsize=1)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's digits as (uint8 images (1797, 64) in 0..16, int64 labels); read-only arrays."""
    from sklearn.datasets import load_digits as _sk_load_digits

    images, labels = _sk_load_digits(return_X_y=True)
    images = np.rint(images).astype(np.uint8)  # exact integers 0..16 stored as float64
    labels = labels.astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_digits(binarize="threshold", seed=0, test_fraction=0.2, dtype=torch.float32) -> Dataset:
    """sklearn's digits as a :class:`Dataset` named ``"digits"`` with 64 features in [0, 1].

    Intensities are scaled by 1/16. The images are shuffled with ``seed`` and the first
    ``round(test_fraction * 1797)`` become the test set. ``binarize`` is ``"threshold"``
    (x > 0.5, the default), ``"stochastic"`` (Bernoulli samples with p = x, drawn with the same
    seeded generator after the shuffle) or ``None`` (keep the scaled intensities).
    """
    check_binarize(binarize)
    check_dtype(dtype)
    try:
        frac = float(test_fraction)
    except (TypeError, ValueError):
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}") from None
    if not 0.0 < frac < 1.0:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")

    images, labels = _raw_digits()
    n = images.shape[0]
    n_test = min(max(int(round(frac * n)), 1), n - 1)

    gen = as_generator(seed)
    perm = torch.randperm(n, generator=gen).numpy()
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    sample_gen = gen if binarize == "stochastic" else None
    return Dataset(
        train=prepare_pixels(images[train_idx], DIGITS_MAX, binarize, sample_gen, dtype, "digits train"),
        test=prepare_pixels(images[test_idx], DIGITS_MAX, binarize, sample_gen, dtype, "digits test"),
        train_labels=torch.from_numpy(labels[train_idx].astype(np.int64)),
        test_labels=torch.from_numpy(labels[test_idx].astype(np.int64)),
        name="digits",
    )

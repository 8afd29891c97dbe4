"""An error count for binary networks written with NumPy only, independent of the library.

Used by the tests to re-check every solution a solver returns."""

import numpy as np


def np_errors(W, X, y, K=None, tree=None):
    """Misclassified patterns of a perceptron (W of shape (N,)) or committee machine (W of shape
    (K, n): fully connected when n = N, tree-like when n = N / K). K and tree, when given, must
    agree with W's shape."""
    W, X, y = (np.asarray(a, dtype=np.int64) for a in (W, X, y))
    assert set(np.unique(W)) <= {-1, 1}
    if W.ndim == 1:
        assert K in (None, 1)
        return int(((X @ W) * y <= 0).sum())
    k, n = W.shape
    assert K in (None, k) and tree in (None, n != X.shape[1])
    if n == X.shape[1]:
        fields = X @ W.T                                               # (M, K)
    else:
        fields = np.einsum("mkn,kn->mk", X.reshape(len(X), k, n), W)
    return int((np.sign(np.sign(fields).sum(1)) != y).sum())

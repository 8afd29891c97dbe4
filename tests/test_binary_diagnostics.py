"""Local energy of binary networks (thermolearn.binary.diagnostics.local_energy)."""

import numpy as np
import pytest
import torch

from binary_check import np_errors
from thermolearn.binary import errors, flip_counts, local_energy, random_patterns
from thermolearn.binary.models import Architecture
from thermolearn.results import LocalEnergy

CASES = [(1, 31, False), (3, 21, False), (3, 33, True)]


@pytest.mark.parametrize("K,N,tree", CASES)
def test_zero_fraction_is_the_training_error(K, N, tree):
    X, y = random_patterns(N, 0.6, seed=1, K=K, tree=tree)
    W = Architecture(N, K, tree).random_weights(seed=2)
    r = local_energy(W, X, y, K=K, fractions=[0.0, 0.1], draws=7, seed=0)
    M = X.shape[0]
    exact = np_errors(W, X, y, K, tree) / M
    assert r.values.shape == (2, 7) and r.draws == 7 and r.kind == "flip" and r.metric == "error"
    assert np.all(r.values[0] == exact)
    assert r.mean[0] == pytest.approx(exact, abs=1e-15) and r.std[0] == pytest.approx(0.0, abs=1e-15)
    assert r.base == int(errors(W, X, y, K)) / M == exact
    assert np.all((r.values >= 0) & (r.values <= 1))


def test_full_fraction_is_minus_w_on_a_perceptron():
    X, y = random_patterns(41, 0.8, seed=3)
    W = Architecture(41).random_weights(seed=4)
    r = local_energy(W, X, y, fractions=[1.0], draws=3, seed=5)
    assert flip_counts(r.sizes, 41).tolist() == [41]
    expect = np_errors(-W, X, y, 1) / X.shape[0]
    assert np.all(r.values[0] == expect)
    # and -W misclassifies exactly the patterns W gets right (odd N: no zero field)
    assert expect == pytest.approx(1 - np_errors(W, X, y, 1) / X.shape[0])


def _loop_reference(W, X, y, K, tree, fractions, draws, seed):
    """Plain loop over fractions and draws, drawing the flipped sets from the same generator
    stream (one permutation per draw, in chunk order) as the vectorised version."""
    arch_shape = W.shape
    flat = W.reshape(-1).clone()
    n = flat.numel()
    g = torch.Generator().manual_seed(seed)
    out = np.zeros((len(fractions), draws))
    for j, p in enumerate(fractions):
        k = int(round(p * n))
        if k in (0, n):
            Wp = flat if k == 0 else -flat
            out[j] = np_errors(Wp.reshape(arch_shape), X, y, K, tree) / X.shape[0]
            continue
        keys = torch.rand((draws, n), generator=g)
        for d in range(draws):
            chosen = keys[d].argsort()[:k]
            Wp = flat.clone()
            for i in chosen.tolist():
                Wp[i] = -Wp[i]
            assert int((Wp != flat).sum()) == k
            out[j, d] = np_errors(Wp.reshape(arch_shape), X, y, K, tree) / X.shape[0]
    return out


@pytest.mark.parametrize("K,N,tree", CASES)
def test_matches_a_plain_loop(K, N, tree):
    X, y = random_patterns(N, 0.5, seed=7, K=K, tree=tree)
    W = Architecture(N, K, tree).random_weights(seed=8)
    fr = [0.0, 0.05, 0.2, 0.5, 1.0]
    r = local_energy(W, X, y, K=K, fractions=fr, draws=6, seed=11)
    ref = _loop_reference(W, X, y, K, tree, fr, 6, 11)
    np.testing.assert_array_equal(r.values, ref)
    np.testing.assert_allclose(r.mean, ref.mean(1))
    np.testing.assert_allclose(r.std, ref.std(1, ddof=1))
    np.testing.assert_allclose(r.sem, ref.std(1, ddof=1) / np.sqrt(6))


def test_exact_number_of_distinct_flips(monkeypatch):
    """Each draw flips exactly round(p * n_weights) distinct weights: seen through the batch of
    networks handed to errors()."""
    import thermolearn.binary.diagnostics as diag

    X, y = random_patterns(21, 0.5, seed=1, K=3)
    W = Architecture(21, 3).random_weights(seed=2)
    seen = []

    def spy(batch, X_, y_, K_):
        if batch.ndim == 3:
            seen.append((batch != W).reshape(batch.shape[0], -1).sum(1))
        return errors(batch, X_, y_, K_)

    monkeypatch.setattr(diag, "errors", spy)
    fr = [0.01, 0.1, 0.33, 0.5, 0.999]
    r = diag.local_energy(W, X, y, K=3, fractions=fr, draws=40, seed=0)
    n = 63
    flips = flip_counts(r.sizes, n)
    assert flips.tolist() == [round(p * n) for p in fr] == [1, 6, 21, 32, 63]
    assert len(seen) == len(fr)
    for k, counts in zip(flips, seen):
        assert counts.tolist() == [k] * 40
    # and the sets differ between draws (independent, not one set repeated)
    assert len(set(r.values[2].tolist())) > 1


def test_small_chunks_give_the_same_numbers(monkeypatch):
    import thermolearn.binary.diagnostics as diag

    X, y = random_patterns(31, 0.7, seed=3)
    W = Architecture(31).random_weights(seed=3)
    a = diag.local_energy(W, X, y, fractions=[0.1, 0.3], draws=10, seed=4)
    monkeypatch.setattr(diag, "_CHUNK_WEIGHTS", 31 * 3)             # chunks of 3 draws
    b = diag.local_energy(W, X, y, fractions=[0.1, 0.3], draws=10, seed=4)
    np.testing.assert_array_equal(a.values, b.values)


def test_reproducible_with_the_seed_and_flat_committee():
    X, y = random_patterns(15, 0.6, seed=2, K=3)
    W = Architecture(15, 3).random_weights(seed=3)
    a = local_energy(W, X, y, K=3, fractions=(0.1, 0.4), draws=20, seed=9)
    b = local_energy(W, X, y, K=3, fractions=(0.1, 0.4), draws=20, seed=9)
    c = local_energy(W, X, y, K=3, fractions=(0.1, 0.4), draws=20, seed=10)
    g = local_energy(W, X, y, K=3, fractions=(0.1, 0.4), draws=20, seed=torch.Generator().manual_seed(9))
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.values, g.values)
    assert not np.array_equal(a.values, c.values)
    flat = local_energy(W.reshape(-1), X, y, K=3, fractions=(0.1, 0.4), draws=20, seed=9)
    np.testing.assert_array_equal(a.values, flat.values)
    d = a.as_dict()
    assert d["sizes"] == [0.1, 0.4] and d["draws"] == 20 and len(d["mean"]) == 2 and d["kind"] == "flip"
    assert isinstance(a, LocalEnergy) and np.all(a.sem >= 0)


def test_error_grows_with_the_flipped_fraction_for_a_solution():
    from thermolearn.binary import teacher_student

    X, y, teacher = teacher_student(101, 0.5, seed=1)
    r = local_energy(teacher, X, y, fractions=[0.0, 0.05, 0.2, 0.5], draws=50, seed=0)
    assert r.mean[0] == 0.0 and r.base == 0
    assert r.mean[0] < r.mean[1] < r.mean[2] < r.mean[3]
    assert 0.35 < r.mean[3] < 0.65                     # half the weights flipped: a random guess


@pytest.mark.parametrize("kwargs,match", [
    (dict(fractions=[0.1, 1.5]), "fractions: expected numbers in \\[0, 1\\], got \\[1.5\\]"),
    (dict(fractions=[-0.1]), "fractions"),
    (dict(fractions=[float("nan")]), "fractions"),
    (dict(fractions=[]), "fractions"),
    (dict(fractions="abc"), "fractions"),
    (dict(draws=0), "draws"),
    (dict(draws=2.5), "draws"),
    (dict(K=2), "K"),
    (dict(tree="yes"), "tree"),
])
def test_bad_arguments(kwargs, match):
    X, y = random_patterns(21, 0.5, seed=0)
    W = Architecture(21).random_weights(seed=0)
    with pytest.raises(ValueError, match=match):
        local_energy(W, X, y, **kwargs)


def test_shape_mismatches():
    X, y = random_patterns(21, 0.5, seed=0, K=3)
    with pytest.raises(ValueError, match="W: a perceptron"):
        local_energy(torch.ones(19, dtype=torch.int8), X, y)
    with pytest.raises(ValueError, match="W: a perceptron"):
        local_energy(torch.ones((3, 21), dtype=torch.int8), X, y)
    with pytest.raises(ValueError, match="W: a committee"):
        local_energy(torch.ones((3, 20), dtype=torch.int8), X, y, K=3)
    with pytest.raises(ValueError, match="W: a flat committee"):
        local_energy(torch.ones(40, dtype=torch.int8), X, y, K=3)
    with pytest.raises(ValueError, match="tree=True"):
        local_energy(torch.ones((3, 21), dtype=torch.int8), X, y, K=3, tree=True)
    with pytest.raises(ValueError, match="y: expected shape"):
        local_energy(torch.ones((3, 21), dtype=torch.int8), X, y[:-1], K=3)
    with pytest.raises(ValueError, match="W: expected entries"):
        local_energy(torch.zeros((3, 21), dtype=torch.int8), X, y, K=3)

"""Replicated simulated annealing on the binary perceptron (issue 4)."""

import numpy as np
import pytest
import torch

from thermolearn.binary import energies, random_patterns
from thermolearn.binary.rsa import replica_seeds, replicated_annealing


def np_errors(W, X, y):
    """Independent NumPy error count of a perceptron."""
    W = np.asarray(W, dtype=np.int64)
    X = np.asarray(X, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    return int(((X @ W) * y <= 0).sum())


@pytest.mark.parametrize("replicas,gamma", [(1, 0.0), (3, 0.0), (3, 0.5)])
def test_incremental_fields_match_recomputation(replicas, gamma):
    # unsolvable load and low, slowly growing beta: many accepted moves, no early stop
    X, y = random_patterns(51, 1.5, seed=3)
    r = replicated_annealing(X, y, replicas=replicas, beta=0.3, beta_rate=1.0001, gamma=gamma,
                             gamma_rate=1.0001, max_moves=60_000, seed=5, history_every=7_000,
                             debug=True)
    assert r.steps == 60_000 and r.stop_reason == "max_moves"
    assert r.debug["accepted"].sum() > 5_000
    Wr = r.replicas
    ref_delta = (Wr.long() @ X.long().T) * y.long()                       # (replicas, M)
    assert np.array_equal(r.debug["delta"], ref_delta.numpy())
    ref_E = energies(Wr, X, y).sum(-1).numpy()
    assert np.array_equal(r.debug["energies"], ref_E)
    assert np.array_equal(r.debug["S"], Wr.long().sum(0).numpy())
    assert r.debug["proposals"].sum() == r.steps
    # history is consistent with the final state
    h = r.history[-1]
    assert h["step"] == 60_000 and h["energy_min"] == ref_E.min() and len(r.history) == 9
    assert 0.0 < h["acceptance"] <= 1.0
    if replicas > 1:
        W64 = Wr.double()
        q = (W64 @ W64.T / 51)[np.triu_indices(replicas, 1)].mean()
        assert h["overlap"] == pytest.approx(float(q))
    # beta grew once per accepted move of each replica (per-replica clock)
    assert np.allclose(r.debug["beta"], 0.3 * 1.0001 ** r.debug["accepted"])


def test_gamma_zero_equals_independent_runs():
    X, y = random_patterns(51, 1.5, seed=4)                               # never solved
    seeds = replica_seeds(11, 3)
    kw = dict(beta=0.5, beta_rate=1.0003, gamma_rate=1.001, history_every=5_000, debug=True)
    rep = replicated_annealing(X, y, replicas=3, gamma=0.0, max_moves=30_000, seed=11, **kw)
    assert rep.stop_reason == "max_moves"
    for a in range(3):
        n_a = int(rep.debug["proposals"][a])
        one = replicated_annealing(X, y, replicas=1, gamma=0.0, max_moves=n_a, seed=[seeds[a]], **kw)
        assert torch.equal(one.replicas[0], rep.replicas[a])
        assert one.debug["energies"][0] == rep.debug["energies"][a]
        assert one.debug["accepted"][0] == rep.debug["accepted"][a]
        assert one.debug["beta"][0] == rep.debug["beta"][a]
    # and gamma > 0 does couple them
    coupled = replicated_annealing(X, y, replicas=3, gamma=2.0, max_moves=30_000, seed=11, **kw)
    assert not torch.equal(coupled.replicas, rep.replicas)


def test_seed_reproducible():
    X, y = random_patterns(51, 1.0, seed=2)
    a = replicated_annealing(X, y, max_moves=20_000, seed=3)
    b = replicated_annealing(X, y, max_moves=20_000, seed=3)
    assert torch.equal(a.replicas, b.replicas) and a.steps == b.steps


@pytest.mark.parametrize("N,replicas,gamma", [(51, 3, 0.1), (101, 3, 0.1), (101, 1, 0.0), (101, 5, 0.3)])
def test_solves_small_perceptron(N, replicas, gamma):
    X, y = random_patterns(N, 0.3, seed=N + replicas)
    r = replicated_annealing(X, y, replicas=replicas, gamma=gamma, max_moves=2_000_000, seed=1)
    assert r.converged and r.stop_reason == "solved"
    assert r.errors == 0 and r.energy == 0
    assert np_errors(r.weights.numpy(), X.numpy(), y.numpy()) == 0
    assert r.weights.dtype == torch.int8 and r.weights.shape == (N,)
    assert r.replicas.shape == (replicas, N)
    assert r.history and r.history[-1]["energy_min"] == 0


def test_patience_stops():
    X, y = random_patterns(51, 2.0, seed=1)
    r = replicated_annealing(X, y, beta=5.0, beta_rate=1.0, gamma=0.0, gamma_rate=1.0,
                             max_moves=10_000_000, patience=2_000, seed=0)
    assert r.stop_reason == "patience" and r.steps < 10_000_000 and not r.converged
    assert r.errors == np_errors(r.weights.numpy(), X.numpy(), y.numpy())


def test_bad_input_names_argument():
    X, y = random_patterns(51, 0.3, seed=0)
    with pytest.raises(ValueError, match="^X:"):
        replicated_annealing(X * 2, y)
    with pytest.raises(ValueError, match="^y:"):
        replicated_annealing(X, y[:-1])
    with pytest.raises(ValueError, match="^y:"):
        replicated_annealing(X, torch.zeros_like(y))
    with pytest.raises(ValueError, match="^X:.*odd"):
        replicated_annealing(X[:, :50], y)
    with pytest.raises(ValueError, match="^K:"):
        replicated_annealing(X, y, K=2)
    with pytest.raises(NotImplementedError, match="K"):
        replicated_annealing(X, y, K=3)
    for name, val in [("replicas", 0), ("beta", -1.0), ("beta", float("nan")), ("beta_rate", 0.0),
                      ("gamma", -0.1), ("gamma_rate", -1), ("max_moves", 0), ("patience", 0),
                      ("history_every", 1.5)]:
        with pytest.raises(ValueError, match=f"^{name}:"):
            replicated_annealing(X, y, **{name: val})
    with pytest.raises(ValueError, match="^seed:"):
        replicated_annealing(X, y, replicas=3, seed=[1, 2])
    with pytest.raises(ValueError, match="^seed:"):
        replicated_annealing(X, y, seed=-1)

"""Tests for thermolearn.binary.rsgd.replicated_sgd (replicated SGD, Baldassi et al. PNAS 2016)."""

import numpy as np
import pytest
import torch

from binary_check import np_errors
from thermolearn.binary import default_replica_seeds, random_patterns, replicated_sgd
from thermolearn.binary.models import Architecture
from thermolearn.schedules import Geometric, LinearDecay


def np_reference(X, y, K, tree, R, batch, eta, lam, gamma_at, epochs, seed, rseeds):
    """Plain sequential NumPy version of the spec (loop over replicas and patterns), drawing the
    random numbers from the same torch generators in the same order as the solver."""
    arch = Architecture(X.shape[1], K, tree)
    g = torch.Generator().manual_seed(seed)
    H0 = arch.random_weights(g).numpy().astype(np.float64).reshape(arch.K, arch.n_per_unit)
    torch.randint(0, 2**62, (R,), generator=g)     # the spawned seeds, drawn even when rseeds are given
    rg = [torch.Generator().manual_seed(s) for s in rseeds]
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    M = X.shape[0]
    Xu = X.reshape(M, K, -1) if arch.tree else np.repeat(X[:, None, :], K, axis=1)
    H = [H0.copy() for _ in range(R)]
    sg = lambda h: np.where(h >= 0, 1.0, -1.0)
    W = [sg(h) for h in H]
    for ep in range(epochs):
        gam = gamma_at(ep)
        perms = [torch.randperm(M, generator=r).numpy() for r in rg]
        for s in range(-(-M // batch)):
            order = torch.randperm(R, generator=g).tolist()
            for a in order:
                dH = np.zeros_like(H[a])
                for mu in perms[a][s * batch:(s + 1) * batch]:
                    D = y[mu] * np.einsum("kn,kn->k", W[a], Xu[mu])
                    hout = np.sign(D).sum()
                    if hout > 0:
                        continue
                    tofix = int((abs(hout) + 1) // 2)
                    cand = sorted([k for k in range(K) if D[k] <= 0], key=lambda k: (abs(D[k]), k))
                    for k in cand[:tofix]:
                        dH[k] += eta * y[mu] * Xu[mu, k]
                H[a] += dH
                W[a] = sg(H[a])
                if lam:
                    S = sum(W)
                    H[a] += lam * (np.tanh(gam * S) - W[a])
                    W[a] = sg(H[a])
    return np.stack(W)


@pytest.mark.parametrize("K,N,tree", [(3, 31, False), (1, 41, False), (3, 45, True)])
def test_coupling_zero_is_independent_plain_sgd(K, N, tree):
    X, y = random_patterns(N, 0.9, 3, K=K, tree=tree)      # too hard to solve: runs to max_epochs
    seeds = [11, 12, 13]
    r3 = replicated_sgd(X, y, K=K, tree=tree, replicas=3, batch_size=7, coupling=0.0, gamma=0.4,
                        max_iter=6, seed=5, replica_seeds=seeds)
    E = r3.steps
    assert E >= 1
    for a in range(3):
        r1 = replicated_sgd(X, y, K=K, tree=tree, replicas=1, batch_size=7, coupling=0.0, gamma=0.0,
                            max_iter=E, seed=5, replica_seeds=[seeds[a]])
        assert torch.equal(r3.replicas[a], r1.replicas[0])
        for h3, h1 in zip(r3.history, r1.history):
            assert h3["replica_errors"][a] == h1["replica_errors"][0]
        assert len(r1.history) == E + 1


def test_default_replica_seeds_route_and_generator_seed():
    X, y = random_patterns(41, 0.9, 3)
    r3 = replicated_sgd(X, y, replicas=3, batch_size=9, coupling=0.0, max_iter=4, seed=5)
    seeds = default_replica_seeds(41, seed=5, replicas=3)
    assert seeds[:2] == default_replica_seeds(41, seed=5, replicas=2)
    for a in range(3):
        r1 = replicated_sgd(X, y, replicas=1, batch_size=9, coupling=0.0, max_iter=4, seed=5,
                            replica_seeds=[seeds[a]])
        assert torch.equal(r1.replicas[0], r3.replicas[a])
    plain = replicated_sgd(X, y, replicas=1, batch_size=9, coupling=0.0, max_iter=4, seed=5)
    assert torch.equal(plain.replicas[0], r3.replicas[0])          # replica 0 needs no seeds at all
    g = replicated_sgd(X, y, replicas=3, batch_size=9, max_iter=4, seed=torch.Generator().manual_seed(5))
    i = replicated_sgd(X, y, replicas=3, batch_size=9, max_iter=4, seed=5)
    assert torch.equal(g.replicas, i.replicas) and g.history == i.history
    assert all(isinstance(h["step"], int) for h in i.history) and i.step_unit == "epoch"


@pytest.mark.parametrize("K,N,tree,lam", [(3, 21, False, 0.75), (1, 31, False, 0.6), (3, 27, True, 0.75),
                                          (5, 15, False, 0.0)])
def test_matches_sequential_numpy_reference(K, N, tree, lam):
    X, y = random_patterns(N, 0.8, 7, K=K, tree=tree)
    seeds = [21, 22, 23, 24]
    gamma = LinearDecay(0.3, 4, 0.5)                      # 0.3 + 0.05 per epoch
    r = replicated_sgd(X, y, K=K, tree=tree, replicas=4, batch_size=5, lr=2.0, coupling=lam, gamma=gamma,
                       max_iter=4, seed=9, replica_seeds=seeds)
    ref = np_reference(X.numpy(), y.numpy(), K, tree, 4, 5, 2.0, lam, lambda t: 0.3 + 0.05 * t, r.steps, 9, seeds)
    np.testing.assert_array_equal(r.replicas.numpy().reshape(ref.shape), ref)


def test_committee_solved_and_rechecked():
    K, N, solved = 3, 51, 0
    for s in range(5):
        X, y = random_patterns(N, 0.25, 100 + s, K=K)
        r = replicated_sgd(X, y, K=K, batch_size=20, max_iter=400, seed=s)
        assert r.errors == np_errors(r.weights.numpy(), X.numpy(), y.numpy(), K)
        assert r.converged == (r.errors == 0)
        assert r.weights.shape == (K, N) and r.weights.dtype == torch.int8
        assert r.replicas.shape == (7, K, N)
        h = r.history[-1]
        assert set(h) >= {"step", "gamma", "errors", "errors_min", "errors_mean", "overlap",
                          "overlap_center"}
        assert h["step"] == r.steps and len(r.history) == r.steps + 1
        assert r.step_unit == "epoch" and r.stop_reason == ("solved" if r.converged else "max_iter")
        if r.converged:
            assert min(h["errors"], h["errors_min"]) == 0
        solved += r.converged
    assert solved >= 4


def test_perceptron_and_tree():
    for s in range(3):
        X, y = random_patterns(101, 0.3, s, K=1)
        r = replicated_sgd(X, y, K=1, batch_size=20, max_iter=300, seed=s)
        assert r.converged and r.weights.shape == (101,)
        assert np_errors(r.weights.numpy(), X.numpy(), y.numpy(), 1) == 0
    X, y = random_patterns(45, 0.3, 1, K=3, tree=True)
    r = replicated_sgd(X, y, K=3, tree=True, batch_size=10, max_iter=300, seed=1)
    assert r.weights.shape == (3, 15)
    assert r.errors == np_errors(r.weights.numpy(), X.numpy(), y.numpy(), 3, tree=True)
    assert r.converged


def test_unconverged_returns_best_and_gamma_schedule():
    X, y = random_patterns(21, 2.0, 0, K=1)
    r = replicated_sgd(X, y, K=1, replicas=3, batch_size=10, gamma=LinearDecay(0.1, 10, 0.2), max_iter=5)
    assert not r.converged and r.steps == 5 and r.stop_reason == "max_iter"
    assert r.errors == min(r.history[-1]["errors"], r.history[-1]["errors_min"])
    assert r.errors == np_errors(r.weights.numpy(), X.numpy(), y.numpy(), 1)
    assert [h["gamma"] for h in r.history[1:]] == pytest.approx([0.1 + 0.01 * e for e in range(5)])
    assert [h["step"] for h in r.history] == list(range(6))
    g = replicated_sgd(X, y, K=1, replicas=3, batch_size=10, gamma=Geometric(0.1, 2.0), max_iter=3)
    assert [h["gamma"] for h in g.history[1:]] == pytest.approx([0.1, 0.2, 0.4])


def test_bad_input_names_argument():
    X, y = random_patterns(21, 0.5, 0, K=3)
    cases = [
        (dict(X=X * 2), "X"), (dict(X=X[:, :20]), "X"), (dict(y=y[:-1]), "y"), (dict(y=y * 0), "y"),
        (dict(K=2), "K"), (dict(replicas=0), "replicas"), (dict(batch_size=0), "batch_size"),
        (dict(lr=0.0), "lr"), (dict(coupling=-1.0), "coupling"), (dict(gamma=float("nan")), "gamma"),
        (dict(gamma=-0.1), "gamma"), (dict(gamma=LinearDecay(0.1, 2, -1.0), max_iter=5), "gamma"),
        (dict(max_iter=-1), "max_iter"), (dict(replica_seeds=[1]), "replica_seeds"),
        (dict(seed=-1), "seed"), (dict(progress="yes"), "progress"),
    ]
    for kw, name in cases:
        args = dict(X=X, y=y, K=3)
        args.update(kw)
        Xa, ya = args.pop("X"), args.pop("y")
        with pytest.raises(ValueError, match=rf"^{name}:"):
            replicated_sgd(Xa, ya, **args)

"""Replicated simulated annealing on binary perceptrons and committee machines."""

import numpy as np
import pytest
import torch

from binary_check import np_errors
from thermolearn.binary import (
    Architecture,
    energies,
    energy,
    errors,
    hidden_fields,
    random_patterns,
)
from thermolearn.binary.rsa import (
    _accept_committee,
    _de_committee,
    _de_perceptron,
    _initial_fields,
    replicated_annealing,
)
from thermolearn.schedules import Geometric, LinearDecay
from thermolearn.seeding import spawn_seeds


@pytest.mark.parametrize("replicas,gamma", [(1, 0.0), (3, 0.0), (3, 0.5)])
def test_incremental_fields_match_recomputation(replicas, gamma):
    # unsolvable load and low, slowly growing beta: many accepted moves, no early stop
    X, y = random_patterns(51, 1.5, seed=3)
    r = replicated_annealing(X, y, replicas=replicas, beta=Geometric(0.3, 1.0001), gamma=Geometric(gamma, 1.0001),
                             max_iter=60_000, seed=5, history_every=7_000, debug=True)
    assert r.steps == 60_000 and r.stop_reason == "max_iter" and r.step_unit == "move"
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


@pytest.mark.parametrize("N,K,tree", [(51, 1, False), (45, 3, False), (45, 3, True)])
def test_gamma_zero_equals_independent_runs(N, K, tree):
    X, y = random_patterns(N, 1.5, seed=4, K=K, tree=tree)                  # never solved
    seeds = spawn_seeds(11, 3)
    kw = dict(K=K, tree=tree, beta=Geometric(0.5, 1.0003), history_every=5_000, debug=True)
    rep = replicated_annealing(X, y, replicas=3, gamma=Geometric(0.0, 1.001), max_iter=30_000, seed=11, **kw)
    assert rep.stop_reason == "max_iter"
    for a in range(3):
        n_a = int(rep.debug["proposals"][a])
        one = replicated_annealing(X, y, replicas=1, gamma=0.0, max_iter=n_a, replica_seeds=[seeds[a]], **kw)
        assert torch.equal(one.replicas[0], rep.replicas[a])
        assert one.debug["energies"][0] == rep.debug["energies"][a]
        assert one.debug["accepted"][0] == rep.debug["accepted"][a]
        assert one.debug["beta"][0] == rep.debug["beta"][a]
    # and gamma > 0 does couple them
    coupled = replicated_annealing(X, y, replicas=3, gamma=2.0, max_iter=30_000, seed=11, **kw)
    assert not torch.equal(coupled.replicas, rep.replicas)
    # replica 0 of any run is the one-replica run with the same seed (spawned seeds do not
    # depend on how many are asked for)
    first = replicated_annealing(X, y, replicas=1, gamma=0.0, max_iter=int(rep.debug["proposals"][0]),
                                 seed=11, **kw)
    assert torch.equal(first.replicas[0], rep.replicas[0])


def test_seed_reproducible():
    X, y = random_patterns(51, 1.0, seed=2)
    a = replicated_annealing(X, y, max_iter=20_000, seed=3)
    b = replicated_annealing(X, y, max_iter=20_000, seed=torch.Generator().manual_seed(3))
    c = replicated_annealing(X, y, max_iter=20_000, seed=4)
    assert torch.equal(a.replicas, b.replicas) and a.steps == b.steps and a.history == b.history
    assert not torch.equal(a.replicas, c.replicas)


@pytest.mark.parametrize("N,replicas,gamma", [(51, 3, 0.1), (101, 3, 0.1), (101, 1, 0.0), (101, 5, 0.3)])
def test_solves_small_perceptron(N, replicas, gamma):
    X, y = random_patterns(N, 0.3, seed=N + replicas)
    r = replicated_annealing(X, y, replicas=replicas, gamma=gamma, max_iter=2_000_000, seed=1)
    assert r.converged and r.stop_reason == "solved"
    assert r.errors == 0 and r.energy == 0
    assert np_errors(r.weights.numpy(), X.numpy(), y.numpy()) == 0
    assert r.weights.dtype == torch.int8 and r.weights.shape == (N,)
    assert r.replicas.shape == (replicas, N)
    assert r.history and r.history[-1]["energy_min"] == 0


def test_patience_stops():
    X, y = random_patterns(51, 2.0, seed=1)
    r = replicated_annealing(X, y, beta=5.0, gamma=0.0, max_iter=10_000_000, patience=2_000, seed=0)
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
    for name, val in [("replicas", 0), ("beta", -1.0), ("beta", float("nan")), ("beta", 0.0),
                      ("beta", Geometric(0.0, 1.01)), ("beta", LinearDecay(1.0, 10)), ("beta", lambda t: 1.0),
                      ("beta", "hot"), ("gamma", -0.1), ("gamma", LinearDecay(0.1, 10, 1.0)),
                      ("max_iter", 0), ("patience", 0), ("history_every", 1.5), ("debug", 1),
                      ("replica_seeds", [1, 2]), ("progress", None)]:
        with pytest.raises(ValueError, match=f"^{name}:"):
            replicated_annealing(X, y, **{name: val})
    with pytest.raises(ValueError, match="^seed:"):
        replicated_annealing(X, y, replicas=3, seed=[1, 2, 3])
    with pytest.raises(ValueError, match="^seed:"):
        replicated_annealing(X, y, seed=-1)


# -- committee machines ----------------------------------------------------------------------------

def np_committee_errors(W, X, y, tree):
    """Independent NumPy error count of a committee machine W (K, n)."""
    W, X, y = (np.asarray(t, dtype=np.int64) for t in (W, X, y))
    K, n = W.shape
    if tree:
        h = np.stack([X[:, k * n:(k + 1) * n] @ W[k] for k in range(K)], axis=1)
    else:
        h = X @ W.T
    out = np.sign(np.sign(h).sum(1))
    return int((out != y).sum())


def _state(N, K, tree, alpha, seed):
    """A random committee state in the kernel's layout: XyT, W (1, K, n), Delta, Med, Sub."""
    arch = Architecture(N, K, tree)
    X, y = random_patterns(N, alpha, seed=seed, K=K, tree=tree)
    XyT = np.ascontiguousarray((X.numpy() * y.numpy()[:, None]).T.astype(np.int8))
    W = arch.random_weights(seed + 1).numpy().reshape(1, K, arch.n_per_unit)
    D = _initial_fields(W, XyT, arch)
    srt = np.sort(D, axis=1)
    med = srt[:, (K + 1) // 2 - 1].astype(np.int16)
    sub = srt[:, max((K - 1) // 2 - 1, 0)].astype(np.int16)
    return arch, X, y, XyT, W, D.astype(np.int16), med, sub


@pytest.mark.parametrize("N,K,tree,M", [(5, 5, False, 40), (15, 5, True, 40), (7, 7, False, 40),
                                        (9, 3, False, 40), (21, 7, True, 40), (11, 1, False, 40),
                                        (3, 1, False, 33_000), (3, 3, False, 33_000)])
def test_energy_change_and_update_equal_brute_force(N, K, tree, M):
    # small n: many tied fields, so the order-statistic rules meet every tie case;
    # M >= 2^15 takes the 32-bit summation path
    arch, X, y, XyT, W, D, med, sub = _state(N, K, tree, M / arch_weights(N, K, tree), seed=N + K)
    assert X.shape[0] == M
    e0 = int(energy(torch.from_numpy(W[0].reshape(arch.weight_shape)), X, y, K))
    off = arch.n_per_unit if arch.tree else 0
    for k in range(K):
        for i in range(arch.n_per_unit):
            w = W[0, k, i]
            c = k * off + i
            V = W[0].copy()
            V[k, i] = -w
            want = int(energy(torch.from_numpy(V.reshape(arch.weight_shape)), X, y, K)) - e0
            if K == 1:
                assert _de_perceptron(XyT, c, D, 0, w) == want
                continue
            assert _de_committee(XyT, c, D, 0, k, med, sub, w) == want
            # the acceptance update gives the recomputed fields and order statistics
            D2, med2, sub2 = D.copy(), med.copy(), sub.copy()
            scratch = np.zeros(D.shape[2], np.int16), np.zeros(D.shape[2], np.int16)
            _accept_committee(XyT, c, D2, 0, k, med2, sub2, w, *scratch)
            ref = _initial_fields(V[None], XyT, arch)
            srt = np.sort(ref, axis=1)
            assert np.array_equal(D2, ref)
            assert np.array_equal(med2[0], srt[0, (K + 1) // 2 - 1])
            assert np.array_equal(sub2[0], srt[0, (K - 1) // 2 - 1])


def arch_weights(N, K, tree):
    return Architecture(N, K, tree).n_weights


@pytest.mark.parametrize("N,K,tree", [(21, 3, False), (45, 3, True), (25, 5, True), (15, 5, False)])
@pytest.mark.parametrize("replicas,gamma", [(1, 0.0), (3, 0.5)])
def test_committee_fields_match_recomputation(N, K, tree, replicas, gamma):
    X, y = random_patterns(N, 1.5, seed=3, K=K, tree=tree)                # unsolvable load
    r = replicated_annealing(X, y, K=K, tree=tree, replicas=replicas, beta=Geometric(0.3, 1.0001),
                             gamma=Geometric(gamma, 1.0001), max_iter=40_000, seed=5,
                             history_every=5_000, debug=True)
    assert r.steps == 40_000 and r.stop_reason == "max_iter"
    assert r.debug["accepted"].sum() > 5_000
    Wr = r.replicas
    n = N // K if tree else N
    assert Wr.shape == (replicas, K, n) and Wr.dtype == torch.int8 and r.weights.shape == (K, n)
    ref = (hidden_fields(Wr, X, K).long() * y.long()[:, None]).numpy()  # (replicas, M, K)
    assert np.array_equal(r.debug["delta"], ref)
    srt = np.sort(ref, axis=-1)
    assert np.array_equal(r.debug["median"], srt[..., (K + 1) // 2 - 1])
    assert np.array_equal(r.debug["sub"], srt[..., (K - 1) // 2 - 1])
    ref_E = energies(Wr, X, y, K).sum(-1).numpy()
    assert np.array_equal(r.debug["energies"], ref_E)
    assert np.array_equal(r.debug["S"], Wr.long().sum(0).numpy())
    h = r.history[-1]
    assert h["energy_min"] == ref_E.min()
    assert h["errors_min"] == int(errors(Wr, X, y, K).min())
    assert r.errors == np_committee_errors(r.weights, X, y, tree)
    assert r.energy == int(energy(r.weights, X, y, K)) == ref_E.min()
    if replicas > 1:
        flat = Wr.reshape(replicas, -1).double()
        q = (flat @ flat.T / flat.shape[1])[np.triu_indices(replicas, 1)].mean()
        assert h["overlap"] == pytest.approx(float(q))
    assert np.allclose(r.debug["gamma"], gamma * 1.0001 ** r.debug["accepted"])


@pytest.mark.parametrize("N,K,tree,replicas,gamma", [(21, 3, False, 1, 0.0), (21, 3, False, 3, 0.1),
                                                     (45, 3, True, 3, 0.1), (45, 5, True, 5, 0.3),
                                                     (51, 3, False, 5, 0.3)])
def test_solves_small_committee(N, K, tree, replicas, gamma):
    X, y = random_patterns(N, 0.3, seed=N + K + replicas, K=K, tree=tree)
    r = replicated_annealing(X, y, K=K, tree=tree, replicas=replicas, gamma=gamma,
                             max_iter=3_000_000, seed=1)
    assert r.converged and r.stop_reason == "solved"
    assert r.errors == 0 and r.energy == 0
    assert np_committee_errors(r.weights, X, y, tree) == 0
    n = N // K if tree else N
    assert r.weights.shape == (K, n) and r.replicas.shape == (replicas, K, n)
    assert r.history[-1]["energy_min"] == 0


def test_perceptron_ignores_tree():
    X, y = random_patterns(51, 1.0, seed=2)
    a = replicated_annealing(X, y, max_iter=20_000, seed=3)
    b = replicated_annealing(X, y, max_iter=20_000, seed=3, tree=True)
    assert torch.equal(a.replicas, b.replicas) and a.replicas.shape == (3, 51)


def test_committee_bad_input_names_argument():
    X, y = random_patterns(45, 0.3, seed=0, K=3, tree=True)
    with pytest.raises(ValueError, match="^K:.*odd"):
        replicated_annealing(X, y, K=4)
    with pytest.raises(ValueError, match="^K:"):
        replicated_annealing(X, y, K=0)
    with pytest.raises(ValueError, match="^X:.*N = 44.*odd"):
        replicated_annealing(X[:, :44], y, K=3)
    with pytest.raises(ValueError, match="^X:.*divisible by K = 5"):
        replicated_annealing(X[:, :43], y, K=5, tree=True)
    with pytest.raises(ValueError, match="^X:.*N/K"):
        replicated_annealing(X[:, :42], y, K=3, tree=True)          # N/K = 14 is even
    with pytest.raises(ValueError, match="^tree:"):
        replicated_annealing(X, y, K=3, tree="yes")


def test_kernel_sees_only_c_contiguous_arrays():
    # a strided (non-C) array would compile a second, unvectorized kernel (many times slower)
    from thermolearn.binary.rsa import _anneal_kernel
    for N, K, tree in [(51, 1, False), (21, 3, False), (45, 3, True), (25, 5, True)]:
        X, y = random_patterns(N, 0.5, seed=0, K=K, tree=tree)
        replicated_annealing(X, y, K=K, tree=tree, replicas=2, max_iter=1_000, seed=0)
    sigs = _anneal_kernel.signatures
    assert sigs
    for sig in sigs:
        layouts = [t.layout for t in sig if hasattr(t, "layout")]
        assert layouts and all(lay == "C" for lay in layouts), sig


def test_history_overlap_with_the_reference():
    X, y = random_patterns(101, 0.3, seed=2)
    free = replicated_annealing(X, y, replicas=3, gamma=0.0, max_iter=20_000, history_every=5_000, seed=1)
    assert all(h["overlap_center"] == 0.0 for h in free.history)
    tied = replicated_annealing(X, y, replicas=3, gamma=Geometric(0.5, 1.001), beta=Geometric(0.5, 1.0005),
                                max_iter=200_000, history_every=20_000, seed=1)
    for h in tied.history:
        assert -1.0 <= h["overlap_center"] <= 1.0 and isinstance(h["step"], int)
    # recomputed from the final replicas with the history's gamma (the last chunk's mean)
    S = tied.replicas.to(torch.int64).sum(0).double()
    expect = float((torch.tanh(tied.history[-1]["gamma"] * S) * S).sum()) / (3 * 101)
    assert tied.history[-1]["overlap_center"] == pytest.approx(expect, rel=1e-9)

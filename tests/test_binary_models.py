"""Binary perceptron / committee machine foundation: energies, errors, problems, checks."""

import itertools

import numpy as np
import pytest
import torch

from thermolearn.binary import (
    Architecture,
    energies,
    energy,
    errors,
    generalization_error,
    hidden_fields,
    output,
    random_patterns,
    teacher_student,
)

# (N, K, tree): perceptrons and committees with at most 9 weights, so that all 2^9 weight
# configurations can be enumerated.
TINY = [(1, 1, False), (5, 1, False), (9, 1, False), (3, 3, False), (9, 3, True), (5, 5, True),
        (1, 3, False), (3, 3, True)]


def all_weights(shape):
    n = int(np.prod(shape))
    return np.array(list(itertools.product([-1, 1], repeat=n)), dtype=np.int64).reshape((-1,) + shape)


def np_output(W, x, tree):
    """Plain NumPy output of one network on one pattern (independent of the torch code)."""
    if W.ndim == 1:
        return 1 if W @ x > 0 else -1
    K, n = W.shape
    s = 0
    for k in range(K):
        xk = x[k * n:(k + 1) * n] if tree else x
        s += 1 if W[k] @ xk > 0 else -1
    return 1 if s > 0 else -1


def brute_min_flips(W, x, label, tree):
    """min Hamming distance from W to any configuration that classifies (x, label) correctly."""
    best = None
    for V in all_weights(W.shape):
        if np_output(V, x, tree) == label:
            d = int((V != W).sum())
            best = d if best is None else min(best, d)
    return best


@pytest.mark.parametrize("N,K,tree", TINY)
def test_energies_equal_brute_force_minimum_flips(N, K, tree):
    arch = Architecture(N, K, tree)
    assert arch.n_weights <= 9
    X, y = random_patterns(N, 12 / arch.n_weights, seed=N * 10 + K, K=K, tree=tree)
    for seed in range(4):
        W = arch.random_weights(seed)
        E = energies(W, X, y, K=K)
        Wn, Xn, yn = W.numpy().astype(np.int64), X.numpy().astype(np.int64), y.numpy().astype(np.int64)
        want = [0 if np_output(Wn, Xn[m], tree) == yn[m] else brute_min_flips(Wn, Xn[m], yn[m], tree)
                for m in range(len(yn))]
        assert E.tolist() == want
        assert int(energy(W, X, y, K=K)) == sum(want)
        # zero energy exactly on correctly classified patterns
        assert int((E > 0).sum()) == int(errors(W, X, y, K=K))


@pytest.mark.parametrize("N,K,tree", [(21, 1, False), (7, 3, False), (15, 5, True), (11, 5, False)])
@pytest.mark.parametrize("dtype", [torch.int8, torch.float32, torch.float64])
def test_errors_and_outputs_match_independent_loop(N, K, tree, dtype):
    arch = Architecture(N, K, tree)
    X, y = random_patterns(N, 1.3, seed=3, K=K, tree=tree, dtype=dtype)
    W = arch.random_weights(7, replicas=4, dtype=dtype)
    err = errors(W, X, y, K=K)
    out = output(W, X, K=K)
    assert err.shape == (4,) and err.dtype == torch.int64 and out.dtype == torch.int8
    Xn, yn = X.numpy().astype(np.int64), y.numpy().astype(np.int64)
    for r in range(4):
        Wn = W[r].numpy().astype(np.int64)
        outs = [np_output(Wn, Xn[m], tree) for m in range(len(yn))]
        assert out[r].tolist() == outs
        assert int(err[r]) == sum(o != t for o, t in zip(outs, yn))
        assert int(errors(W[r], X, y, K=K)) == int(err[r])  # unbatched: a 0-d tensor
    assert errors(W[0], X, y, K=K).shape == ()


@pytest.mark.parametrize("N,K,tree", [(31, 1, False), (15, 3, False), (45, 5, True), (21, 7, False)])
def test_teacher_has_zero_training_errors(N, K, tree):
    X, y, teacher = teacher_student(N, 2.0, seed=11, K=K, tree=tree)
    arch = Architecture(N, K, tree)
    assert teacher.shape == arch.weight_shape
    assert X.shape == (round(2.0 * arch.n_weights), N) and y.shape == (X.shape[0],)
    assert int(errors(teacher, X, y, K=K)) == 0
    assert int(energy(teacher, X, y, K=K)) == 0
    # labels are not trivial
    assert 0 < int((y > 0).sum()) < len(y)


def test_committee_hand_computed_case():
    # fully connected, K = 3, N = 3; pattern xi = (1, 1, -1)
    W = torch.tensor([[1, 1, 1],      # field  1  -> +1
                      [1, -1, 1],     # field -1  -> -1
                      [-1, 1, 1]],    # field -1  -> -1
                     dtype=torch.int8)
    X = torch.tensor([[1, 1, -1], [1, 1, 1]], dtype=torch.int8)
    # pattern 2: fields 3, 1, 1 -> output +1
    assert hidden_fields(W, X, K=3).tolist() == [[1, -1, -1], [3, 1, 1]]
    assert output(W, X, K=3).tolist() == [-1, 1]
    y = torch.tensor([1, -1], dtype=torch.int8)
    assert int(errors(W, X, y, K=3)) == 2
    # pattern 1 (y=+1): h_out = -1, fix 1 unit, wrong units have |Delta| = 1, cost 1 -> E = 1.
    # pattern 2 (y=-1): Deltas -3, -1, -1, h_out = -3, fix 2 units: the two |Delta|=1 ones -> 1 + 1.
    assert energies(W, X, y, K=3).tolist() == [1, 2]
    # tree-like, K = 3, blocks of 1: output is the majority of the signs of the block products
    Wt = torch.tensor([[1], [-1], [-1]], dtype=torch.int8)
    Xt = torch.tensor([[1, -1, 1], [1, 1, 1], [-1, -1, 1]])
    assert hidden_fields(Wt, Xt, K=3).tolist() == [[1, 1, -1], [1, -1, -1], [-1, 1, -1]]
    assert output(Wt, Xt, K=3).tolist() == [1, -1, -1]


def test_generalization_error():
    X, y, T = teacher_student(101, 0.5, seed=0)
    assert float(generalization_error(T, T, 2000, seed=1)) == 0.0
    assert float(generalization_error(-T, T, 2000, seed=1)) == 1.0
    W = Architecture(101).random_weights(5, replicas=3)
    eg = generalization_error(W, T, 20000, seed=2, chunk=3000)
    assert eg.shape == (3,) and eg.dtype == torch.float64
    # a random student: eps = arccos(q)/pi with q = W.T/N, standard error < 0.004
    q = (W.double() @ T.double()) / 101
    assert torch.allclose(eg, torch.arccos(q) / torch.pi, atol=0.02)
    assert torch.equal(eg, generalization_error(W, T, 20000, seed=2))       # chunking is invisible
    # committee, tree-like
    X, y, T = teacher_student(15, 1.0, seed=4, K=3, tree=True)
    assert float(generalization_error(T, T, 500, seed=0, K=3, tree=True)) == 0.0
    assert float(generalization_error(-T, T, 500, seed=0, K=3, tree=True)) == 1.0


def test_seeds_are_explicit_and_reproducible():
    a = random_patterns(11, 0.7, seed=5)
    b = random_patterns(11, 0.7, seed=5)
    c = random_patterns(11, 0.7, seed=6)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0])
    assert a[0].shape == (8, 11) and a[0].dtype == torch.int8  # M = round(0.7 * 11) = 8
    # fully connected committee: alpha counts patterns per weight (N*K weights)
    X, _ = random_patterns(321, 0.5, seed=0, K=5)
    assert X.shape == (802, 321)
    t1, t2 = teacher_student(9, 1.0, seed=3, K=3), teacher_student(9, 1.0, seed=3, K=3)
    assert all(torch.equal(u, v) for u, v in zip(t1, t2))


def test_numpy_and_list_inputs():
    X, y = random_patterns(7, 1.0, seed=0)
    W = Architecture(7).random_weights(1)
    n = int(errors(W, X, y))
    assert int(errors(W.numpy(), X.numpy().astype(np.float64), y.tolist())) == n


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_gpu_matches_cpu():
    X, y = random_patterns(25, 1.0, seed=0, K=5, tree=True)
    W = Architecture(25, 5, True).random_weights(1, replicas=3)
    assert torch.equal(energies(W, X, y, K=5), energies(W.cuda(), X.cuda(), y.cuda(), K=5).cpu())
    assert torch.equal(errors(W, X, y, K=5), errors(W.cuda(), X.cuda(), y.cuda(), K=5).cpu())


# -- bad input --------------------------------------------------------------------------------

def _raises(name, fn, *args, **kw):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        fn(*args, **kw)


def test_bad_inputs_name_the_argument():
    X, y = random_patterns(7, 1.0, seed=0)
    W = Architecture(7).random_weights(0)
    # alpha <= 0, or rounding to zero patterns
    for alpha in (0, -0.5, float("nan"), float("inf"), "a", 0.01):
        _raises("alpha", random_patterns, 7, alpha, seed=0)
        _raises("alpha", teacher_student, 7, alpha, seed=0)
    # even N where odd is required
    _raises("N", random_patterns, 8, 1.0, seed=0)
    _raises("N", teacher_student, 8, 1.0, seed=0, K=3)
    _raises("N", random_patterns, 12, 1.0, seed=0, K=3, tree=True)        # N/K = 4 even
    _raises("N", random_patterns, 10, 1.0, seed=0, K=3, tree=True)        # not divisible
    _raises("X", errors, torch.ones(8), torch.ones(3, 8), torch.ones(3))
    _raises("N", Architecture, 0)
    # K even / not positive
    for K in (2, 0, -1, 1.0, True):
        _raises("K", random_patterns, 7, 1.0, seed=0, K=K)
        _raises("K", errors, W, X, y, K=K)
    _raises("K", generalization_error, W, W, 10, 0, K=2)
    # non +-1 entries
    X0 = X.clone()
    X0[0, 0] = 0
    _raises("X", errors, W, X0, y)
    Xf = X.float()
    Xf[1, 2] = 0.5
    _raises("X", energies, W, Xf, y)
    Xn = X.double()
    Xn[0, 0] = float("nan")
    _raises("X", output, W, Xn)
    _raises("y", errors, W, X, y * 2)
    _raises("W", errors, W * 0, X, y)
    _raises("W", errors, torch.ones(7, dtype=torch.bool), X, y)
    _raises("teacher", generalization_error, W, W * 3, 10, 0)
    # mismatched shapes
    _raises("y", errors, W, X, y[:-1])
    _raises("y", errors, W, X, y.reshape(-1, 1))
    _raises("W", errors, W[:-1], X, y)
    _raises("X", errors, W, X[0], y)
    _raises("W", errors, torch.ones(3, 5), torch.ones(2, 7), torch.ones(2), K=3)  # neither 7 nor 7/3
    _raises("W", errors, torch.ones(5, 7), torch.ones(2, 7), torch.ones(2), K=3)  # 5 units, not 3
    _raises("W", generalization_error, torch.ones(2, 5), W, 10, 0)
    _raises("teacher", generalization_error, torch.ones(3, 7), torch.ones(3, 7), 10, 0)
    _raises("teacher", generalization_error, torch.ones(3, 4), torch.ones(3, 4), 10, 0, K=3, tree=True)
    _raises("n_test", generalization_error, W, W, 0, 0)
    _raises("replicas", Architecture(7).random_weights, 0, replicas=0)
    _raises("tree", Architecture, 9, 3, "yes")
    with pytest.raises(TypeError, match="^X:"):
        errors(W, [["a"] * 7], [1])

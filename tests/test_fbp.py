"""Focusing BP on the binary perceptron (thermolearn.binary.fbp)."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.special import erfc

from thermolearn.binary import focusing_bp, random_patterns, teacher_student
from thermolearn.binary.fbp import log_H, log_H_derivative, perceptron_messages, protocol_schedule


def numpy_errors(W, X, y):
    """Independent error count: sign(W . xi) != y, in NumPy integers."""
    W = np.asarray(W, dtype=np.int64)
    X = np.asarray(X, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    assert set(np.unique(W)) <= {-1, 1}
    return int(((X @ W) * y <= 0).sum())


def test_fbp_solves_most_random_instances():
    N, alpha, solved = 201, 0.4, 0
    for seed in range(5):
        X, y = random_patterns(N, alpha, seed)
        res = focusing_bp(X, y, seed=seed)
        assert res.weights.shape == (N,) and res.weights.dtype == torch.int8
        assert res.errors == numpy_errors(res.weights, X, y)
        solved += res.converged
        if res.converged:
            assert res.errors == 0 and res.energy == 0
        h = res.history[-1]
        assert {"gamma", "y", "iterations", "bp_converged", "errors", "polarization", "q"} <= set(h)
        assert h["errors"] == res.errors
    assert solved >= 4  # measured: 5 of 5


@pytest.mark.parametrize("protocol", ["standard", "scoping", [(0.0, 1.0), (0.5, 2.0), (1.0, 3.0),
                                                            (2.0, 5.0), (math.inf, 10.0)] * 4])
def test_other_protocols_solve(protocol):
    X, y = random_patterns(101, 0.3, 1)
    res = focusing_bp(X, y, protocol=protocol, steps=50, seed=1)
    assert res.converged and numpy_errors(res.weights, X, y) == 0


def test_teacher_student_zero_training_errors():
    X, y, teacher = teacher_student(201, 0.3, 3)
    res = focusing_bp(X, y, seed=3)
    assert res.converged and res.errors == 0
    assert numpy_errors(res.weights, X, y) == 0


def test_protocol_schedules():
    pr = protocol_schedule("pseudo-reinforcement", 4)
    rho = np.array([0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose([g for g, _ in pr], np.arctanh(np.sqrt(rho)))
    np.testing.assert_allclose([y for _, y in pr], (2 - rho) / (1 - rho))
    st = protocol_schedule("standard", 4)
    assert all(g == math.inf for g, _ in st)
    np.testing.assert_allclose([y for _, y in st], 1 / (1 - rho))
    assert all(y == 7.0 for _, y in protocol_schedule("scoping", 4))


def test_log_H_stable_and_matches_erfc():
    z = torch.tensor([-40.0, -5.0, -1.0, 0.0, 1.0, 5.0, 30.0, 60.0], dtype=torch.float64)
    got = log_H(z)
    assert torch.isfinite(got).all()
    ref = np.log(erfc(z[:6].numpy() / np.sqrt(2)) / 2)
    np.testing.assert_allclose(got[:6].numpy(), ref, rtol=1e-9, atol=1e-300)  # np.log(1 - tiny) loses digits
    # asymptotics at large z: log H(z) ~ -z^2/2 - log(z sqrt(2 pi))
    assert abs(float(got[-1]) - (-60.0 ** 2 / 2 - math.log(60 * math.sqrt(2 * math.pi)))) < 1e-3
    zz = z.clone().requires_grad_(True)
    log_H(zz).sum().backward()
    np.testing.assert_allclose(log_H_derivative(z).numpy(), zz.grad.numpy(), rtol=1e-8)


def test_perceptron_message_equals_direct_formula():
    rng = np.random.default_rng(0)
    M, N = 4, 9
    Xy = rng.choice([-1.0, 1.0], (M, N))
    Mc = np.tanh(rng.normal(size=(M, N)))
    got = perceptron_messages(torch.tensor(Xy), torch.tensor(Mc)).numpy()
    for mu in range(M):
        for i in range(N):
            others = [j for j in range(N) if j != i]
            c = sum(Xy[mu, j] * Mc[mu, j] for j in others)
            s = math.sqrt(sum(1 - Mc[mu, j] ** 2 for j in others))
            # P(w_i) ~ P(c + x w_i + noise > 0) = H(-(c + x w_i)/s) = erfc(-(c + x w_i)/(s sqrt 2))/2
            p_plus = erfc(-(c + Xy[mu, i]) / (s * math.sqrt(2))) / 2
            p_minus = erfc(-(c - Xy[mu, i]) / (s * math.sqrt(2))) / 2
            assert got[mu, i] == pytest.approx(0.5 * math.log(p_plus / p_minus), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("N,M", [(7, 3), (11, 4)])
def test_bp_marginals_at_gamma_zero_close_to_exact(N, M):
    # plain BP (no focusing) against exact marginals of the uniform measure over solutions.
    # The Gaussian approximation is crude at small N: measured max |m - m_exact| <= 0.16 on these
    # seeds, correlation >= 0.97; the assertions leave some room.
    Ws = np.array(list(itertools.product([-1, 1], repeat=N)))
    for seed in range(3):
        rng = np.random.default_rng(seed)
        X, y = rng.choice([-1, 1], (M, N)), rng.choice([-1, 1], M)
        ok = ((Ws @ X.T) * y > 0).all(1)
        m_exact = Ws[ok].mean(0)
        res = focusing_bp(X, y, protocol=[(0.0, 1.0)], max_iters=2000, tol=1e-10, seed=seed)
        h = res.history[-1]
        assert h["bp_converged"]
        m = h["marginals"].numpy()
        assert np.abs(m - m_exact).max() < 0.25
        assert np.corrcoef(m, m_exact)[0, 1] > 0.95
        strong = np.abs(m_exact) > 0.3
        assert (np.sign(m[strong]) == np.sign(m_exact[strong])).all()


def test_gamma_zero_is_plain_bp_independent_of_y():
    X, y = random_patterns(51, 0.3, 2)
    a = focusing_bp(X, y, protocol=[(0.0, 1.0)], tol=1e-9, max_iters=500)
    b = focusing_bp(X, y, protocol=[(0.0, 9.0)], tol=1e-9, max_iters=500)
    torch.testing.assert_close(a.history[-1]["marginals"], b.history[-1]["marginals"])


def test_bad_inputs_name_the_argument():
    X, y = random_patterns(21, 0.3, 0)
    with pytest.raises(ValueError, match="^X:"):
        focusing_bp(X * 2, y)
    with pytest.raises(ValueError, match="^y:"):
        focusing_bp(X, y[:-1])
    with pytest.raises(ValueError, match="^y:"):
        focusing_bp(X, torch.zeros_like(y))
    with pytest.raises(ValueError, match="^X:"):
        focusing_bp(X[:, :20], y)                      # even N
    with pytest.raises(ValueError, match="^X:"):
        focusing_bp(X[0], y)                           # 1-d X
    with pytest.raises(ValueError, match="^K:"):
        focusing_bp(X, y, K=2)
    with pytest.raises(NotImplementedError, match="K"):
        focusing_bp(X, y, K=3)
    with pytest.raises(ValueError, match="^protocol:"):
        focusing_bp(X, y, protocol="annealing")
    with pytest.raises(ValueError, match="^protocol:"):
        focusing_bp(X, y, protocol=[(1.0, 0.5)])
    with pytest.raises(ValueError, match="^damping:"):
        focusing_bp(X, y, damping=1.0)
    with pytest.raises(ValueError, match="^steps:"):
        focusing_bp(X, y, steps=0)
    with pytest.raises(ValueError, match="^max_iters:"):
        focusing_bp(X, y, max_iters=0)

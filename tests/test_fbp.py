"""Focusing BP on the binary perceptron and committee machines (thermolearn.binary.fbp)."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.special import erfc

from binary_check import np_errors
from thermolearn.binary import focusing_bp, random_patterns, teacher_student
from thermolearn.binary.fbp import (
    _output_terms,
    factor_messages,
    log_H,
    log_H_derivative,
    perceptron_messages,
    protocol_schedules,
)
from thermolearn.schedules import LinearDecay, Table


# the default protocol (100 steps, 200 sweeps each) in the slow suite; a 40-step protocol with at
# most 50 sweeps per step in the fast one (measured: 5 of 5 solved either way, 5x fewer sweeps)
@pytest.mark.parametrize("messages,budget", [
    ("full", {"steps": 40, "max_iter": 50}), ("amp", {"steps": 40, "max_iter": 50}),
    pytest.param("full", {}, marks=pytest.mark.slow), pytest.param("amp", {}, marks=pytest.mark.slow)])
def test_fbp_solves_most_random_instances(messages, budget):
    N, alpha, solved = 201, 0.4, 0
    for seed in range(5):
        X, y = random_patterns(N, alpha, seed)
        res = focusing_bp(X, y, seed=seed, messages=messages, **budget)
        assert res.weights.shape == (N,) and res.weights.dtype == torch.int8
        assert res.errors == np_errors(res.weights, X, y)
        solved += res.converged
        if res.converged:
            assert res.errors == 0 and res.energy == 0
        h = res.history[-1]
        assert res.step_unit == "sweep" and h["step"] == res.steps
        assert [r["step"] for r in res.history] == list(np.cumsum([r["iterations"] for r in res.history]))
        assert {"gamma", "replicas", "protocol_step", "iterations", "bp_converged", "errors", "polarization", "q_self",
                "overlap", "distance", "replica_overlap", "free_entropy", "local_entropy"} <= set(h)
        assert h["errors"] == res.errors
    assert solved >= 4  # measured: 5 of 5


_PAIRS = [(0.0, 1.0), (0.5, 2.0), (1.0, 3.0), (2.0, 5.0), (math.inf, 10.0)] * 4


@pytest.mark.parametrize("kw", [dict(protocol="standard"), dict(protocol="scoping"),
                                dict(protocol="scoping", replicas=5.0),
                                dict(protocol=None, gamma=Table([g for g, _ in _PAIRS]),
                                     replicas=Table([yy for _, yy in _PAIRS]), steps=len(_PAIRS)),
                                dict(protocol=None, gamma=LinearDecay(0.0, 30, 3.0), replicas=7.0)])
def test_other_protocols_solve(kw):
    X, y = random_patterns(101, 0.3, 1)
    res = focusing_bp(X, y, **{"steps": 50, **kw}, seed=1)
    assert res.converged and np_errors(res.weights, X, y) == 0 and res.stop_reason == "solved"
    if "replicas" in kw and not isinstance(kw["replicas"], Table):
        assert all(h["replicas"] == kw["replicas"] for h in res.history)


def test_teacher_student_zero_training_errors():
    X, y, teacher = teacher_student(201, 0.3, 3)
    res = focusing_bp(X, y, seed=3)
    assert res.converged and res.errors == 0
    assert np_errors(res.weights, X, y) == 0


def test_protocol_schedules():
    gam, rep = protocol_schedules("pseudo-reinforcement", 4)
    rho = np.array([0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(gam.values(4), np.arctanh(np.sqrt(rho)))
    np.testing.assert_allclose(rep.values(4), (2 - rho) / (1 - rho))
    gam, rep = protocol_schedules("standard", 4)
    assert all(g == math.inf for g in gam.values(4))
    np.testing.assert_allclose(rep.values(4), 1 / (1 - rho))
    assert all(v == 7.0 for v in protocol_schedules("scoping", 4)[1].values(4))
    # the solver follows the schedules it is given, step by step
    X, y = random_patterns(31, 0.2, 0)
    res = focusing_bp(X, y, steps=4, stop_on_solution=False, max_iter=3)
    gam, rep = protocol_schedules("pseudo-reinforcement", 4)
    assert [h["gamma"] for h in res.history] == list(gam.values(4))
    assert [h["replicas"] for h in res.history] == list(rep.values(4))
    assert [h["protocol_step"] for h in res.history] == [0, 1, 2, 3]


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
        res = focusing_bp(X, y, protocol=None, steps=1, gamma=0.0, replicas=1.0, max_iter=2000, tol=1e-10,
                          seed=seed, messages="full")
        h = res.history[-1]
        assert h["bp_converged"]
        m = res.marginals.numpy()
        assert np.abs(m - m_exact).max() < 0.25
        assert np.corrcoef(m, m_exact)[0, 1] > 0.95
        strong = np.abs(m_exact) > 0.3
        assert (np.sign(m[strong]) == np.sign(m_exact[strong])).all()


def test_gamma_zero_is_plain_bp_independent_of_y():
    X, y = random_patterns(51, 0.3, 2)
    for messages in ("full", "amp"):
        kw = dict(protocol=None, steps=1, gamma=0.0, tol=1e-9, max_iter=500, messages=messages)
        a = focusing_bp(X, y, replicas=1.0, **kw)
        b = focusing_bp(X, y, replicas=9.0, **kw)
        torch.testing.assert_close(a.marginals, b.marginals)


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
    with pytest.raises(ValueError, match="^X:"):
        focusing_bp(X[:, :20], y, K=5, tree=True)      # N/K = 4 even
    with pytest.raises(ValueError, match="^messages:"):
        focusing_bp(X, y, K=3, messages="amp")
    with pytest.raises(ValueError, match="^messages:"):
        focusing_bp(X, y, messages="dense")
    with pytest.raises(ValueError, match="^free_entropy:"):
        focusing_bp(X, y, messages="amp", free_entropy=True)
    with pytest.raises(ValueError, match="^protocol:"):
        focusing_bp(X, y, protocol="annealing")
    with pytest.raises(ValueError, match="^replicas:"):
        focusing_bp(X, y, protocol=None, gamma=1.0, replicas=0.5)
    with pytest.raises(ValueError, match="^replicas:"):
        focusing_bp(X, y, protocol=None, gamma=1.0)
    with pytest.raises(ValueError, match="^gamma:"):
        focusing_bp(X, y, gamma=LinearDecay(1.0, 10, -1.0))
    with pytest.raises(ValueError, match="^gamma:"):
        focusing_bp(X, y, gamma="high")
    with pytest.raises(ValueError, match="^seed:"):
        focusing_bp(X, y, seed=-1)
    with pytest.raises(ValueError, match="^damping:"):
        focusing_bp(X, y, damping=1.0)
    with pytest.raises(ValueError, match="^steps:"):
        focusing_bp(X, y, steps=0)
    with pytest.raises(ValueError, match="^max_iter:"):
        focusing_bp(X, y, max_iter=0)


# ---------------------------------------------------------------------------------------------
# Committee machines, the large-N form, observables
# ---------------------------------------------------------------------------------------------


def test_output_unit_terms_match_enumeration():
    g = torch.Generator().manual_seed(0)
    M, K = 6, 5
    mean = 2 * torch.randn(M, K, generator=g, dtype=torch.float64)
    var = torch.rand(M, K, generator=g, dtype=torch.float64) + 0.5
    log_gt, log_eq, log_z = _output_terms(mean, var)
    p = torch.special.ndtr(mean / var.sqrt()).numpy()
    for mu in range(M):
        gt, eq, z = np.zeros(K), np.zeros(K), 0.0
        for taus in itertools.product([-1, 1], repeat=K):
            pr = np.prod([p[mu, k] if t == 1 else 1 - p[mu, k] for k, t in enumerate(taus)])
            z += pr * (sum(taus) > 0)
            for k in range(K):
                rest = sum(taus) - taus[k]
                if taus[k] == 1:   # the law of the others, once per configuration of the others
                    gt[k] += pr / p[mu, k] * (rest > 0)
                    eq[k] += pr / p[mu, k] * (rest == 0)
        assert math.exp(log_z[mu]) == pytest.approx(z, rel=1e-12)
        np.testing.assert_allclose(log_gt[mu].exp().numpy(), gt, rtol=1e-12)
        np.testing.assert_allclose(log_eq[mu].exp().numpy(), eq, rtol=1e-12)


def test_committee_message_equals_direct_formula():
    # u = (1/2) log [P(correct | w = +1) / P(correct | w = -1)], enumerating the other units' outputs
    rng = np.random.default_rng(1)
    M, K, n = 3, 3, 9
    Xu = rng.choice([-1.0, 1.0], (M, K, n))
    Mc = rng.uniform(-0.9, 0.9, (M, K, n))
    U, _ = factor_messages(torch.tensor(Xu), torch.tensor(Mc))
    for mu, k, i in [(0, 0, 0), (1, 2, 5), (2, 1, 8)]:
        mean = (Xu[mu] * Mc[mu]).sum(1)
        var = (1 - Mc[mu] ** 2).sum(1)
        p_other = [0.5 * erfc(-mean[j] / math.sqrt(2 * var[j])) for j in range(K)]
        c = mean[k] - Xu[mu, k, i] * Mc[mu, k, i]
        v = var[k] - (1 - Mc[mu, k, i] ** 2)
        corr = {}
        for w in (1, -1):
            pk = 0.5 * erfc(-(c + w * Xu[mu, k, i]) / math.sqrt(2 * v))
            total = 0.0
            for taus in itertools.product([-1, 1], repeat=K):
                pr = pk if taus[k] == 1 else 1 - pk
                for j in range(K):
                    if j != k:
                        pr *= p_other[j] if taus[j] == 1 else 1 - p_other[j]
                total += pr * (sum(taus) > 0)
            corr[w] = total
        assert float(U[mu, k, i]) == pytest.approx(0.5 * math.log(corr[1] / corr[-1]), rel=1e-10)


# fast: a 40-step protocol with at most 50 sweeps per step (measured: every seed solved, in about
# half the sweeps of the default protocol, which the slow variant keeps)
@pytest.mark.parametrize("tree,seeds,budget", [
    (False, 2, {"steps": 40, "max_iter": 50}), (True, 3, {"steps": 40, "max_iter": 50}),
    pytest.param(False, 3, {}, marks=pytest.mark.slow), pytest.param(True, 3, {}, marks=pytest.mark.slow)])
def test_committee_fbp_solves(tree, seeds, budget):
    N, alpha = (45, 0.4) if tree else (41, 0.3)
    solved = 0
    for seed in range(seeds):
        X, y = random_patterns(N, alpha, seed, K=3, tree=tree)
        res = focusing_bp(X, y, K=3, tree=tree, seed=seed, **budget)
        assert res.weights.shape == ((3, 15) if tree else (3, 41))
        assert res.errors == np_errors(res.weights, X, y)
        solved += res.converged
    assert solved >= seeds - 1  # measured: all seeds solved


def test_amp_fixed_point_close_to_full_bp():
    # the large-N form is the full form to leading order in 1/sqrt(N): plain BP marginals agree
    X, y = random_patterns(401, 0.3, 4)
    kw = dict(protocol=None, steps=1, gamma=0.0, replicas=1.0, tol=1e-9, max_iter=3000, seed=4)
    full = focusing_bp(X, y, messages="full", **kw)
    amp = focusing_bp(X, y, messages="amp", **kw)
    assert full.history[-1]["bp_converged"] and amp.history[-1]["bp_converged"]
    diff = (full.marginals - amp.marginals).abs()
    assert float(diff.max()) < 0.01 and float(diff.mean()) < 0.002   # measured 7e-4 / 3e-4


@pytest.mark.parametrize("K", [1, 3])
def test_free_entropy_derivative_is_the_overlap(K):
    # at a BP fixed point the Bethe free entropy is stationary in the messages, so
    # d phi / d gamma = S (phi per replica and weight); the Gaussian approximation of the
    # factors breaks this at order 1/N: measured |FD - S| = 7e-4 (N=41) and 1.6e-4 (N=201) for K=1
    X, y = random_patterns(41, 0.3 if K == 1 else 0.2, 2, K=K)

    def step(gamma, yy=3.0):
        return focusing_bp(X, y, K=K, protocol=None, steps=1, gamma=gamma, replicas=yy, tol=1e-12,
                           max_iter=5000, free_entropy=True, damping=0.3, messages="full").history[-1]

    gamma, eps = 0.5, 1e-4
    h0 = step(gamma)
    fd = (step(gamma + eps)["free_entropy"] - step(gamma - eps)["free_entropy"]) / (2 * eps)
    assert h0["bp_converged"] and 0.2 < h0["overlap"] < 0.9
    assert abs(fd - h0["overlap"]) < 2e-3
    assert h0["distance"] == pytest.approx((1 - h0["overlap"]) / 2)
    assert h0["local_entropy"] == pytest.approx(h0["free_entropy"] - gamma * h0["overlap"])


def test_free_entropy_of_uncoupled_replicas():
    # gamma = 0: y independent replicas and a free reference, phi_y = phi_1 + (1/y - 1) log 2
    X, y = random_patterns(41, 0.3, 3)
    phi = {yy: focusing_bp(X, y, protocol=None, steps=1, gamma=0.0, replicas=yy, tol=1e-12, max_iter=5000,
                           free_entropy=True, messages="full").history[-1]["free_entropy"] for yy in (1.0, 3.0)}
    assert phi[3.0] == pytest.approx(phi[1.0] + (1 / 3 - 1) * math.log(2), abs=1e-9)
    # and the count of solutions it approximates: 0 < phi_1 - log 2 ... entropy below log 2
    assert 0 < phi[1.0] - math.log(2) < math.log(2)

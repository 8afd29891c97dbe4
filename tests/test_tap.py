"""Tests of the TAP / extended mean-field free energy (thermolearn.ebm.tap).

The update equations and the negative statistics are checked against finite differences of
gibbs_free_energy (the spec's Gamma), and the free energy against the exact log Z of small models.
"""

import math

import pytest
import torch

from thermolearn.ebm.exact import exact_log_partition
from thermolearn.ebm.rbm import RBM
from thermolearn.ebm.tap import (
    TAPResult,
    gibbs_free_energy,
    tap_fixed_point,
    tap_free_energy,
    tap_log_likelihood,
    tap_negative_statistics,
)

D = torch.float64
ORDERS = (1, 2, 3)


def random_rbm(seed, n_v=7, n_h=5, w_std=0.3, b_std=0.5, beta=1.0):
    g = torch.Generator().manual_seed(seed)
    W = w_std * torch.randn(n_v, n_h, generator=g, dtype=D)
    a = b_std * torch.randn(n_v, generator=g, dtype=D)
    b = b_std * torch.randn(n_h, generator=g, dtype=D)
    return RBM.from_weights(W, a, b, beta=beta)


def sparse_positive_rbm(seed, w_std, n_v=7, n_h=5):
    """Same-sign weights and negative biases (units mostly off, as in data models): the
    third-order coefficient sum_ij W^3 s(1/2-m) s(1/2-m) cannot cancel by chance."""
    g = torch.Generator().manual_seed(seed)
    W = w_std * torch.randn(n_v, n_h, generator=g, dtype=D).abs()
    a = -1.5 + 0.5 * torch.randn(n_v, generator=g, dtype=D)
    b = -1.5 + 0.5 * torch.randn(n_h, generator=g, dtype=D)
    return RBM.from_weights(W, a, b)


def random_magnetizations(seed, n_rows, n_v, n_h):
    g = torch.Generator().manual_seed(seed)
    m_v = 0.05 + 0.9 * torch.rand(n_rows, n_v, generator=g, dtype=D)
    m_h = 0.05 + 0.9 * torch.rand(n_rows, n_h, generator=g, dtype=D)
    return m_v, m_h


def fd_grad(f, x, eps=1e-5):
    """Central finite-difference gradient of the scalar function f at tensor x."""
    grad = torch.zeros_like(x)
    flat, gflat = x.view(-1), grad.view(-1)
    for k in range(flat.numel()):
        old = flat[k].item()
        flat[k] = old + eps
        up = float(f(x))
        flat[k] = old - eps
        down = float(f(x))
        flat[k] = old
        gflat[k] = (up - down) / (2 * eps)
    return grad


# -- 1. the update is the stationarity condition of Gamma ----------------------------------------

@pytest.mark.parametrize("order", ORDERS)
def test_update_is_gradient_of_gamma_anywhere(order):
    """For any m: logit(m) - logit(undamped update) = dGamma/dm (checks the update equations
    term by term, not only at the fixed point)."""
    rbm = random_rbm(1, beta=1.3)
    W, a, b = rbm.scaled_parameters(D)
    m_v, m_h = random_magnetizations(2, 3, 7, 5)
    new_v, new_h = tap_fixed_point(W, a, b, m_v, m_h, order, damping=0.0, k=1)
    logit = lambda m: torch.log(m) - torch.log1p(-m)  # noqa: E731
    # visible half-step uses (m_v, m_h); hidden half-step uses (new_v, m_h)
    g_v = fd_grad(lambda x: gibbs_free_energy(W, a, b, x, m_h, order).sum(), m_v.clone())
    g_h = fd_grad(lambda x: gibbs_free_energy(W, a, b, new_v, x, order).sum(), m_h.clone())
    assert torch.allclose(logit(m_v) - logit(new_v), g_v, atol=1e-8)
    assert torch.allclose(logit(m_h) - logit(new_h), g_h, atol=1e-8)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("beta", [1.0, 1.7])
def test_fixed_point_is_stationary_point_of_gamma(order, beta):
    rbm = random_rbm(3, beta=beta)
    res = tap_free_energy(rbm, order=order, init_visible=4, tol=1e-12)
    assert isinstance(res, TAPResult)
    assert res.converged and res.steps < 1000 and res.step_unit == "sweep"
    W, a, b = rbm.scaled_parameters(D)
    m_v = res.m_visible.clone().unsqueeze(0)
    m_h = res.m_hidden.clone().unsqueeze(0)
    g_v = fd_grad(lambda x: gibbs_free_energy(W, a, b, x, m_h, order).sum(), m_v)
    g_h = fd_grad(lambda x: gibbs_free_energy(W, a, b, m_v, x, order).sum(), m_h)
    assert g_v.abs().max() < 1e-6 and g_h.abs().max() < 1e-6
    # the reported free energy is Gamma at those magnetizations, the lowest over the starts
    assert res.free_energy == pytest.approx(float(gibbs_free_energy(W, a, b, m_v, m_h, order)), abs=1e-12)
    assert res.free_energies.shape == (4,)
    assert res.free_energy == pytest.approx(float(res.free_energies.min()), abs=0)


# -- 2. negative statistics = -dGamma/dtheta at fixed m -------------------------------------------

@pytest.mark.parametrize("order", ORDERS)
def test_negative_statistics_are_minus_parameter_gradient(order):
    rbm = random_rbm(4)
    W, a, b = (t.clone() for t in rbm.scaled_parameters(D))
    m_v, m_h = random_magnetizations(5, 3, 7, 5)
    dW, da, db = tap_negative_statistics(W, m_v, m_h, order)
    mean_gamma = lambda W_, a_, b_: gibbs_free_energy(W_, a_, b_, m_v, m_h, order).mean()  # noqa: E731
    assert torch.allclose(dW, -fd_grad(lambda x: mean_gamma(x, a, b), W), atol=1e-8)
    assert torch.allclose(da, -fd_grad(lambda x: mean_gamma(W, x, b), a), atol=1e-8)
    assert torch.allclose(db, -fd_grad(lambda x: mean_gamma(W, a, x), b), atol=1e-8)


# -- 3. accuracy against the exact log Z in weak coupling -------------------------------------------

def tap_errors(rbm):
    log_z = exact_log_partition(rbm)
    return [abs(-tap_free_energy(rbm, order=o, tol=1e-13).free_energy - log_z) for o in ORDERS]


@pytest.mark.parametrize("seed", range(4))
def test_weak_coupling_error_decreases_with_order(seed):
    err1, err2, err3 = tap_errors(sparse_positive_rbm(seed, w_std=0.1))
    assert err2 < 0.3 * err1
    assert err3 < 0.3 * err2
    assert err3 < 3e-5


def test_error_scales_as_next_order():
    """Order k misses terms of order W^(k+1): halving the weights divides the error by ~2^(k+1)."""
    coarse = tap_errors(sparse_positive_rbm(0, w_std=0.05))
    fine = tap_errors(sparse_positive_rbm(0, w_std=0.025))
    rates = [math.log2(c / f) for c, f in zip(coarse, fine)]
    for rate, expected in zip(rates, (2, 3, 4)):
        assert rate == pytest.approx(expected, abs=0.25)


def test_third_order_error_is_fourth_order_with_mixed_signs():
    """With weights of both signs the W^3 coefficient of the TAP2 error can nearly cancel for a
    given model (TAP2 is then sometimes closer than TAP3 at a fixed weight scale, because of the
    W^4 loop terms), but TAP3 must remove it exactly: its error is O(W^4)."""
    errs = [tap_errors(random_rbm(0, w_std=s, b_std=2.0)) for s in (0.04, 0.02)]
    assert math.log2(errs[0][0] / errs[1][0]) == pytest.approx(2, abs=0.2)
    assert math.log2(errs[0][2] / errs[1][2]) == pytest.approx(4, abs=0.2)


# -- 4. inverse temperature --------------------------------------------------------------------------

@pytest.mark.parametrize("order", ORDERS)
def test_beta_equals_scaled_parameters(order):
    beta = 2.5
    hot = random_rbm(6, beta=beta)
    cold = RBM.from_weights(beta * hot.W, beta * hot.visible_bias, beta * hot.hidden_bias, beta=1.0)
    r1 = tap_free_energy(hot, order=order)
    r2 = tap_free_energy(cold, order=order)
    assert r1.converged and r2.converged
    assert r1.free_energy == pytest.approx(r2.free_energy, abs=1e-10)
    assert torch.allclose(r1.m_visible, r2.m_visible, atol=1e-10)
    assert torch.allclose(r1.m_hidden, r2.m_hidden, atol=1e-10)
    # and it approximates -log Z(beta) of the model at beta
    assert -r1.free_energy == pytest.approx(exact_log_partition(hot), rel=0.05)


# -- 5. arguments --------------------------------------------------------------------------------------

@pytest.mark.parametrize("order", [0, 4, 2.5, "2", True, None])
def test_bad_order_raises(order):
    rbm = random_rbm(0)
    W, a, b = rbm.scaled_parameters(D)
    m_v, m_h = random_magnetizations(0, 2, 7, 5)
    with pytest.raises(ValueError, match="order"):
        tap_free_energy(rbm, order=order)
    with pytest.raises(ValueError, match="order"):
        gibbs_free_energy(W, a, b, m_v, m_h, order)
    with pytest.raises(ValueError, match="order"):
        tap_fixed_point(W, a, b, m_v, m_h, order)
    with pytest.raises(ValueError, match="order"):
        tap_negative_statistics(W, m_v, m_h, order)


def test_init_visible_forms_and_log_likelihood():
    rbm = random_rbm(7, beta=1.2)
    g = torch.Generator().manual_seed(0)
    data = torch.bernoulli(torch.full((6, 7), 0.4, dtype=D), generator=g)
    single = tap_free_energy(rbm)                          # default start sigmoid(beta a)
    rows = tap_free_energy(rbm, init_visible=data)         # one start per data row (0/1 is allowed)
    assert single.free_energies.shape == (1,) and rows.free_energies.shape == (6,)
    assert rows.free_energy <= single.free_energy + 1e-9
    with pytest.raises(ValueError, match="init_visible"):
        tap_free_energy(rbm, init_visible=torch.rand(3, 6, dtype=D))
    ll = tap_log_likelihood(rbm, data, order=2)
    expected = float((-rbm.beta * rbm.free_energy(data)).mean()) + tap_free_energy(rbm, order=2).free_energy
    assert ll == pytest.approx(expected, abs=1e-10)
    # close to the exact log-likelihood for this moderately coupled model
    exact = rbm.log_likelihood(data, exact_log_partition(rbm))
    assert ll == pytest.approx(exact, abs=0.05)


def test_fixed_point_keeps_dtype_and_shape():
    rbm = random_rbm(8).to(dtype=torch.float32)
    W, a, b = rbm.scaled_parameters()
    m_v = torch.full((4, 7), 0.5)
    m_h = torch.full((4, 5), 0.5)
    for order in ORDERS:
        new_v, new_h = tap_fixed_point(W, a, b, m_v, m_h, order)
        assert new_v.dtype == torch.float32 and new_v.shape == (4, 7) and new_h.shape == (4, 5)
        assert bool(((new_v > 0) & (new_v < 1)).all() and ((new_h > 0) & (new_h < 1)).all())
    assert tap_fixed_point(W, a, b, m_v, m_h, 2, k=0)[0] is m_v

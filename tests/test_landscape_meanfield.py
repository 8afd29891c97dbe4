"""Mean-field signal propagation: fixed points, depth scales, the critical line, finite networks.

Checked against published critical values (Schoenholz et al. 2017 / Poole et al. 2016), the erf
closed forms, an independent NumPy quadrature, exact ReLU results and finite random networks.
"""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.optimize import brentq
from torch import nn

from thermolearn.landscape.meanfield import (
    ACTIVATIONS,
    critical_init,
    critical_sigma_w2,
    phase_diagram,
    signal_propagation,
    simulate_random_network,
)

FIELDS = ("q_star", "c_star", "chi1", "chi_c", "chi_q", "xi_q", "xi_c", "xi_grad")


def _gauss(n=250):
    """An independent rule: Gauss-Hermite nodes for the standard normal measure."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    return z, w / w.sum()


def _quad(f):
    """Int Dz f(z) by adaptive quadrature (scipy)."""
    return quad(lambda z: f(z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi), -12, 12, epsabs=1e-15,
                epsrel=1e-13, limit=200)[0]


def _np_tanh_maps(sw, sb, rho=1.0):
    """Independent fixed points of the tanh maps by plain iteration (c started slightly below 1)."""
    q = 1.0
    for _ in range(200):
        q_new = sw / rho * _quad(lambda z: math.tanh(math.sqrt(q) * z) ** 2) + sb  # noqa: B023 (used at once)
        if abs(q_new - q) < 1e-15:
            break
        q = q_new
    z, w = _gauss()
    z1, z2 = z[:, None], z[None, :]
    w2 = w[:, None] * w[None, :]
    c = 0.999
    for _ in range(3000):
        u1, u2 = math.sqrt(q) * z1, math.sqrt(q) * (c * z1 + math.sqrt(1 - c * c) * z2)
        c_new = (sw * (w2 * np.tanh(u1) * np.tanh(u2)).sum() + sb) / q
        if abs(c_new - c) < 1e-14:
            break
        c = c_new
    return q, c


# ---------------------------------------------------------------------------------------------
# critical line and depth scales
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma_b2, expected", [(0.05, 1.761), (0.09, 1.948), (0.0, 1.0), (1.0, 3.443)])
def test_critical_sigma_w2_of_tanh(sigma_b2, expected):
    sw = critical_sigma_w2("tanh", sigma_b2)
    assert sw == pytest.approx(expected, abs=1e-3)
    r = signal_propagation("tanh", sw, sigma_b2)
    assert r.chi1 == pytest.approx(1.0, abs=1e-9) and r.phase == "critical"
    assert math.isinf(r.xi_c) and math.isinf(r.xi_grad)
    if sigma_b2 == 0.05:
        assert r.q_star == pytest.approx(0.570, abs=1e-3)


def test_relu_is_critical_at_two_and_exact_off_it():
    assert critical_sigma_w2("relu", 0.0) == pytest.approx(2.0, abs=1e-9)
    assert critical_sigma_w2("relu", 0.3) == pytest.approx(2.0, abs=1e-9)
    r = signal_propagation("relu", 1.5, 0.1)             # q* = sb / (1 - sw / 2), chi_1 = sw / 2
    assert r.q_star == pytest.approx(0.1 / (1 - 0.75), rel=1e-10)
    assert r.chi1 == pytest.approx(0.75, rel=1e-12) and r.c_star == 1.0 and r.phase == "ordered"
    assert r.xi_c == pytest.approx(-1 / math.log(0.75), rel=1e-10)
    assert math.isinf(signal_propagation("relu", 2.5, 0.1).q_star)       # the length diverges


@pytest.mark.parametrize("sigma_w2, xi_c, tol", [(1.0, 3.6, 0.06), (1.5, 15.8, 0.06), (2.0, 25.2, 0.3),
                                                 (3.0, 9.1, 0.06), (4.0, 7.0, 0.06)])
def test_correlation_depth_scale_of_tanh(sigma_w2, xi_c, tol):
    r = signal_propagation("tanh", sigma_w2, 0.05)
    assert r.xi_c == pytest.approx(xi_c, abs=tol)
    assert r.phase == ("ordered" if sigma_w2 < 1.761 else "chaotic")
    assert r.xi_grad == pytest.approx(1 / abs(math.log(r.chi1)), rel=1e-12)
    if r.phase == "ordered":                              # c* = 1: xi_c = -1 / ln chi_1
        assert r.c_star == 1.0 and r.xi_c == pytest.approx(r.xi_grad, rel=1e-10)
    else:
        assert 0 < r.c_star < 1 and r.xi_c > r.xi_grad


@pytest.mark.parametrize("sigma_w2, sigma_b2", [(3.0, 0.05), (1.2, 0.3), (2.5, 0.0)])
def test_fixed_points_are_the_limits_of_iterating_the_maps(sigma_w2, sigma_b2):
    q, c = _np_tanh_maps(sigma_w2, sigma_b2)
    r = signal_propagation("tanh", sigma_w2, sigma_b2)
    assert r.q_star == pytest.approx(q, rel=1e-9)
    assert r.c_star == pytest.approx(c, abs=1e-6)


def test_length_slope_matches_the_second_derivative_formula():
    """chi_q = chi_1 + sigma_w2 Int phi'' phi (tanh'' = -2 tanh sech^2), computed independently."""
    for sw, sb in [(1.0, 0.05), (3.0, 0.2)]:
        r = signal_propagation("tanh", sw, sb)
        t = lambda z: math.tanh(math.sqrt(r.q_star) * z)  # noqa: B023 (used at once)
        chi1 = sw * _quad(lambda z: (1 - t(z) ** 2) ** 2)  # noqa: B023 (used at once)
        chi_q = chi1 + sw * _quad(lambda z: t(z) * (-2 * t(z) * (1 - t(z) ** 2)))  # noqa: B023 (used at once)
        assert r.chi1 == pytest.approx(chi1, rel=1e-10)
        assert r.chi_q == pytest.approx(chi_q, rel=1e-9)
        assert r.xi_q == pytest.approx(-1 / math.log(chi_q), rel=1e-8)


@pytest.mark.parametrize("sigma_w2, sigma_b2", [(0.8, 0.1), (2.0, 0.05), (4.0, 0.3)])
def test_erf_matches_its_closed_forms(sigma_w2, sigma_b2):
    r = signal_propagation("erf", sigma_w2, sigma_b2)
    q, c = r.q_star, r.c_star
    asin = lambda x: 2 / math.pi * math.asin(x)
    assert q == pytest.approx(sigma_w2 * asin(2 * q / (1 + 2 * q)) + sigma_b2, rel=1e-11)
    assert r.chi1 == pytest.approx(4 * sigma_w2 / (math.pi * math.sqrt(1 + 4 * q)), rel=1e-11)
    assert r.chi_q == pytest.approx(sigma_w2 * 4 / math.pi / ((1 + 2 * q) * math.sqrt(1 + 4 * q)), rel=1e-9)
    if r.phase == "chaotic":        # c* from the closed-form correlation map, by an independent root search
        f = lambda c: (sigma_w2 * asin(2 * q * c / (1 + 2 * q)) + sigma_b2) / q - c
        assert c == pytest.approx(brentq(f, 0.0, 1 - 1e-9, xtol=1e-15), abs=1e-9)
    else:
        assert c == 1.0
    chi_c = sigma_w2 * 4 / math.pi / math.sqrt((1 + 2 * q) ** 2 - 4 * q * q * c * c)
    assert r.chi_c == pytest.approx(chi_c, rel=1e-9)


def test_callables_equal_to_named_activations_give_the_same_numbers():
    pairs = [("tanh", lambda x: 2 * torch.sigmoid(2 * x) - 1), ("tanh", nn.Tanh()),
             ("hard_tanh", lambda x: torch.clamp(x, -1.0, 1.0)), ("erf", torch.erf)]
    for name, fn in pairs:
        for sw in (1.2, 3.0):
            a, b = signal_propagation(name, sw, 0.05), signal_propagation(fn, sw, 0.05)
            for f in FIELDS:
                assert getattr(b, f) == pytest.approx(getattr(a, f), rel=1e-10, abs=1e-12), (name, f)
            assert a.phase == b.phase


# ---------------------------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------------------------

def test_dropout_of_one_changes_nothing():
    a, b = signal_propagation("tanh", 3.0, 0.05), signal_propagation("tanh", 3.0, 0.05, dropout=1.0)
    assert all(getattr(a, f) == getattr(b, f) for f in FIELDS) and b.dropout == 1.0 and a.dropout is None


@pytest.mark.parametrize("sigma_w2, rho", [(1.0, 0.9), (1.7609546, 0.95), (3.0, 0.5)])
def test_dropout_fixed_points_satisfy_the_scaled_maps(sigma_w2, rho):
    r = signal_propagation("tanh", sigma_w2, 0.05, dropout=rho)
    q, c = r.q_star, r.c_star
    assert q == pytest.approx(sigma_w2 / rho * _quad(lambda z: math.tanh(math.sqrt(q) * z) ** 2) + 0.05, rel=1e-10)
    z, w = _gauss()
    z1, z2 = z[:, None], z[None, :]
    t1, t2 = np.tanh(math.sqrt(q) * z1), np.tanh(math.sqrt(q) * (c * z1 + math.sqrt(1 - c * c) * z2))
    w2 = w[:, None] * w[None, :]
    assert q * c == pytest.approx(sigma_w2 * (w2 * t1 * t2).sum() + 0.05, rel=1e-9)
    q_iter, c_iter = _np_tanh_maps(sigma_w2, 0.05, rho)   # the diagonal scaled, the off-diagonal not
    assert q == pytest.approx(q_iter, rel=1e-9)
    assert 0 < c < 1 and math.isfinite(r.xi_c)


def test_dropout_removes_the_critical_point():
    sw = critical_sigma_w2("tanh", 0.05)
    xi = [signal_propagation("tanh", sw, 0.05, dropout=rho).xi_c for rho in (0.9, 0.99, 0.999)]
    assert all(math.isfinite(x) for x in xi) and xi[0] < xi[1] < xi[2]
    assert math.isinf(signal_propagation("tanh", sw, 0.05).xi_c)
    # ordered without dropout (c* = 1) but c* < 1 with it
    assert signal_propagation("tanh", 1.0, 0.05, dropout=0.9).c_star < 0.99


# ---------------------------------------------------------------------------------------------
# phase diagram
# ---------------------------------------------------------------------------------------------

def test_phase_diagram_matches_pointwise_results():
    sws, sbs = [1.0, 1.76, 2.5, 4.0], [0.0, 0.05, 0.3]
    pd = phase_diagram("tanh", sws, sbs)
    assert pd.xi_c.shape == (3, 4) and pd.critical_sigma_w2.shape == (3,)
    for i, sb in enumerate(sbs):
        assert float(pd.critical_sigma_w2[i]) == pytest.approx(critical_sigma_w2("tanh", sb), rel=1e-8)
        for j, sw in enumerate(sws):
            r = signal_propagation("tanh", sw, sb)
            assert float(pd.chi1[i, j]) == pytest.approx(r.chi1, rel=1e-12)
            assert float(pd.xi_c[i, j]) == pytest.approx(r.xi_c, rel=1e-6)
    # at sigma_b2 = 0.05 xi_c is largest next to the critical line (1.761)
    assert int(pd.xi_c[1].argmax()) == 1


def test_phase_diagram_plot_draws(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    pd = phase_diagram("tanh", [1.0, 2.0, 3.0], [0.05, 0.5])
    ax = pd.plot()
    ax.figure.savefig(tmp_path / "pd.png")
    assert (tmp_path / "pd.png").stat().st_size > 1000
    assert len(ax.lines) == 1 and ax.lines[0].get_xdata().shape == (2,)


# ---------------------------------------------------------------------------------------------
# finite random networks
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma_w2", [1.0, 4.0])                  # ordered, chaotic
def test_finite_network_follows_the_theory(sigma_w2):
    """Width 1000: deviations stay within a few / sqrt(width) (their spread over 20 seeds at depth
    5 was at most 4.7, 4.0, 3.1 and 7.2 / sqrt(width) for q, c, layer chi and the Jacobian norm)."""
    width = 1000
    r = simulate_random_network(width, 5, "tanh", sigma_w2, 0.05, q0=1.0, c0=0.5, seed=1)
    unit = 1 / math.sqrt(width)
    assert r.q[0] == pytest.approx(1.0, rel=1e-12) and r.c[0] == pytest.approx(0.5, abs=1e-12)
    assert torch.allclose(r.q, r.q_theory, rtol=8 * unit, atol=0)
    assert torch.allclose(r.c, r.c_theory, rtol=0, atol=8 * unit)
    assert torch.allclose(r.layer_chi, r.layer_chi_theory, rtol=6 * unit, atol=0)
    assert torch.allclose(r.jacobian_norm2, r.jacobian_norm2_theory, rtol=12 * unit, atol=0)
    # the theory tracks the trend of each phase: c rises to 1 when ordered, falls to c* < 1 when chaotic
    fixed = signal_propagation("tanh", sigma_w2, 0.05)
    assert (r.c_theory[-1] - fixed.c_star).abs() < (r.c_theory[0] - fixed.c_star).abs()
    assert abs(float(r.layer_chi_theory[-1]) - fixed.chi1) < 0.2 * abs(float(r.layer_chi_theory[0]) - fixed.chi1)


def test_finite_network_refutes_the_wrong_theory():
    """The same measurement against the theory of another sigma_w2 fails: the check can fail."""
    r = simulate_random_network(1000, 5, "tanh", 4.0, 0.05, seed=1)
    wrong = simulate_random_network(1000, 5, "tanh", 3.0, 0.05, seed=1)
    assert not torch.allclose(r.jacobian_norm2, wrong.jacobian_norm2_theory, rtol=12 / math.sqrt(1000), atol=0)


def test_simulation_seeds_and_inputs():
    a = simulate_random_network(50, 3, "relu", 1.5, 0.1, seed=4)
    b = simulate_random_network(50, 3, "relu", 1.5, 0.1, seed=torch.Generator().manual_seed(4))
    c = simulate_random_network(50, 3, "relu", 1.5, 0.1, seed=5)
    assert torch.equal(a.q, b.q) and torch.equal(a.jacobian_norm2, b.jacobian_norm2)
    assert not torch.equal(a.q, c.q)
    x = torch.randn(2, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    d = simulate_random_network(50, 2, "tanh", 1.0, 0.0, inputs=x, seed=0)
    assert float(d.q[0]) == pytest.approx(float((x * x).sum(1).mean()) / 50, rel=1e-12)
    assert float(d.q_theory[0]) == pytest.approx(float(d.q[0]), rel=1e-12)
    with pytest.raises(ValueError, match="^inputs:"):
        simulate_random_network(50, 2, "tanh", 1.0, 0.0, inputs=torch.zeros(2, 49))
    with pytest.raises(ValueError, match="^c0:"):
        simulate_random_network(50, 2, "tanh", 1.0, 0.0, c0=1.5)


# ---------------------------------------------------------------------------------------------
# critical initialisation
# ---------------------------------------------------------------------------------------------

def test_critical_init_sets_the_critical_variances():
    net = nn.Sequential(nn.Linear(400, 2000), nn.Tanh(), nn.Linear(2000, 50),
                        nn.Conv2d(16, 40, kernel_size=(3, 5)))
    assert critical_init(net, "tanh", sigma_b2=0.05, seed=0) is net
    sw = critical_sigma_w2("tanh", 0.05)
    for layer, fan_in in ((net[0], 400), (net[2], 2000), (net[3], 16 * 3 * 5)):
        w = layer.weight.detach().double()
        n = w.numel()
        assert float(w.pow(2).mean()) * fan_in == pytest.approx(sw, rel=5 * math.sqrt(2 / n))
        assert abs(float(w.mean())) < 5 * math.sqrt(sw / fan_in / n)
    bias = net[0].bias.detach().double()
    assert float(bias.pow(2).mean()) == pytest.approx(0.05, rel=5 * math.sqrt(2 / bias.numel()))
    other = critical_init(nn.Sequential(nn.Linear(400, 2000)), "tanh", seed=torch.Generator().manual_seed(0))
    assert torch.equal(other[0].weight, net[0].weight)
    relu = critical_init(nn.Linear(3000, 300), "relu", sigma_b2=0.0, seed=1)
    assert float(relu.weight.detach().double().pow(2).mean()) * 3000 == pytest.approx(2.0, rel=0.01)
    assert torch.count_nonzero(relu.bias) == 0
    with pytest.raises(TypeError, match="^module:"):
        critical_init("net", "tanh")


# ---------------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------------

def test_unknown_activation_lists_the_valid_names():
    with pytest.raises(ValueError, match="^activation:") as err:
        signal_propagation("swish", 1.0, 0.0)
    assert all(name in str(err.value) for name in ACTIVATIONS)
    with pytest.raises(TypeError, match="^activation:"):
        signal_propagation(3, 1.0, 0.0)


@pytest.mark.parametrize("kwargs, name", [
    ({"sigma_w2": 0.0}, "sigma_w2"), ({"sigma_w2": -1.0}, "sigma_w2"), ({"sigma_w2": math.nan}, "sigma_w2"),
    ({"sigma_w2": math.inf}, "sigma_w2"), ({"sigma_b2": -0.1}, "sigma_b2"), ({"sigma_b2": math.nan}, "sigma_b2"),
    ({"dropout": 0.0}, "dropout"), ({"dropout": 1.5}, "dropout"), ({"nodes": 1}, "nodes"), ({"nodes": 101}, "nodes"),
])
def test_bad_arguments_name_themselves(kwargs, name):
    args = {"activation": "tanh", "sigma_w2": 1.0, "sigma_b2": 0.05} | kwargs
    with pytest.raises(ValueError, match=f"^{name}:"):
        signal_propagation(**args)


def test_no_critical_point_is_a_clear_error():
    with pytest.raises(ValueError, match="^activation: .*no critical point"):
        critical_sigma_w2(torch.sign, 1.0)          # phi' = 0 almost everywhere
    with pytest.raises(ValueError, match="^sigma_b2:"):
        critical_sigma_w2("tanh", -1.0)

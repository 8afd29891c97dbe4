"""thermolearn.ebm.effective: the polynomial of every order reproduces F(v) on every state, the
low orders equal hand-written finite differences, the spin basis is the same function, and bad
input is refused with the argument's name."""

import itertools
import math

import pytest
import torch

from thermolearn.ebm import RBM, EffectiveCouplings, effective_couplings
from thermolearn.ebm.effective import MAX_WORK
from thermolearn.ebm.exact import all_states


def _rbm(n_v, n_h, beta=1.0, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: scale * torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return RBM.from_weights(r(n_v, n_h), r(n_v), r(n_h), beta=beta)


def _sp(x, beta):
    return math.log1p(math.exp(beta * x)) / beta


@pytest.mark.parametrize("n_v, n_h, beta", [(6, 4, 1.0), (7, 9, 0.6), (8, 5, 1.7)])
@pytest.mark.parametrize("basis", ["binary", "spin"])
def test_all_orders_reproduce_free_energy(n_v, n_h, beta, basis):
    rbm = _rbm(n_v, n_h, beta=beta, seed=n_v * n_h)
    V = all_states(n_v)
    ec = effective_couplings(rbm, order=n_v, basis=basis)
    assert isinstance(ec, EffectiveCouplings) and ec.order == n_v and ec.basis == basis and ec.beta == beta
    x = V if basis == "binary" else 2 * V - 1
    assert float((ec.energy(x) - rbm.free_energy(V)).abs().max()) < 1e-10
    assert sorted(ec.terms) == list(range(1, n_v + 1))
    assert [ec.terms[k][0].shape[0] for k in ec.terms] == [math.comb(n_v, k) for k in range(1, n_v + 1)]


def test_hand_case_one_hidden_two_visible():
    """F(v) = -a.v - softplus(beta (b + w.v)) / beta: constant, fields and coupling by hand."""
    a1, a2, w1, w2, b, beta = 0.3, -0.7, 1.2, -2.1, 0.4, 1.5
    rbm = RBM.from_weights(torch.tensor([[w1], [w2]], dtype=torch.float64), torch.tensor([a1, a2], dtype=torch.float64),
                           torch.tensor([b], dtype=torch.float64), beta=beta)
    f = lambda x: _sp(x, beta)  # noqa: E731
    for basis_order in (1, 2):
        ec = effective_couplings(rbm, order=basis_order)
        assert abs(ec.constant + f(b)) < 1e-14
        assert abs(float(ec.fields[0]) - (-a1 - f(b + w1) + f(b))) < 1e-14
        assert abs(float(ec.fields[1]) - (-a2 - f(b + w2) + f(b))) < 1e-14
    ec = effective_couplings(rbm, order=2)
    j12 = -(f(b + w1 + w2) - f(b + w1) - f(b + w2) + f(b))
    assert abs(float(ec.couplings[0, 1]) - j12) < 1e-14 and float(ec.couplings[0, 1]) == float(ec.couplings[1, 0])
    assert float(ec.couplings[0, 0]) == 0.0 and ec.triples is None
    # the spin basis by hand: s = 2v - 1 over the four states
    H = {(v1, v2): -a1 * v1 - a2 * v2 - f(b + w1 * v1 + w2 * v2) for v1 in (0, 1) for v2 in (0, 1)}
    spin = effective_couplings(rbm, order=2, basis="spin")
    k0 = sum(H.values()) / 4
    h1 = sum(h * (2 * v1 - 1) for (v1, _), h in H.items()) / 4
    k12 = sum(h * (2 * v1 - 1) * (2 * v2 - 1) for (v1, v2), h in H.items()) / 4
    assert abs(spin.constant - k0) < 1e-14 and abs(float(spin.fields[0]) - h1) < 1e-14
    assert abs(float(spin.couplings[0, 1]) - k12) < 1e-14


def test_order_two_and_three_equal_finite_differences():
    """On 7 visible units: fields, pairs and triples are mixed finite differences of F at v = 0,
    recounted from rbm.free_energy on the states 1_T."""
    n = 7
    rbm = _rbm(n, 6, beta=0.8, seed=11)
    ec = effective_couplings(rbm, order=3)

    def F(*ones):
        v = torch.zeros(n, dtype=torch.float64)
        v[list(ones)] = 1.0
        return float(rbm.free_energy(v)[0])

    assert abs(ec.constant - F()) < 1e-12
    for i in range(n):
        assert abs(float(ec.fields[i]) - (F(i) - F())) < 1e-12
    for i, k in itertools.combinations(range(n), 2):
        assert abs(float(ec.couplings[i, k]) - (F(i, k) - F(i) - F(k) + F())) < 1e-12
    for i, k, m in itertools.combinations(range(n), 3):
        d3 = F(i, k, m) - F(i, k) - F(i, m) - F(k, m) + F(i) + F(k) + F(m) - F()
        for p in itertools.permutations((i, k, m)):
            assert abs(float(ec.triples[p]) - d3) < 1e-12
    assert float(ec.triples[0, 0, 1]) == 0.0
    # truncating keeps the low orders unchanged
    ec2 = effective_couplings(rbm, order=2)
    assert torch.equal(ec2.couplings, ec.couplings) and torch.equal(ec2.fields, ec.fields)
    # the order-1 truncation of the polynomial on the states e_i is exact
    one_hot = torch.eye(n, dtype=torch.float64)
    assert float((effective_couplings(rbm, order=1).energy(one_hot) - rbm.free_energy(one_hot)).abs().max()) < 1e-12


def test_spin_and_binary_are_the_same_function_and_coefficients_convert():
    """K_U = sum_{S superset of U} 2^-|S| J_S (v = (1 + s) / 2)."""
    n = 6
    rbm = _rbm(n, 5, seed=12, scale=0.7)
    J = effective_couplings(rbm, order=n)
    K = effective_couplings(rbm, order=n, basis="spin")
    coef = {(): J.constant} | {tuple(s.tolist()): float(c) for k, (ss, cc) in J.terms.items() for s, c in zip(ss, cc)}
    for _k, (ss, cc) in K.terms.items():
        for s, c in zip(ss.tolist(), cc.tolist()):
            want = sum(v * 2.0 ** -len(S) for S, v in coef.items() if set(s) <= set(S))
            assert abs(c - want) < 1e-10
    assert abs(K.constant - sum(v * 2.0 ** -len(S) for S, v in coef.items())) < 1e-10


def test_no_hidden_coupling_means_independent_units():
    """W = 0: H(v) = -a.v - sum_j softplus(beta b_j) / beta, no couplings at any order."""
    rbm = RBM.from_weights(torch.zeros(5, 3, dtype=torch.float64), torch.arange(5.0), torch.ones(3), beta=2.0)
    ec = effective_couplings(rbm, order=5)
    assert torch.allclose(ec.fields, -torch.arange(5.0, dtype=torch.float64), atol=1e-14)
    assert max(float(c.abs().max()) for k, (_, c) in ec.terms.items() if k >= 2) < 1e-13
    assert abs(ec.constant + 3 * _sp(1.0, 2.0)) < 1e-13


def test_bad_input():
    rbm = _rbm(4, 3)
    for order in (0, -1, 5, 2.0, True, None):
        with pytest.raises(ValueError, match=r"^order"):
            effective_couplings(rbm, order=order)
    with pytest.raises(ValueError, match=r"^basis"):
        effective_couplings(rbm, basis="ising")
    with pytest.raises(ValueError, match=r"^basis: 'spin'"):
        effective_couplings(RBM(21, 2, seed=0), order=1, basis="spin")
    big = RBM(784, 500, seed=0)
    with pytest.raises(ValueError, match=r"^order: 3 with 784 visible"):
        effective_couplings(big, order=3)
    assert MAX_WORK == 2**30
    with pytest.raises(TypeError, match=r"^rbm"):
        effective_couplings(object())
    ec = effective_couplings(rbm, order=2)
    with pytest.raises(ValueError, match=r"^x"):
        ec.energy(torch.zeros(2, 5))

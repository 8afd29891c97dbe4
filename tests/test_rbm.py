import numpy as np
import pytest
import torch

from thermolearn.ebm import RBM, exact_log_partition
from thermolearn.ebm.exact import all_states


def random_rbm(n_v, n_h, beta, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return RBM.from_weights(scale * torch.randn(n_v, n_h, generator=g, dtype=torch.float64),
                            torch.randn(n_v, generator=g, dtype=torch.float64),
                            torch.randn(n_h, generator=g, dtype=torch.float64), beta=beta)


def brute_force(rbm):
    """log Z and F(v) for every v by summing exp(-beta E) over both layers."""
    V, H = all_states(rbm.n_visible), all_states(rbm.n_hidden)
    E = torch.stack([rbm.energy(V, h.expand(len(V), -1)) for h in H], 1)   # (2^n_v, 2^n_h)
    log_z = torch.logsumexp((-rbm.beta * E).flatten(), 0)
    F = -torch.logsumexp(-rbm.beta * E, 1) / rbm.beta
    return float(log_z), V, F


@pytest.mark.parametrize("beta", [0.35, 1.0, 2.5])
@pytest.mark.parametrize("shape", [(5, 3), (3, 6)])
def test_free_energy_and_log_z_match_brute_force(beta, shape):
    rbm = random_rbm(*shape, beta=beta, seed=hash(shape) % 100)
    log_z, V, F = brute_force(rbm)
    assert torch.allclose(rbm.free_energy(V), F, atol=1e-12, rtol=0)
    assert abs(exact_log_partition(rbm) - log_z) < 1e-10
    ll = rbm.log_likelihood(V[:7], log_z)
    p = torch.exp(-beta * F - log_z)
    assert abs(p.sum() - 1) < 1e-12
    assert abs(ll - float(torch.log(p[:7]).mean())) < 1e-10


def test_exact_log_z_chunks_and_limit():
    rbm = random_rbm(30, 12, beta=0.7, scale=0.3)
    assert abs(exact_log_partition(rbm, chunk=64) - exact_log_partition(rbm)) < 1e-9
    with pytest.raises(ValueError, match="max_units=10"):
        exact_log_partition(rbm, max_units=10)


def test_conditionals_honour_beta():
    rbm = random_rbm(4, 3, beta=2.0)
    v = torch.tensor([[1.0, 0, 1, 1]], dtype=torch.float64)
    expected = torch.sigmoid(2.0 * (rbm.hidden_bias + v @ rbm.W))
    assert torch.allclose(rbm.hidden_probabilities(v), expected)
    # Gibbs chains at equilibrium reproduce the exact visible marginal
    log_z, V, F = brute_force(rbm)
    p_exact = torch.exp(-rbm.beta * F - log_z)
    g = torch.Generator().manual_seed(0)
    v = rbm.gibbs(torch.zeros(40000, 4, dtype=torch.float64), steps=30, seed=g)
    idx = (v * 2 ** torch.arange(4, dtype=torch.float64)).sum(1).long()
    freq = torch.bincount(idx, minlength=16).double() / len(v)
    assert (freq - p_exact).abs().max() < 0.012


def test_from_weights_accepts_numpy_and_checks_shapes(tmp_path):
    W = np.random.default_rng(0).normal(size=(4, 3))
    rbm = RBM.from_weights(W, np.zeros(4), np.zeros(3), beta=0.5)
    assert rbm.W.shape == (4, 3) and rbm.beta == 0.5
    with pytest.raises(ValueError, match="visible_bias"):
        RBM.from_weights(W, np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="beta"):
        RBM(4, 3, beta=0)
    with pytest.raises(ValueError, match="n_hidden"):
        RBM(4, 0)
    with pytest.raises(ValueError, match=r"shape \(batch, 4\)"):
        rbm.free_energy(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="NaN"):
        rbm.free_energy(torch.tensor([[0.0, float("inf"), 0, 0]]))
    loaded = RBM.load(rbm.save(tmp_path / "x.rbm"))
    assert torch.equal(loaded.W, rbm.W) and loaded.beta == 0.5

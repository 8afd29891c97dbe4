"""Tests for thermolearn.deep.flatness: local energy under weight noise and replica distances.

Checks: exact values at sigma = 0; the model left untouched; closed-form expectations of the
squared loss of a linear model under additive and multiplicative Gaussian weight noise (within
Monte-Carlo error); a hand re-implementation of every draw from the documented random stream;
reproducibility; input errors; hand-computed distances.
"""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from thermolearn.deep import classification_error, local_energy, replica_distances
from thermolearn.results import LocalEnergy


def linear_problem(n=40, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, 1, generator=g, dtype=torch.float64)
    model = nn.Linear(d, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, d, generator=g, dtype=torch.float64))
        model.bias.fill_(0.3)
        y = model(X) + 0.3 * y                # a good fit: small residuals
    return model, X, y


def mse(out, target):
    return ((out - target) ** 2).mean()


# ---------------------------------------------------------------------------------------------
# local_energy
# ---------------------------------------------------------------------------------------------

def test_sigma_zero_is_exact_unperturbed():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    X = torch.randn(30, 5, dtype=torch.float64)
    T = torch.randint(0, 3, (30,))
    res = local_energy(net, nn.functional.cross_entropy, (X, T), [0.0, 0.1], draws=5, metric="both")
    with torch.no_grad():
        out = net(X)
        loss0 = float(nn.functional.cross_entropy(out, T))
        err0 = float((out.argmax(1) != T).double().mean())
    loss, err = res["loss"], res["error"]
    assert isinstance(loss, LocalEnergy) and sorted(res) == ["error", "loss"]
    assert (loss.kind, loss.metric, err.metric) == ("multiplicative", "loss", "error")
    assert np.all(loss.values[0] == loss0) and loss.base == loss0
    assert np.all(err.values[0] == err0) and err.base == err0
    assert loss.mean[0] == pytest.approx(loss0, rel=1e-15, abs=0)
    assert loss.std[0] == 0 and err.std[0] == 0 and loss.sem[0] == 0
    assert loss.std[1] > 0 and loss.sem[1] == pytest.approx(loss.std[1] / math.sqrt(5))
    assert loss.values.shape == (2, 5) and loss.draws == 5
    np.testing.assert_array_equal(loss.sizes, [0.0, 0.1])
    assert loss.as_dict()["draws"] == 5


def test_model_untouched_and_evaluated_in_eval_mode():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Dropout(0.5), nn.Linear(6, 2)).double()
    X = torch.randn(25, 4, dtype=torch.float64)
    T = torch.randint(0, 2, (25,))
    net.train()
    net[2].eval()                            # a mixed state, which must come back as it was
    before = copy.deepcopy(net.state_dict())
    res = local_energy(net, nn.functional.cross_entropy, (X, T), [0.0, 0.2, 0.5], draws=3,
                       kind="additive")
    after = net.state_dict()
    for k in before:                          # weights and BatchNorm statistics unchanged
        torch.testing.assert_close(after[k], before[k], rtol=0, atol=0)
    assert net.training and net[1].training and not net[2].training and net[3].training
    # the evaluation ran in eval mode: deterministic despite the dropout, running BN statistics
    ref = copy.deepcopy(net).eval()
    with torch.no_grad():
        assert res.base == float(nn.functional.cross_entropy(ref(X), T))


@pytest.mark.parametrize("kind", ["additive", "multiplicative"])
def test_linear_model_closed_form(kind):
    """f(x) = w.x + b, squared loss: E[loss] = loss_0 + sigma^2 * mean_i sum_j s_j^2 x_ij^2 with
    s_j = 1 (additive; bias input x = 1) or s_j = w_j (multiplicative)."""
    model, X, y = linear_problem()
    sigmas = np.array([0.0, 0.05, 0.2, 0.5])
    draws = 600
    res = local_energy(model, mse, (X, y), sigmas, kind=kind, draws=draws, seed=3)
    with torch.no_grad():
        L0 = float(mse(model(X), y))
        Xb = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], 1)
        if kind == "additive":
            s2 = torch.ones(Xb.shape[1], dtype=X.dtype)
        else:
            s2 = torch.cat([model.weight.reshape(-1), model.bias]) ** 2
        curvature = float((Xb ** 2 @ s2).mean())
    expect = L0 + sigmas ** 2 * curvature
    stderr = res.sem
    assert res.base == L0 and res.mean[0] == pytest.approx(L0, rel=1e-15)
    assert np.all(np.abs(res.mean[1:] - expect[1:]) < 4.5 * stderr[1:])
    # the noise term is far from negligible at the largest sigma
    assert expect[-1] - L0 > 20 * stderr[-1]


@pytest.mark.parametrize("kind", ["additive", "layer-scaled", "multiplicative"])
def test_every_draw_matches_hand_computation(kind):
    """Re-draw z in the documented order and recompute each perturbed loss by hand."""
    model, X, y = linear_problem(n=15, d=4, seed=1)
    sigmas = [0.1, 0.0, 0.3]
    res = local_energy(model, mse, (X, y), sigmas, kind=kind, draws=4, seed=11)
    scaled = kind == "layer-scaled"
    g = torch.Generator().manual_seed(11)
    W, b = model.weight.detach(), model.bias.detach()
    rms_w = float(W.norm()) / math.sqrt(W.numel())
    rms_b = float(b.norm()) / math.sqrt(b.numel())
    for k in range(4):
        zw = torch.randn(W.shape, generator=g, dtype=W.dtype)
        zb = torch.randn(b.shape, generator=g, dtype=b.dtype)
        if scaled:
            zw, zb = zw * rms_w, zb * rms_b
        for i, s in enumerate(sigmas):
            if kind != "multiplicative":
                Wp, bp = W + s * zw, b + s * zb
            else:
                Wp, bp = W * (1 + s * zw), b * (1 + s * zb)
            loss = float((((X @ Wp.T + bp) - y) ** 2).mean())
            assert res.values[i, k] == pytest.approx(loss, rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(res.mean, res.values.mean(1), rtol=1e-14)
    np.testing.assert_allclose(res.std[[0, 2]], res.values[[0, 2]].std(1, ddof=1), rtol=1e-12)


def test_seed_reproducibility_and_common_random_numbers():
    model, X, y = linear_problem(seed=2)
    a = local_energy(model, mse, (X, y), [0.05, 0.1, 0.2], draws=6, seed=5)
    b = local_energy(model, mse, (X, y), [0.05, 0.1, 0.2], draws=6, seed=torch.Generator().manual_seed(5))
    c = local_energy(model, mse, (X, y), [0.05, 0.1, 0.2], draws=6, seed=6)
    np.testing.assert_array_equal(a.values, b.values)
    assert np.abs(a.values - c.values).max() > 1e-6
    # a sigma's draws do not depend on the other sigmas requested
    single = local_energy(model, mse, (X, y), 0.1, draws=6, seed=5)
    np.testing.assert_array_equal(single.values[0], a.values[1])


def test_batches_equal_one_big_batch():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)).double()
    X = torch.randn(23, 3, dtype=torch.float64)
    T = torch.randint(0, 4, (23,))
    whole = local_energy(net, nn.functional.cross_entropy, (X, T), [0.0, 0.3], draws=3, metric="both")
    batches = [(X[:10], T[:10]), (X[10:17], T[10:17]), (X[17:], T[17:])]   # unequal sizes
    parts = local_energy(net, nn.functional.cross_entropy, batches, [0.0, 0.3], draws=3, metric="both")
    gen = local_energy(net, nn.functional.cross_entropy, iter(batches), [0.0, 0.3], draws=3,
                       metric="both")
    for r in (parts, gen):
        np.testing.assert_allclose(r["loss"].values, whole["loss"].values, rtol=1e-12)
        np.testing.assert_allclose(r["error"].values, whole["error"].values, rtol=1e-12)


def test_select_and_error_metric():
    model, X, _ = linear_problem(n=50, seed=4)
    labels = torch.where(model(X).detach() > 0.1, 1.0, -1.0)   # +-1 labels, some errors at w
    res = local_energy(model, mse, (X, labels), [0.0, 1.0], draws=3, metric="error",
                       kind="additive", select=lambda name, p: name == "bias")
    assert isinstance(res, LocalEnergy) and res.metric == "error"
    out = model(X).detach()
    assert res.base == float((out * labels <= 0).double().mean())
    # only the bias moves: the weight stays, so each draw is the error of w.x + b + z
    g = torch.Generator().manual_seed(0)
    for k in range(3):
        z = torch.randn(1, generator=g, dtype=torch.float64)
        shifted = out + z
        assert res.values[1, k] == float((shifted * labels <= 0).double().mean())


def test_classification_error_by_hand():
    out = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [0.0, 1.0, 0.5]])
    assert float(classification_error(out, torch.tensor([0, 1, 1, 0]))) == 0.5
    onehot = nn.functional.one_hot(torch.tensor([0, 1, 2, 2]), 3).double()
    assert float(classification_error(out, onehot)) == 0.25
    s = torch.tensor([0.5, -1.0, 2.0, 0.0])
    assert float(classification_error(s, torch.tensor([1.0, 1.0, -1.0, 1.0]))) == 0.75
    assert float(classification_error(s.reshape(-1, 1), torch.tensor([1, 0, 1, 1]))) == 0.25


def test_input_errors():
    model, X, y = linear_problem(n=5)
    with pytest.raises(ValueError, match="sigmas"):
        local_energy(model, mse, (X, y), [0.1, -0.2])
    with pytest.raises(ValueError, match="sigmas"):
        local_energy(model, mse, (X, y), [float("nan")])
    with pytest.raises(ValueError, match="sigmas"):
        local_energy(model, mse, (X, y), [])
    with pytest.raises(ValueError, match="kind"):
        local_energy(model, mse, (X, y), [0.1], kind="gaussian")
    with pytest.raises(ValueError, match="metric"):
        local_energy(model, mse, (X, y), [0.1], metric="accuracy")
    with pytest.raises(ValueError, match="draws"):
        local_energy(model, mse, (X, y), [0.1], draws=0)
    with pytest.raises(ValueError, match="no parameters"):
        local_energy(model, mse, (X, y), [0.1], select=lambda n, p: False)
    with pytest.raises(TypeError, match="data"):
        local_energy(model, mse, 3.0, [0.1])


# ---------------------------------------------------------------------------------------------
# replica_distances
# ---------------------------------------------------------------------------------------------

def test_replica_distances_by_hand():
    reps = [[torch.tensor([0.0, 0.0]), torch.tensor([[1.0]])],
            [torch.tensor([2.0, 0.0]), torch.tensor([[1.0]])],
            [torch.tensor([1.0, 3.0]), torch.tensor([[4.0]])]]
    # flat vectors (0,0,1), (2,0,1), (1,3,4); mean (1,1,2)
    r = replica_distances(reps)
    assert r["to_center"].dtype == torch.float64
    np.testing.assert_allclose(r["to_center"].numpy(), [1 + 1 + 1, 1 + 1 + 1, 0 + 4 + 4])
    assert r["mean_to_center"] == pytest.approx(14 / 3)
    pairs = [4.0, 1 + 9 + 9, 1 + 9 + 9]          # |w1-w2|^2, |w1-w3|^2, |w2-w3|^2
    assert r["pairwise"] == pytest.approx(np.mean(pairs))
    assert r["pairwise"] == pytest.approx(2 * 3 / 2 * r["mean_to_center"])
    c = replica_distances(reps, center=[torch.zeros(2), torch.zeros(1, 1)])
    np.testing.assert_allclose(c["to_center"].numpy(), [1.0, 5.0, 26.0])
    assert c["pairwise"] == pytest.approx(np.mean(pairs))


def test_replica_distances_modules_and_single_replica():
    torch.manual_seed(4)
    nets = [nn.Linear(3, 2) for _ in range(4)]
    r = replica_distances(nets, center=nets[0])
    flat = [torch.cat([p.detach().reshape(-1) for p in n.parameters()]).double() for n in nets]
    np.testing.assert_allclose(r["to_center"].numpy(),
                               [float((f - flat[0]).pow(2).sum()) for f in flat], rtol=1e-12)
    pairs = [float((flat[a] - flat[b]).pow(2).sum()) for a in range(4) for b in range(a + 1, 4)]
    assert r["pairwise"] == pytest.approx(np.mean(pairs), rel=1e-12)
    one = replica_distances(nets[:1])
    assert one["to_center"].tolist() == [0.0] and math.isnan(one["pairwise"])
    with pytest.raises(ValueError, match="replica 1"):
        replica_distances([nn.Linear(3, 2), nn.Linear(2, 2)])

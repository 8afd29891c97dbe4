"""Unrolled mean field as a tied-weight network: MeanFieldMLP and RBM.as_mlp."""

import pytest
import torch

from thermolearn.ebm import RBM, MeanFieldMLP


def _rbm(beta=1.0, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = 0.5 * torch.randn(12, 7, generator=g, dtype=torch.float64)
    a = 0.3 * torch.randn(12, generator=g, dtype=torch.float64)
    b = 0.3 * torch.randn(7, generator=g, dtype=torch.float64)
    return RBM.from_weights(W, a, b, beta=beta, dtype=dtype)


def _data(n=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 12, generator=g, dtype=torch.float64) < 0.4).double()


def _mean_field(rbm, v, steps):
    """Mean-field rounds written out element by element, independently of the module."""
    W, a, b, beta = rbm.W.tolist(), rbm.visible_bias.tolist(), rbm.hidden_bias.tolist(), rbm.beta
    n_v, n_h = len(a), len(b)
    sig = lambda x: 1.0 / (1.0 + torch.exp(torch.tensor(-x, dtype=torch.float64)).item())  # noqa: E731
    out = []
    for row in v.tolist():
        h = [sig(beta * (b[j] + sum(row[i] * W[i][j] for i in range(n_v)))) for j in range(n_h)]
        for _ in range(steps):
            m = [sig(beta * (a[i] + sum(W[i][j] * h[j] for j in range(n_h)))) for i in range(n_v)]
            h = [sig(beta * (b[j] + sum(m[i] * W[i][j] for i in range(n_v)))) for j in range(n_h)]
        out.append(h)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("steps", [0, 1, 5])
@pytest.mark.parametrize("beta", [1.0, 1.6])
def test_forward_is_mean_field(steps, beta):
    rbm, v = _rbm(beta), _data()
    net = rbm.as_mlp(steps)
    assert isinstance(net, MeanFieldMLP) and net.tied and net.steps == steps and net.n_layers == 2 * steps + 1
    h = net(v)
    assert h.shape == (9, 7) and h.dtype == torch.float64
    torch.testing.assert_close(h, _mean_field(rbm, v, steps), rtol=0, atol=1e-6)
    # float32 model: the same function to float32 accuracy
    h32 = rbm.to(dtype=torch.float32).as_mlp(steps)(v.float())
    assert h32.dtype == torch.float32
    torch.testing.assert_close(h32.double(), h, rtol=0, atol=1e-5)


def test_more_steps_approach_a_fixed_point():
    """With weak couplings mean field converges: the change per round shrinks."""
    rbm, v = _rbm(), _data()
    with torch.no_grad():
        hs = [rbm.as_mlp(s)(v) for s in (8, 9, 30, 31)]
    assert float((hs[3] - hs[2]).abs().max()) < float((hs[1] - hs[0]).abs().max()) + 1e-12
    assert float((hs[3] - hs[2]).abs().max()) < 1e-6


@pytest.mark.parametrize("steps", [0, 1, 3])
def test_parameters_and_gradients(steps):
    rbm, v = _rbm(), _data()
    net = rbm.as_mlp(steps)
    names = dict(net.named_parameters())
    assert set(names) == {"W", "visible_bias", "hidden_bias"}
    assert names["W"].shape == (12, 7) and names["visible_bias"].shape == (12,) and names["hidden_bias"].shape == (7,)
    net(v).square().sum().backward()
    assert net.W.grad is not None and float(net.W.grad.abs().sum()) > 0
    assert net.hidden_bias.grad is not None and float(net.hidden_bias.grad.abs().sum()) > 0
    if steps == 0:                              # the visible bias is not used without a round
        assert net.visible_bias.grad is None
    else:
        assert float(net.visible_bias.grad.abs().sum()) > 0
    # the RBM's tensors are untouched and are no parameters: copies, not shared storage
    assert not rbm.W.requires_grad and rbm.W.data_ptr() != net.W.data_ptr()
    # gradient of W against finite differences of one entry
    eps = 1e-6
    loss = lambda m: float(m(v).detach().square().sum())  # noqa: E731
    plus, minus = rbm.as_mlp(steps), rbm.as_mlp(steps)
    with torch.no_grad():
        plus.W[2, 3] += eps
        minus.W[2, 3] -= eps
    assert float(net.W.grad[2, 3]) == pytest.approx((loss(plus) - loss(minus)) / (2 * eps), rel=1e-5, abs=1e-8)


def test_copies_and_round_trip():
    rbm = _rbm(beta=1.3)
    net = rbm.as_mlp(2)
    with torch.no_grad():
        net.W.add_(1.0)
        net.hidden_bias.add_(0.5)
    assert torch.equal(rbm.W, _rbm(beta=1.3).W)           # the RBM did not change
    back = net.to_rbm()
    assert isinstance(back, RBM) and back.beta == 1.3 and not back.W.requires_grad
    torch.testing.assert_close(back.W, rbm.W + 1.0)
    torch.testing.assert_close(back.hidden_bias, rbm.hidden_bias + 0.5)
    torch.testing.assert_close(back.visible_bias, rbm.visible_bias)
    # the round trip computes the same function
    torch.testing.assert_close(back.as_mlp(2)(_data()), net(_data()).detach())


@pytest.mark.parametrize("steps", [0, 1, 4])
def test_untied_starts_equal_and_has_its_own_weights(steps):
    rbm, v = _rbm(), _data()
    tied, untied = rbm.as_mlp(steps), MeanFieldMLP.from_rbm(rbm, steps, tied=False)
    assert not untied.tied
    assert untied.W.shape == (2 * steps + 1, 12, 7)
    assert untied.visible_bias.shape == (steps, 12) and untied.hidden_bias.shape == (steps + 1, 7)
    torch.testing.assert_close(untied(v), tied(v), rtol=0, atol=1e-12)
    n_tied = sum(p.numel() for p in tied.parameters())
    n_untied = sum(p.numel() for p in untied.parameters())
    assert n_untied == (2 * steps + 1) * 84 + steps * 12 + (steps + 1) * 7 and n_tied == 84 + 12 + 7
    untied(v).sum().backward()
    assert untied.W.grad.shape == untied.W.shape
    assert bool((untied.W.grad.flatten(1).abs().sum(1) > 0).all())     # every layer is trained
    if steps:
        with torch.no_grad():                   # changing one layer changes the function
            untied.W[1].add_(0.3)
        assert float((untied(v) - tied(v)).detach().abs().max()) > 1e-4
    with pytest.raises(ValueError, match="^tied"):
        untied.to_rbm()


def test_bad_arguments():
    rbm = _rbm()
    for bad in (-1, 1.5, True, "2", None):
        with pytest.raises(ValueError, match="^steps"):
            rbm.as_mlp(bad)
    with pytest.raises(TypeError, match="^tied"):
        MeanFieldMLP(rbm.W, rbm.visible_bias, rbm.hidden_bias, 1, tied="no")
    with pytest.raises(ValueError, match="^beta"):
        MeanFieldMLP(rbm.W, rbm.visible_bias, rbm.hidden_bias, 1, beta=0)
    with pytest.raises(ValueError, match="^visible_bias"):
        MeanFieldMLP(rbm.W, torch.zeros(3), rbm.hidden_bias, 1)
    with pytest.raises(ValueError, match="^hidden_bias"):
        MeanFieldMLP(rbm.W, rbm.visible_bias, torch.zeros(3), 1)
    with pytest.raises(ValueError, match="^v"):
        rbm.as_mlp(1)(torch.zeros(3, 11))
    assert "steps=1" in repr(rbm.as_mlp(1)) and "tied=True" in repr(rbm.as_mlp(1))


def test_mf_as_mlp_experiment_points():
    """The registered experiment: tied and untied runs are paired, identical at steps = 0."""
    import json

    from thermolearn.experiments.ebm import mf_as_mlp
    from thermolearn.experiments.registry import get

    exp = get("mf-as-mlp")
    assert exp is mf_as_mlp.EXPERIMENT and len(exp.points(quick=True)) == 4 * 2 * 3
    small = {"data": "digits", "hidden": 8, "rbm_epochs": 1, "rbm_lr": 0.05, "epochs": 1, "batch_size": 200,
             "lr": 1e-2, "seed": 0}
    recs = {(s, w): mf_as_mlp.run({**small, "steps": s, "weights": w})[0] for s in (0, 1) for w in ("tied", "untied")}
    assert json.loads(json.dumps(recs[1, "untied"])) == recs[1, "untied"]
    for key in ("test_error_percent", "test_loss", "train_error_percent", "train_loss"):
        assert recs[0, "tied"][key] == pytest.approx(recs[0, "untied"][key], abs=1e-5), key
        assert 0 <= recs[1, "tied"][key] < 100
    # steps = 0: the tied network keeps its (unused) visible bias, the untied one has none
    assert recs[0, "tied"]["parameters"] == recs[0, "untied"]["parameters"] + 64 == 64 * 8 + 64 + 8 + 8 * 10 + 10
    assert recs[1, "untied"]["parameters"] == 3 * 64 * 8 + 64 + 2 * 8 + 90
    assert recs[1, "tied"]["test_loss"] != recs[1, "untied"]["test_loss"]

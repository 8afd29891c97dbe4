"""Replicated as a torch module: forward, modes, .to(), parameters, state_dict, torch.compile."""

import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from thermolearn.deep import Replicated
from thermolearn.seeding import spawn_seeds

D_IN, HID, K = 6, 10, 3


def mlp(seed=0, dropout=0.0, bn=False):
    torch.manual_seed(seed)
    layers = [nn.Linear(D_IN, HID), nn.ReLU()]
    layers += [nn.BatchNorm1d(HID)] if bn else []
    layers += [nn.Dropout(dropout)] if dropout else []
    return nn.Sequential(*layers, nn.Linear(HID, K))


def cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, K))


def data(n=12, seed=0, image=False):
    g = torch.Generator().manual_seed(seed)
    shape = (n, 1, 6, 6) if image else (n, D_IN)
    return torch.randn(*shape, generator=g), torch.randint(0, K, (n,), generator=g)


def replica_outputs(rep, x):
    with torch.no_grad():
        return torch.stack([rep.replica(a)(x) for a in range(rep.replicas)])


@pytest.mark.parametrize("make,vmap,path", [(mlp, "auto", "bmm"), (mlp, True, "vmap"), (cnn, "auto", "vmap"),
                                            (mlp, False, "loop")])
def test_forward_stacks_every_replica_on_the_same_input(make, vmap, path):
    y = 3
    rep = Replicated(make(), y, reinit=True, seed=0, vmap=vmap)
    assert isinstance(rep, nn.Module)
    x, t = data(5, image=make is cnn)
    out = rep(x)
    assert out.shape == (y, 5, K) and out.requires_grad
    torch.testing.assert_close(out.detach(), replica_outputs(rep, x), atol=1e-6, rtol=1e-6)
    # differentiable with respect to the stacked parameters: an external optimizer works too
    opt = torch.optim.SGD(rep.parameters(), lr=0.1)
    before = [p.detach().clone() for p in rep.parameters()]
    F.cross_entropy(out.flatten(0, 1), t[:5].repeat(y)).backward()
    opt.step()
    assert all(not torch.equal(p, b) for p, b in zip(rep.parameters(), before))
    rep.step((torch.cat([x] * 3), torch.cat([t[:5]] * 3)), F.cross_entropy)
    assert rep.path == path


def test_parameters_buffers_and_state_dict_keys():
    y = 4
    base = mlp(bn=True)
    rep = Replicated(base, y, coupling="center", reinit=True, seed=1)
    names = [n for n, _ in rep.named_parameters()]
    assert names == [f"stack.{n}" for n, _ in base.named_parameters()]
    for (_, p), (_, q) in zip(rep.named_parameters(), base.named_parameters()):
        assert isinstance(p, nn.Parameter) and p.shape == (y, *q.shape)
    assert sum(p.numel() for p in rep.parameters()) == y * sum(p.numel() for p in base.parameters())
    assert {n for n, _ in rep.named_buffers()} == (
        {f"stack.{n}" for n, _ in base.named_buffers()}
        | {f"center_weights.{n}" for n, _ in base.named_parameters()})
    sd = rep.state_dict()
    assert sd["stack.2.running_mean"].shape == (y, HID)
    assert sd["center_weights.0.weight"].shape == base[0].weight.shape
    extra = sd["_extra_state"]
    assert extra["replicas"] == y and extra["coupling"] == "center" and extra["steps"] == 0
    # the center is not a parameter: an optimizer on rep.parameters() leaves it alone
    assert not any(n.startswith("center") for n, _ in rep.named_parameters())


@pytest.mark.parametrize("coupling", ["mean", "center"])
def test_to_float64_moves_replicas_center_and_optimizer_state(coupling):
    y = 3
    rep = Replicated(mlp(bn=True), y, coupling=coupling, gamma=0.1, reinit=True, seed=2,
                     optimizer=lambda p: torch.optim.Adam(p, lr=0.01))
    x, t = data(12)
    rep.step((x, t), F.cross_entropy)
    strides = {n: p.stride() for n, p in rep.named_parameters()}
    assert rep.to(torch.float64) is rep
    for n, v in rep.state_dict().items():
        if n != "_extra_state" and v.is_floating_point():
            assert v.dtype == torch.float64, n
    for n, p in rep.named_parameters():
        assert p.dtype == torch.float64 and p.stride() == strides[n]   # the layout is kept
    for st in rep.optimizer.state.values():
        assert st["exp_avg"].dtype == st["exp_avg_sq"].dtype == torch.float64
    assert set(map(id, rep.optimizer.param_groups[0]["params"])) == set(map(id, rep.parameters()))
    assert all(p.dtype == torch.float64 for a in range(y) for p in rep.replica(a).parameters())
    assert all(p.dtype == torch.float64 for p in rep.center.parameters())
    assert rep(x.double()).dtype == torch.float64
    # the converted state trains like a replica set built in float64 from the same state
    ref = Replicated(mlp(bn=True), y, coupling=coupling, gamma=0.1,
                     optimizer=lambda p: torch.optim.Adam(p, lr=0.01)).double()
    ref.load_state_dict(rep.state_dict())
    x2, t2 = data(12, seed=1)
    assert rep.step((x2.double(), t2), F.cross_entropy) == ref.step((x2.double(), t2), F.cross_entropy)
    for n, p in rep.named_parameters():
        assert torch.equal(p, ref.get_parameter(n))


def test_train_and_eval_propagate_to_dropout_and_batchnorm():
    y = 3
    rep = Replicated(mlp(dropout=0.5, bn=True), y, reinit=True, seed=3)
    x, _ = data(8)
    assert rep.training and all(m.training for m in rep.stack.modules())
    running = rep.stacked_buffers["2.running_mean"].clone()
    with torch.no_grad():
        a, b = rep(x), rep(x)
    assert not torch.equal(a, b)                                       # fresh dropout masks
    assert not torch.equal(rep.stacked_buffers["2.running_mean"], running)   # batch statistics
    assert int(rep.stacked_buffers["2.num_batches_tracked"][0]) == 2
    rep.eval()
    assert not any(m.training for m in rep.stack.modules())
    running = rep.stacked_buffers["2.running_mean"].clone()
    with torch.no_grad():
        a, b = rep(x), rep(x)
    assert torch.equal(a, b) and torch.equal(rep.stacked_buffers["2.running_mean"], running)
    torch.testing.assert_close(a, replica_outputs(rep, x), atol=1e-6, rtol=1e-6)
    # predictions switch to eval mode and back
    rep.train()
    rep.predict(x, "ensemble")
    assert rep.training and rep.stack[3].training


def test_state_dict_round_trip_through_weights_only_load():
    y = 3
    make = lambda: Replicated(mlp(bn=True), y, coupling="center", gamma=0.2, reinit=True, seed=4,  # noqa: E731
                              optimizer=lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9))
    rep, other = make(), make()
    for s in range(3):
        rep.step(data(12, seed=s), F.cross_entropy)
    buf = io.BytesIO()
    torch.save(rep.state_dict(), buf)
    buf.seek(0)
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert other.steps == 3
    x, t = data(12, seed=9)
    assert rep.step((x, t), F.cross_entropy) == other.step((x, t), F.cross_entropy)
    for n, v in rep.state_dict().items():
        if n != "_extra_state":
            assert torch.equal(v, other.state_dict()[n]), n
    # assign=True: the module takes the loaded tensors, and its optimizer follows them
    third = make()
    third.load_state_dict(rep.state_dict(), assign=True)
    assert set(map(id, third.optimizer.param_groups[0]["params"])) == set(map(id, third.parameters()))
    assert set(third.optimizer.state) == set(third.parameters())
    x, t = data(12, seed=10)
    assert third.step((x, t), F.cross_entropy) == other.step((x, t), F.cross_entropy)
    mean = Replicated(mlp(bn=True), y, coupling="mean")
    with pytest.raises((ValueError, RuntimeError), match="coupling|center_weights"):
        mean.load_state_dict(rep.state_dict())


@pytest.mark.parametrize("make", [mlp, cnn])
def test_compiled_forward_equals_eager(make):
    """torch.compile traces the forward (here with the aot_eager backend: graph capture and
    AOT autograd, no code generation, so that the test stays fast on a CPU)."""
    torch._dynamo.reset()
    rep = Replicated(make(), 3, reinit=True, seed=5).eval()
    x, _ = data(4, image=make is cnn)
    compiled = torch.compile(rep, backend="aot_eager", fullgraph=make is mlp)
    torch.testing.assert_close(compiled(x), rep(x), atol=1e-6, rtol=1e-6)


@pytest.mark.slow
def test_inductor_compiled_forward_and_backward_equal_eager():
    torch._dynamo.reset()
    rep = Replicated(mlp(), 4, reinit=True, seed=6)
    x, t = data(8)
    compiled = torch.compile(rep, fullgraph=True)
    out_c, out_e = compiled(x), rep(x)
    torch.testing.assert_close(out_c, out_e, atol=1e-5, rtol=1e-5)
    g_c = torch.autograd.grad(out_c.square().sum(), list(rep.parameters()))
    g_e = torch.autograd.grad(out_e.square().sum(), list(rep.parameters()))
    for a, b in zip(g_c, g_e):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_seeds_int_and_generator_agree_and_leave_global_rng_alone():
    from thermolearn.deep import reset_parameters

    state = torch.random.get_rng_state()
    factory = lambda: nn.Linear(D_IN, K)  # noqa: E731 - drawn from the (seeded) global generators
    a = Replicated(factory, 3, seed=7)
    b = Replicated(factory, 3, seed=torch.Generator().manual_seed(7))
    c = Replicated(factory, 3, seed=8)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.stacked["weight"], b.stacked["weight"])
    assert not torch.equal(a.stacked["weight"], c.stacked["weight"])
    m1, m2 = reset_parameters(nn.Linear(4, 2), 3), reset_parameters(nn.Linear(4, 2), torch.Generator().manual_seed(3))
    torch.manual_seed(spawn_seeds(3, 1)[0])
    ref = nn.Linear(4, 2)      # the documented stream
    torch.random.set_rng_state(state)
    assert torch.equal(m1.weight, ref.weight) and torch.equal(m1.weight, m2.weight)
    fresh = nn.Linear(4, 2)
    state = torch.random.get_rng_state()
    reset_parameters(fresh, None)
    assert torch.equal(torch.random.get_rng_state(), state)
    with pytest.raises(ValueError, match="^seed"):
        Replicated(factory, 2, seed=-1)

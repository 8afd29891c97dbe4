"""Tests for thermolearn.deep.Replicated (replicated training of ordinary torch modules)."""

import copy
import io
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from thermolearn.deep import Replicated
from thermolearn.errors import TrainingDiverged
from thermolearn.schedules import Geometric
from thermolearn.seeding import spawn_seeds

D_IN, HID, K = 6, 10, 3


def mlp(seed, bn=False, dtype=torch.float64):
    torch.manual_seed(seed)
    # BatchNorm after the nonlinearity: a bias right before a BatchNorm has a zero gradient, whose
    # rounding noise Adam would blow up to steps of size lr
    layers = [nn.Linear(D_IN, HID), nn.Tanh()] + ([nn.BatchNorm1d(HID)] if bn else []) + [nn.Linear(HID, K)]
    return nn.Sequential(*layers).to(dtype)


def from_list(modules):
    """A factory handing out deep copies of ``modules`` in order."""
    it = iter([copy.deepcopy(m) for m in modules])
    return lambda: next(it)


def batches(y, steps, n=8, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [[(torch.randn(n, D_IN, generator=g, dtype=dtype), torch.randint(0, K, (n,), generator=g))
             for _ in range(y)] for _ in range(steps)]


def assert_replicas_equal(rep, modules, atol):
    for a, m in enumerate(modules):
        for name, p in m.named_parameters():
            torch.testing.assert_close(rep.stacked[name][a].detach(), p.detach(), atol=atol, rtol=0)
        for name, b in m.named_buffers():
            torch.testing.assert_close(rep.stacked_buffers[name][a], b, atol=atol, rtol=0)


OPTIMIZERS = {
    "sgd-momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3),
    "nesterov": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True),
    "adam": lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=1e-3),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01),
}


# ---------------------------------------------------------------------------------------------
# gamma = 0: y independent trainings
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_uncoupled_equals_independent_modules(opt, dtype, atol):
    y, steps = 3, 6
    mods = [mlp(10 + a, bn=True, dtype=dtype) for a in range(y)]
    rep = Replicated(from_list(mods), y, gamma=0.0, optimizer=OPTIMIZERS[opt])
    opts = [OPTIMIZERS[opt](list(m.parameters())) for m in mods]
    for step_batches in batches(y, steps, dtype=dtype):
        loss = rep.step(step_batches, F.cross_entropy)
        ref = []
        for m, o, (x, t) in zip(mods, opts, step_batches):
            o.zero_grad()
            lo = F.cross_entropy(m(x), t)
            lo.backward()
            o.step()
            ref.append(float(lo.detach()))
        assert loss == pytest.approx(sum(ref) / y, abs=10 * atol)
        assert_replicas_equal(rep, mods, atol)
    assert rep._vmap is True and rep.steps == steps


class Tied(nn.Module):
    """Two layers sharing one weight."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(D_IN, HID)
        self.a2 = nn.Linear(D_IN, HID)
        self.a2.weight = self.a.weight
        self.head = nn.Linear(HID, K)

    def forward(self, x):
        return self.head(torch.tanh(self.a(x)) + torch.tanh(self.a2(-x)))


def test_tied_weights_stay_tied():
    y = 2
    torch.manual_seed(0)
    mods = [Tied().double() for _ in range(y)]
    rep = Replicated(from_list(mods), y, optimizer=OPTIMIZERS["adam"])
    assert rep._tied and "a2.weight" not in rep.stacked
    opts = [OPTIMIZERS["adam"](list(m.parameters())) for m in mods]
    for step_batches in batches(y, 3, seed=12):
        rep.step(step_batches, F.cross_entropy)
        for m, o, (x, t) in zip(mods, opts, step_batches):
            o.zero_grad()
            F.cross_entropy(m(x), t).backward()
            o.step()
    assert_replicas_equal(rep, mods, 1e-12)
    r = rep.replica(1)
    assert r.a2.weight is r.a.weight


def test_module_is_copied_and_left_alone():
    net = mlp(0)
    before = copy.deepcopy(net.state_dict())
    rep = Replicated(net, 2, optimizer=lambda p: torch.optim.SGD(p, lr=0.5))
    rep.step(batches(2, 1)[0], F.cross_entropy)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    # both replicas started as copies and saw different data
    assert not torch.equal(rep.stacked["0.weight"][0], rep.stacked["0.weight"][1])


# ---------------------------------------------------------------------------------------------
# vmap vs loop
# ---------------------------------------------------------------------------------------------

LOSSES = {
    "F.cross_entropy": F.cross_entropy,
    "nn.CrossEntropyLoss": nn.CrossEntropyLoss(label_smoothing=0.1),
    "ignore_index": nn.CrossEntropyLoss(ignore_index=1),
    "lambda": lambda out, t: F.cross_entropy(out, t) + 0.01 * out.pow(2).mean(),
    "mse": lambda out, t: F.mse_loss(out, F.one_hot(t, K).to(out.dtype)),
}


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("coupling", ["mean", "center"])
def test_vmapped_step_equals_looped_step(coupling, loss):
    y = 4
    loss_fn = LOSSES[loss]
    mods = [mlp(a, bn=True) for a in range(y)]
    kw = {"coupling": coupling, "gamma": Geometric(0.2, 1 + 0.5),
          "optimizer": lambda p: torch.optim.Adam(p, lr=0.02)}
    fast = Replicated(from_list(mods), y, vmap=True, **kw)
    slow = Replicated(from_list(mods), y, vmap=False, **kw)
    for b in batches(y, 5, seed=3):
        assert fast.step(b, loss_fn) == pytest.approx(slow.step(b, loss_fn), abs=1e-12)
    for name in fast.stacked:
        torch.testing.assert_close(fast.stacked[name], slow.stacked[name], atol=1e-12, rtol=0)
    for name in fast.stacked_buffers:
        torch.testing.assert_close(fast.stacked_buffers[name], slow.stacked_buffers[name], atol=1e-12, rtol=0)
    assert fast._vmap is True and slow._vmap is False
    torch.testing.assert_close(fast.last_losses, slow.last_losses, atol=1e-12, rtol=0)
    assert fast.coupling_energy() == pytest.approx(slow.coupling_energy(), rel=1e-10)


# ---------------------------------------------------------------------------------------------
# coupling
# ---------------------------------------------------------------------------------------------

def objective(mods, center, step_batches, gamma):
    """J = sum_a L_a + gamma/2 sum_a |w_a - c|^2 over explicit per-replica parameter lists;
    ``center=None``: c is the barycenter, computed from (and differentiated through) the replicas."""
    data = sum(F.cross_entropy(m(x), t) for m, (x, t) in zip(mods, step_batches))
    plist = [list(m.parameters()) for m in mods]
    if center is None:
        center = [sum(ps[i] for ps in plist) / len(mods) for i in range(len(plist[0]))]
    pen = sum(sum(((w - c) ** 2).sum() for w, c in zip(ps, center)) for ps in plist)
    return data + 0.5 * gamma * pen, 0.5 * gamma * pen


def test_mean_coupling_step_is_gradient_step_on_objective():
    y, lr, gamma = 3, 0.1, 0.7
    mods = [mlp(20 + a) for a in range(y)]
    rep = Replicated(from_list(mods), y, gamma=gamma, coupling="mean", lr=lr)
    b = batches(y, 1, seed=5)[0]
    J, pen = objective(mods, None, b, gamma)
    J.backward()
    assert rep.coupling_energy() == pytest.approx(float(pen.detach()), rel=1e-12)
    rep.step(b, F.cross_entropy)
    for a, m in enumerate(mods):
        for name, p in m.named_parameters():
            torch.testing.assert_close(rep.stacked[name][a].detach(), p.detach() - lr * p.grad, atol=1e-12, rtol=0)


def test_mean_coupling_gradient_matches_finite_differences():
    """The update of the code, (w - w') / lr, is the gradient of J: check a directional derivative
    of J by central differences (J written with the barycenter as a function of the replicas)."""
    y, lr, gamma = 3, 1e-3, 2.5
    mods = [mlp(30 + a) for a in range(y)]
    rep = Replicated(from_list(mods), y, gamma=gamma, lr=lr)
    b = batches(y, 1, seed=6)[0]
    before = {n: p.detach().clone() for n, p in rep.stacked.items()}
    rep.step(b, F.cross_entropy)
    grad = {n: (before[n] - rep.stacked[n].detach()) / lr for n in before}
    g = torch.Generator().manual_seed(0)
    direction = {n: torch.randn(v.shape, generator=g, dtype=v.dtype) for n, v in before.items()}

    def J_at(eps):
        shifted = [copy.deepcopy(m) for m in mods]
        with torch.no_grad():
            for a, m in enumerate(shifted):
                for n, p in m.named_parameters():
                    p.copy_(before[n][a] + eps * direction[n][a])
        with torch.no_grad():
            return float(objective(shifted, None, b, gamma)[0])

    eps = 1e-5
    fd = (J_at(eps) - J_at(-eps)) / (2 * eps)
    analytic = sum(float((grad[n] * direction[n]).sum()) for n in grad)
    assert fd == pytest.approx(analytic, rel=1e-6)


@pytest.mark.parametrize("center_lr", [None, 0.05])
def test_center_coupling_is_elastic_averaging(center_lr):
    """Several steps against a hand-written EASGD loop with y separate modules and a center list."""
    y, lr, steps = 3, 0.1, 4
    schedule = Geometric(0.3, 1 + 0.2)
    mods = [mlp(40 + a) for a in range(y)]
    rep = Replicated(from_list(mods), y, gamma=schedule, coupling="center", lr=lr, center_lr=center_lr)
    eta_c = lr if center_lr is None else center_lr
    with torch.no_grad():
        center = [sum(ps) / y for ps in zip(*[list(m.parameters()) for m in mods])]
    for t, b in enumerate(batches(y, steps, seed=7)):
        gamma = schedule(t)
        assert rep.gamma == pytest.approx(gamma)
        J, pen = objective(mods, [c.detach() for c in center], b, gamma)
        for m in mods:
            m.zero_grad()
        J.backward()
        with torch.no_grad():
            pull = [sum(ps[i] - center[i] for ps in [list(m.parameters()) for m in mods]) for i in range(len(center))]
            for m in mods:
                for p in m.parameters():
                    p -= lr * p.grad
            for c, s in zip(center, pull):
                c += eta_c * gamma * s
        assert rep.coupling_energy() == pytest.approx(float(pen.detach()), rel=1e-10)
        rep.step(b, F.cross_entropy)
    assert_replicas_equal(rep, mods, 1e-12)
    for (name, _), c in zip(mods[0].named_parameters(), center):
        torch.testing.assert_close(rep.center.get_parameter(name).detach(), c, atol=1e-12, rtol=0)
    d = rep.distances()["to_center"]
    with torch.no_grad():
        expected = [sum(float(((p - c) ** 2).sum()) for p, c in zip(m.parameters(), center)) for m in mods]
    torch.testing.assert_close(d, torch.tensor(expected, dtype=torch.float64), atol=1e-10, rtol=0)


def test_unstable_center_rate_warns():
    rep = Replicated(mlp(0), 4, gamma=1.0, coupling="center", lr=0.6, reinit=True, seed=0)
    with pytest.warns(UserWarning, match="center_lr"):
        rep.step(batches(4, 1)[0], F.cross_entropy)


# ---------------------------------------------------------------------------------------------
# center, replicas, predictions, distances
# ---------------------------------------------------------------------------------------------

def test_center_buffers_are_mean_and_predictions():
    y = 3
    rep = Replicated(lambda: mlp(0, bn=True), y, gamma=0.1, lr=0.1, seed=1)   # factory + seed
    for b in batches(y, 3, seed=8):
        rep.step(b, F.cross_entropy)
    reps = [rep.replica(a) for a in range(y)]
    center = rep.center
    assert not center.training
    for name, b in center.named_buffers():
        if b.is_floating_point():
            torch.testing.assert_close(b, sum(r.get_buffer(name) for r in reps) / y, atol=1e-14, rtol=0)
            assert not torch.allclose(reps[0].get_buffer(name), reps[1].get_buffer(name))
        else:
            assert int(b) == 3
    for name, p in center.named_parameters():
        torch.testing.assert_close(p, sum(r.get_parameter(name) for r in reps) / y, atol=1e-14, rtol=0)
    x = torch.randn(5, D_IN, dtype=torch.float64)
    with torch.no_grad():
        outs = [r(x) for r in reps]
        torch.testing.assert_close(rep.predict(x), center(x), atol=0, rtol=0)
        for a in range(y):
            torch.testing.assert_close(rep.predict(x, which=a), outs[a], atol=1e-13, rtol=0)
        torch.testing.assert_close(rep.predict(x, "all"), torch.stack(outs), atol=1e-13, rtol=0)
        torch.testing.assert_close(rep.predict(x, "ensemble"), sum(o.softmax(-1) for o in outs) / y,
                                   atol=1e-13, rtol=0)
        torch.testing.assert_close(rep.predict(x, "ensemble", average="outputs"), sum(outs) / y,
                                   atol=1e-13, rtol=0)
    # predicting neither trains nor touches the running statistics
    saved = {n: b.clone() for n, b in rep.stacked_buffers.items()}
    rep.predict(x, "ensemble")
    rep.predict(x, 1)
    for n, b in rep.stacked_buffers.items():
        assert torch.equal(b, saved[n])
    assert rep.training and rep.stack.training


def test_distances_against_explicit_pairs():
    y = 4
    rep = Replicated(mlp(0), y, reinit=True, seed=3)
    flat = [torch.cat([p.detach().flatten() for p in rep.replica(a).parameters()]) for a in range(y)]
    bar = sum(flat) / y
    d = rep.distances()
    torch.testing.assert_close(d["to_center"], torch.stack([((w - bar) ** 2).sum() for w in flat]),
                               atol=1e-12, rtol=0)
    pairs = [float(((flat[a] - flat[b]) ** 2).sum()) for a in range(y) for b in range(a + 1, y)]
    assert d["pairwise"] == pytest.approx(sum(pairs) / len(pairs), rel=1e-12)
    assert d["mean_to_center"] == pytest.approx(float(d["to_center"].mean()))
    assert math.isnan(Replicated(mlp(0), 1).distances()["pairwise"])


def test_reinit_with_seed_is_reproducible_and_keeps_global_rng():
    state = torch.random.get_rng_state()
    r1 = Replicated(mlp(0), 3, reinit=True, seed=5)
    r2 = Replicated(mlp(0), 3, reinit=True, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    w = r1.stacked["0.weight"]
    assert torch.equal(w, r2.stacked["0.weight"])
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    # replica a is re-initialised under manual_seed(spawn_seeds(seed, replicas)[a]) ...
    fresh = mlp(0)
    torch.manual_seed(spawn_seeds(5, 3)[1])
    fresh[0].reset_parameters()
    fresh[2].reset_parameters()
    torch.testing.assert_close(w[1].detach(), fresh[0].weight.detach(), atol=0, rtol=0)
    # ... so that its start does not depend on the number of replicas, and a Generator seed
    # gives what its integer gives
    r4 = Replicated(mlp(0), 5, reinit=True, seed=torch.Generator().manual_seed(5))
    torch.testing.assert_close(r4.stacked["0.weight"][:3], w, atol=0, rtol=0)
    torch.set_rng_state(state)


# ---------------------------------------------------------------------------------------------
# batches
# ---------------------------------------------------------------------------------------------

def test_one_batch_is_split_across_replicas():
    y = 3
    mods = [mlp(a) for a in range(y)]
    x = torch.randn(12, D_IN, dtype=torch.float64)
    t = torch.randint(0, K, (12,))
    split = Replicated(from_list(mods), y, lr=0.1)
    listed = Replicated(from_list(mods), y, lr=0.1)
    split.step((x, t), F.cross_entropy)
    listed.step([(x[4 * a:4 * a + 4], t[4 * a:4 * a + 4]) for a in range(y)], F.cross_entropy)
    for n in split.stacked:
        assert torch.equal(split.stacked[n], listed.stacked[n])
    # uneven split (4, 4, 3 rows): loop path, same as the listed chunks
    uneven = Replicated(from_list(mods), y, lr=0.1)
    ref = Replicated(from_list(mods), y, lr=0.1, vmap=False)
    uneven.step((x[:11], t[:11]), F.cross_entropy)
    ref.step([(x[:4], t[:4]), (x[4:8], t[4:8]), (x[8:11], t[8:11])], F.cross_entropy)
    for n in uneven.stacked:
        torch.testing.assert_close(uneven.stacked[n], ref.stacked[n], atol=1e-14, rtol=0)


def test_bad_arguments():
    net = mlp(0)
    with pytest.raises(ValueError, match="coupling"):
        Replicated(net, 2, coupling="barycenter")
    with pytest.raises(TypeError, match="Optimizer instance"):
        Replicated(net, 2, optimizer=torch.optim.SGD(net.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="^lr: only sets the default SGD"):
        Replicated(net, 2, optimizer=torch.optim.Adam, lr=0.1)
    with pytest.raises(ValueError, match="replicas"):
        Replicated(net, 0)
    shapes = iter([nn.Linear(3, 2), nn.Linear(3, 4)])
    with pytest.raises(ValueError, match="same architecture"):
        Replicated(lambda: next(shapes), 2)
    rep = Replicated(net, 2, optimizer=torch.optim.Adam)
    with pytest.raises(ValueError, match="2 \\(x, target\\) pairs"):
        rep.step(batches(3, 1)[0], F.cross_entropy)
    with pytest.raises(ValueError, match="scalar"):
        rep.step(batches(2, 1)[0], lambda out, t: F.cross_entropy(out, t, reduction="none"))
    assert rep.steps == 0


# ---------------------------------------------------------------------------------------------
# modules vmap cannot handle
# ---------------------------------------------------------------------------------------------

class Branchy(nn.Module):
    """Data-dependent Python control flow: vmap cannot trace it."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(D_IN, HID)
        self.b = nn.Linear(HID, K)

    def forward(self, x):
        h = self.a(x)
        if h.sum() > 0:
            h = torch.tanh(h)
        else:
            h = torch.relu(h)
        return self.b(h)


def test_fallback_to_loop_with_warning_still_trains_exactly():
    y = 3
    torch.manual_seed(0)
    mods = [Branchy().double() for _ in range(y)]
    rep = Replicated(from_list(mods), y, optimizer=OPTIMIZERS["sgd-momentum"])
    opts = [OPTIMIZERS["sgd-momentum"](list(m.parameters())) for m in mods]
    data = batches(y, 4, seed=9)
    with pytest.warns(UserWarning, match="vmap cannot evaluate.*one after the other"):
        rep.step(data[0], F.cross_entropy)
    assert rep._vmap is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # warned once only
        for b in data[1:]:
            rep.step(b, F.cross_entropy)
        rep.predict(data[0][0][0], "ensemble")
    for step_batches in data:
        for m, o, (x, t) in zip(mods, opts, step_batches):
            o.zero_grad()
            F.cross_entropy(m(x), t).backward()
            o.step()
    assert_replicas_equal(rep, mods, 1e-12)


def test_forced_vmap_raises():
    rep = Replicated(Branchy(), 2, vmap=True)
    with pytest.raises(RuntimeError):
        rep.step(batches(2, 1)[0], lambda o, t: F.cross_entropy(o, t))


# ---------------------------------------------------------------------------------------------
# divergence
# ---------------------------------------------------------------------------------------------

def snapshot(rep):
    return copy.deepcopy(rep.state_dict())


def assert_same_state(rep, s):
    now = rep.state_dict()
    assert now.keys() == s.keys()
    for n in s:
        if n != "_extra_state":
            assert torch.equal(now[n], s[n]), n
    now, s = now["_extra_state"], s["_extra_state"]
    assert now["steps"] == s["steps"]
    st_now, st_then = now["optimizer"]["state"], s["optimizer"]["state"]
    assert st_now.keys() == st_then.keys()
    for i in st_then:
        for k in st_then[i]:
            assert torch.equal(torch.as_tensor(st_now[i][k]), torch.as_tensor(st_then[i][k]))


@pytest.mark.parametrize("vmap,bn,path", [(True, True, "vmap"), (False, True, "loop"), ("auto", False, "bmm")])
def test_nan_loss_raises_before_any_change(vmap, bn, path):
    y = 3
    rep = Replicated(lambda: mlp(0, bn=bn), y, coupling="center", gamma=0.2, seed=0, vmap=vmap,
                     optimizer=OPTIMIZERS["adam"])
    data = batches(y, 2, seed=10)
    rep.step(data[0], F.cross_entropy)
    s = snapshot(rep)
    bad = [(x.clone(), t) for x, t in data[1]]
    bad[1][0][2, 3] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"replica\(s\) \[1\].*NaN/Inf"):
        rep.step(bad, F.cross_entropy)
    assert_same_state(rep, s)
    inf_loss = lambda o, t: F.cross_entropy(o, t) * torch.tensor(float("inf"), dtype=o.dtype)
    with pytest.raises(TrainingDiverged):
        rep.step(data[1], inf_loss)
    assert_same_state(rep, s)
    # the kept state trains on as if nothing happened
    ref = Replicated(lambda: mlp(0, bn=bn), y, coupling="center", gamma=0.2, seed=0, vmap=vmap,
                     optimizer=OPTIMIZERS["adam"])
    for b in data:
        ref.step(b, F.cross_entropy)
    rep.step(data[1], F.cross_entropy)
    assert rep.path == ref.path == path
    for n in rep.stacked:
        assert torch.equal(rep.stacked[n], ref.stacked[n])


def test_nan_gradient_with_finite_loss_raises():
    rep = Replicated(mlp(0), 2, lr=0.1)
    s = snapshot(rep)
    # sqrt at 0: finite loss, infinite gradient
    loss = lambda o, t: F.cross_entropy(o, t) + (o * 0).sum().sqrt()
    with pytest.raises(TrainingDiverged, match="gradients"):
        rep.step(batches(2, 1)[0], loss)
    assert_same_state(rep, s)


# ---------------------------------------------------------------------------------------------
# state
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("coupling", ["mean", "center"])
def test_state_dict_round_trip_reproduces_next_step(coupling):
    y = 3
    kw = {"coupling": coupling, "gamma": lambda t: 0.1 * (t + 1),
          "optimizer": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)}
    rep = Replicated(lambda: mlp(0, bn=True), y, seed=1, **kw)
    data = batches(y, 5, seed=11)
    for b in data[:3]:
        rep.step(b, F.cross_entropy)
    rep.next_epoch()
    buf = io.BytesIO()
    torch.save(rep.state_dict(), buf)
    other = Replicated(lambda: mlp(0, bn=True), y, seed=99, **kw)
    buf.seek(0)
    other.load_state_dict(torch.load(buf))
    assert other.steps == 3 and other.epoch == 1 and other.gamma == pytest.approx(0.4)
    for b in data[3:]:
        assert rep.step(b, F.cross_entropy) == other.step(b, F.cross_entropy)
    for n in rep.stacked:
        assert torch.equal(rep.stacked[n], other.stacked[n])
    for n in rep.stacked_buffers:
        assert torch.equal(rep.stacked_buffers[n], other.stacked_buffers[n])
    for (_, p), (_, q) in zip(rep.center.named_parameters(), other.center.named_parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="replicas"):
        Replicated(lambda: mlp(0, bn=True), y + 1, **kw).load_state_dict(rep.state_dict())


def test_gamma_schedules_and_clock():
    g = Geometric(0.01, 1 + 0.5)
    assert [g(t) for t in range(3)] == pytest.approx([0.01, 0.015, 0.0225])
    rep = Replicated(mlp(0), 2, gamma=g, gamma_clock="epoch")
    rep.step(batches(2, 1)[0], F.cross_entropy)
    assert rep.gamma == pytest.approx(0.01)     # steps do not advance the epoch clock
    rep.next_epoch()
    rep.next_epoch()
    assert rep.gamma == pytest.approx(0.0225)
    rep = Replicated(mlp(0), 2, gamma=g)
    rep.step(batches(2, 1)[0], F.cross_entropy)
    assert rep.gamma == pytest.approx(0.015)
    with pytest.raises(ValueError, match="gamma"):
        Replicated(mlp(0), 2, gamma=lambda t: -1.0).step(batches(2, 1)[0], F.cross_entropy)


def test_uncoupled_with_another_loss_equals_independent_modules():
    y = 3
    loss_fn = LOSSES["lambda"]
    mods = [mlp(50 + a, bn=True) for a in range(y)]
    rep = Replicated(from_list(mods), y, optimizer=OPTIMIZERS["nesterov"])
    opts = [OPTIMIZERS["nesterov"](list(m.parameters())) for m in mods]
    for step_batches in batches(y, 4, seed=13):
        rep.step(step_batches, loss_fn)
        for m, o, (x, t) in zip(mods, opts, step_batches):
            o.zero_grad()
            loss_fn(m(x), t).backward()
            o.step()
    assert rep._vmap is True
    assert_replicas_equal(rep, mods, 1e-12)


@pytest.mark.parametrize("vmap,path", [("auto", "bmm"), (True, "vmap")])
def test_dropout_draws_independent_masks(vmap, path):
    net = nn.Sequential(nn.Linear(D_IN, 64), nn.Dropout(0.5), nn.Linear(64, K))
    rep = Replicated(net, 4, lr=0.1, vmap=vmap)
    x = torch.randn(16, D_IN)
    t = torch.randint(0, K, (16,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep.step([(x, t)] * 4, F.cross_entropy)   # same data, same start: only dropout differs
    assert rep.path == path
    w = rep.stacked["0.weight"]
    for a in range(1, 4):
        assert not torch.equal(w[0], w[a])
    # predictions are in eval mode: no dropout, deterministic, the same for all replicas here
    # except for what training changed
    torch.testing.assert_close(rep.predict(x, "all"), rep.predict(x, "all"), atol=0, rtol=0)
    net.eval()
    rep2 = Replicated(net, 4, lr=0.1, vmap=vmap)
    with torch.no_grad():
        expected = net(x)
    torch.testing.assert_close(rep2.predict(x, "all"), expected.expand(4, *expected.shape), atol=1e-6, rtol=0)


def test_schedule_is_picklable_and_center_starts_at_barycenter():
    import pickle
    g = pickle.loads(pickle.dumps(Geometric(0.5, 1 + 0.1)))
    assert g(2) == pytest.approx(0.5 * 1.1 ** 2)
    rep = Replicated(mlp(0), 3, coupling="center", reinit=True, seed=2)
    for n, p in rep.center.named_parameters():
        torch.testing.assert_close(p, rep.stacked[n].detach().mean(0), atol=1e-15, rtol=0)


# ---------------------------------------------------------------------------------------------
# the batched-matrix-product path of plain MLPs
# ---------------------------------------------------------------------------------------------

def deep_mlp(seed, dtype=torch.float64):
    """A nested Sequential of everything the "bmm" path handles; input (n, 2, 3), flattened."""
    torch.manual_seed(seed)
    activations = [nn.LeakyReLU(0.2), nn.Tanh(), nn.Sigmoid(), nn.GELU(), nn.ELU(), nn.SiLU(),
                   nn.Softplus(), nn.Identity()]
    return nn.Sequential(
        nn.Flatten(),
        nn.Sequential(nn.Linear(D_IN, HID, bias=False), nn.ReLU(), nn.Dropout(0.0)),
        nn.Sequential(*[m for act in activations for m in (nn.Linear(HID, HID), act)]),
        nn.Linear(HID, K),
    ).to(dtype)


def on_rows(seed, dtype=torch.float64):
    """No Flatten: the linear layers act on the last dimension of (n, 4, D_IN) inputs."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D_IN, HID), nn.Tanh(), nn.Linear(HID, K, bias=False), nn.Flatten()).to(dtype)


# name -> (module factory taking a seed, shape of one replica's input for n samples)
PLAIN_MLPS = {
    "mlp": (mlp, lambda n: (n, D_IN)),
    "deep": (deep_mlp, lambda n: (n, 2, 3)),
    "on_rows": (on_rows, lambda n: (n, 4, D_IN)),
}


def plain_batches(kind, y, steps, seed):
    """batches() reshaped to the input of ``kind``; targets of on_rows: one class per output."""
    shape = PLAIN_MLPS[kind][1]
    out = []
    for step in batches(y, steps, n=8 * (4 if kind == "on_rows" else 1), seed=seed):
        pairs = []
        for x, t in step:
            n = x.shape[0] // 4 if kind == "on_rows" else x.shape[0]
            x = x.reshape(shape(n))
            if kind == "on_rows":   # outputs (n, 4 * K): 4 * K classes
                t = torch.randint(0, 4 * K, (n,), generator=torch.Generator().manual_seed(seed))
            pairs.append((x, t))
        out.append(pairs)
    return out


class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(D_IN, HID), nn.Linear(HID, K)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


class MySequential(nn.Sequential):
    pass


def with_hook():
    net = mlp(0)
    net[1].register_forward_hook(lambda m, i, o: 2 * o)
    return net


@pytest.mark.parametrize("make,vmap,path", [
    (lambda: mlp(0), "auto", "bmm"),
    (lambda: deep_mlp(0), "auto", "bmm"),
    (lambda: on_rows(0), "auto", "bmm"),
    (lambda: nn.Linear(D_IN, K).double(), "auto", "bmm"),                      # one layer alone
    (lambda: mlp(0), True, "vmap"),
    (lambda: mlp(0), False, "loop"),
    (lambda: mlp(0, bn=True), "auto", "vmap"),
    (lambda: nn.Sequential(nn.Unflatten(1, (1, 2, 3)), nn.Conv2d(1, 2, 2), nn.Flatten(),
                           nn.Linear(4, K)).double(), "auto", "vmap"),
    (lambda: TwoLayers().double(), "auto", "vmap"),
    (lambda: nn.Sequential(nn.Linear(D_IN, D_IN), TwoLayers()).double(), "auto", "vmap"),
    (lambda: MySequential(nn.Linear(D_IN, HID), nn.ReLU(), nn.Linear(HID, K)).double(), "auto", "vmap"),
    (lambda: nn.Sequential(nn.Linear(D_IN, HID), nn.PReLU(), nn.Linear(HID, K)).double(), "auto", "vmap"),
    (lambda: nn.Sequential(nn.Linear(D_IN, K), nn.LogSoftmax(-1)).double(), "auto", "vmap"),
    (with_hook, "auto", "vmap"),
])
def test_bmm_path_is_chosen_for_plain_mlps_only(make, vmap, path):
    rep = Replicated(make, 2, vmap=vmap)
    assert rep.path == (path if path == "bmm" or vmap != "auto" else None)
    rep.step(batches(2, 1)[0], F.cross_entropy)
    assert rep.path == path


def test_bmm_path_respects_hooks():
    """A forward hook changes the output: the module is then vmapped, which runs the hook."""
    y = 2
    mods = [with_hook() for _ in range(y)]
    rep = Replicated(from_list(mods), y)
    x = torch.randn(5, D_IN, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(rep.predict(x, "all"), torch.stack([m(x) for m in mods]), atol=1e-13, rtol=0)


def assert_same_training(a, b, atol):
    for name in a.stacked:
        torch.testing.assert_close(a.stacked[name], b.stacked[name], atol=atol, rtol=0)
        if a._center is not None:
            torch.testing.assert_close(a._center[name], b._center[name], atol=atol, rtol=0)
    torch.testing.assert_close(a.last_losses, b.last_losses, atol=atol, rtol=0)


@pytest.mark.parametrize("kind", sorted(PLAIN_MLPS))
@pytest.mark.parametrize("opt", ["sgd-momentum", "adam"])
@pytest.mark.parametrize("coupling,gamma", [("mean", 0.0), ("mean", 0.3), ("center", 0.3)])
def test_bmm_steps_equal_vmap_and_loop(kind, opt, coupling, gamma):
    y, steps = 3, 4
    make = PLAIN_MLPS[kind][0]
    mods = [make(60 + a) for a in range(y)]
    kw = {"coupling": coupling, "gamma": gamma, "optimizer": OPTIMIZERS[opt]}
    reps = {mode: Replicated(from_list(mods), y, vmap=mode, **kw) for mode in ("auto", True, False)}
    bmm, vmapped, looped = reps["auto"], reps[True], reps[False]
    data = plain_batches(kind, y, steps, seed=14)
    for t, b in enumerate(data):
        losses = [r.step(b, F.cross_entropy) for r in reps.values()]
        assert losses[0] == pytest.approx(losses[1], abs=1e-12) and losses[0] == pytest.approx(losses[2], abs=1e-12)
        if t in (0, steps - 1):      # one step, several steps
            assert_same_training(bmm, vmapped, 1e-12)
            assert_same_training(bmm, looped, 1e-12)
    assert (bmm.path, vmapped.path, looped.path) == ("bmm", "vmap", "loop")
    x = data[0][0][0]
    for which in ("all", "ensemble", 1, "center"):
        out = bmm.predict(x, which)
        torch.testing.assert_close(out, vmapped.predict(x, which), atol=1e-12, rtol=0)
        torch.testing.assert_close(out, looped.predict(x, which), atol=1e-12, rtol=0)
    assert bmm.predict(x, "all").shape == (y, *looped.replica(0)(x).shape)


def test_bmm_steps_equal_independent_modules():
    """gamma = 0, float32, a single batch split across the replicas: y separate trainings."""
    y, steps = 4, 5
    mods = [deep_mlp(70 + a, dtype=torch.float32) for a in range(y)]
    rep = Replicated(from_list(mods), y, optimizer=OPTIMIZERS["adam"])
    opts = [OPTIMIZERS["adam"](list(m.parameters())) for m in mods]
    g = torch.Generator().manual_seed(15)
    for _ in range(steps):
        x, t = torch.randn(8 * y, 2, 3, generator=g), torch.randint(0, K, (8 * y,), generator=g)
        rep.step((x, t), F.cross_entropy)
        for m, o, xa, ta in zip(mods, opts, x.chunk(y), t.chunk(y)):
            o.zero_grad()
            F.cross_entropy(m(xa), ta).backward()
            o.step()
    assert rep.path == "bmm"
    assert_replicas_equal(rep, mods, 1e-5)


@pytest.mark.parametrize("loss", sorted(LOSSES) + ["ignored targets", "soft targets", "per sample"])
def test_bmm_losses_equal_looped_losses(loss):
    """Cross-entropy folded over the replicas (with label smoothing, ignore_index, class
    probabilities) and other losses called per replica, against the loop."""
    y = 3
    mods = [mlp(80 + a) for a in range(y)]
    data = batches(y, 3, seed=16)
    if loss == "ignored targets":     # F.cross_entropy leaves out targets -100
        loss_fn = F.cross_entropy
        data = [[(x, torch.where(torch.arange(len(t)) < a + 1, -100, t)) for a, (x, t) in enumerate(b)] for b in data]
    elif loss == "soft targets":
        loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
        data = [[(x, F.one_hot(t, K).double() * 0.8 + 0.2 / K) for x, t in b] for b in data]
    elif loss == "per sample":        # not folded: a weighted cross-entropy
        loss_fn = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64))
    else:
        loss_fn = LOSSES[loss]
    kw = {"gamma": 0.1, "optimizer": OPTIMIZERS["sgd-momentum"]}
    bmm = Replicated(from_list(mods), y, **kw)
    looped = Replicated(from_list(mods), y, vmap=False, **kw)
    for b in data:
        assert bmm.step(b, loss_fn) == pytest.approx(looped.step(b, loss_fn), abs=1e-12)
        assert_same_training(bmm, looped, 1e-12)
    assert bmm.path == "bmm"


def test_cross_entropy_is_recognised_for_folding():
    from thermolearn.deep import _functional as F_
    assert F_._cross_entropy_options(F.cross_entropy) == {"ignore_index": -100, "label_smoothing": 0.0}
    assert F_._cross_entropy_options(nn.CrossEntropyLoss(ignore_index=2, label_smoothing=0.1)) == {
        "ignore_index": 2, "label_smoothing": 0.1}
    for other in (nn.CrossEntropyLoss(reduction="sum"), nn.CrossEntropyLoss(weight=torch.ones(K)),
                  F.nll_loss, lambda o, t: F.cross_entropy(o, t)):
        assert F_._cross_entropy_options(other) is None


@pytest.mark.parametrize("bias", [True, False])
def test_stacked_linear_gradients_and_double_backward(bias):
    """The batched linear layer's own backward rule, against finite differences (gradcheck) and
    to second order (gradgradcheck), in float64."""
    from thermolearn.deep import _functional as F_
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(3, 2, 5, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(3, 2, dtype=torch.float64, generator=g, requires_grad=True) if bias else None
    inputs = (x, w, b)
    assert torch.autograd.gradcheck(F_._StackedLinear.apply, inputs)
    assert torch.autograd.gradgradcheck(F_._StackedLinear.apply, inputs)
    out = F_._StackedLinear.apply(*inputs)
    out.sum().backward()
    assert w.grad.is_contiguous()     # the layout of the stacked weight, no copy through a transpose


def test_stacked_cross_entropy_equals_torch_per_replica():
    from thermolearn.deep import _functional as F_
    g = torch.Generator().manual_seed(1)
    out = torch.randn(4, 6, 5, dtype=torch.float64, generator=g, requires_grad=True)
    T = torch.randint(0, 5, (4, 6), generator=g)
    T[1, :2] = 7                      # left out, as torch's mean reduction leaves them out
    losses = F_._StackedCrossEntropy.apply(out, T, 7)
    expected = torch.stack([F.cross_entropy(out[a], T[a], ignore_index=7) for a in range(4)])
    torch.testing.assert_close(losses, expected, atol=1e-12, rtol=0)
    weights = torch.arange(1.0, 5.0, dtype=torch.float64)
    (grad,) = torch.autograd.grad((losses * weights).sum(), out)
    (ref,) = torch.autograd.grad((expected * weights).sum(), out)
    torch.testing.assert_close(grad, ref, atol=1e-12, rtol=0)
    assert torch.autograd.gradcheck(lambda o: F_._StackedCrossEntropy.apply(o, T, 7), (out,))

"""Tests for thermolearn.deep.entropy_sgd.EntropySGD and thermolearn.deep.elastic.ElasticAveraging.

Every check compares with an independent implementation: torch.optim.SGD, or plain NumPy loops
written from the equations in the modules' docstrings (quadratic losses with analytic gradients).
"""

import copy
import io
import math

import numpy as np
import pytest
import torch
from torch import nn

from thermolearn.deep.elastic import ElasticAveraging
from thermolearn.deep.entropy_sgd import EntropySGD
from thermolearn.schedules import Geometric, Table

# ---------------------------------------------------------------------------------------------
# a two-tensor quadratic model: loss_k(u, V) = 0.5 |A_k [u; vec V] - b_k|^2 on "minibatch" k
# ---------------------------------------------------------------------------------------------

class Quad(nn.Module):
    def __init__(self, u, V):
        super().__init__()
        self.u = nn.Parameter(torch.as_tensor(u, dtype=torch.float64).clone())
        self.V = nn.Parameter(torch.as_tensor(V, dtype=torch.float64).clone())

    def flat(self):
        return torch.cat([self.u.reshape(-1), self.V.reshape(-1)])


def quad_problem(seed=0, n_batches=12):
    rng = np.random.default_rng(seed)
    As = [rng.normal(size=(9, 7)) / 3 for _ in range(n_batches)]
    bs = [rng.normal(size=9) for _ in range(n_batches)]
    w0 = rng.normal(size=7)
    return As, bs, w0


def quad_grad(A, b, w):
    return A.T @ (A @ w - b)


def split(w):
    return w[:3], w[3:].reshape(2, 2)


def make_closure(model, opt, As, bs, calls):
    """A closure that takes the next minibatch at each call (records the call count)."""
    def closure():
        k = calls[0] % len(As)
        calls[0] += 1
        opt.zero_grad()
        r = torch.as_tensor(As[k]) @ model.flat() - torch.as_tensor(bs[k])
        loss = 0.5 * (r ** 2).sum()
        loss.backward()
        return loss
    return closure


def entropy_reference(As, bs, w0, steps, L, lr, inner_lr, g0, g1, noise, alpha, momentum,
                      nesterov, inner_momentum, wd, scale_by_gamma, seed):
    """Entropy-SGD written directly from the documented equations, in NumPy (flat weights).

    The noise comes from a torch generator in the documented order: per inner step, one
    randn per parameter tensor (u, then V)."""
    gen = torch.Generator().manual_seed(seed)
    w = w0.copy()
    buf = None
    k = 0
    for t in range(steps):
        g = g0 * (1 + g1) ** t
        wp, mu, ibuf = w.copy(), w.copy(), None
        for _ in range(L):
            d = quad_grad(As[k % len(As)], bs[k % len(bs)], wp) + wd * wp
            k += 1
            if inner_momentum:
                ibuf = d.copy() if ibuf is None else inner_momentum * ibuf + d
                d = d + inner_momentum * ibuf if nesterov else ibuf
            wp = wp - inner_lr * (d - g * (w - wp))
            if noise:
                z = np.concatenate([torch.randn(3, generator=gen, dtype=torch.float64).numpy(),
                                    torch.randn(2, 2, generator=gen, dtype=torch.float64).numpy().ravel()])
                wp = wp + math.sqrt(inner_lr) * noise * z
            mu = (1 - alpha) * mu + alpha * wp
        G = (w - mu) * (g if scale_by_gamma else 1.0)
        if momentum:
            buf = G.copy() if buf is None else momentum * buf + G
            G = G + momentum * buf if nesterov else buf
        w = w - lr * G
    return w


def run_entropy(As, bs, w0, steps, **kw):
    model = Quad(*split(w0))
    opt = EntropySGD(model.parameters(), **kw)
    calls = [0]
    closure = make_closure(model, opt, As, bs, calls)
    losses = [opt.step(closure) for _ in range(steps)]
    return model, opt, calls[0], losses


# ---------------------------------------------------------------------------------------------
# Entropy-SGD
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("momentum,nesterov,inner_momentum,scale", [
    (0.0, False, 0.0, False), (0.8, True, 0.5, False), (0.6, False, 0.3, True)])
def test_entropy_sgd_matches_numpy_reference(momentum, nesterov, inner_momentum, scale):
    As, bs, w0 = quad_problem()
    kw = dict(lr=0.7, inner_steps=4, inner_lr=0.05, gamma=Geometric(0.3, 1 + 0.2), noise=0.1,
              alpha=0.75, momentum=momentum, nesterov=nesterov, inner_momentum=inner_momentum,
              weight_decay=0.01, scale_by_gamma=scale, seed=123)
    model, opt, calls, _ = run_entropy(As, bs, w0, 3, **kw)
    ref = entropy_reference(As, bs, w0, 3, L=4, lr=0.7, inner_lr=0.05, g0=0.3, g1=0.2, noise=0.1,
                            alpha=0.75, momentum=momentum, nesterov=nesterov,
                            inner_momentum=inner_momentum, wd=0.01, scale_by_gamma=scale, seed=123)
    np.testing.assert_allclose(model.flat().detach().numpy(), ref, rtol=0, atol=1e-12)
    assert calls == 3 * 4
    assert opt.outer_steps == 3
    assert opt.scope() == pytest.approx(0.3 * 1.2 ** 3)


def test_entropy_sgd_zero_coupling_is_inner_sgd_then_jump():
    """gamma = 0, noise = 0, alpha = 1: L plain SGD steps from w, then w -= lr (w - w'_L)."""
    As, bs, w0 = quad_problem(1)
    lr, eta, L = 0.4, 0.1, 3
    model, _, calls, losses = run_entropy(As, bs, w0, 2, lr=lr, inner_steps=L, inner_lr=eta,
                                          gamma=0.0, noise=0.0, alpha=1.0)
    w, k = w0.copy(), 0
    first_losses = []
    for _ in range(2):
        wp = w.copy()
        for i in range(L):
            if i == 0:
                first_losses.append(0.5 * np.sum((As[k] @ wp - bs[k]) ** 2))
            wp = wp - eta * quad_grad(As[k], bs[k], wp)
            k += 1
        w = w - lr * (w - wp)
    np.testing.assert_allclose(model.flat().detach().numpy(), w, rtol=0, atol=1e-13)
    assert calls == 2 * L
    # step() returns the loss of its first closure call, i.e. at the weights before the step
    np.testing.assert_allclose([float(x.detach()) for x in losses], first_losses, rtol=1e-13)


@pytest.mark.parametrize("scale", [False, True])
def test_entropy_sgd_single_inner_step(scale):
    """L = 1, noise 0, alpha 1: w -= lr * inner_lr * (grad + wd w) (times g0 with scale_by_gamma);
    the coupling cannot act since w' = w when the gradient is taken."""
    As, bs, w0 = quad_problem(2)
    model, _, _, _ = run_entropy(As, bs, w0, 1, lr=0.5, inner_steps=1, inner_lr=0.2, gamma=0.7,
                                 noise=0.0, alpha=1.0, weight_decay=0.1,
                                 scale_by_gamma=scale)
    factor = 0.7 if scale else 1.0
    expect = w0 - 0.5 * 0.2 * factor * (quad_grad(As[0], bs[0], w0) + 0.1 * w0)
    np.testing.assert_allclose(model.flat().detach().numpy(), expect, rtol=0, atol=1e-14)


def test_entropy_sgd_inner_steps_zero_is_torch_sgd():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    net2 = copy.deepcopy(net)
    X = torch.randn(6, 20, 5, dtype=torch.float64)
    T = torch.randint(0, 3, (6, 20))
    opt = EntropySGD(net.parameters(), lr=0.1, inner_steps=0, momentum=0.9, nesterov=True,
                     weight_decay=1e-2, noise=1.0, seed=0)
    ref = torch.optim.SGD(net2.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2)
    calls = [0]
    for k in range(6):
        def closure(m=net, o=opt, k=k):
            calls[0] += 1
            o.zero_grad()
            loss = nn.functional.cross_entropy(m(X[k]), T[k])
            loss.backward()
            return loss
        opt.step(closure)
        ref.zero_grad()
        nn.functional.cross_entropy(net2(X[k]), T[k]).backward()
        ref.step()
    assert calls[0] == 6
    for p, q in zip(net.parameters(), net2.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-14)


def test_entropy_sgd_schedule_gamma_matches_callable():
    As, bs, w0 = quad_problem(3)
    kw = dict(lr=0.5, inner_steps=2, inner_lr=0.05, noise=0.0, alpha=0.5)
    m1, o1, _, _ = run_entropy(As, bs, w0, 3, gamma=Geometric(0.4, 1.5), **kw)
    m2, o2, _, _ = run_entropy(As, bs, w0, 3, gamma=lambda t: 0.4 * 1.5 ** t, **kw)
    torch.testing.assert_close(m1.flat(), m2.flat(), rtol=0, atol=1e-14)
    assert o1.scope() == o2.scope() == pytest.approx(0.4 * 1.5 ** 3)
    # and the coupling matters: gamma = 0 gives a different trajectory
    m3, o3, _, _ = run_entropy(As, bs, w0, 3, gamma=0.0, **kw)
    assert o3.param_groups[0]["gamma"] == 0.0 and isinstance(o3.param_groups[0]["gamma"], float)
    assert float((m3.flat() - m1.flat()).detach().abs().max()) > 1e-4


def test_entropy_sgd_seed_reproducible_and_noise_scale():
    As, bs, w0 = quad_problem(4)
    kw = dict(lr=1.0, inner_steps=3, inner_lr=0.01, gamma=0.1, noise=0.3, alpha=0.75)
    a, _, _, _ = run_entropy(As, bs, w0, 2, seed=7, **kw)
    b, _, _, _ = run_entropy(As, bs, w0, 2, seed=torch.Generator().manual_seed(7), **kw)
    c, _, _, _ = run_entropy(As, bs, w0, 2, seed=8, **kw)
    torch.testing.assert_close(a.flat(), b.flat(), rtol=0, atol=0)
    assert float((a.flat() - c.flat()).detach().abs().max()) > 1e-4


def test_entropy_sgd_pure_noise_variance():
    """Zero loss gradient, gamma 0, alpha 1, lr 1: w moves to w'_L = w + sqrt(eta) eps sum_k z_k,
    so each weight moves with variance L eta eps^2 (the documented noise convention)."""
    p = nn.Parameter(torch.zeros(20000, dtype=torch.float64))
    L, eta, eps = 4, 0.09, 0.5
    opt = EntropySGD([p], lr=1.0, inner_steps=L, inner_lr=eta, gamma=0.0,
                     noise=eps, alpha=1.0, seed=0)

    def closure():
        p.grad = torch.zeros_like(p)
        return torch.zeros(())
    opt.step(closure)
    var = float(p.detach().var())
    expect = L * eta * eps ** 2
    # relative standard error of a sample variance of 20000 normals: sqrt(2 / 20000) = 1%
    assert abs(var / expect - 1) < 0.05


def test_entropy_sgd_state_dict_roundtrip():
    As, bs, w0 = quad_problem(5)
    kw = dict(lr=0.3, inner_steps=2, inner_lr=0.05, gamma=Geometric(0.2, 1.1), noise=0.0,
              momentum=0.9)
    model, opt, calls, _ = run_entropy(As, bs, w0, 2, **kw)
    clone = copy.deepcopy(model)
    opt2 = EntropySGD(clone.parameters(), **kw)
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)      # the schedule is stored as its description
    buf.seek(0)
    opt2.load_state_dict(torch.load(buf, weights_only=True))
    assert opt2.outer_steps == 2 and opt2.param_groups[0]["gamma"] == Geometric(0.2, 1.1)
    assert opt2.scope() == pytest.approx(0.2 * 1.1 ** 2)
    c1, c2 = [calls], [calls]
    opt.step(make_closure(model, opt, As, bs, c1))
    opt2.step(make_closure(clone, opt2, As, bs, c2))
    torch.testing.assert_close(model.flat(), clone.flat(), rtol=0, atol=1e-14)


def test_entropy_sgd_errors():
    p = [nn.Parameter(torch.zeros(3))]
    with pytest.raises(ValueError, match="closure"):
        EntropySGD(p).step()
    with pytest.raises(ValueError, match="inner_steps"):
        EntropySGD(p, inner_steps=-1)
    with pytest.raises(ValueError, match="alpha"):
        EntropySGD(p, alpha=0.0)
    with pytest.raises(ValueError, match="alpha"):
        EntropySGD(p, alpha=1.5)
    with pytest.raises(ValueError, match="nesterov"):
        EntropySGD(p, nesterov=True)
    with pytest.raises(ValueError, match="^gamma"):
        EntropySGD(p, gamma=-0.1)
    with pytest.raises(ValueError, match="^gamma"):
        EntropySGD(p, gamma="fast")
    with pytest.raises(ValueError, match="noise"):
        EntropySGD(p, noise=-1.0)
    with pytest.raises(ValueError, match="momentum"):
        EntropySGD(p, momentum=1.0)


# ---------------------------------------------------------------------------------------------
# Elastic averaging SGD
# ---------------------------------------------------------------------------------------------

def easgd_reference(xs, center, grads, steps, lr, gamma, tau, momentum=0.0, nesterov=False, wd=0.0):
    """EASGD from the equations: workers xs (list of flat arrays), grads[a](x) the gradient."""
    xs = [x.copy() for x in xs]
    c = center.copy()
    bufs = [None] * len(xs)
    history = []
    for t in range(steps):
        elastic = t % tau == 0
        new = []
        pull = np.zeros_like(c)
        for a, x in enumerate(xs):
            d = grads[a](x) + wd * x
            if momentum:
                bufs[a] = d.copy() if bufs[a] is None else momentum * bufs[a] + d
                d = d + momentum * bufs[a] if nesterov else bufs[a]
            step = lr * d
            if elastic:
                step = step + lr * gamma * (x - c)
                pull += lr * gamma * (x - c)
            new.append(x - step)
        xs = new
        c = c + pull
        history.append((elastic, [x.copy() for x in xs], c.copy()))
    return xs, c, history


def quad_workers(y=3, seed=0):
    rng = np.random.default_rng(seed)
    Hs, bs, x0 = [], [], []
    for _ in range(y):
        M = rng.normal(size=(7, 7))
        Hs.append(M @ M.T / 7 + 0.1 * np.eye(7))
        bs.append(rng.normal(size=7))
        x0.append(rng.normal(size=7))
    return Hs, bs, x0


def easgd_run(Hs, bs, x0, steps, center=None, **kw):
    models = [Quad(*split(x)) for x in x0]
    opt = ElasticAveraging([m.parameters() for m in models], center=center, **kw)
    centers = []
    for _ in range(steps):
        def closure():
            opt.zero_grad()
            total = 0.0
            for m, H, b in zip(models, Hs, bs):
                w = m.flat()
                total = total + 0.5 * (w - torch.as_tensor(b)) @ torch.as_tensor(H) @ (w - torch.as_tensor(b))
            total.backward()
            return total
        opt.step(closure)
        centers.append(torch.cat([c.reshape(-1) for c in opt.center_parameters()]).numpy())
    return models, opt, centers


@pytest.mark.parametrize("tau,momentum,nesterov,wd", [(1, 0.0, False, 0.0), (3, 0.0, False, 0.0),
                                                      (2, 0.9, True, 0.01), (3, 0.5, False, 0.0)])
def test_easgd_matches_numpy_reference(tau, momentum, nesterov, wd):
    Hs, bs, x0 = quad_workers()
    grads = [lambda x, H=H, b=b: H @ (x - b) for H, b in zip(Hs, bs)]
    lr, gamma, steps = 0.1, 2.0, 8
    models, opt, centers = easgd_run(Hs, bs, x0, steps, lr=lr, gamma=gamma, tau=tau, momentum=momentum,
                                     nesterov=nesterov, weight_decay=wd)
    xs, _, hist = easgd_reference(x0, np.mean(x0, axis=0), grads, steps, lr, gamma, tau,
                                  momentum, nesterov, wd)
    for m, x in zip(models, xs):
        np.testing.assert_allclose(m.flat().detach().numpy(), x, rtol=0, atol=1e-13)
    for t, (elastic, _, cref) in enumerate(hist):
        np.testing.assert_allclose(centers[t], cref, rtol=0, atol=1e-13)
        if not elastic:          # tau > 1: the center stays put on intermediate steps
            np.testing.assert_array_equal(centers[t], centers[t - 1])
        elif t > 0:              # (at t = 0 the pull sums to zero: the center starts at the mean)
            assert np.abs(centers[t] - centers[t - 1]).max() > 1e-6
    assert opt.steps == steps


def test_easgd_intermediate_step_is_plain_sgd():
    Hs, bs, x0 = quad_workers(seed=1)
    models, opt, centers = easgd_run(Hs, bs, x0, 1, lr=0.1, gamma=1.0, tau=2)
    before = [m.flat().detach().numpy().copy() for m in models]
    c_before = centers[0]
    # second step (t = 1) is not elastic
    opt.zero_grad()
    for m, H, b in zip(models, Hs, bs):
        w = m.flat()
        (0.5 * (w - torch.as_tensor(b)) @ torch.as_tensor(H) @ (w - torch.as_tensor(b))).backward()
    opt.step()
    for m, x, H, b in zip(models, before, Hs, bs):
        np.testing.assert_allclose(m.flat().detach().numpy(), x - 0.1 * H @ (x - b), atol=1e-14)
    np.testing.assert_array_equal(
        torch.cat([c.reshape(-1) for c in opt.center_parameters()]).numpy(), c_before)


def test_easgd_gamma_zero_is_independent_sgd():
    torch.manual_seed(1)
    nets = [nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)).double() for _ in range(3)]
    refs = [copy.deepcopy(n) for n in nets]
    opt = ElasticAveraging(nets, lr=0.05, gamma=0.0, tau=1, momentum=0.9, nesterov=True,
                           weight_decay=1e-3)
    ref_opts = [torch.optim.SGD(r.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                                weight_decay=1e-3) for r in refs]
    c0 = opt.center_parameters()
    X = torch.randn(5, 3, 16, 4, dtype=torch.float64)
    T = torch.randint(0, 2, (5, 3, 16))
    for k in range(5):
        opt.zero_grad()
        for a, (n, r, o) in enumerate(zip(nets, refs, ref_opts)):
            nn.functional.cross_entropy(n(X[k, a]), T[k, a]).backward()
            o.zero_grad()
            nn.functional.cross_entropy(r(X[k, a]), T[k, a]).backward()
            o.step()
        opt.step()
    for n, r in zip(nets, refs):
        for p, q in zip(n.parameters(), r.parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-14)
    for c, c_init in zip(opt.center_parameters(), c0):
        torch.testing.assert_close(c, c_init, rtol=0, atol=0)


def test_easgd_identical_workers_keep_center():
    torch.manual_seed(2)
    base = nn.Linear(3, 2).double()
    nets = [copy.deepcopy(base) for _ in range(4)]
    opt = ElasticAveraging(nets, lr=0.1, gamma=1.5, tau=1)
    for c, p in zip(opt.center_parameters(), base.parameters()):
        torch.testing.assert_close(c, p.detach(), rtol=0, atol=0)
    for _ in range(3):                       # zero gradients: nothing moves
        for n in nets:
            for p in n.parameters():
                p.grad = torch.zeros_like(p)
        opt.step()
    for c, p in zip(opt.center_parameters(), base.parameters()):
        torch.testing.assert_close(c, p.detach(), rtol=0, atol=0)
    for n in nets:
        for p, q in zip(n.parameters(), base.parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=0)
    # identical gradients: the workers stay identical to each other
    x = torch.randn(8, 3, dtype=torch.float64)
    for _ in range(3):
        opt.zero_grad()
        for n in nets:
            n(x).pow(2).sum().backward()
        opt.step()
    for n in nets[1:]:
        for p, q in zip(n.parameters(), nets[0].parameters()):
            torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_easgd_symmetric_workers_contract_to_fixed_center():
    """Workers at c +- d with zero gradient: the center stays, the offsets shrink by (1 - lr gamma)."""
    c = torch.tensor([1.0, -2.0], dtype=torch.float64)
    d = torch.tensor([0.5, 0.25], dtype=torch.float64)
    ps = [nn.Parameter(c + d), nn.Parameter(c - d)]
    opt = ElasticAveraging([[ps[0]], [ps[1]]], lr=0.2, gamma=1.0)
    for t in range(1, 4):
        for p in ps:
            p.grad = torch.zeros_like(p)
        opt.step()
        torch.testing.assert_close(opt.center_parameters()[0], c, rtol=0, atol=1e-15)
        torch.testing.assert_close(ps[0].detach(), c + d * 0.8 ** t, rtol=0, atol=1e-15)
    dist = opt.distances()
    np.testing.assert_allclose(dist["to_center"].numpy(), [float((d * 0.8 ** 3).pow(2).sum())] * 2,
                               rtol=1e-12)
    assert dist["pairwise"] == pytest.approx(float((2 * d * 0.8 ** 3).pow(2).sum()), rel=1e-12)


def test_easgd_explicit_center_center_module_and_state_dict():
    Hs, bs, x0 = quad_workers(seed=3)
    c0 = np.zeros(7)
    grads = [lambda x, H=H, b=b: H @ (x - b) for H, b in zip(Hs, bs)]
    models, opt, _ = easgd_run(Hs, bs, x0, 4, center=[torch.zeros(3), torch.zeros(2, 2)],
                               lr=0.1, gamma=1.0, tau=2)
    xs, c, _ = easgd_reference(x0, c0, grads, 4, 0.1, 1.0, 2)
    net = opt.center_module(models[0])
    np.testing.assert_allclose(net.flat().detach().numpy(), c, atol=1e-13)
    assert net is not models[0]
    np.testing.assert_allclose(models[0].flat().detach().numpy(), xs[0], atol=1e-13)
    # state_dict carries the center, the step counter and the momentum buffers
    clones = [copy.deepcopy(m) for m in models]
    opt2 = ElasticAveraging([m.parameters() for m in clones], lr=0.1, gamma=1.0, tau=2)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert opt2.steps == 4
    np.testing.assert_allclose(torch.cat([t.reshape(-1) for t in opt2.center_parameters()]).numpy(),
                               c, atol=1e-13)


def test_easgd_errors():
    with pytest.raises(ValueError, match="same architecture"):
        ElasticAveraging([nn.Linear(2, 2), nn.Linear(3, 2)], lr=0.1)
    with pytest.raises(ValueError, match="tau"):
        ElasticAveraging([nn.Linear(2, 2)], lr=0.1, tau=0)
    with pytest.raises(ValueError, match="at least one"):
        ElasticAveraging([], lr=0.1)
    with pytest.raises(TypeError, match="sequence of workers"):
        ElasticAveraging(nn.Linear(2, 2), lr=0.1)
    with pytest.raises(ValueError, match="center"):
        ElasticAveraging([nn.Linear(2, 2)], center=[torch.zeros(3)])
    with pytest.raises(ValueError, match="^gamma"):
        ElasticAveraging([nn.Linear(2, 2)], gamma=-1.0)


def test_easgd_leaves_frozen_parameters_alone():
    """A parameter with requires_grad=False is not touched (as torch.optim does): no elastic
    term, no weight decay, no momentum, and it does not pull the center; the others follow
    the update of a run in which the frozen tensor is not given to the optimizer at all."""
    torch.manual_seed(0)
    nets = [nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double() for _ in range(3)]
    for n in nets:
        n[0].weight.requires_grad_(False)
    refs = copy.deepcopy(nets)
    kw = dict(lr=0.1, gamma=2.0, momentum=0.9, weight_decay=0.01)
    opt = ElasticAveraging([n.parameters() for n in nets], **kw)
    ref = ElasticAveraging([[p for p in r.parameters() if p.requires_grad] for r in refs], **kw)
    frozen = [n[0].weight.detach().clone() for n in nets]
    frozen_center = opt.center_parameters()[0]
    g = torch.Generator().manual_seed(1)
    for _ in range(4):
        x = torch.randn(5, 3, generator=g, dtype=torch.float64)
        for o, group in ((opt, nets), (ref, refs)):
            o.zero_grad()
            for n in group:
                n(x).square().sum().backward()
            o.step()
    for n, r, f in zip(nets, refs, frozen):
        assert torch.equal(n[0].weight, f) and n[0].weight.grad is None
        for p, q in zip(list(n.parameters())[1:], list(r.parameters())[1:]):
            torch.testing.assert_close(p, q, rtol=0, atol=1e-14)
    assert torch.equal(opt.center_parameters()[0], frozen_center)
    for c, d in zip(opt.center_parameters()[1:], ref.center_parameters()):
        torch.testing.assert_close(c, d, rtol=0, atol=1e-14)
    assert opt.distances()["to_center"].shape == (3,)
    torch.testing.assert_close(opt.distances()["to_center"], ref.distances()["to_center"], rtol=1e-12, atol=0)


def test_easgd_gamma_schedule_is_read_at_each_step():
    Hs, bs, x0 = quad_workers(seed=5)
    ramp = Table([0.0, 1.0, 3.0])
    _, opt, centers = easgd_run(Hs, bs, x0, 3, lr=0.1, gamma=ramp, tau=1)
    grads = [lambda x, H=H, b=b: H @ (x - b) for H, b in zip(Hs, bs)]
    c = np.mean(x0, axis=0)
    xs = [x.copy() for x in x0]
    for t in range(3):    # the reference with the schedule's value at each step
        xs, c, _ = easgd_reference(xs, c, grads, 1, 0.1, ramp(t), 1)
    np.testing.assert_allclose(centers[-1], c, atol=1e-13)
    assert opt.param_groups[0]["gamma"] is ramp

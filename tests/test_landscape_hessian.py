"""Hessian spectra of torch models (thermolearn.landscape.hessian), checked against the dense
autograd Hessian (torch.autograd.functional.hessian) of small float64 networks."""

import functools
import math

import pytest
import torch
from torch import nn

from thermolearn.landscape.hessian import (
    HessianOperator,
    block_eigenvalues,
    class_decomposition,
    gauss_newton_split,
    hessian_density,
    hessian_eigenvalues,
    hessian_trace,
    hessian_vector_product,
)
from thermolearn.landscape.lanczos import DenseOperator, lanczos_eigenvalues, lanczos_quadrature, stochastic_trace

CE = nn.CrossEntropyLoss()


def _net(seed=0, sizes=(5, 8, 3)):
    g = torch.Generator().manual_seed(seed)
    layers = [nn.Linear(sizes[0], sizes[1]), nn.Tanh(), nn.Linear(sizes[1], sizes[2])]
    model = nn.Sequential(*layers).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.8)
    return model


@functools.cache
def _problem(seed=0):
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.randn(20, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (20,), generator=g)
    return x, y


def _flat_params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _functional(model, x):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]

    def f(theta):
        parts, off = {}, 0
        for name, shape in zip(names, shapes):
            k = math.prod(shape)
            parts[name] = theta[off:off + k].reshape(shape)
            off += k
        return torch.func.functional_call(model, parts, (x,))
    return f


def _exact_hessian(model, loss_fn, x, y):
    f = _functional(model, x)
    return torch.autograd.functional.hessian(lambda th: loss_fn(f(th), y), _flat_params(model))


@functools.cache
def _exact(seed=0):
    model = _net(seed)
    x, y = _problem(seed)
    H = _exact_hessian(model, CE, x, y)
    return H, torch.linalg.eigvalsh(H).flip(0)


def _rel(a, b):
    return float(((a - b).abs() / b.abs()).max())


# ---------------------------------------------------------------------------------------------
# products
# ---------------------------------------------------------------------------------------------

def test_hvp_matches_the_dense_hessian_for_every_kind_of_data():
    model, (x, y), (H, _) = _net(), _problem(), _exact()
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    want = H @ v
    assert float((hessian_vector_product(model, CE, (x, y), v) - want).abs().max()) < 1e-12
    batches = [(x[:7], y[:7]), (x[7:9], y[7:9]), (x[9:], y[9:])]            # uneven: weighted by size
    assert float((hessian_vector_product(model, CE, batches, v) - want).abs().max()) < 1e-12
    one_shot = ((a, b) for a, b in batches)                                   # a generator is read once
    op = HessianOperator(model, CE, one_shot)
    assert float((op.matvec(v) - want).abs().max()) < 1e-12
    assert float((op.matvec(v) - want).abs().max()) < 1e-12                   # and can be used again
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=6)
    assert float((hessian_vector_product(model, CE, loader, v) - want).abs().max()) < 1e-12
    cached = HessianOperator(model, CE, batches, cache=True)
    assert float((cached.matmat(torch.stack([v, 2 * v]))[1] - 2 * want).abs().max()) < 1e-12
    assert cached.matvecs == 2 and cached.n_examples == 20
    theta = _flat_params(model).requires_grad_(True)
    grad = torch.autograd.grad(CE(_functional(model, x)(theta), y), theta)[0]
    assert float((cached.gradient - grad).abs().max()) < 1e-13
    assert abs(cached.loss - float(CE(model(x), y).detach())) < 1e-13


def test_float32_data_is_cast_to_the_model_dtype_and_float32_models_work():
    model, (x, y), (H, ev) = _net(), _problem(), _exact()
    v = torch.ones(H.shape[0], dtype=torch.float64)
    assert float((hessian_vector_product(model, CE, (x.float(), y), v) - H @ v).abs().max()) < 1e-5
    r = hessian_eigenvalues(_net().float(), CE, (x.float(), y), k=2, seed=0)
    assert r.converged and r.eigenvalues.dtype == torch.float64
    assert _rel(r.eigenvalues, ev[:2]) < 1e-4


# ---------------------------------------------------------------------------------------------
# eigenvalues
# ---------------------------------------------------------------------------------------------

def test_top_and_bottom_eigenvalues_match_the_dense_spectrum():
    model, data, (H, ev) = _net(), _problem(), _exact()
    top = hessian_eigenvalues(model, CE, data, k=4, seed=0, eigenvectors=True)
    assert top.converged and top.matvecs == top.steps > 0 and top.step_unit == "matvec"
    assert _rel(top.eigenvalues, ev[:4]) < 1e-6
    assert torch.all(top.eigenvalues[:-1] >= top.eigenvalues[1:])
    resid = (H @ top.eigenvectors - top.eigenvectors * top.eigenvalues).norm(dim=0)
    assert float(resid.max()) < 1e-5 * float(ev[0])
    assert float((top.eigenvectors.T @ top.eigenvectors - torch.eye(4, dtype=torch.float64)).abs().max()) < 1e-8
    assert ev[-1] < 0                                   # the small net sits away from a minimum
    bottom = hessian_eigenvalues(model, CE, data, k=3, which="bottom", seed=1)
    assert bottom.converged and _rel(bottom.eigenvalues, ev[-3:]) < 1e-6
    both = hessian_eigenvalues(model, CE, data, k=2, which="both", seed=2)
    assert _rel(both.eigenvalues, torch.cat([ev[:2], ev[-2:]])) < 1e-6


def test_thick_restarts_keep_the_answer():
    model, data, (_, ev) = _net(), _problem(), _exact()
    r = hessian_eigenvalues(model, CE, data, k=3, ncv=8, seed=0, max_iter=2000)
    assert r.restarts > 0 and r.converged and r.basis_size == 8
    assert _rel(r.eigenvalues, ev[:3]) < 1e-6
    r = lanczos_eigenvalues(DenseOperator(_exact()[0]), k=2, which="bottom", ncv=6, seed=0, max_iter=3000)
    assert r.restarts > 0 and r.converged and _rel(r.eigenvalues, ev[-2:]) < 1e-6


def test_lanczos_stops_at_max_iter_and_spans_small_spaces_exactly():
    g = torch.Generator().manual_seed(3)
    A = torch.randn(6, 6, generator=g, dtype=torch.float64)
    A = A + A.T
    exact = torch.linalg.eigvalsh(A).flip(0)
    r = lanczos_eigenvalues(A, k=6, seed=0)                     # the whole space: every eigenvalue
    assert r.converged and _rel(r.eigenvalues, exact) < 1e-10
    capped = lanczos_eigenvalues(DenseOperator(_exact()[0]), k=3, seed=0, max_iter=4, tol=1e-12)
    assert not capped.converged and capped.matvecs == 4


def test_per_block_eigenvalues_are_those_of_the_diagonal_blocks():
    model, data, (H, _) = _net(), _problem(), _exact()
    sizes = [p.numel() for p in model.parameters()]
    offsets = [0] + list(torch.cumsum(torch.tensor(sizes), 0).tolist())
    blocks = block_eigenvalues(model, CE, data, k=2, seed=0)
    assert list(blocks) == [n for n, _ in model.named_parameters()]
    for (name, res), lo, hi in zip(blocks.items(), offsets[:-1], offsets[1:]):
        sub = torch.linalg.eigvalsh(H[lo:hi, lo:hi]).flip(0)
        assert _rel(res.eigenvalues, sub[:res.eigenvalues.numel()]) < 1e-6, name
    one = hessian_eigenvalues(model, CE, data, k=2, block="0.weight", seed=0)
    assert torch.allclose(one.eigenvalues, blocks["0.weight"].eigenvalues, rtol=1e-6)
    layer = hessian_eigenvalues(model, CE, data, k=1, block="2", seed=0)      # module 2: weight and bias
    lo = offsets[2]
    assert _rel(layer.eigenvalues, torch.linalg.eigvalsh(H[lo:, lo:]).flip(0)[:1]) < 1e-6
    by_module = block_eigenvalues(model, CE, data, k=1, by="module", seed=0)
    assert list(by_module) == ["0", "2"] and torch.allclose(by_module["2"].eigenvalues, layer.eigenvalues, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# traces and densities
# ---------------------------------------------------------------------------------------------

def test_trace_estimates_hold_the_exact_trace_within_their_error():
    model, data, (H, _) = _net(), _problem(), _exact()
    exact = float(torch.trace(H))
    hutch = hessian_trace(model, CE, data, probes=100, seed=0)
    assert hutch.matvecs == 100 and hutch.method == "hutchinson"
    assert abs(hutch.trace - exact) < 4 * hutch.stderr
    off = H - torch.diag(torch.diag(H))                   # Var(z^T H z) = 2 sum_{i != j} H_ij^2 for Rademacher z
    expected_se = math.sqrt(2 * float((off ** 2).sum()) / 100)
    assert 0.7 < hutch.stderr / expected_se < 1.4
    pp = hessian_trace(model, CE, data, probes=60, method="hutch++", seed=0)
    assert pp.matvecs == 60 and pp.sketch_size == 20 and pp.samples.numel() == 20
    assert abs(pp.trace - exact) < 4 * pp.stderr + 1e-10 * abs(exact)
    assert pp.stderr < hutch.stderr                        # deflating the top of the spectrum pays
    same = hessian_trace(model, CE, data, probes=100, seed=torch.Generator().manual_seed(0))
    assert same.trace == hutch.trace
    assert hessian_trace(model, CE, data, probes=100, seed=1).trace != hutch.trace


def test_slq_moments_and_density():
    model, data, (H, ev) = _net(), _problem(), _exact()
    n = H.shape[0]
    d = hessian_density(model, CE, data, probes=30, steps=12, seed=0)
    assert d.nodes.shape == (30, 12) and d.matvecs == 360 and d.size == n
    assert torch.allclose(d.weights.sum(1), torch.ones(30, dtype=torch.float64), atol=1e-12)
    for j in (1, 2):
        exact = float((ev ** j).sum()) / n
        assert abs(d.moment(j) - exact) < 4 * d.moment_stderr(j), j
    # per probe the quadrature is exact for low degrees: moment(1) * n is Hutchinson's estimate on the same probes
    t = stochastic_trace(DenseOperator(H), probes=30, seed=0)
    assert abs(d.moment(1) * n - t.trace) < 1e-10
    grid = torch.linspace(float(ev[-1]) - 1, float(ev[0]) + 1, 2001, dtype=torch.float64)
    mean, spread = d.density(grid, sigma=0.05)
    assert abs(float(torch.trapezoid(mean, grid)) - 1.0) < 1e-6
    assert mean.shape == spread.shape == grid.shape and bool((spread >= 0).all())


def test_per_batch_density_spreads_over_batches():
    model, (x, y) = _net(), _problem()
    batches = [(x[:10], y[:10]), (x[10:], y[10:])]
    d = hessian_density(model, CE, batches, probes=5, steps=10, seed=0, per_batch=True)
    assert d.probes == 10 and d.batches == 2 and d.batch.tolist() == [0] * 5 + [1] * 5
    grid = torch.linspace(-1.0, 1.5, 51, dtype=torch.float64)
    mean, spread = d.density(grid, 0.1, over="batches")
    assert torch.allclose(mean, d.density(grid, 0.1)[0], atol=1e-12)     # equal batches: the same mean
    Hb = [_exact_hessian(model, CE, a, b) for a, b in batches]
    for b in (0, 1):                                       # each batch's probes see that batch's Hessian
        m1 = float((d.weights[d.batch == b] * d.nodes[d.batch == b]).sum(1).mean())
        exact = float(torch.trace(Hb[b])) / Hb[b].shape[0]
        se = float((d.weights[d.batch == b] * d.nodes[d.batch == b]).sum(1).std()) / math.sqrt(5)
        assert abs(m1 - exact) < 5 * se + 1e-12
    assert float(spread.max()) > 0


# ---------------------------------------------------------------------------------------------
# Gauss-Newton split and the class decomposition
# ---------------------------------------------------------------------------------------------

def test_gauss_newton_plus_residual_is_the_hessian():
    model, (x, y), (H, _) = _net(), _problem(), _exact()
    split = gauss_newton_split(model, CE, (x, y), dense=True)
    assert float((split.ggn + split.residual - H).abs().max()) < 1e-12
    f = _functional(model, x)
    J = torch.autograd.functional.jacobian(f, _flat_params(model)).reshape(20 * 3, -1)
    HL = torch.autograd.functional.hessian(lambda out: CE(out.reshape(20, 3), y), f(_flat_params(model)).reshape(-1))
    assert float((split.ggn - J.T @ HL @ J).abs().max()) < 1e-12
    assert float(torch.linalg.eigvalsh(split.ggn).min()) > -1e-12
    linear = nn.Linear(5, 3).double()                      # a linear model: the residual vanishes
    lin = gauss_newton_split(linear, CE, (x, y), dense=True)
    assert float(lin.residual.abs().max()) == 0.0
    assert float((lin.ggn - _exact_hessian(linear, CE, x, y)).abs().max()) < 1e-12
    ops = gauss_newton_split(model, CE, [(x[:8], y[:8]), (x[8:], y[8:])], cache=True)
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert float((ops.ggn.matvec(v) - split.ggn @ v).abs().max()) < 1e-12
    assert float((ops.residual.matvec(v) - split.residual @ v).abs().max()) < 1e-12
    exact_norms, est = split.norms(), ops.norms(probes=40, seed=0)
    for key in ("hessian", "ggn", "residual"):
        assert abs(est[key] - exact_norms[key]) < 5 * est[key + "_stderr"], key


def test_mse_loss_split():
    model, (x, _) = _net(), _problem()
    t = torch.randn(20, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    mse = nn.MSELoss()
    split = gauss_newton_split(model, mse, (x, t), dense=True)
    assert float((split.ggn + split.residual - _exact_hessian(model, mse, x, t)).abs().max()) < 1e-12


def test_class_parts_add_up_to_the_gauss_newton_matrix():
    model, data = _net(), _problem()
    C = 3
    G = gauss_newton_split(model, CE, data, dense=True).ggn
    cd = class_decomposition(model, data, dense=True)
    assert cd.num_classes == C and cd.n_examples == 20
    assert float((cd.class_means + cd.cross_class + cd.within - G).abs().max()) < 1e-12
    assert float((cd.ggn - G).abs().max()) < 1e-12
    assert torch.allclose(cd.weights.sum(1), cd.counts.double())             # sum_c' p_ic' = 1
    assert float(torch.linalg.eigvalsh(cd.within).min()) > -1e-12
    # the Gram spectra are those of the dense parts; the C^2 means span at most C(C-1) dimensions
    assert torch.allclose(cd.class_eigenvalues, torch.linalg.eigvalsh(cd.class_means).flip(0)[:C], atol=1e-12)
    assert torch.allclose(cd.cross_eigenvalues, torch.linalg.eigvalsh(cd.cross_class).flip(0)[:C * (C - 1)],
                          atol=1e-12)
    means = torch.linalg.eigvalsh(cd.class_means + cd.cross_class).flip(0)
    assert torch.allclose(cd.means_eigenvalues, means[:C * C], atol=1e-12)
    assert float(cd.means_eigenvalues[C * (C - 1):].abs().max()) < 1e-12
    edge = float(torch.linalg.eigvalsh(cd.within).max())
    assert cd.bulk_edge == pytest.approx(edge, rel=1e-12)
    assert cd.outliers == int((torch.linalg.eigvalsh(G) > edge).sum()) <= C * (C - 1)
    assert cd.outliers >= 1


def test_class_decomposition_without_dense_matrices_agrees():
    model, (x, y) = _net(), _problem()
    dense = class_decomposition(model, (x, y), dense=True)
    ops = class_decomposition(model, [(x[:12], y[:12]), (x[12:], y[12:])], seed=0, tol=1e-9)
    assert not ops.dense and ops.matvecs > 0
    assert torch.allclose(ops.class_eigenvalues, dense.class_eigenvalues, atol=1e-12)
    assert torch.allclose(ops.means_eigenvalues, dense.means_eigenvalues, atol=1e-12)
    assert _rel(ops.ggn_eigenvalues, dense.ggn_eigenvalues[:9]) < 1e-6
    assert _rel(ops.within_eigenvalues, dense.within_eigenvalues[:3]) < 1e-6
    assert ops.outliers == dense.outliers and ops.cross_outliers == dense.cross_outliers
    v = torch.randn(dense.ggn.shape[0], generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert float((ops.within.matvec(v) - dense.within @ v).abs().max()) < 1e-12
    assert float((ops.class_means.matvec(v) - dense.class_means @ v).abs().max()) < 1e-12


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------

def test_bad_input_names_the_argument():
    model, (x, y) = _net(), _problem()
    with pytest.raises(ValueError, match=r"^loss_fn: .*does not depend"):
        hessian_eigenvalues(model, lambda out, t: torch.tensor(1.0), (x, y))
    with pytest.raises(ValueError, match=r"^loss_fn: .*does not depend"):
        hessian_trace(model, lambda out, t: out.detach().sum(), (x, y))
    with pytest.raises(ValueError, match=r"^data: .*\(20, 4\)"):
        hessian_eigenvalues(model, CE, (x[:, :4], y))
    with pytest.raises(ValueError, match=r"^data: .*targets of shape"):
        hessian_eigenvalues(model, CE, (x, y[:19]))
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"^data: .*NaN"):
        hessian_trace(model, CE, (bad, y))
    with pytest.raises(ValueError, match=r"^loss_fn: .*nan"):
        hessian_trace(model, lambda out, t: torch.log(-out.abs().sum()), (x, y))
    with pytest.raises(ValueError, match=r"^k: "):
        hessian_eigenvalues(model, CE, (x, y), k=76)
    with pytest.raises(ValueError, match=r"^k: "):
        hessian_eigenvalues(model, CE, (x, y), k=38, which="both")
    with pytest.raises(ValueError, match=r"^which: "):
        hessian_eigenvalues(model, CE, (x, y), which="largest")
    with pytest.raises(ValueError, match=r"^probes: "):
        hessian_trace(model, CE, (x, y), probes=1)
    with pytest.raises(ValueError, match=r"^probes: "):
        hessian_trace(model, CE, (x, y), probes=3, method="hutch++")
    with pytest.raises(ValueError, match=r"^method: "):
        hessian_trace(model, CE, (x, y), method="exact")
    with pytest.raises(ValueError, match=r"^probes: "):
        hessian_density(model, CE, (x, y), probes=0)
    with pytest.raises(ValueError, match=r"^steps: "):
        hessian_density(model, CE, (x, y), steps=-2)
    with pytest.raises(ValueError, match=r"^block: "):
        hessian_eigenvalues(model, CE, (x, y), block="5")
    with pytest.raises(ValueError, match=r"^params: "):
        hessian_eigenvalues(model, CE, (x, y), params=["nope"])
    with pytest.raises(ValueError, match=r"^v: "):
        hessian_vector_product(model, CE, (x, y), torch.ones(3))
    with pytest.raises(ValueError, match=r"^data: no batches"):
        hessian_trace(model, CE, [])
    with pytest.raises(ValueError, match=r"^data: batch 1 is not"):
        hessian_trace(model, CE, [(x, y), x])
    with pytest.raises(ValueError, match=r"^data: "):
        class_decomposition(model, (x, y.double()))
    with pytest.raises(ValueError, match=r"^num_classes: "):
        class_decomposition(model, (x, y), num_classes=4)
    with pytest.raises(ValueError, match=r"^dense: "):
        gauss_newton_split(nn.Sequential(nn.Linear(5, 100), nn.Linear(100, 40)).double(), CE, (x, y), dense=True)
    with pytest.raises(TypeError, match=r"^model: "):
        hessian_trace(lambda t: t, CE, (x, y))
    with pytest.raises(TypeError, match=r"^loss_fn: "):
        hessian_trace(model, "ce", (x, y))
    with pytest.raises(TypeError, match=r"^data: "):
        hessian_trace(model, CE, x)
    with pytest.raises(ValueError, match=r"^seed: "):
        hessian_trace(model, CE, (x, y), seed=-1)


def test_quadrature_with_steps_beyond_the_size_finds_the_eigenvalues():
    g = torch.Generator().manual_seed(4)
    A = torch.randn(5, 5, generator=g, dtype=torch.float64)
    A = A @ A.T
    d = lanczos_quadrature(A, probes=3, steps=50, seed=0)
    assert d.nodes.shape == (3, 5) and d.lengths.tolist() == [5, 5, 5]
    assert torch.allclose(d.nodes, torch.linalg.eigvalsh(A).expand(3, 5), atol=1e-10)

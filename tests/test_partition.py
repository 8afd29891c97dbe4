"""Forward AIS and reverse AIS (RAISE) against exact enumeration on small RBMs."""

import math

import pytest
import torch

from thermolearn._numerics import softplus
from thermolearn.ebm.ais import AISResult, ais_log_partition, base_rate_bias
from thermolearn.ebm.exact import all_states, exact_log_partition
from thermolearn.ebm.rbm import RBM
from thermolearn.ebm.reverse_ais import RAISEResult, raise_log_likelihood


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The loops run many small ops: one intra-op thread is fastest and robust to a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _model(n_v, n_h, scale, seed, beta=1.0, dtype=torch.float64):
    """W ~ N(0, scale^2); biases centre the units (so many modes compete) plus some noise."""
    g = torch.Generator().manual_seed(seed)
    W = scale * torch.randn(n_v, n_h, generator=g, dtype=torch.float64)
    a = -0.5 * W.sum(1) + 0.3 * torch.randn(n_v, generator=g, dtype=torch.float64)
    b = -0.5 * W.sum(0) + 0.3 * torch.randn(n_h, generator=g, dtype=torch.float64)
    return RBM.from_weights(W / beta, a / beta, b / beta, beta=beta, dtype=dtype)


def _exact_samples(rbm, n, seed):
    """Exact samples of p(v): h from p(h) by enumerating the hidden layer, then v ~ p(v | h)."""
    g = torch.Generator().manual_seed(seed)
    W, a, b = rbm.scaled_parameters(torch.float64)
    H = all_states(rbm.n_hidden)
    log_ph = H @ b + softplus(a + H @ W.T).sum(1)
    idx = torch.multinomial(torch.softmax(log_ph, 0), n, replacement=True, generator=g)
    return torch.bernoulli(torch.sigmoid(a + H[idx] @ W.T), generator=g)


def _exact_log_p(rbm, v, log_z):
    return (-rbm.beta * rbm.free_energy(v)).double() - log_z


# --- 1. AIS vs exact on a 20-hidden-unit model ----------------------------------------------

@pytest.fixture(scope="module")
def model20():
    rbm = _model(32, 20, 1.0, seed=0)
    return rbm, exact_log_partition(rbm, chunk=2**17)


def test_ais_matches_exact_20_hidden(model20):
    rbm, log_z = model20
    assert log_z > 50                                   # far from the base model's log Z_0
    r = ais_log_partition(rbm, n_chains=200, n_betas=3000, seed=1)
    assert isinstance(r, AISResult)
    assert r.n_betas == 3000 and r.log_weights.shape == (200,) and r.samples.shape == (200, 32)
    assert r.log_z_base == pytest.approx(32 * math.log(2) + 20 * math.log(2))
    assert 0 < r.stderr < 0.02
    assert abs(r.log_z - log_z) < 3 * r.stderr
    assert abs(r.log_z - log_z) < 0.05
    assert r.log_z_lower < r.log_z < r.log_z_upper
    assert r.log_z_upper - r.log_z == pytest.approx(math.log1p(3 * r.stderr))
    assert math.log(torch.exp(r.log_weights - r.log_weights.max()).mean()) + float(r.log_weights.max()) \
        == pytest.approx(r.log_z - r.log_z_base)


def test_ais_short_ladder_is_worse_and_biased_low(model20):
    """With 20 temperatures the estimate is far noisier and (Jensen) tends to be low."""
    rbm, log_z = model20
    r = ais_log_partition(rbm, n_chains=100, n_betas=20, seed=0)
    assert r.stderr > 0.05
    assert r.log_z < log_z + 3 * r.stderr


# --- unbiasedness of both estimators, independent of the ladder -------------------------------

def _tiny():
    return _model(5, 3, 1.5, seed=3)


def test_ais_weights_are_unbiased_on_a_short_ladder():
    """E[w] = Z_1 / Z_0 for any ladder: check the mean weight with 3 temperatures."""
    rbm = _tiny()
    log_z = exact_log_partition(rbm)
    base = torch.linspace(-1, 1, 5, dtype=torch.float64)
    r = ais_log_partition(rbm, n_chains=200000, n_betas=[0.0, 0.4, 1.0], base_visible_bias=base, seed=2)
    assert float(r.log_weights.std()) > 0.3             # a ladder this short is noisy...
    assert abs(r.log_z - log_z) < 4 * r.stderr          # ...but unbiased in Z (stderr ~ 0.002;
    # evaluating the weights after instead of before each sweep is off by ~ +0.27 here)


def _gibbs_kernel(W, a, b, a_base, t, V, H):
    """T_t(v' | v) over all visible states: sum_h p_t(h | v) p_t(v' | h)."""
    u = t * (b + V @ W)                                                   # (nV, n_h)
    log_phv = torch.nn.functional.logsigmoid(u) @ H.T + torch.nn.functional.logsigmoid(-u) @ (1 - H).T
    w = (1 - t) * a_base + t * (a + H @ W.T)                             # (nH, n_v)
    log_pvh = torch.nn.functional.logsigmoid(w) @ V.T + torch.nn.functional.logsigmoid(-w) @ (1 - V).T
    return log_phv.exp() @ log_pvh.exp()


def test_raise_is_unbiased_for_the_annealed_model():
    """E[p-hat(v)] = p_ann(v) = (p_0 T_1 ... T_K)(v), computed exactly on a tiny model."""
    rbm = _tiny()
    W, a, b = rbm.scaled_parameters(torch.float64)
    a_base = torch.linspace(-1, 1, 5, dtype=torch.float64)
    betas = [0.0, 0.5, 1.0]
    V, H = all_states(5), all_states(3)
    p = torch.softmax(V @ a_base, 0)                                      # p_0
    for t in betas[1:]:
        p = p @ _gibbs_kernel(W, a, b, a_base, t, V, H)
    p_model = torch.exp(_exact_log_p(rbm, V, exact_log_partition(rbm)))
    assert float((p - p_model).abs().max() / p_model.max()) > 0.1      # p_ann != p_model here
    r = raise_log_likelihood(rbm, V, n_chains=4000, n_betas=betas, base_visible_bias=a_base,
                             seed=3, batch_size=8)
    rel = torch.exp(r.per_example) / p - 1
    assert float(rel.abs().max()) < 0.05
    assert abs(float(rel.mean())) < 0.01


# --- the float32 path: increments by the cancellation-free identity, xorshift draws ----------

def _float32_path(rbm, betas, n=64, seed=0):
    from thermolearn.ebm.ais import _ladder, _Path
    path = _Path(rbm, torch.zeros(rbm.n_visible, dtype=torch.float64), _ladder(betas), n,
                 torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed + 1)
    path.v.copy_(torch.bernoulli(torch.full((n, rbm.n_visible), 0.5), generator=g))
    path.drive()
    return path


def _softplus_increment(path, i):
    """The float64 reference: sum_j softplus(t_hi x) - softplus(t_lo x) + dt (a' - a_A).v."""
    x = path.xh.double()
    t_lo, t_hi = path.t[i], path.t[i + 1]
    return (softplus(t_hi * x) - softplus(t_lo * x)).sum(1) + (t_hi - t_lo) * path.xd.double()


@pytest.mark.parametrize("at_hi", [True, False])
def test_float32_increment_identity_matches_float64_softplus(at_hi):
    rbm = _model(40, 30, 0.3, seed=21).to(dtype=torch.float32)
    betas = [0.0, 1e-5, 1e-3, 0.02, 0.5, 1.0]        # steps from 1e-5 to 0.5: fine and coarse
    path = _float32_path(rbm, betas)
    assert path.fast and path.identity[:3] == [True, True, True]
    assert path.identity[4] is False                  # dt * max|x| > 1: the float64 fallback
    for i in range(len(betas) - 1):
        lw = torch.zeros(path.n, dtype=torch.float64)
        path.weigh(lw, i, -1.0 if not at_hi else 1.0, at_hi=at_hi)
        ref = _softplus_increment(path, i) * (1.0 if at_hi else -1.0)
        assert torch.allclose(lw, ref, rtol=2e-5, atol=1e-9), i
        t = path.t[i + 1] if at_hi else path.t[i]    # weigh leaves the sweep's probabilities
        assert torch.allclose(path.hp, torch.sigmoid(t * path.xh), atol=1e-6)


def test_float32_estimators_are_unbiased_on_the_identity_path():
    """E[w] = Z / Z_0 for AIS and E[p-hat] = p_ann for RAISE, with every step on the identity."""
    rbm64 = _model(5, 3, 0.8, seed=3)
    rbm = rbm64.to(dtype=torch.float32)
    a_base = torch.linspace(-1, 1, 5, dtype=torch.float64)
    betas = [i / 5 for i in range(6)]                 # dt = 0.2, max|x| = 4.3
    from thermolearn.ebm.ais import _ladder, _Path
    assert all(_Path(rbm, a_base, _ladder(betas), 1, None).identity)
    r = ais_log_partition(rbm, n_chains=200000, n_betas=betas, base_visible_bias=a_base, seed=2)
    assert abs(r.log_z - exact_log_partition(rbm64)) < 4 * r.stderr
    W, a, b = rbm64.scaled_parameters(torch.float64)
    V, H = all_states(5), all_states(3)
    p = torch.softmax(V @ a_base, 0)
    for t in betas[1:]:
        p = p @ _gibbs_kernel(W, a, b, a_base, t, V, H)
    rev = raise_log_likelihood(rbm, V.float(), n_chains=4000, n_betas=betas, base_visible_bias=a_base,
                               seed=3, batch_size=8)
    rel = torch.exp(rev.per_example) / p - 1
    assert float(rel.abs().max()) < 0.05 and abs(float(rel.mean())) < 0.01


# --- 2. bracketing on data sampled from the model ---------------------------------------------

@pytest.fixture(scope="module")
def sampled():
    rbm = _model(32, 14, 2.0, seed=4)
    log_z = exact_log_partition(rbm)
    data = _exact_samples(rbm, 200, seed=5)
    return rbm, log_z, data, _exact_log_p(rbm, data, log_z)


def test_forward_and_reverse_ais_bracket_the_exact_likelihood(sampled):
    rbm, log_z, data, exact = sampled
    ll_exact = float(exact.mean())
    # a short ladder: both estimators are visibly off, in their own directions
    fwd = ais_log_partition(rbm, n_chains=100, n_betas=100, seed=6)
    ll_fwd = rbm.log_likelihood(data, fwd.log_z)
    rev = raise_log_likelihood(rbm, data, n_chains=10, n_betas=100, seed=7)
    assert isinstance(rev, RAISEResult) and rev.per_example.shape == (200,)
    diff = rev.per_example - exact                       # paired: the same rows
    diff_se = float(diff.std()) / math.sqrt(len(diff))
    assert rev.log_likelihood < ll_exact + 3 * diff_se  # conservative
    assert ll_fwd > ll_exact - 3 * fwd.stderr            # optimistic (log Z-hat biased low)
    assert rev.log_likelihood < ll_fwd + 3 * fwd.stderr
    assert float(diff.mean()) > -1.0
    assert rev.stderr == pytest.approx(float(rev.per_example.std()) / math.sqrt(200))


def test_raise_close_to_exact_with_a_good_ladder(sampled):
    rbm, log_z, data, exact = sampled
    rev = raise_log_likelihood(rbm, data, n_chains=10, n_betas=1500, seed=8, batch_size=64)
    diff = rev.per_example - exact
    diff_se = float(diff.std()) / math.sqrt(len(diff))
    assert float(diff.mean()) < 3 * diff_se
    assert abs(float(diff.mean())) < 0.1
    fwd = ais_log_partition(rbm, n_chains=100, n_betas=1500, seed=9)
    assert abs(fwd.log_z - log_z) < max(3 * fwd.stderr, 0.02)
    assert abs(fwd.log_z - log_z) < 0.1


# --- 3. the base-rate model is estimated exactly ----------------------------------------------

@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_base_rate_model_is_exact(beta):
    g = torch.Generator().manual_seed(10)
    data = (torch.rand(50, 24, generator=g, dtype=torch.float64) < torch.linspace(0.02, 0.9, 24)).double()
    a_base = base_rate_bias(data)
    # W = 0, visible bias a_A, hidden bias 0 (a_A / beta is exact for beta = 2)
    rbm = RBM.from_weights(torch.zeros(24, 7, dtype=torch.float64), a_base / beta,
                           torch.zeros(7, dtype=torch.float64), beta=beta)
    log_z = exact_log_partition(rbm)
    r = ais_log_partition(rbm, n_chains=20, n_betas=50, base_visible_bias=a_base, seed=0)
    assert r.log_z == pytest.approx(log_z, abs=1e-12)
    assert r.log_z_base == pytest.approx(log_z, abs=1e-12)
    assert r.stderr == 0.0 and bool((r.log_weights == 0).all())
    assert r.log_z_lower == r.log_z == r.log_z_upper
    rev = raise_log_likelihood(rbm, data, n_chains=3, n_betas=50, base_visible_bias=a_base)
    torch.testing.assert_close(rev.per_example, _exact_log_p(rbm, data, log_z), rtol=0, atol=1e-12)


def test_base_rate_bias():
    data = torch.tensor([[0, 1, 1.0], [0, 1, 0], [0, 1, 1], [0, 1, 0]])
    a = base_rate_bias(data, smoothing=0.1)
    p = torch.tensor([0.05, 0.95, 0.5], dtype=torch.float64)
    torch.testing.assert_close(a, torch.log(p / (1 - p)))
    with pytest.raises(ValueError, match="data"):
        base_rate_bias(torch.tensor([[0.0, 2.0]]))
    with pytest.raises(ValueError, match="smoothing"):
        base_rate_bias(data, smoothing=0)


def test_data_base_rate_is_consistent(sampled):
    rbm, log_z, data, _ = sampled
    plain = ais_log_partition(rbm, n_chains=100, n_betas=300, seed=11)
    based = ais_log_partition(rbm, n_chains=100, n_betas=300, seed=11,
                              base_visible_bias=base_rate_bias(data))
    assert based.log_z_base != plain.log_z_base
    assert abs(based.log_z - log_z) < 3 * based.stderr + 0.02
    assert abs(plain.log_z - log_z) < 3 * plain.stderr + 0.02


# --- 4. beta != 1 ---------------------------------------------------------------------------

@pytest.mark.parametrize("beta", [0.5, 1.7])
def test_beta_not_one_matches_exact(beta):
    base = _model(24, 14, 1.2, seed=12)
    rbm = RBM.from_weights(base.W, base.visible_bias, base.hidden_bias, beta=beta)
    log_z = exact_log_partition(rbm)
    assert abs(log_z - exact_log_partition(base)) > 5      # another temperature, another model
    r = ais_log_partition(rbm, n_chains=200, n_betas=2000, seed=13)
    assert abs(r.log_z - log_z) < 3 * r.stderr + 0.005 and abs(r.log_z - log_z) < 0.05
    data = _exact_samples(rbm, 100, seed=14)
    exact = _exact_log_p(rbm, data, log_z)
    rev = raise_log_likelihood(rbm, data, n_chains=8, n_betas=1000, seed=15)
    diff = rev.per_example - exact
    assert float(diff.mean()) < 3 * float(diff.std()) / 10 and abs(float(diff.mean())) < 0.1
    # forward AIS likelihood through RBM.log_likelihood (which applies beta) agrees as well
    assert abs(rbm.log_likelihood(data, r.log_z) - float(exact.mean())) < 0.05


def test_float32_model():
    rbm64 = _model(24, 12, 1.0, seed=16)
    rbm = rbm64.to(dtype=torch.float32)
    log_z = exact_log_partition(rbm64)
    r = ais_log_partition(rbm, n_chains=100, n_betas=1000, seed=17)
    assert r.samples.dtype == torch.float32 and r.log_weights.dtype == torch.float64
    assert abs(r.log_z - log_z) < 3 * r.stderr + 0.01
    rev = raise_log_likelihood(rbm, _exact_samples(rbm64, 20, seed=18).float(), n_chains=4, n_betas=200)
    assert math.isfinite(rev.log_likelihood)


def test_reproducible_and_progress(capsys):
    rbm = _tiny()
    r1 = ais_log_partition(rbm, n_chains=10, n_betas=30, seed=5, progress=True)
    r2 = ais_log_partition(rbm, n_chains=10, n_betas=30, seed=5)
    assert torch.equal(r1.log_weights, r2.log_weights) and r1.seconds >= 0
    q1 = raise_log_likelihood(rbm, torch.ones(3, 5), n_chains=2, n_betas=10, seed=5, progress=True)
    q2 = raise_log_likelihood(rbm, torch.ones(3, 5), n_chains=2, n_betas=10, seed=5, batch_size=2)
    assert q1.per_example.shape == (3,) and torch.isfinite(q2.per_example).all()


# --- 5. bad arguments -----------------------------------------------------------------------

def test_bad_arguments():
    rbm = _tiny()
    data = torch.ones(2, 5)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="n_chains"):
            ais_log_partition(rbm, n_chains=bad)
        with pytest.raises(ValueError, match="n_chains"):
            raise_log_likelihood(rbm, data, n_chains=bad)
    for bad in ([0.2, 0.5, 1.0], [0.0, 0.5], [0.0, 0.7, 0.5, 1.0], [0.0, 2.0], 1, "fast", [1.0]):
        with pytest.raises(ValueError, match="n_betas"):
            ais_log_partition(rbm, n_betas=bad)
        with pytest.raises(ValueError, match="n_betas"):
            raise_log_likelihood(rbm, data, n_betas=bad)
    with pytest.raises(ValueError, match="data"):
        raise_log_likelihood(rbm, torch.ones(2, 6))
    with pytest.raises(ValueError, match="data"):
        raise_log_likelihood(rbm, torch.full((2, 5), 0.5))
    with pytest.raises(ValueError, match="base_visible_bias"):
        ais_log_partition(rbm, base_visible_bias=torch.zeros(4))
    with pytest.raises(ValueError, match="base_visible_bias"):
        raise_log_likelihood(rbm, data, base_visible_bias=torch.zeros(6))
    with pytest.raises(ValueError, match="batch_size"):
        raise_log_likelihood(rbm, data, batch_size=0)


# --- 6. AIS as a non-equilibrium process: work, Jarzynski, effective sample size --------------

def test_work_statistics_and_ess_formula(model20):
    rbm, log_z = model20
    r = ais_log_partition(rbm, n_chains=64, n_betas=200, seed=21)
    lw = r.log_weights
    torch.testing.assert_close(r.work, -lw, rtol=0, atol=0)
    assert r.work_mean == pytest.approx(float((-lw).mean()), rel=1e-12)
    assert r.work_std == pytest.approx(float(lw.std()), rel=1e-12)
    w = torch.exp(lw - lw.max())                              # (sum w)^2 / sum w^2, scale-free
    ess = float(w.sum() ** 2 / (w ** 2).sum())
    assert r.ess == pytest.approx(ess, rel=1e-9) and 1.0 <= r.ess <= 64
    assert r.ess_fraction == pytest.approx(ess / 64, rel=1e-9)
    # Jarzynski: log Z-hat = log Z_0 + log mean exp(-W); Delta F-hat = log Z_0 - log Z-hat
    jarzynski = r.log_z_base + math.log(float(torch.exp(-(r.work - r.work.min())).mean())) - float(r.work.min())
    assert r.log_z == pytest.approx(jarzynski, abs=1e-9)
    assert r.free_energy_change == pytest.approx(r.log_z_base - r.log_z, abs=1e-12)
    assert r.dissipated_work == pytest.approx(r.work_mean - r.free_energy_change, abs=1e-12)
    assert r.dissipated_work >= 0                             # Jensen, in-sample


def test_second_law_against_exact_free_energy(model20):
    """<W> >= Delta F = log Z_0 - log Z (exact), and the dissipation shrinks with a finer ladder."""
    rbm, log_z = model20
    coarse = ais_log_partition(rbm, n_chains=400, n_betas=10, seed=22)
    fine = ais_log_partition(rbm, n_chains=400, n_betas=1000, seed=23)
    for r in (coarse, fine):
        delta_f = r.log_z_base - log_z
        sem = r.work_std / math.sqrt(400)
        assert r.work_mean > delta_f - 3 * sem
    dissipation = [r.work_mean - (r.log_z_base - log_z) for r in (coarse, fine)]
    assert dissipation[0] > 1.0 and dissipation[1] < 0.2 * dissipation[0]
    assert coarse.ess_fraction < fine.ess_fraction and fine.ess_fraction > 0.5
    # near equilibrium the work is nearly Gaussian: dissipation ~ var(W) / 2
    assert fine.dissipated_work == pytest.approx(fine.work_std ** 2 / 2, rel=0.5, abs=0.02)


def test_base_rate_model_does_no_work():
    g = torch.Generator().manual_seed(24)
    a = 0.5 * torch.randn(6, generator=g, dtype=torch.float64)
    rbm = RBM.from_weights(torch.zeros(6, 3, dtype=torch.float64), a, torch.zeros(3, dtype=torch.float64))
    r = ais_log_partition(rbm, n_chains=10, n_betas=20, base_visible_bias=a, seed=0)
    assert r.work_mean == 0 and r.work_std == 0 and r.dissipated_work == pytest.approx(0, abs=1e-12)
    assert r.ess == 10 and r.ess_fraction == 1.0


def test_evaluate_reports_work_ess_and_the_bracket_json_ready(sampled):
    import json

    from thermolearn.ebm.evaluate import evaluate_rbm

    rbm, log_z, data, _ = sampled
    train, test = data[:120], data[120:]
    res = evaluate_rbm(rbm, train, test, n_chains=50, n_betas=200, raise_examples=30, raise_chains=2,
                       raise_betas=200, tap_orders=(), seed=3)
    assert json.loads(json.dumps(res, allow_nan=False)) == res          # plain JSON values, no NaN
    new = ["ais_log_z_base", "ais_work_mean", "ais_work_std", "ais_free_energy_change", "ais_dissipated_work",
           "ais_ess", "ais_ess_fraction", "exact_dissipated_work"]
    for split in ("train", "test"):
        new += [f"{split}_ll_bracket_lower", f"{split}_ll_bracket_upper", f"{split}_ll_bracket_width",
                f"exact_{split}_ll_in_bracket"]
    for key in new:
        assert key in res and type(res[key]) in (float, bool), key
    assert res["ais_free_energy_change"] == pytest.approx(res["ais_log_z_base"] - res["ais_log_z"])
    assert res["ais_dissipated_work"] == pytest.approx(res["ais_work_mean"] - res["ais_free_energy_change"])
    assert res["exact_dissipated_work"] == pytest.approx(res["ais_work_mean"] - res["ais_log_z_base"] + log_z)
    assert res["ais_ess"] == pytest.approx(50 * res["ais_ess_fraction"]) and 1 <= res["ais_ess"] <= 50
    assert res["test_ll_bracket_lower"] == res["raise_test_ll"]
    assert res["test_ll_bracket_upper"] == res["ais_test_ll_same_examples"]
    assert res["test_ll_bracket_width"] == pytest.approx(res["ais_test_ll_same_examples"] - res["raise_test_ll"])
    inside = res["test_ll_bracket_lower"] <= res["exact_test_ll_same_examples"] <= res["test_ll_bracket_upper"]
    assert res["exact_test_ll_in_bracket"] is inside


def test_float64_softplus_is_exact_to_rounding():
    """The fused kernel with threshold 50 against max(x, 0) + log1p(exp(-|x|)), and the far tails."""
    x = torch.cat([torch.linspace(-700, 800, 150001, dtype=torch.float64),
                   torch.tensor([-1e-12, 0.0, 1e-12, 49.999, 50.0, 50.001], dtype=torch.float64)])
    ref = torch.clamp_min(x, 0.0) + torch.log1p(torch.exp(-x.abs()))
    got = softplus(x)
    assert float(((got - ref).abs() / ref).max()) < 4.5e-16
    assert softplus(torch.tensor([-745.0], dtype=torch.float64)).item() > 0      # no underflow to 0 early

"""Weight spectra: Marchenko-Pastur fits, spikes, power-law tails, layer handling and null models."""

import copy
import json
import math

import pytest
import torch
from scipy import integrate, optimize
from torch import nn

from thermolearn.landscape.spectra import (
    marchenko_pastur_fit,
    mp_cdf,
    mp_density,
    mp_edges,
    power_law_fit,
    weight_spectra,
)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def noise(N, M, s, seed):
    return s * torch.randn(N, M, generator=gen(seed), dtype=torch.float64)


def esd(W):
    N = max(W.shape)
    return torch.linalg.svdvals(W) ** 2 / N


def planted(N, M, s, strengths, seed):
    """noise(s) + sum_i theta_i u_i v_i^T with orthonormal u, v and theta_i = t_i s sqrt(N)."""
    g = gen(seed + 1)
    k = len(strengths)
    u = torch.linalg.qr(torch.randn(N, k, generator=g, dtype=torch.float64))[0]
    v = torch.linalg.qr(torch.randn(M, k, generator=g, dtype=torch.float64))[0]
    W = noise(N, M, s, seed)
    for i, t in enumerate(strengths):
        W = W + t * s * math.sqrt(N) * torch.outer(u[:, i], v[:, i])
    return W


def linear_with(W):
    layer = nn.Linear(W.shape[1], W.shape[0], dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(W)
    return layer


# --------------------------------------------------------------------------------------------
# Marchenko-Pastur law and fit
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("Q", [1.0, 2.5])
def test_mp_density_and_cdf_against_quadrature(Q):
    sigma2 = 0.7
    lo, hi = mp_edges(sigma2, Q)
    assert (lo, hi) == pytest.approx((sigma2 * (1 - Q ** -0.5) ** 2, sigma2 * (1 + Q ** -0.5) ** 2))

    def rho(x):
        return float(mp_density(x, sigma2, Q))

    total = integrate.quad(rho, lo, hi, limit=200)[0]
    mean = integrate.quad(lambda x: x * rho(x), lo, hi, limit=200)[0]
    assert total == pytest.approx(1.0, abs=1e-7)
    assert mean == pytest.approx(sigma2, rel=1e-7)          # the MP mean is the entry variance
    for x in (lo + 0.1 * (hi - lo), 0.5 * (lo + hi), lo + 0.9 * (hi - lo)):
        assert float(mp_cdf(x, sigma2, Q)) == pytest.approx(integrate.quad(rho, lo, x, limit=200)[0], abs=1e-8)
    assert float(mp_cdf(hi * 1.1, sigma2, Q)) == 1.0 and float(mp_cdf(lo * 0.5, sigma2, Q)) == 0.0
    assert float(mp_density(hi * 1.01, sigma2, Q)) == 0.0


@pytest.mark.parametrize("N,M,seed", [(800, 400, 0), (500, 500, 1), (1500, 300, 2)])
def test_mp_fit_of_gaussian_noise_recovers_variance_and_ratio(N, M, seed):
    s = 0.7
    fit = marchenko_pastur_fit(esd(noise(N, M, s, seed)), N / M)
    assert fit.sigma2 == pytest.approx(s ** 2, rel=0.02)
    assert fit.Q == N / M
    assert fit.lambda_plus == pytest.approx(fit.sigma2 * (1 + (M / N) ** 0.5) ** 2, rel=1e-12)
    assert fit.spikes == 0 and fit.n_bulk == M
    assert fit.ks < 0.03                                    # the bulk follows the fitted law


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_spikes_above_bbp_threshold_are_counted_exactly(seed):
    N, M, s = 1000, 400, 0.5
    q4 = (M / N) ** 0.25                                    # BBP threshold of t
    strengths = [1.6 * q4, 2.2 * q4, 3.0 * q4]
    lam = torch.sort(esd(planted(N, M, s, strengths, seed))).values
    fit = marchenko_pastur_fit(lam, N / M)
    assert fit.spikes == 3
    assert fit.sigma2 == pytest.approx(s ** 2, rel=0.03)
    c = M / N
    predicted = sorted(s ** 2 * (1 + t * t) * (c + t * t) / (t * t) for t in strengths)
    assert lam[-3:].tolist() == pytest.approx(predicted, rel=0.05)
    # below the threshold a planted direction is invisible
    weak = marchenko_pastur_fit(esd(planted(N, M, s, [0.5 * q4], seed)), N / M)
    assert weak.spikes == 0


# --------------------------------------------------------------------------------------------
# Power laws
# --------------------------------------------------------------------------------------------

def pareto(n, alpha, seed, xmin=1.0):
    u = torch.rand(n, generator=gen(seed), dtype=torch.float64)
    return xmin * (1 - u) ** (-1.0 / (alpha - 1.0))


def brute_force_fit(x, min_tail):
    """An independent loop over every xmin: the continuous MLE and the two-sided KS distance."""
    x = sorted(x.tolist())
    n = len(x)
    best = None
    for i in range(n - min_tail + 1):
        if (i and x[i] == x[i - 1]) or x[i] == x[-1]:
            continue
        tail = x[i:]
        k = len(tail)
        alpha = 1 + k / sum(math.log(v / x[i]) for v in tail)
        cdf = [1 - (v / x[i]) ** (1 - alpha) for v in tail]
        D = max(max(F - j / k, (j + 1) / k - F) for j, F in enumerate(cdf))
        if best is None or D < best[3]:
            best = (alpha, x[i], k, D)
    return best


def test_power_law_fit_matches_an_independent_scan():
    x = torch.cat([torch.rand(40, generator=gen(3), dtype=torch.float64) + 0.2, pareto(50, 2.2, 4, xmin=1.2)])
    fit = power_law_fit(x, min_tail=5)
    alpha, xmin, n_tail, ks = brute_force_fit(x, 5)
    assert (fit.alpha, fit.xmin, fit.n_tail, fit.ks) == pytest.approx((alpha, xmin, n_tail, ks), rel=1e-10)
    assert fit.sigma == pytest.approx((alpha - 1) / math.sqrt(n_tail))


def test_truncated_power_law_maximises_its_likelihood():
    x = pareto(400, 1.8, 5)
    xmin, xmax = 1.5, 40.0
    fit = power_law_fit(x, xmin=xmin, xmax=xmax)
    tail = x[(x >= xmin) & (x <= xmax)]
    assert fit.n_tail == tail.numel() and fit.xmin == xmin and fit.xmax == xmax

    def nll(a):
        z = (xmin ** (1 - a) - xmax ** (1 - a)) / (a - 1)
        return float(a * torch.log(tail).sum()) + tail.numel() * math.log(z)

    best = optimize.minimize_scalar(nll, bounds=(1.01, 6.0), method="bounded", options={"xatol": 1e-10}).x
    assert fit.alpha == pytest.approx(best, abs=1e-6)
    # with a fixed xmin and no xmax it is the closed form
    plain = power_law_fit(x, xmin=xmin)
    t = x[x >= xmin]
    assert plain.alpha == pytest.approx(1 + t.numel() / float(torch.log(t / xmin).sum()), rel=1e-12)


def test_pareto_alpha_lies_in_a_narrow_bootstrap_interval():
    x = pareto(1000, 2.5, 6)
    fit = power_law_fit(x, bootstrap=60, seed=0)
    assert fit.ci_low <= 2.5 <= fit.ci_high
    assert fit.ci_low <= fit.alpha <= fit.ci_high
    assert fit.ci_high - fit.ci_low < 0.4
    assert fit.bootstrap_alphas.shape == (60,) and fit.level == 0.95
    # a body below the tail: xmin is found near the true cut
    body = 0.3 + 0.7 * torch.rand(3000, generator=gen(7), dtype=torch.float64)
    mixed = power_law_fit(torch.cat([body, pareto(1500, 2.5, 8)]), bootstrap=0)
    assert 0.95 <= mixed.xmin <= 1.3
    assert mixed.alpha == pytest.approx(2.5, abs=0.2)
    assert math.isnan(mixed.ci_low) and mixed.bootstrap_alphas.numel() == 0


def test_esd_of_heavy_tailed_matrix_has_the_levy_exponent():
    """Entries with P(|w| > x) = x^-mu, mu < 2: the top eigenvalues of W^T W / N are the squared
    largest entries, so the ESD tail has alpha = 1 + mu / 2 (Biroli, Bouchaud & Potters 2007)."""
    mu = 1.0
    g = gen(9)
    u = torch.rand(600, 300, generator=g, dtype=torch.float64)
    sign = torch.randint(0, 2, (600, 300), generator=g).double() * 2 - 1
    W = sign * u ** (-1.0 / mu)
    fit = power_law_fit(esd(W), bootstrap=50, seed=1)
    assert fit.ci_low <= 1 + mu / 2 <= fit.ci_high
    assert fit.ci_high - fit.ci_low < 0.5


def test_bootstrap_is_seeded():
    x = pareto(300, 3.0, 10)
    a = power_law_fit(x, bootstrap=20, seed=5)
    b = power_law_fit(x, bootstrap=20, seed=gen(5))
    c = power_law_fit(x, bootstrap=20, seed=6)
    assert torch.equal(a.bootstrap_alphas, b.bootstrap_alphas)
    assert not torch.equal(a.bootstrap_alphas, c.bootstrap_alphas)


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("out_features,in_features", [(4, 3), (3, 4)])
def test_stable_rank_and_orientation_by_hand(out_features, in_features):
    g = gen(11)
    U = torch.linalg.qr(torch.randn(out_features, 3, generator=g, dtype=torch.float64))[0]
    V = torch.linalg.qr(torch.randn(in_features, 3, generator=g, dtype=torch.float64))[0]
    W = U @ torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)) @ V.T
    (spec,) = weight_spectra(linear_with(W), bootstrap=0, min_tail=2)
    assert (spec.N, spec.M, spec.Q, spec.n_matrices) == (4, 3, 4 / 3, 1)
    assert spec.shape == (out_features, in_features) and spec.kind == "Linear"
    assert spec.eigenvalues.tolist() == pytest.approx([1 / 4, 4 / 4, 9 / 4], rel=1e-12)
    assert spec.spectral_norm == pytest.approx(3.0, rel=1e-12)
    assert spec.stable_rank == pytest.approx(14 / 9, rel=1e-12)
    assert spec.lambda_max == pytest.approx(9 / 4, rel=1e-12)
    assert spec.alpha_weighted == pytest.approx(spec.alpha * math.log10(9 / 4), rel=1e-12)


def test_conv_layers_slices_and_reshape():
    conv = nn.Conv2d(3, 5, (2, 3), dtype=torch.float64)
    net = nn.Sequential(conv, nn.ReLU(), nn.Conv1d(5, 7, 4, dtype=torch.float64))
    w = conv.weight.detach()
    slices, conv1 = weight_spectra(net, bootstrap=0, min_tail=3)
    assert (slices.N, slices.M, slices.n_matrices, slices.kind) == (5, 3, 6, "Conv2d")
    by_hand = torch.cat([torch.linalg.svdvals(w[:, :, i, j]) ** 2 / 5 for i in range(2) for j in range(3)])
    assert torch.allclose(slices.eigenvalues, torch.sort(by_hand).values, rtol=1e-12)
    assert slices.spectral_norm == pytest.approx(float(by_hand.max() * 5) ** 0.5, rel=1e-12)
    assert slices.stable_rank == pytest.approx(float(by_hand.sum() / by_hand.max()), rel=1e-12)
    assert (conv1.N, conv1.M, conv1.n_matrices) == (7, 5, 4)
    reshaped, _ = weight_spectra(net, bootstrap=0, min_tail=3, conv="reshape")
    assert (reshaped.N, reshaped.M, reshaped.n_matrices) == (18, 5, 1)
    expect = torch.sort(torch.linalg.svdvals(w.reshape(5, 18)) ** 2 / 18).values
    assert torch.allclose(reshaped.eigenvalues, expect, rtol=1e-12)
    assert reshaped.stable_rank == pytest.approx(float(w.pow(2).sum() / torch.linalg.matrix_norm(
        w.reshape(5, 18), 2) ** 2), rel=1e-12)


def test_layers_in_module_order_and_few_eigenvalues():
    net = nn.Sequential(nn.Linear(300, 200), nn.Tanh(), nn.Sequential(nn.Linear(200, 100)), nn.Linear(100, 4))
    specs = weight_spectra(net, bootstrap=0, seed=0)
    assert [s.name for s in specs] == ["0", "2.0", "3"]
    assert [(s.N, s.M) for s in specs] == [(300, 200), (200, 100), (100, 4)]
    last = specs[-1]                                      # 4 eigenvalues < min_tail: no power law
    assert math.isnan(last.alpha) and last.n_tail == 0 and last.spikes >= 0
    rec = last.record()
    assert rec["alpha"] is None and rec["layer"] == "3"
    json.dumps([s.record() for s in specs])


def test_shuffle_null_destroys_planted_spikes_and_init_null():
    N, M, s = 600, 300, 0.05
    q4 = (M / N) ** 0.25
    layer = linear_with(planted(N, M, s, [2.5 * q4, 3.5 * q4, 5.0 * q4], 12))
    net = nn.Sequential(layer)
    before = torch.get_rng_state()
    (spec,) = weight_spectra(net, null=["shuffle", "init"], bootstrap=0, seed=3)
    assert torch.equal(torch.get_rng_state(), before)     # reset_parameters ran on a restored global stream
    assert spec.spikes == 3 and spec.source == "weights"
    shuffled = spec.nulls["shuffle"]
    assert shuffled.spikes == 0 and shuffled.source == "shuffle"
    assert torch.sort(shuffled.eigenvalues).values.sum() == pytest.approx(float(spec.eigenvalues.sum()), rel=1e-10)
    init = spec.nulls["init"]                             # PyTorch's default: U(-1/sqrt(M), 1/sqrt(M))
    assert init.spikes == 0 and init.sigma2 == pytest.approx(1 / (3 * M), rel=0.03)
    # a given init_module is used as it is
    start = copy.deepcopy(net)
    with torch.no_grad():
        start[0].weight.copy_(noise(M, N, 0.1, 13).T)
    (again,) = weight_spectra(net, null="init", init_module=start, bootstrap=0, seed=3)
    assert again.nulls["init"].sigma2 == pytest.approx(0.01, rel=0.03)
    assert torch.allclose(again.nulls["init"].eigenvalues, torch.sort(esd(start[0].weight.detach())).values)
    rec = again.record()
    assert rec["init_spikes"] == 0 and "shuffle_alpha" not in rec


def test_weight_spectra_seeds():
    net = nn.Sequential(nn.Linear(120, 80, dtype=torch.float64))
    a = weight_spectra(net, null=("init", "shuffle"), bootstrap=10, seed=4)[0]
    b = weight_spectra(net, null=("init", "shuffle"), bootstrap=10, seed=gen(4))[0]
    assert a.record() == b.record()
    c = weight_spectra(net, null="shuffle", bootstrap=10, seed=5)[0]
    assert c.nulls["shuffle"].record() != a.nulls["shuffle"].record()


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

def test_errors_name_the_argument():
    bad = nn.Linear(5, 5)
    with torch.no_grad():
        bad.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="^module: layer '0' has non-finite"):
        weight_spectra(nn.Sequential(bad))
    with pytest.raises(ValueError, match="^module: no nn.Linear"):
        weight_spectra(nn.Sequential(nn.ReLU()))
    with pytest.raises(TypeError, match="^module:"):
        weight_spectra(torch.zeros(3, 3))
    net = nn.Sequential(nn.Linear(20, 20))
    with pytest.raises(ValueError, match="^null:"):
        weight_spectra(net, null="random")
    with pytest.raises(ValueError, match="^init_module:"):
        weight_spectra(net, null="init", init_module=nn.Sequential(nn.Linear(20, 10)))
    with pytest.raises(ValueError, match="^init_module:"):
        weight_spectra(net, null="shuffle", init_module=net)
    with pytest.raises(ValueError, match="^conv:"):
        weight_spectra(net, conv="fft")
    with pytest.raises(ValueError, match="^eigenvalues: contains"):
        marchenko_pastur_fit([1.0, float("inf"), 2.0], 2.0)
    with pytest.raises(ValueError, match="^eigenvalues: expected at least"):
        marchenko_pastur_fit([1.0, 2.0], 2.0)
    with pytest.raises(ValueError, match="^eigenvalues: expected non-negative"):
        marchenko_pastur_fit([1.0, -2.0, 3.0], 2.0)
    with pytest.raises(ValueError, match="^aspect_ratio:"):
        marchenko_pastur_fit([1.0, 2.0, 3.0], 0.5)
    with pytest.raises(ValueError, match="^x: expected at least"):
        power_law_fit([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="^x: expected positive"):
        power_law_fit(torch.arange(20.0))
    with pytest.raises(ValueError, match="^x: contains"):
        power_law_fit([float("nan")] * 20)
    with pytest.raises(ValueError, match="^xmin:"):
        power_law_fit(pareto(30, 2.0, 0), xmin=1e6)
    with pytest.raises(ValueError, match="^xmax:"):
        power_law_fit(pareto(30, 2.0, 0), xmin=2.0, xmax=1.0)
    with pytest.raises(ValueError, match="^bootstrap:"):
        power_law_fit(pareto(30, 2.0, 0), bootstrap=-1)
    with pytest.raises(ValueError, match="^level:"):
        power_law_fit(pareto(30, 2.0, 0), level=1.0)

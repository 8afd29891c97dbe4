"""thermolearn.ebm.thermo: exact moments against brute force over every joint state,
finite differences of log Z in beta, AIS against exact within its error bars, the peak of C and
the effective beta against dense grids, and input errors."""

import math

import pytest
import torch

from thermolearn.ebm import RBM, Thermodynamics, thermodynamics
from thermolearn.ebm.exact import all_states, exact_log_partition
from thermolearn.ebm.thermo import effective_beta, heat_capacity_peak


def _rbm(n_v, n_h, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: scale * torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return RBM.from_weights(r(n_v, n_h), r(n_v), r(n_h))


def _brute(rbm, beta):
    """log Z, <E>, Var E over all 2^(n_v + n_h) joint states."""
    V, H = all_states(rbm.n_visible), all_states(rbm.n_hidden)
    v, h = V.repeat_interleave(H.shape[0], 0), H.repeat(V.shape[0], 1)
    E = rbm.energy(v, h)
    lw = -beta * E
    log_z = torch.logsumexp(lw, 0)
    q = torch.exp(lw - log_z)
    mean = (q * E).sum()
    return float(log_z), float(mean), float((q * (E - mean) ** 2).sum())


BETAS = [0.2, 0.7, 1.0, 1.9, 3.5]


@pytest.mark.parametrize("n_v, n_h", [(6, 5), (5, 6), (4, 4)])
def test_exact_equals_brute_force(n_v, n_h):
    """Smaller layer hidden (6, 5), visible (5, 6), equal (4, 4): every field to 1e-10."""
    rbm = _rbm(n_v, n_h, seed=n_v + 10 * n_h)
    th = thermodynamics(rbm, BETAS)
    assert isinstance(th, Thermodynamics) and th.method == "exact"
    for name in ("betas", "log_z", "free_energy", "energy", "entropy", "heat_capacity", "energy_stderr"):
        t = getattr(th, name)
        assert t.dtype == torch.float64 and t.shape == (len(BETAS),), name
    for i, beta in enumerate(BETAS):
        log_z, mean, var = _brute(rbm, beta)
        assert abs(float(th.log_z[i]) - log_z) < 1e-10
        assert abs(float(th.energy[i]) - mean) < 1e-10
        assert abs(float(th.heat_capacity[i]) - beta**2 * var) < 1e-10
        assert abs(float(th.entropy[i]) - (beta * mean + log_z)) < 1e-10
        assert abs(float(th.free_energy[i]) + log_z / beta) < 1e-10
    assert float(th.heat_capacity_stderr.abs().max()) == 0.0


def test_exact_log_z_matches_exact_module_and_ignores_rbm_beta():
    rbm = _rbm(7, 9, scale=0.8, seed=3)
    rbm.beta = 2.0
    th = thermodynamics(rbm, [0.5, 2.0])
    assert abs(float(th.log_z[1]) - exact_log_partition(rbm)) < 1e-10
    rbm.beta = 0.5
    assert abs(float(th.log_z[0]) - exact_log_partition(rbm)) < 1e-10
    # a scalar beta and a float32 model work too
    one = thermodynamics(rbm.to(dtype=torch.float32), 2.0)
    assert one.log_z.shape == (1,) and abs(float(one.log_z[0] - th.log_z[1])) < 1e-4


def test_chunked_enumeration_equals_one_chunk():
    """More states than one chunk (2^15 > 2^14): the merge of chunks is exact."""
    rbm = _rbm(3, 15, scale=0.5, seed=4)
    th = thermodynamics(rbm, [0.6, 1.4])
    for i, beta in enumerate([0.6, 1.4]):
        log_z, mean, var = _brute(rbm, beta)
        assert abs(float(th.log_z[i]) - log_z) < 1e-9
        assert abs(float(th.energy[i]) - mean) < 1e-9
        assert abs(float(th.heat_capacity[i]) - beta**2 * var) < 1e-9


def test_derivatives_of_log_z():
    """U = -d log Z / d beta and C = beta^2 d^2 log Z / d beta^2, by central differences."""
    rbm = _rbm(8, 6, scale=0.7, seed=5)
    d = 1e-4
    for beta in (0.4, 1.0, 2.2):
        th = thermodynamics(rbm, [beta - d, beta, beta + d])
        lz = th.log_z.tolist()
        du = -(lz[2] - lz[0]) / (2 * d)
        d2 = (lz[2] - 2 * lz[1] + lz[0]) / d**2
        assert abs(du - float(th.energy[1])) < 1e-6 * (1 + abs(du))
        assert abs(beta**2 * d2 - float(th.heat_capacity[1])) < 1e-4 * (1 + abs(beta**2 * d2))
        # entropy: S = -dF/dT with F = -log Z / beta and T = 1 / beta
        T = [1 / (beta + d), 1 / beta, 1 / (beta - d)]
        F = [-lz[2] * T[0], -lz[1] * T[1], -lz[0] * T[2]]
        assert abs(-(F[2] - F[0]) / (T[2] - T[0]) - float(th.entropy[1])) < 1e-5


def test_ais_agrees_with_exact_within_error_bars():
    """20 hidden units, exact by enumerating 12 visible ones; AIS at three betas."""
    rbm = _rbm(12, 20, scale=0.35, seed=6)
    betas = [0.5, 1.0, 1.5]
    exact = thermodynamics(rbm, betas)
    ais = thermodynamics(rbm, betas, method="ais", n_chains=400, n_betas=300, seed=1)
    assert ais.method == "ais" and ais.n_chains == 400 and ais.n_betas == 300
    for name in ("log_z", "energy", "entropy", "heat_capacity"):
        est, ref, se = getattr(ais, name), getattr(exact, name), getattr(ais, f"{name}_stderr")
        assert bool((se > 0).all()) and bool(torch.isfinite(se).all()), name
        z = ((est - ref) / se).abs()
        assert float(z.max()) < 4.5, (name, est, ref, se)
    # errors shrink with more chains (the estimator is consistent): the heat capacity within 10 %
    assert float(((ais.heat_capacity - exact.heat_capacity) / exact.heat_capacity).abs().max()) < 0.1


def test_ais_seed_reproducible():
    rbm = _rbm(6, 20, scale=0.3, seed=7)
    a = thermodynamics(rbm, [1.0, 2.0], method="ais", n_chains=20, n_betas=50, seed=3)
    b = thermodynamics(rbm, [1.0, 2.0], method="ais", n_chains=20, n_betas=50, seed=torch.Generator().manual_seed(3))
    c = thermodynamics(rbm, [1.0, 2.0], method="ais", n_chains=20, n_betas=50, seed=4)
    assert torch.equal(a.energy, b.energy) and torch.equal(a.log_z, b.log_z)
    assert not torch.equal(a.energy, c.energy)


def test_heat_capacity_peak_against_dense_grid():
    rbm = _rbm(8, 10, scale=0.9, seed=8)
    dense = torch.linspace(0.05, 4.0, 800, dtype=torch.float64)
    C = thermodynamics(rbm, dense).heat_capacity
    k = int(torch.argmax(C))
    peak = heat_capacity_peak(rbm, torch.linspace(0.05, 4.0, 12), tol=1e-6)
    assert not peak.on_edge and peak.converged and peak.step_unit == "evaluation"
    assert abs(peak.beta - float(dense[k])) < 2 * float(dense[1] - dense[0])
    assert peak.heat_capacity >= float(C.max()) - 1e-12
    # at the peak dC/dbeta = 0 (central difference)
    d = 1e-4
    c = thermodynamics(rbm, [peak.beta - d, peak.beta + d]).heat_capacity
    assert abs(float(c[1] - c[0])) / (2 * d) < 1e-2 * peak.heat_capacity


def test_heat_capacity_peak_on_edge():
    rbm = _rbm(6, 5, scale=0.9, seed=8)
    peak = heat_capacity_peak(rbm, [50.0, 60.0, 70.0])
    assert peak.on_edge and not peak.converged


def test_effective_beta_maximises_log_likelihood():
    """Data sampled from the model at beta = 1.6 (exactly, from enumerated visible states): the
    maximiser of the exact likelihood is a stationary point and beats its neighbours."""
    rbm = _rbm(8, 10, scale=0.6, seed=9)
    V = all_states(8)
    rbm.beta = 1.6
    p = torch.softmax(-1.6 * rbm.free_energy(V), 0)
    data = V[torch.multinomial(p, 4000, replacement=True, generator=torch.Generator().manual_seed(0))]
    res = effective_beta(rbm, data, torch.linspace(0.2, 4.0, 15))
    assert res.converged and not res.on_edge
    assert abs(res.beta - 1.6) < 0.15
    def ll(beta):
        rbm.beta = beta
        return float((-beta * rbm.free_energy(data)).mean()) - exact_log_partition(rbm)
    assert abs(res.log_likelihood - ll(res.beta)) < 1e-9
    for d in (-1e-3, 1e-3):
        assert ll(res.beta + d) < res.log_likelihood
    assert res.log_likelihood >= float(res.log_likelihood_grid.max()) - 1e-12


@pytest.mark.parametrize("betas", [0.0, -1.0, [1.0, math.nan], [1.0, math.inf], [], [[1.0]], "x"])
def test_bad_betas(betas):
    with pytest.raises(ValueError, match=r"^betas"):
        thermodynamics(_rbm(3, 3), betas)


def test_bad_method_and_too_large():
    with pytest.raises(ValueError, match=r"^method"):
        thermodynamics(_rbm(3, 3), [1.0], method="mc")
    big = RBM(30, 25, seed=0, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"^method: 'exact'"):
        thermodynamics(big, [1.0])
    with pytest.raises(ValueError, match=r"^n_chains"):
        thermodynamics(_rbm(3, 3), [1.0], method="ais", n_chains=1)
    with pytest.raises(TypeError, match=r"^rbm"):
        thermodynamics("rbm", [1.0])
    with pytest.raises(ValueError, match=r"^betas"):
        heat_capacity_peak(_rbm(3, 3), [1.0, 2.0])
    with pytest.raises(ValueError, match=r"^data"):
        effective_beta(_rbm(3, 3), torch.zeros(4, 5), [0.5, 1.0, 2.0])


def test_rbm_heat_capacity_quick_point():
    """The experiment's quick point, one thread: its records are JSON-ready and consistent."""
    import json
    import time

    from thermolearn.experiments.ebm import rbm_heat_capacity

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ((point, seed),) = rbm_heat_capacity.EXPERIMENT.points(quick=True)
        t0 = time.perf_counter()
        records = rbm_heat_capacity.run({**point, "seed": seed})
        assert time.perf_counter() - t0 < 60
    finally:
        torch.set_num_threads(threads)
    json.dumps(records)
    assert [r["epoch"] for r in records] == [5, 10]
    for r in records:
        assert 1.0 in r["betas"] and r["heat_capacity_beta1"] == r["heat_capacity"][r["betas"].index(1.0)]
        assert r["heat_capacity_peak"] >= max(r["heat_capacity"]) - 1e-9 and not r["peak_on_edge"]
        assert r["test_ll_beta_eff"] >= r["test_ll_beta1"] - 1e-9 and not r["eff_on_edge"]
        assert -40 < r["test_ll_beta1"] < -10
    assert records[1]["weight_norm"] > records[0]["weight_norm"]

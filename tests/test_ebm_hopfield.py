"""Hopfield network: Hebbian storage, zero- and finite-temperature retrieval, mixture states, the
replica-symmetric capacity, and the exact correspondence with an RBM with Gaussian hidden units
(checked by enumerating all 2^N states and by quadrature over the hidden units)."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from thermolearn.ebm.hopfield import GaussianHiddenRBM, Hopfield, rs_capacity, rs_retrieval
from thermolearn.schedules import LinearDecay


def _gen(s):
    return torch.Generator().manual_seed(s)


# -- storage and observables -----------------------------------------------------------------------

def test_hebbian_couplings_energy_and_overlaps_by_hand():
    net = Hopfield.random(12, 3, seed=0)
    xi = net.patterns.double()
    J = sum(torch.outer(x, x) for x in xi) / 12
    J.fill_diagonal_(0)
    assert torch.allclose(net.couplings, J)
    s = net.corrupt(net.patterns[0], 0.25, seed=1)[0].double()
    E = -0.5 * sum(J[i, j] * s[i] * s[j] for i in range(12) for j in range(12))
    assert float(net.energy(s)) == pytest.approx(float(E))
    assert torch.allclose(net.overlaps(s)[0], xi @ s / 12)
    assert int((net.corrupt(net.patterns[:2], 0.25, seed=1) != net.patterns[:2]).sum()) == 2 * 3


def test_single_pattern_fixed_point_and_retrieved_from_20_percent_noise():
    net = Hopfield.random(200, 1, seed=3)
    assert bool(net.is_fixed_point(net.patterns[0]).all())
    r = net.retrieve(net.patterns, target=0, seed=0)
    assert torch.equal(r.states, net.patterns) and bool(r.converged.all()) and r.steps == 1
    noisy = net.corrupt(net.patterns.repeat(5, 1), 0.2, seed=4)
    assert torch.allclose(net.overlaps(noisy)[:, 0], torch.full((5,), 0.6, dtype=torch.float64))
    r = net.retrieve(noisy, target=0, seed=5)
    assert torch.equal(r.states, net.patterns.repeat(5, 1)) and bool(r.converged.all())
    assert r.history[0]["overlap_mean"] == pytest.approx(0.6) and r.history[-1]["overlap_min"] == 1.0
    assert bool(r.retrieved().all()) and torch.allclose(r.energies, net.energy(r.states))


def test_energy_never_increases_at_any_update_zero_temperature():
    net = Hopfield.random(40, 6, seed=1)
    starts = torch.randint(0, 2, (8, 40), generator=_gen(2), dtype=torch.int8) * 2 - 1
    r = net.retrieve(starts, seed=3, trace=True)
    assert r.trace.shape == (8, r.steps * 40)
    e0 = net.energy(starts)
    for k in range(8):
        row = r.trace[k, : int(r.sweeps[k]) * 40]
        assert not torch.isnan(row).any() and torch.isnan(r.trace[k, row.numel():]).all()
        path = torch.cat([e0[k:k + 1], row])
        assert bool((path.diff() <= 1e-12).all()), k              # at every single-spin update
        assert float(row[-1]) == pytest.approx(float(net.energy(r.states[k])), abs=1e-12)
    assert bool(r.converged.all()) and bool(net.is_fixed_point(r.states).all())
    assert int(r.flips.sum()) > 0


def test_glauber_trace_and_energy_bookkeeping():
    net = Hopfield.random(30, 4, seed=1)
    r = net.glauber(net.patterns, beta=2.0, sweeps=5, target=torch.arange(4), seed=0, trace=True)
    assert r.steps == 5 and not bool(r.converged.any()) and r.trace.shape == (4, 150)
    assert torch.allclose(r.trace[:, -1], net.energy(r.states), atol=1e-12)
    assert torch.allclose(r.energies, net.energy(r.states), atol=1e-12)
    assert torch.allclose(r.target_overlaps[:, -1], net.overlaps(r.states)[torch.arange(4), torch.arange(4)])
    assert [h["beta"] for h in r.history] == [None, 2.0, 2.0, 2.0, 2.0, 2.0]
    ramp = net.glauber(net.patterns, beta=LinearDecay(0.5, 4, end=2.5), sweeps=5, seed=0)
    assert [h["beta"] for h in ramp.history] == [None, 0.5, 1.0, 1.5, 2.0, 2.5]   # sweep t uses beta(t)


def test_glauber_samples_the_boltzmann_distribution():
    """Heat-bath sweeps on N = 6: the visited states' frequencies match exp(-beta E) / Z."""
    net = Hopfield.random(6, 2, seed=4)
    beta = 0.7
    states, _lw = net.log_boltzmann_weights(beta)
    p = net.boltzmann(beta)
    runs = 40000
    r = net.glauber(torch.ones(runs, 6, dtype=torch.int8), beta=beta, sweeps=20, seed=1)
    code = ((r.states.long() + 1) // 2 * (2 ** torch.arange(6))).sum(1)
    freq = torch.bincount(code, minlength=64).double() / runs
    assert torch.equal(2 * ((torch.arange(64)[:, None] >> torch.arange(6)) & 1) - 1, states.long())
    assert float((freq - p).abs().sum()) / 2 < 0.025             # total variation (0.014-0.017 seen)
    assert float((freq - net.boltzmann(0.8)).abs().sum()) / 2 > 0.03   # another beta is told apart


def test_low_load_retrieved_high_load_not():
    net = Hopfield.random(500, 25, seed=0)                       # alpha = 0.05
    starts, targets = net.pattern_starts(0.1, seed=1)
    r = net.retrieve(starts, targets, seed=2)
    assert float(r.retrieved().double().mean()) >= 0.96 and bool(r.converged.all())
    net = Hopfield.random(500, 150, seed=0)                      # alpha = 0.3
    starts, targets = net.pattern_starts(0.0, indices=range(40), seed=1)
    r = net.retrieve(starts, targets, seed=2)
    assert float(r.retrieved().double().mean()) < 0.3
    assert float(r.final_target_overlap().mean()) < 0.7


def test_finite_temperature_lowers_the_overlap():
    net = Hopfield.random(400, 8, seed=0)                        # alpha = 0.02
    starts, targets = net.pattern_starts(0.0, seed=1)
    cold = net.glauber(starts, beta=1 / 0.3, sweeps=30, target=targets, seed=2).final_target_overlap(15)
    warm = net.glauber(starts, beta=1 / 0.7, sweeps=30, target=targets, seed=2).final_target_overlap(15)
    hot = net.glauber(starts, beta=1 / 1.5, sweeps=30, target=targets, seed=2).final_target_overlap(15)
    # Curie-Weiss: m = tanh(m / T) gives m = 0.998 at T = 0.3, 0.82 at T = 0.7, 0 above T = 1
    assert float(cold.mean()) > 0.97 and 0.7 < float(warm.mean()) < 0.9 and float(hot.abs().mean()) < 0.2


def test_mixture_state_is_a_stable_spurious_state_at_low_load():
    net = Hopfield.random(1001, 3, seed=0)
    mix = net.mixture_state((0, 1, 2))
    m = net.overlaps(mix)[0]
    assert torch.allclose(m, torch.full((3,), 0.5, dtype=torch.float64), atol=0.05)
    assert bool(net.is_fixed_point(mix).all())
    r = net.retrieve(mix, seed=0)
    assert torch.equal(r.states[0], mix) and bool(r.converged.all())
    # a stable mixture is not one of the patterns: no overlap near 1
    assert float(r.overlaps.abs().max()) < 0.6
    # at a high load the mixture is no longer a fixed point
    crowded = Hopfield.random(1001, 200, seed=0)
    assert not bool(crowded.is_fixed_point(crowded.mixture_state((0, 1, 2))).all())


# -- replica-symmetric theory ------------------------------------------------------------------------

def test_rs_capacity_zero_temperature_and_its_decrease_with_temperature():
    alpha_c, m_c = rs_capacity(math.inf, tol=1e-9)
    assert alpha_c == pytest.approx(0.13791, abs=2e-5) and m_c == pytest.approx(0.9674, abs=2e-4)
    # the T = 0 equation: y (sqrt(2 alpha) + 2/sqrt(pi) exp(-y^2)) = erf(y) at y = erfinv(m)
    y = float(torch.erfinv(torch.tensor(rs_retrieval(0.1), dtype=torch.float64)))
    assert y * (math.sqrt(0.2) + 2 / math.sqrt(math.pi) * math.exp(-y * y)) == pytest.approx(math.erf(y))
    assert rs_retrieval(0.15) == 0.0 and rs_retrieval(0.0) == 1.0
    # finite temperature: alpha = 0 is the Curie-Weiss m = tanh(beta m)
    m = rs_retrieval(0.0, beta=2.0)
    assert m == pytest.approx(math.tanh(2.0 * m), abs=1e-9) and m == pytest.approx(0.9575, abs=1e-3)
    a5, _ = rs_capacity(2.0, tol=1e-4)
    a2, _ = rs_capacity(5.0, tol=1e-4)
    assert 0.0 < a5 < a2 < alpha_c + 0.002 and rs_capacity(1.0) == (0.0, 0.0)


# -- the RBM with Gaussian hidden units --------------------------------------------------------------

def test_rbm_marginal_equals_hopfield_boltzmann_by_enumeration():
    net = Hopfield.random(10, 3, seed=7)
    for beta in (0.5, 1.0, 2.5):
        rbm = net.to_rbm(beta)
        assert rbm.W.shape == (10, 3)
        p_rbm, p_hop = rbm.marginal(), net.boltzmann(beta)
        assert torch.allclose(p_rbm, p_hop, atol=1e-14, rtol=1e-10)
        const = beta * 3 / 2 + 1.5 * math.log(2 * math.pi / beta)
        assert rbm.log_partition() == pytest.approx(net.log_partition(beta) + const, abs=1e-10)
        J, c = rbm.couplings()
        assert torch.allclose(J, net.couplings, atol=1e-14) and c == pytest.approx(const)
    back = net.to_rbm(1.3).to_hopfield()
    assert torch.equal(back.patterns, net.patterns)


def test_rbm_marginal_by_quadrature_over_the_hidden_units():
    """The closed-form marginal against Gauss-Hermite integration of exp(-beta H(s, z)) over z."""
    net = Hopfield.random(10, 3, seed=2)
    beta = 1.7
    rbm = net.to_rbm(beta)
    s = net.corrupt(net.patterns[:2], 0.3, seed=0)
    x, w = np.polynomial.hermite_e.hermegauss(60)          # weight exp(-t^2 / 2)
    sd = 1 / math.sqrt(beta)
    for row in s:
        mean = rbm.hidden_mean(row)[0]
        log_int = 0.0
        for mu in range(3):
            z = torch.zeros(60, 3, dtype=torch.float64)
            z[:, mu] = torch.from_numpy(mean[mu].item() + sd * x)
            # one hidden unit at a time: -beta H factorizes over mu; the others at z = 0
            lw = rbm.joint_log_weight(row.repeat(60, 1), z) + torch.from_numpy(x * x / 2)
            log_int += math.log(float((torch.exp(lw) * torch.from_numpy(w)).sum()) * sd)
        assert float(rbm.log_marginal(row)) == pytest.approx(log_int, rel=1e-10)


def test_rbm_weights_to_hopfield_couplings_general_weights():
    W = torch.randn(8, 4, generator=_gen(0), dtype=torch.float64)
    rbm = GaussianHiddenRBM(W, beta=0.8)
    J, const = rbm.couplings()
    assert torch.allclose(J, J.T) and bool((torch.diagonal(J) == 0).all())
    states = 2.0 * ((torch.arange(256)[:, None] >> torch.arange(8)) & 1).double() - 1
    E = -0.5 * ((states @ J) * states).sum(1)
    assert torch.allclose(rbm.log_marginal(states), -0.8 * E + const, atol=1e-10)
    with pytest.raises(ValueError, match="^W:"):
        rbm.to_hopfield()


def test_rbm_hidden_conditional_is_gaussian_with_mean_xi_s_over_sqrt_n():
    net = Hopfield.random(10, 3, seed=1)
    beta = 2.0
    rbm = net.to_rbm(beta)
    s = net.corrupt(net.patterns[0], 0.2, seed=3)
    z = rbm.sample_hidden(s.repeat(20000, 1), seed=4)
    mean = (net.patterns.double() @ s[0].double()) / math.sqrt(10)
    assert torch.allclose(z.mean(0), mean, atol=4 * math.sqrt(1 / beta / 20000))
    assert torch.allclose(z.var(0), torch.full((3,), 1 / beta, dtype=torch.float64), rtol=0.05)
    assert abs(float(torch.corrcoef(z.T)[0, 1])) < 0.05


# -- seeds, results, errors ------------------------------------------------------------------------

def _flat(r):
    return {f.name: (v.tolist() if isinstance(v, torch.Tensor) else v)
            for f in dataclasses.fields(r) if f.name != "seconds"
            for v in [getattr(r, f.name)]}


def test_int_and_generator_seeds_agree_and_history_is_json_ready():
    net = Hopfield.random(60, 9, seed=0)
    assert torch.equal(net.patterns, Hopfield.random(60, 9, seed=_gen(0)).patterns)
    s, t = net.pattern_starts(0.3, seed=1)
    s2, _ = net.pattern_starts(0.3, seed=_gen(1))
    assert torch.equal(s, s2)
    a = net.retrieve(s, t, seed=5)
    b = net.retrieve(s, t, seed=_gen(5))
    assert _flat(a) == _flat(b)
    c = net.glauber(s, 3.0, sweeps=4, target=t, seed=5)
    d = net.glauber(s, 3.0, sweeps=4, target=t, seed=_gen(5))
    e = net.glauber(s, 3.0, sweeps=4, target=t, seed=6)
    assert _flat(c) == _flat(d) and _flat(c) != _flat(e)
    for res in (a, c):
        json.dumps(res.history)
        assert [h["step"] for h in res.history] == list(range(res.steps + 1))
        assert all(type(h["step"]) is int for h in res.history) and res.step_unit == "sweep"


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="^patterns:"):
        Hopfield([[1, 0, 1]])
    with pytest.raises(ValueError, match="^patterns:"):
        Hopfield(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="^n_units:"):
        Hopfield.random(0, 3)
    net = Hopfield.random(10, 2, seed=0)
    with pytest.raises(ValueError, match="^s0:"):
        net.retrieve(torch.ones(3, 9))
    with pytest.raises(ValueError, match="^s0:"):
        net.retrieve(torch.zeros(10))
    with pytest.raises(ValueError, match="^target:"):
        net.retrieve(net.patterns, target=[0, 1, 1])
    with pytest.raises(ValueError, match="^target:"):
        net.retrieve(net.patterns, target=5)
    with pytest.raises(ValueError, match="^max_iter:"):
        net.retrieve(net.patterns, max_iter=0)
    for beta in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="^beta:"):
            net.glauber(net.patterns, beta=beta)
        with pytest.raises(ValueError, match="^beta:"):
            net.to_rbm(beta)
    with pytest.raises(ValueError, match="^beta:"):
        net.glauber(net.patterns, beta=lambda t: 1.0 - t)          # reaches 0 at sweep 1
    with pytest.raises(ValueError, match="^beta:"):
        rs_capacity(-1.0)
    with pytest.raises(ValueError, match="^seed:"):
        net.retrieve(net.patterns, seed=-1)
    with pytest.raises(ValueError, match="^flip_fraction:"):
        net.corrupt(net.patterns, 1.5)
    with pytest.raises(ValueError, match="^indices:"):
        net.mixture_state((0, 1))
    with pytest.raises(ValueError, match="^s:"):
        net.to_rbm().log_marginal(torch.ones(9))
    with pytest.raises(ValueError, match="^max_units:"):
        Hopfield.random(25, 2, seed=0).log_partition()
    with pytest.raises(ValueError, match="^W:"):
        GaussianHiddenRBM(torch.ones(3))


def test_mixture_state_at_finite_temperature():
    """Glauber sweeps from the 3-mixture (N = 1000, P = 3): it stays at T = 0.1 and decays to a
    single pattern at T = 0.6, above the mean-field stability limit of the symmetric 3-mixture
    (T ~ 0.46, Amit, Gutfreund & Sompolinsky 1985)."""
    net = Hopfield.random(1000, 3, seed=0)
    mix = net.mixture_state().repeat(4, 1)
    cold = net.glauber(mix, beta=10.0, sweeps=50, seed=1).overlaps.abs()
    assert float((cold - 0.5).abs().max()) < 0.1
    warm = net.glauber(mix, beta=1 / 0.6, sweeps=150, seed=1).overlaps.abs().sort(1).values
    assert bool((warm[:, -1] > 0.8).all()) and bool((warm[:, :2] < 0.2).all())


# -- the experiment ----------------------------------------------------------------------------------

def test_hopfield_capacity_experiment_grid_quick_point_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from thermolearn.experiments.ebm import hopfield_capacity as hc
    from thermolearn.experiments.registry import expand, get
    from thermolearn.experiments.runner import plain_records

    exp = get("hopfield-capacity")
    assert exp is hc.EXPERIMENT and exp.plot is not None and exp.anchors
    full, quick = expand(exp.grid), expand(exp.quick_grid)
    assert {p["N"] for p in full} == {250, 500, 1000, 2000} and {p["T"] for p in quick} == {0.0, 0.4}
    for a in exp.anchors:                                    # every anchor is measured by the full grid
        assert any(all(p.get(k) == v for k, v in a.where.items()) for p in full), a
        assert "[unverified" in a.source and "(19" in a.source
    m04 = hc.curie_weiss_overlap(0.4)
    assert m04 == pytest.approx(math.tanh(m04 / 0.4), abs=1e-12) and 0.98 < m04 < 0.99
    assert hc.threshold(0.0) == 0.9 and hc.threshold(0.4) == pytest.approx(0.9 * m04)
    assert hc.collapse_load([0.1, 0.12, 0.14], [1.0, 0.75, 0.25]) == pytest.approx(0.13)
    p = next(p for p in quick if p["N"] == 200 and p["alpha"] == 0.05 and p["T"] == 0.0)
    (rec,) = hc.run({**p, "seed": 0})
    json.dumps(plain_records([rec]))
    assert rec["P"] == 10 and rec["starts"] == 10 and rec["retrieved"] == 1.0 and rec["converged"] == 1.0
    assert rec["rs_overlap"] == pytest.approx(1.0, abs=1e-4) and rec["rs_overlap"] < 1.0
    assert rec["rs_alpha_m"] == pytest.approx(0.13791, abs=1e-4)
    fake = [{**q, "seed": 0, "retrieved": 1.0 - q["alpha"] * 4, "overlap": 1.0 - q["alpha"],
             "rs_overlap": 0.9, "rs_alpha_m": 0.138 if q["T"] == 0 else 0.081} for q in quick]
    fig = plt.figure(figsize=(12, 4))
    exp.plot(fake, fig)
    assert len(fig.axes) == 3 and all(ax.get_legend() is not None for ax in fig.axes)
    plt.close(fig)

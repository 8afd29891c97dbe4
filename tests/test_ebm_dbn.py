"""Deep belief networks: the variational bound against brute-force sums, the exact likelihood,
the tight case (q equal to the posterior), AIS against exact, per-layer free energies, files."""

import itertools
import math

import pytest
import torch

from thermolearn.data import load_digits
from thermolearn.ebm import RBM, exact_log_likelihood, exact_log_partition
from thermolearn.ebm.dbn import DBN, DBNBound, LayerFreeEnergies


def _random_rbm(n_v, n_h, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return RBM.from_weights(scale * torch.randn(n_v, n_h, generator=g, dtype=torch.float64),
                            0.5 * torch.randn(n_v, generator=g, dtype=torch.float64),
                            0.5 * torch.randn(n_h, generator=g, dtype=torch.float64))


def _random_dbn(sizes, seed=0, scale=1.0):
    return DBN.from_rbms([_random_rbm(a, b, seed + k, scale) for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))])


def _float32(dbn):
    return DBN.from_rbms([r.to(dtype=torch.float32) for r in dbn.layers])


def _rows(n, d, seed=0):
    return torch.bernoulli(torch.full((n, d), 0.4, dtype=torch.float64), generator=torch.Generator().manual_seed(seed))


def _states(n):
    return [torch.tensor(s, dtype=torch.float64) for s in itertools.product([0.0, 1.0], repeat=n)]


def _sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def _log_bern(x, p):
    """Independent recount: sum_i log(p_i) or log(1 - p_i), one unit at a time."""
    return sum(math.log(pi) if xi == 1 else math.log(1.0 - pi) for xi, pi in zip(x.tolist(), p.tolist()))


def _brute_2layer(dbn, v):
    """Per row: (bound, exact log p(v), KL(q || posterior)), enumerating (h1, h2) with explicit energies."""
    r1, r2 = dbn.layers
    W1, a1, b1 = (t.double() for t in (r1.W, r1.visible_bias, r1.hidden_bias))
    W2, a2, b2 = (t.double() for t in (r2.W, r2.visible_bias, r2.hidden_bias))
    H1, H2 = _states(W1.shape[1]), _states(W2.shape[1])

    def energy2(h1, h2):
        return -(a2 @ h1) - (b2 @ h2) - h1 @ W2 @ h2

    log_z2 = math.log(sum(math.exp(-energy2(h1, h2)) for h1 in H1 for h2 in H2))
    log_p2 = {tuple(h1.tolist()): math.log(sum(math.exp(-energy2(h1, h2)) for h2 in H2)) - log_z2 for h1 in H1}
    out = []
    for row in v:
        q1 = torch.tensor([_sig(x) for x in (b1 + row @ W1).tolist()], dtype=torch.float64)
        bound, joint = 0.0, []
        qs = []
        for h1 in H1:
            log_q = _log_bern(h1, q1)
            pv = torch.tensor([_sig(x) for x in (a1 + W1 @ h1).tolist()], dtype=torch.float64)
            log_joint = _log_bern(row, pv) + log_p2[tuple(h1.tolist())]
            bound += math.exp(log_q) * (log_joint - log_q)
            joint.append(log_joint)
            qs.append(log_q)
        m = max(joint)
        log_p = m + math.log(sum(math.exp(j - m) for j in joint))
        kl = sum(math.exp(lq) * (lq - (lj - log_p)) for lq, lj in zip(qs, joint))
        out.append((bound, log_p, kl))
    return out


# -- construction ----------------------------------------------------------------------------------

@pytest.mark.parametrize("sizes", [[6], [6, 4], [6, 0, 3], [6, 4.5, 3], [6, True, 3], "643", 7, [6, -1, 2]])
def test_bad_sizes_name_sizes(sizes):
    with pytest.raises(ValueError, match=r"^sizes: "):
        DBN(sizes)


def test_layers_chain_and_seed_reproduces():
    sizes = [6, 4, 3, 2]
    a, b, c = DBN(sizes, seed=5), DBN(sizes, seed=torch.Generator().manual_seed(5)), DBN(sizes, seed=6)
    assert a.sizes == [6, 4, 3, 2] and len(a.layers) == 3
    assert [(r.n_visible, r.n_hidden) for r in a.layers] == [(6, 4), (4, 3), (3, 2)]
    assert all(torch.equal(x.W, y.W) for x, y in zip(a.layers, b.layers))
    assert not torch.equal(a.layers[0].W, c.layers[0].W)


def test_from_rbms_checks_the_chain():
    with pytest.raises(ValueError, match="^rbms: "):
        DBN.from_rbms([RBM(6, 4), RBM(3, 2)])


# -- the bound and the exact likelihood --------------------------------------------------------------

def test_exact_bound_equals_brute_force_and_lies_below_log_p():
    dbn = _random_dbn([6, 4, 3], seed=1)
    v = _rows(12, 6, seed=2)
    brute = _brute_2layer(dbn, v)
    bound = dbn.log_likelihood_bound(v, method="exact")
    log_p = dbn.log_likelihood(v)
    assert isinstance(bound, float)
    assert bound == pytest.approx(sum(b for b, _, _ in brute) / len(brute), abs=1e-10)
    assert log_p == pytest.approx(sum(p for _, p, _ in brute) / len(brute), abs=1e-10)
    # the gap is the mean KL divergence from q(h1|v) to the posterior, and it is positive here
    gap = sum(k for _, _, k in brute) / len(brute)
    assert log_p - bound == pytest.approx(gap, abs=1e-10)
    assert gap > 1e-3


def test_bound_is_tight_when_the_top_rbm_is_the_first_transposed():
    """RBM 2 = RBM 1 transposed: p2(h1) is RBM 1's hidden marginal, q(h1|v) the exact posterior,
    and the DBN is RBM 1, so bound = log p(v) = RBM 1's log-likelihood."""
    r1 = _random_rbm(6, 4, seed=3)
    r2 = RBM.from_weights(r1.W.T, r1.hidden_bias, r1.visible_bias)
    dbn = DBN.from_rbms([r1, r2])
    v = _rows(20, 6, seed=4)
    bound, log_p = dbn.log_likelihood_bound(v), dbn.log_likelihood(v)
    assert bound == pytest.approx(log_p, abs=1e-10)
    assert log_p == pytest.approx(exact_log_likelihood(r1, v), abs=1e-10)
    # moving away from the tied case opens a gap
    r2b = RBM.from_weights(r1.W.T + 0.5, r1.hidden_bias, r1.visible_bias)
    other = DBN.from_rbms([r1, r2b])
    assert other.log_likelihood(v) - other.log_likelihood_bound(v) > 1e-4


def test_three_hidden_layers_bound_against_brute_force():
    dbn = _random_dbn([5, 3, 3, 2], seed=7)
    v = _rows(6, 5, seed=8)
    (W1, a1, b1), (W2, a2, b2), (W3, a3, b3) = [(r.W.double(), r.visible_bias.double(), r.hidden_bias.double())
                                                for r in dbn.layers]
    log_z3 = exact_log_partition(dbn.layers[2])
    H1, H2 = _states(3), _states(3)
    bounds, logps = [], []
    for row in v:
        q1 = torch.sigmoid(b1 + row @ W1)
        total, joints = 0.0, []
        for h1 in H1:
            q2 = torch.sigmoid(b2 + h1 @ W2)
            for h2 in H2:
                log_q = _log_bern(h1, q1) + _log_bern(h2, q2)
                neg_f3 = float(a3 @ h2) + sum(math.log1p(math.exp(x)) for x in (b3 + h2 @ W3).tolist())
                lj = (_log_bern(row, torch.sigmoid(a1 + W1 @ h1)) + _log_bern(h1, torch.sigmoid(a2 + W2 @ h2))
                      + neg_f3 - log_z3)
                total += math.exp(log_q) * (lj - log_q)
                joints.append(lj)
        bounds.append(total)
        logps.append(float(torch.logsumexp(torch.tensor(joints, dtype=torch.float64), 0)))
    assert dbn.log_likelihood_bound(v) == pytest.approx(sum(bounds) / len(bounds), abs=1e-9)
    assert dbn.log_likelihood(v) == pytest.approx(sum(logps) / len(logps), abs=1e-9)
    assert dbn.log_likelihood(v) > dbn.log_likelihood_bound(v)


def test_ais_bound_agrees_with_exact_within_its_error_bar():
    dbn = _float32(_random_dbn([8, 5, 4], seed=11))
    v = _rows(40, 8, seed=12)
    exact = dbn.log_likelihood_bound(v)
    est = dbn.log_likelihood_bound(v, method="ais", samples=50, ais_chains=200, n_betas=500, seed=3)
    assert isinstance(est, DBNBound)
    assert float(est) == est.value
    assert 0 < est.stderr < 0.2 and est.sample_stderr <= est.stderr
    assert abs(est.value - exact) < 4 * est.stderr + 1e-3
    assert est.log_z == pytest.approx(exact_log_partition(dbn.layers[1]), abs=4 * est.log_z_stderr + 1e-3)
    assert est.per_row.shape == (40,)
    assert est.value == pytest.approx(est.expected_log_joint + est.entropy - est.log_z, abs=1e-9)
    # same seed, same estimate
    again = dbn.log_likelihood_bound(v, method="ais", samples=50, ais_chains=200, n_betas=500, seed=3)
    assert again.value == est.value


def test_ais_bound_three_layers_agrees_with_exact():
    dbn = _float32(_random_dbn([6, 4, 3, 3], seed=21))
    v = _rows(30, 6, seed=22)
    exact = dbn.log_likelihood_bound(v)
    est = dbn.log_likelihood_bound(v, method="ais", samples=100, ais_chains=200, n_betas=300, seed=0)
    assert abs(est.value - exact) < 4 * est.stderr + 1e-3


def test_bound_errors_name_the_argument():
    dbn = DBN([30, 25, 5], seed=0)
    v = torch.zeros(2, 30)
    with pytest.raises(ValueError, match="^method: "):
        dbn.log_likelihood_bound(v, method="magic")
    with pytest.raises(ValueError, match="^method: 'exact' enumerates"):
        dbn.log_likelihood_bound(v, method="exact")
    with pytest.raises(ValueError, match="^method: "):
        dbn.log_likelihood(v)
    with pytest.raises(ValueError, match="^samples: "):
        dbn.log_likelihood_bound(v, method="ais", samples=0)
    with pytest.raises(ValueError, match="^v: "):
        DBN([6, 4, 3]).log_likelihood_bound(torch.zeros(2, 5))


# -- passes, training, free energies, files ----------------------------------------------------------

def test_transform_and_reconstruct_compose_the_layers():
    dbn = _random_dbn([6, 4, 3], seed=5)
    v = _rows(5, 6, seed=6)
    r1, r2 = dbn.layers
    m1 = r1.hidden_probabilities(v)
    m2 = r2.hidden_probabilities(m1)
    assert torch.allclose(dbn.transform(v, layer=1), m1)
    assert torch.allclose(dbn.transform(v), m2)
    assert torch.allclose(dbn.reconstruct(v, layer=2), r1.visible_probabilities(r2.visible_probabilities(m2)))
    assert torch.allclose(dbn.reconstruct(v, layer=1), r1.visible_probabilities(m1))
    s = dbn.represent(v, layer=2, how="sample", seed=1)
    assert set(s.unique().tolist()) <= {0.0, 1.0} and s.shape == (5, 3)
    with pytest.raises(ValueError, match="^layer: "):
        dbn.transform(v, layer=3)
    with pytest.raises(ValueError, match="^layer: "):
        dbn.reconstruct(v, layer=0)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_fit_trains_every_layer_with_per_layer_settings(digits):
    x = digits.train[:300]
    dbn = DBN([64, 12, 6], seed=0)
    before = [r.W.clone() for r in dbn.layers]
    res = dbn.fit(x, epochs=[3, 2], method=["cd", "pcd"], batch_size=20, lr=[0.05, 0.02], seed=1)
    assert res.steps == 2 and res.step_unit == "layer"
    assert [h["step"] for h in res.history] == [1, 2]
    assert [h["method"] for h in res.history] == ["cd", "pcd"]
    assert [r.steps for r in res.layer_results] == [3, 2]
    assert [r.settings["lr"] for r in res.layer_results] == [0.05, 0.02]
    assert all(not torch.equal(b, r.W) for b, r in zip(before, dbn.layers))
    # seed=s and a Generator seeded with s give the same stack; another seed another one
    other = DBN([64, 12, 6], seed=0)
    other.fit(x, epochs=[3, 2], method=["cd", "pcd"], batch_size=20, lr=[0.05, 0.02],
              seed=torch.Generator().manual_seed(1))
    assert all(torch.equal(a.W, b.W) for a, b in zip(dbn.layers, other.layers))
    third = DBN([64, 12, 6], seed=0)
    third.fit(x, epochs=[3, 2], method=["cd", "pcd"], batch_size=20, lr=[0.05, 0.02], seed=2)
    assert not torch.equal(dbn.layers[1].W, third.layers[1].W)
    with pytest.raises(ValueError, match="^epochs: "):
        DBN([64, 12, 6]).fit(x, epochs=[1, 2, 3])
    with pytest.raises(ValueError, match="^method: "):
        DBN([64, 12, 6]).fit(x, epochs=1, method="nope")


def test_training_improves_the_bound(digits):
    x, t = digits.train, digits.test
    dbn = DBN([64, 10, 8], seed=0)
    start = dbn.log_likelihood_bound(t)
    dbn.fit(x, epochs=4, method="cd", batch_size=20, lr=0.05, seed=0)
    trained = dbn.log_likelihood_bound(t)
    assert trained > start + 5.0
    assert dbn.log_likelihood(t) > trained


def test_free_energies_match_the_layers(digits):
    x, t = digits.train[:200], digits.test[:100]
    dbn = _random_dbn([64, 8, 30], seed=9, scale=0.3)
    fe = dbn.free_energies(x, t, upward="mean")
    assert isinstance(fe, LayerFreeEnergies) and [r["layer"] for r in fe.records] == [1, 2]
    r1, r2 = dbn.layers
    f1 = r1.free_energy(x.double())
    assert fe.records[0]["free_energy_train"] == pytest.approx(float(f1.mean()), rel=1e-10)
    assert fe.records[0]["free_energy_train_sem"] == pytest.approx(float(f1.std()) / math.sqrt(200), rel=1e-10)
    assert fe.records[0]["free_energy_train_per_unit"] == pytest.approx(float(f1.mean()) / 64, rel=1e-10)
    f2 = r2.free_energy(dbn.transform(t.double(), 1))
    assert fe.records[1]["free_energy_test"] == pytest.approx(float(f2.mean()), rel=1e-10)
    assert fe.records[1]["free_energy_test_per_unit"] == pytest.approx(float(f2.mean()) / 8, rel=1e-10)
    # log Z exact on both layers (smaller layers 8 units): log-likelihoods as in exact_log_likelihood
    assert fe.column("log_z_method") == ["exact", "exact"]
    assert fe.records[0]["log_likelihood_test"] == pytest.approx(exact_log_likelihood(r1, t), abs=1e-9)
    # sampled representation: the second layer is scored on binary states, with the seed given
    fs = dbn.free_energies(x, t, seed=4)
    h1 = dbn.represent(t, 1, how="sample", seed=4)
    assert fs.records[1]["n_visible"] == 8
    assert fs.records[1]["log_likelihood_test"] < 0
    assert fs.records[1]["free_energy_gap"] == pytest.approx(
        fs.records[1]["free_energy_test"] - fs.records[1]["free_energy_train"])
    assert h1.shape == (100, 8)


def test_free_energies_ais_where_exact_is_too_large(digits):
    x, t = digits.train[:100], digits.test[:50]
    dbn = _random_dbn([64, 8, 30], seed=9, scale=0.3)
    fe = dbn.free_energies(x, t, max_units=7, ais={"n_chains": 50, "n_betas": 300})
    assert fe.column("log_z_method") == ["ais", "ais"]
    exact = dbn.free_energies(x, t)
    for a, b in zip(fe.records, exact.records):
        assert a["log_z"] == pytest.approx(b["log_z"], abs=5 * a["log_z_stderr"] + 0.05)
    assert "log_z" not in dbn.free_energies(x, t, max_units=7).records[0]


def test_save_and_load_round_trip(tmp_path):
    dbn = _random_dbn([6, 4, 3], seed=1)
    path = dbn.save(tmp_path / "dbn.safetensors")
    back = DBN.load(path)
    assert back.sizes == [6, 4, 3]
    assert all(torch.equal(a.W, b.W) and torch.equal(a.hidden_bias, b.hidden_bias)
               for a, b in zip(dbn.layers, back.layers))
    from thermolearn.errors import ModelFileError
    dbn.layers[0].save(tmp_path / "rbm.safetensors")
    with pytest.raises(ModelFileError):
        DBN.load(tmp_path / "rbm.safetensors")


def test_experiment_quick_point_and_plot():
    import json

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from thermolearn.experiments.ebm import dbn_rg_flow

    point, seed = next((p, s) for p, s in dbn_rg_flow.EXPERIMENT.points(quick=True) if p["model"] == "exact-64-16-16")
    # the quick point's model, trained and scored more briefly (the plumbing, not the numbers)
    point = {**point, "epochs": "8,8", "ais_betas": 300, "bound_samples": 10}
    (rec,) = dbn_rg_flow.run({**point, "seed": seed})
    assert rec["bound_exact_test"] <= rec["log_p_exact_test"]
    assert abs(rec["bound_ais_error"]) < 5 * rec["bound_ais_test_stderr"] + 0.05
    assert -35 < rec["bound_exact_test"] < -15
    assert len(rec["reconstructions"]) == 3 and len(rec["reconstructions"][0][0]) == 64
    json.dumps(rec)
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    dbn_rg_flow.plot([{**point, "seed": seed, **rec}], fig)
    assert len(fig.axes) >= 2


def test_tied_init_starts_tight_and_checks_sizes(digits):
    x = digits.train[:200]
    dbn = DBN([64, 8, 64], seed=0)
    # one epoch of layer 2 at a tiny rate: the stack stays (nearly) RBM 1, the bound (nearly) tight
    dbn.fit(x, epochs=[5, 1], method="cd", batch_size=20, lr=[0.05, 1e-9], tied_init=True, seed=0)
    r1, r2 = dbn.layers
    assert torch.allclose(r2.W, r1.W.T, atol=1e-6)
    t = digits.test[:100]
    bound, log_p = dbn.log_likelihood_bound(t), dbn.log_likelihood(t)
    assert bound == pytest.approx(log_p, abs=1e-4)
    assert log_p == pytest.approx(exact_log_likelihood(r1, t), abs=1e-4)
    with pytest.raises(ValueError, match="^tied_init: "):
        DBN([64, 8, 6]).fit(x, epochs=1, tied_init=True)


def test_fit_binarizes_once_for_every_layer():
    raw = load_digits(binarize=None).train[:120]
    dbn = DBN([64, 8, 6], seed=0)
    res = dbn.fit(raw, epochs=1, method="cd", batch_size=20, binarize="threshold", seed=0)
    assert res.steps == 2
    with pytest.raises(ValueError, match="^data: "):
        DBN([64, 8, 6]).fit(raw, epochs=1)              # not binary and no binarize

import math

import pytest
import torch

from thermolearn.ebm import RBM, exact_log_partition
from thermolearn.ebm.exact import all_states
from thermolearn.ebm.training import batch_gradient, new_state, train
from thermolearn.errors import ModelFileError, TrainingDiverged


def tiny_rbm(n_v=6, n_h=4, scale=0.8, beta=1.0, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    W = scale * torch.randn(n_v, n_h, generator=g, dtype=torch.float64)
    a = 0.5 * torch.randn(n_v, generator=g, dtype=torch.float64)
    b = 0.5 * torch.randn(n_h, generator=g, dtype=torch.float64)
    return RBM.from_weights(W, a, b, beta=beta, dtype=dtype)


def exact_model_statistics(rbm):
    """<v h^T>, <v>, <h> under p(v, h) by enumerating both layers."""
    r = rbm.to(dtype=torch.float64)
    V, H = all_states(r.n_visible), all_states(r.n_hidden)
    E = -(V @ r.visible_bias)[:, None] - (H @ r.hidden_bias)[None, :] - V @ r.W @ H.T
    P = torch.softmax((-r.beta * E).flatten(), 0).view(E.shape)
    return V.T @ P @ H, P.sum(1) @ V, P.sum(0) @ H


def sample_data(rbm, n, seed=1):
    """Exact samples of the visible marginal of a tiny RBM."""
    r = rbm.to(dtype=torch.float64)
    V = all_states(r.n_visible)
    logp = -r.beta * r.free_energy(V)
    idx = torch.multinomial(torch.softmax(logp, 0), n, replacement=True,
                            generator=torch.Generator().manual_seed(seed))
    return V[idx].float()


@pytest.mark.parametrize("method,k,rounds", [("cd", 30, 1), ("pcd", 1, 60)])
def test_sampled_gradient_approaches_exact_gradient(method, k, rounds):
    rbm = tiny_rbm(beta=0.8)
    data = sample_data(tiny_rbm(seed=5), 20000)
    vh_model, v_model, h_model = exact_model_statistics(rbm)
    r64 = rbm.to(dtype=torch.float64)
    ph = r64.hidden_probabilities(data.double())
    exact_gW = data.double().T @ ph / len(data) - vh_model
    exact_ga = data.double().mean(0) - v_model
    exact_gb = ph.mean(0) - h_model
    st = new_state(rbm, method, data, len(data), seed=3)
    with torch.inference_mode():
        for _ in range(rounds // 2):          # burn-in of the persistent chains (lr = 0)
            batch_gradient(rbm, st, data, method, k)
        acc = [torch.zeros_like(rbm.W, dtype=torch.float64), 0.0, 0.0]
        n = max(1, rounds - rounds // 2)
        for _ in range(n):
            gW, ga, gb = batch_gradient(rbm, st, data, method, k)
            acc[0] += gW.double() / len(data) / n
            acc[1] = acc[1] + ga.double() / len(data) / n
            acc[2] = acc[2] + gb.double() / len(data) / n
    err = (acc[0] - exact_gW).abs().max()
    scale = exact_gW.abs().max()
    assert scale > 0.02                      # the gradient is not trivially zero
    assert err < 0.01, (float(err), float(scale))
    assert (acc[1] - exact_ga).abs().max() < 0.01
    assert (acc[2] - exact_gb).abs().max() < 0.01


@pytest.mark.parametrize("method", ["cd", "pcd", "tap2", "tap3"])
def test_training_raises_exact_log_likelihood(method):
    teacher = tiny_rbm(n_v=10, n_h=6, scale=1.5, seed=2)
    data = sample_data(teacher, 3000, seed=4)
    valid = sample_data(teacher, 1000, seed=7)
    rbm = RBM(10, 6, seed=0)
    before = rbm.log_likelihood(valid, exact_log_partition(rbm))
    hist = train(rbm, data, method=method, epochs=15, batch_size=20, lr=0.05, validation=valid)
    after = rbm.log_likelihood(valid, exact_log_partition(rbm))
    best = teacher.log_likelihood(valid, exact_log_partition(teacher))
    assert after > before + 0.5, (before, after, best)
    assert after > best - 0.5, (after, best)
    assert len(hist) == 15
    for key in ("free_energy_train", "free_energy_valid", "free_energy_gap",
                "reconstruction_error", "seconds"):
        assert all(math.isfinite(x) for x in hist[key]), key


def test_naive_mean_field_learns_but_less_than_tap():
    teacher = tiny_rbm(n_v=10, n_h=6, scale=1.5, seed=2)
    data, valid = sample_data(teacher, 3000, seed=4), sample_data(teacher, 1000, seed=7)
    ll = {}
    for method in ("mf", "tap2"):
        rbm = RBM(10, 6, seed=0)
        train(rbm, data, method=method, epochs=15, batch_size=20, lr=0.05)
        ll[method] = rbm.log_likelihood(valid, exact_log_partition(rbm))
    assert ll["mf"] > -6.0                 # from -6.93 at initialisation
    assert ll["tap2"] > ll["mf"] + 0.3, ll


def test_checkpoint_resume_is_identical_to_uninterrupted_run(tmp_path):
    data = sample_data(tiny_rbm(n_v=8, n_h=5, seed=9), 500)
    full = RBM(8, 5, seed=1)
    train(full, data, method="pcd", epochs=4, batch_size=25, lr=0.05, seed=11)
    ck = tmp_path / "run.ckpt"
    part = RBM(8, 5, seed=1)
    train(part, data, method="pcd", epochs=2, batch_size=25, lr=0.05, seed=11, checkpoint=ck)
    resumed = RBM(8, 5, seed=1)            # a fresh process would start from scratch
    hist = train(resumed, data, method="pcd", epochs=4, batch_size=25, lr=0.05, seed=11, checkpoint=ck)
    assert len(hist) == 4
    assert torch.equal(resumed.W, full.W)
    assert torch.equal(resumed.hidden_bias, full.hidden_bias)
    assert RBM.load(ck).W.equal(full.W)    # a checkpoint is also a loadable model


def test_checkpoint_of_another_run_is_refused(tmp_path):
    data = sample_data(tiny_rbm(n_v=8, n_h=5), 100)
    ck = tmp_path / "run.ckpt"
    train(RBM(8, 5, seed=1), data, method="pcd", epochs=1, batch_size=20, checkpoint=ck)
    with pytest.raises(ValueError, match="different run"):
        train(RBM(8, 5, seed=1), data, method="cd", epochs=2, batch_size=20, checkpoint=ck)


def test_divergence_stops_and_keeps_last_good_state(tmp_path):
    data = sample_data(tiny_rbm(n_v=8, n_h=5), 200)
    rbm = RBM(8, 5, seed=1)
    ck = tmp_path / "run.ckpt"
    lr = lambda epoch: 0.05 if epoch < 2 else float("inf")  # noqa: E731
    with pytest.raises(TrainingDiverged, match="epoch 2"):
        train(rbm, data, method="pcd", epochs=5, batch_size=20, lr=lr, checkpoint=ck)
    assert torch.isfinite(rbm.W).all()
    saved = RBM.load(ck)
    assert torch.equal(saved.W, rbm.W)     # model reset to the end of epoch 1 == checkpoint


def test_bad_input_is_rejected_with_clear_errors():
    rbm = RBM(4, 3)
    with pytest.raises(ValueError, match="binarize"):
        train(rbm, torch.full((10, 4), 0.3), epochs=1)
    with pytest.raises(ValueError, match="NaN"):
        train(rbm, torch.tensor([[0.0, 1.0, float("nan"), 1.0]]), epochs=1)
    with pytest.raises(ValueError, match="4 columns"):
        train(rbm, torch.zeros(10, 5), epochs=1)
    with pytest.raises(ValueError, match="method"):
        train(rbm, torch.zeros(10, 4), method="sgd", epochs=1)
    with pytest.raises(ValueError, match="batch_size"):
        train(rbm, torch.zeros(10, 4), batch_size=0, epochs=1)
    # data in [0, 1] is accepted once a binarization is asked for
    train(rbm, torch.full((10, 4), 0.3), epochs=1, binarize="stochastic")


def test_corrupted_files_raise_model_file_error(tmp_path):
    rbm = tiny_rbm()
    path = rbm.save(tmp_path / "m.rbm")
    raw = path.read_bytes()
    (tmp_path / "trunc.rbm").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "junk.rbm").write_bytes(b"\x80\x04\x95 not a model, a pickle header")
    for name in ("trunc.rbm", "junk.rbm", "missing.rbm"):
        with pytest.raises(ModelFileError):
            RBM.load(tmp_path / name)
    again = RBM.load(path)
    assert torch.equal(again.W, rbm.W) and again.beta == rbm.beta

import dataclasses
import json
import math

import pytest
import torch

from thermolearn.ebm import RBM, exact_log_partition
from thermolearn.ebm.exact import all_states
from thermolearn.ebm.training import TRAJECTORY, TrainResult, batch_gradient, in_progress_path, new_state, train
from thermolearn.errors import CheckpointMismatch, ModelFileError, TrainingDiverged
from thermolearn.schedules import Constant, LinearDecay, Step, Table


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
    assert hist.steps == len(hist.history) == 15
    for key in ("free_energy_train", "free_energy_valid", "free_energy_gap",
                "reconstruction_error", "seconds"):
        assert all(math.isfinite(x) for x in hist.column(key)), key


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
    assert ck.exists() and not in_progress_path(ck).exists()   # a finished run is the checkpoint
    resumed = RBM(8, 5, seed=1)            # a fresh process would start from scratch
    hist = train(resumed, data, method="pcd", epochs=4, batch_size=25, lr=0.05, seed=11, checkpoint=ck)
    assert (hist.steps, hist.resumed_steps) == (4, 2)
    assert hist.column("step") == [1, 2, 3, 4]
    assert torch.equal(resumed.W, full.W)
    assert torch.equal(resumed.hidden_bias, full.hidden_bias)
    assert RBM.load(ck).W.equal(full.W)    # a checkpoint is also a loadable model


class Interrupt(Exception):
    pass


def test_interrupted_run_keeps_the_checkpoint_and_resumes_from_its_progress(tmp_path):
    data = sample_data(tiny_rbm(n_v=8, n_h=5, seed=9), 500)
    kw = dict(method="pcd", batch_size=25, lr=0.05, seed=11)
    full = RBM(8, 5, seed=1)
    train(full, data, epochs=5, **kw)
    ck = tmp_path / "run.ckpt"
    train(RBM(8, 5, seed=1), data, epochs=2, checkpoint=ck, **kw)
    before = ck.read_bytes()

    def stop_after_epoch_4(record, rbm):
        if record["step"] == 4:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(RBM(8, 5, seed=1), data, epochs=5, checkpoint=ck, callback=stop_after_epoch_4, **kw)
    assert ck.read_bytes() == before                       # the finished checkpoint is untouched
    assert in_progress_path(ck).exists()                   # the progress is kept beside it
    resumed = RBM(8, 5, seed=1)
    hist = train(resumed, data, epochs=5, checkpoint=ck, **kw)
    assert hist.resumed_steps == 4 and hist.steps == 5
    assert torch.equal(resumed.W, full.W)
    assert not in_progress_path(ck).exists() and RBM.load(ck).W.equal(full.W)


BASE = dict(method="pcd", k=1, batch_size=20, lr=0.05, momentum=0.5, weight_decay=1e-4,
            damping=0.5, seed=3, binarize=None)


@pytest.mark.parametrize("setting,change", [
    ("lr", dict(lr=0.02)), ("lr", dict(lr=Constant(0.02))), ("momentum", dict(momentum=0.9)),
    ("momentum", dict(momentum=Step(0.5, 0.9, at=1))), ("batch_size", dict(batch_size=10)),
    ("k", dict(k=2)), ("method", dict(method="cd")), ("weight_decay", dict(weight_decay=0.0)),
    ("damping", dict(damping=0.3)), ("seed", dict(seed=4)), ("binarize", dict(binarize="threshold")),
    ("data", dict(data="other")), ("beta", dict(beta=0.5)), ("n_hidden", dict(hidden=4)),
    ("dtype", dict(dtype=torch.float64)),
])
def test_checkpoint_of_another_run_is_refused_naming_the_setting(tmp_path, setting, change):
    data = sample_data(tiny_rbm(n_v=8, n_h=5), 100)
    ck = tmp_path / "run.ckpt"
    train(RBM(8, 5, seed=1), data, epochs=1, checkpoint=ck, **BASE)
    saved = ck.read_bytes()
    change = dict(change)
    other = sample_data(tiny_rbm(n_v=8, n_h=5), 100, seed=2) if change.pop("data", None) else data
    rbm = RBM(8, change.pop("hidden", 5), beta=change.pop("beta", 1.0), seed=1,
              dtype=change.pop("dtype", torch.float32))
    with pytest.raises(CheckpointMismatch, match=f"^{setting}: ") as info:
        train(rbm, other, epochs=2, checkpoint=ck, **{**BASE, **change})
    assert info.value.setting == setting and setting in TRAJECTORY
    assert ck.read_bytes() == saved and not in_progress_path(ck).exists()
    # told to start over, the new run replaces the checkpoint once it has finished
    hist = train(rbm, other, epochs=2, checkpoint=ck, resume=False, **{**BASE, **change})
    assert hist.resumed_steps == 0 and ck.read_bytes() != saved


def test_fewer_epochs_than_the_checkpoint_and_a_longer_decay_are_refused(tmp_path):
    data = sample_data(tiny_rbm(n_v=8, n_h=5), 100)
    ck = tmp_path / "run.ckpt"
    kw = {**BASE, "lr": LinearDecay(0.05, 3)}
    train(RBM(8, 5, seed=1), data, epochs=3, checkpoint=ck, **kw)
    with pytest.raises(CheckpointMismatch, match="^epochs: ") as info:
        train(RBM(8, 5, seed=1), data, epochs=2, checkpoint=ck, **kw)
    assert (info.value.saved, info.value.requested) == (3, 2)
    # the decay to 0 over 3 epochs is another schedule than the decay over 5 epochs
    with pytest.raises(CheckpointMismatch, match="^lr: ") as info:
        train(RBM(8, 5, seed=1), data, epochs=5, checkpoint=ck, **{**kw, "lr": LinearDecay(0.05, 5)})
    assert "steps=3" in info.value.saved and "steps=5" in info.value.requested
    # asked for the same number of epochs, a finished checkpoint is read back without training
    again = RBM(8, 5, seed=1)
    hist = train(again, data, epochs=3, checkpoint=ck, **kw)
    assert (hist.steps, hist.resumed_steps) == (3, 3) and again.W.equal(RBM.load(ck).W)


def test_a_plain_callable_cannot_be_compared_with_a_checkpoint(tmp_path):
    data = sample_data(tiny_rbm(n_v=8, n_h=5), 100)
    ck = tmp_path / "run.ckpt"
    train(RBM(8, 5, seed=1), data, epochs=1, checkpoint=ck, **BASE)
    with pytest.raises(CheckpointMismatch, match="^lr: .*schedules"):
        train(RBM(8, 5, seed=1), data, epochs=2, checkpoint=ck, **{**BASE, "lr": lambda t: 0.05})


def _diverging_lr():
    return Table([0.05, 0.05, 1e30])     # finite, valid values that blow the parameters up at epoch 3


def test_divergence_stops_and_keeps_last_good_state():
    data = sample_data(tiny_rbm(n_v=8, n_h=5), 200)
    rbm = RBM(8, 5, seed=1)
    snapshots = []
    with pytest.raises(TrainingDiverged, match="during epoch 3") as info:
        train(rbm, data, method="pcd", epochs=5, batch_size=20, lr=_diverging_lr(),
              callback=lambda rec, r: snapshots.append(r.W.clone()))
    assert "no checkpoint was asked for" in str(info.value)
    assert len(snapshots) == 2 and torch.equal(rbm.W, snapshots[-1])   # reset to the end of epoch 2


def test_a_diverged_run_replaces_neither_the_checkpoint_nor_leaves_its_progress(tmp_path):
    data = sample_data(tiny_rbm(n_v=8, n_h=5), 200)
    ck = tmp_path / "run.ckpt"
    kw = dict(method="pcd", epochs=5, batch_size=20)
    with pytest.raises(TrainingDiverged) as info:       # no checkpoint yet: none is mentioned
        train(RBM(8, 5, seed=1), data, lr=_diverging_lr(), checkpoint=ck, **kw)
    assert "no checkpoint was written" in str(info.value) and str(ck) not in str(info.value)
    assert not ck.exists() and not in_progress_path(ck).exists()
    good = RBM(8, 5, seed=1)
    train(good, data, lr=0.05, checkpoint=ck, **kw)
    saved = ck.read_bytes()
    with pytest.raises(TrainingDiverged, match="left as it was"):
        train(RBM(8, 5, seed=1), data, lr=_diverging_lr(), checkpoint=ck, resume=False, **kw)
    assert ck.read_bytes() == saved and not in_progress_path(ck).exists()
    again = RBM(8, 5, seed=1)                           # the good run resumes its own checkpoint
    hist = train(again, data, lr=0.05, checkpoint=ck, **kw)
    assert hist.resumed_steps == 5 and torch.equal(again.W, good.W)


@pytest.mark.parametrize("kwargs,name", [
    (dict(lr=-1.0), "lr"), (dict(lr=0.0), "lr"), (dict(lr=float("nan")), "lr"),
    (dict(lr=Table([0.1, 0.1, -0.1])), "lr"), (dict(momentum=1.0), "momentum"),
    (dict(momentum=-0.1), "momentum"), (dict(momentum=Step(0.5, 1.5, at=1)), "momentum"),
    (dict(epochs=0), "epochs"), (dict(weight_decay=-1e-4), "weight_decay"),
    (dict(batch_size=0), "batch_size"), (dict(k=0), "k"), (dict(method="sgd"), "method"),
    (dict(damping=1.0), "damping"), (dict(monitor_size=0), "monitor_size"),
    (dict(seed=-1), "seed"), (dict(binarize="round"), "binarize"),
])
def test_hyperparameters_are_validated(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}: "):
        train(RBM(4, 3), torch.zeros(10, 4), **{"epochs": 3, **kwargs})


def test_model_sizes_and_beta_are_validated():
    for kwargs, name in ((dict(n_visible=4, n_hidden=0), "n_hidden"), (dict(n_visible=0, n_hidden=2), "n_visible"),
                         (dict(n_visible=4, n_hidden=2, beta=0.0), "beta"),
                         (dict(n_visible=4, n_hidden=2, beta=-1.0), "beta")):
        with pytest.raises(ValueError, match=f"^{name}: "):
            RBM(**kwargs)


def test_train_result_is_a_declared_dataclass_with_a_json_ready_history():
    data = sample_data(tiny_rbm(n_v=8, n_h=5), 100)
    res = train(RBM(8, 5, seed=1), data, epochs=3, batch_size=20, validation=data[:30],
                lr=Step(0.05, 0.02, at=1), seed=torch.Generator().manual_seed(0))
    assert isinstance(res, TrainResult) and dataclasses.is_dataclass(res)
    assert set(vars(res)) == {f.name for f in dataclasses.fields(res)}
    assert res.step_unit == "epoch" and res.steps == 3
    assert json.loads(json.dumps(res.history)) == res.history
    assert [type(r["step"]) for r in res.history] == [int] * 3
    assert res.column("lr") == [0.05, 0.02, 0.02] and res.last is res.history[-1]
    assert res.seconds > 0 and res.settings["seed"] is None     # a generator is not recorded


def test_int_and_generator_seeds_give_identical_training():
    data = sample_data(tiny_rbm(n_v=8, n_h=5), 100)
    a, b = RBM(8, 5, seed=1), RBM(8, 5, seed=torch.Generator().manual_seed(1))
    assert torch.equal(a.W, b.W)
    train(a, data, epochs=2, batch_size=20, seed=7)
    train(b, data, epochs=2, batch_size=20, seed=torch.Generator().manual_seed(7))
    assert torch.equal(a.W, b.W)


@pytest.mark.parametrize("method", ["pcd", "cd", "tap2"])
def test_updates_without_momentum_written_into_the_weights_equal_the_velocity_path(method):
    """momentum 0 writes the GEMMs into W (the decay as their beta); a vanishing momentum takes
    the velocity path: the two runs differ only by rounding."""
    data = sample_data(tiny_rbm(n_v=8, n_h=5), 200)
    runs = []
    for mom in (0.0, 1e-30):
        rbm = RBM(8, 5, seed=1)
        train(rbm, data, method=method, epochs=3, batch_size=20, lr=0.1, momentum=mom,
              weight_decay=1e-2, seed=7)
        runs.append(rbm)
    assert float(runs[0].W.abs().max()) > 0.05                  # it learned something
    for name in ("W", "visible_bias", "hidden_bias"):
        p, q = getattr(runs[0], name), getattr(runs[1], name)
        assert torch.allclose(p, q, atol=1e-5), method


def test_tap_magnetizations_started_from_the_data_at_every_update():
    from thermolearn.ebm.tap import tap_fixed_point, tap_negative_statistics
    rbm = tiny_rbm(n_v=8, n_h=5, scale=0.5)
    data = sample_data(tiny_rbm(n_v=8, n_h=5), 40)
    st = new_state(rbm, "tap2", data, 20, seed=0)
    st.from_data = True
    v0 = data[:20]
    gW, ga, gb = batch_gradient(rbm, st, v0, "tap2", 3)
    m_v, m_h = tap_fixed_point(rbm.W, rbm.visible_bias, rbm.hidden_bias, v0.clone(),
                               rbm.hidden_probabilities(v0), order=2, damping=0.5, k=3)
    dW, da, db = tap_negative_statistics(rbm.W, m_v, m_h, order=2)
    ph = rbm.hidden_probabilities(v0)
    assert torch.allclose(gW, v0.T @ ph - 20 * dW, atol=1e-5)
    assert torch.allclose(ga, v0.sum(0) - 20 * da, atol=1e-5)
    assert torch.allclose(gb, ph.sum(0) - 20 * db, atol=1e-5)
    # and the trainer: a setting of the trajectory, refused for the Gibbs methods
    r = train(tiny_rbm(n_v=8, n_h=5), data, method="tap2", epochs=1, batch_size=20, magnetizations="data")
    assert r.settings["magnetizations"] == "data"
    with pytest.raises(ValueError, match="magnetizations: 'data' applies to mf, tap2 and tap3 only"):
        train(tiny_rbm(n_v=8, n_h=5), data, method="pcd", epochs=1, magnetizations="data")
    with pytest.raises(ValueError, match="magnetizations: expected 'persistent' or 'data'"):
        train(tiny_rbm(n_v=8, n_h=5), data, method="tap2", epochs=1, magnetizations="batch")


def test_a_checkpoint_without_the_magnetizations_setting_reads_as_persistent(tmp_path):
    data = sample_data(tiny_rbm(n_v=8, n_h=5), 40)
    ck = tmp_path / "m.ckpt"
    train(RBM(8, 5, seed=0), data, method="tap2", epochs=1, batch_size=20, checkpoint=ck)
    from thermolearn.io import load_tensors, save_tensors
    tensors, meta = load_tensors(ck, kind="rbm-checkpoint")
    del meta["settings"]["magnetizations"]
    save_tensors(ck, tensors, meta)
    r = train(RBM(8, 5, seed=0), data, method="tap2", epochs=2, batch_size=20, checkpoint=ck)
    assert r.resumed_steps == 1
    with pytest.raises(CheckpointMismatch, match="magnetizations"):
        train(RBM(8, 5, seed=0), data, method="tap2", epochs=3, batch_size=20, checkpoint=ck,
              magnetizations="data")


def test_bad_input_is_rejected_with_clear_errors():
    rbm = RBM(4, 3)
    with pytest.raises(ValueError, match="binarize"):
        train(rbm, torch.full((10, 4), 0.3), epochs=1)
    with pytest.raises(ValueError, match="NaN"):
        train(rbm, torch.tensor([[0.0, 1.0, float("nan"), 1.0]]), epochs=1)
    with pytest.raises(ValueError, match="4 columns"):
        train(rbm, torch.zeros(10, 5), epochs=1)
    # data in [0, 1] is accepted once a binarization is asked for
    train(rbm, torch.full((10, 4), 0.3), epochs=1, binarize="stochastic")


def test_training_on_probabilities_is_an_explicit_option():
    rbm = RBM(4, 3, seed=0)
    probs = torch.rand(50, 4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="binarize"):           # non-binary data without the option
        train(rbm, probs, epochs=1)
    with pytest.raises(ValueError, match="^probabilities: "):
        train(rbm, probs, epochs=1, probabilities=True, binarize="threshold")
    with pytest.raises(TypeError, match="^probabilities: "):
        train(rbm, probs, epochs=1, probabilities="yes")
    with pytest.raises(ValueError, match=r"^data: probabilities=True needs values in \[0, 1\]"):
        train(rbm, probs * 2, epochs=1, probabilities=True)
    hist = train(rbm, probs, epochs=2, batch_size=10, probabilities=True, validation=probs[:10])
    assert hist.settings["probabilities"] is True and hist.steps == 2


def test_probabilities_are_a_trajectory_setting_of_the_checkpoint(tmp_path):
    teacher = tiny_rbm(n_v=8, n_h=5)
    data = sample_data(teacher, 100)
    ck = tmp_path / "run.ckpt"
    train(RBM(8, 5, seed=1), data, epochs=1, checkpoint=ck, **BASE)
    with pytest.raises(CheckpointMismatch, match="^probabilities: "):
        train(RBM(8, 5, seed=1), data, epochs=2, checkpoint=ck, probabilities=True, **BASE)


def test_the_positive_phase_uses_the_probabilities_as_they_are():
    """With a row of probabilities p the data term of the W gradient is p^T p(h | p)."""
    rbm = tiny_rbm(n_v=6, n_h=4, seed=3, dtype=torch.float64)
    p = torch.rand(3, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    st = new_state(rbm, "cd", p, 3, seed=0)
    gW, _, _ = batch_gradient(rbm, st, p, "cd", 1)
    v_neg, ph_neg = st.buffers["v"], st.buffers["ph"]          # the model term of CD-1
    torch.testing.assert_close(gW + v_neg.T @ ph_neg, p.T @ rbm.hidden_probabilities(p))


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

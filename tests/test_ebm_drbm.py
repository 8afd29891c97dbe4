import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from thermolearn.ebm import DiscriminativeRBM
from thermolearn.ebm.drbm import ClassRBM, check_labels, train_class_rbm
from thermolearn.errors import TrainingDiverged


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small problems: one torch and one BLAS thread are much faster than two on a loaded machine
    (LogisticRegression took 17 s instead of 0.2 s); the settings are restored after."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(old)


def tiny(seed=0, n_visible=4, n_classes=3, n_hidden=3, scale=1.0):
    """A float64 model with O(1) random parameters (so that every term matters)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: scale * torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    return ClassRBM.from_weights(r(n_visible, n_hidden), r(n_classes, n_hidden), r(n_visible), r(n_hidden),
                                 r(n_classes))


def all_binary(n):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def energy(m, x, y, h):
    """E(x, y, h) for rows x (n, n_v), labels y (n,), hidden states h (n, n_h)."""
    return -(x @ m.visible_bias) - (h @ m.hidden_bias) - m.class_bias[y] - ((x @ m.W) * h).sum(1) \
        - (m.U[y] * h).sum(1)


def enumerated_scores(m, x):
    """log sum_h exp(-E(x, y, h)) for every row and class: (n, C), by brute force over h."""
    H = all_binary(m.n_hidden)
    out = torch.empty(x.shape[0], m.n_classes, dtype=torch.float64)
    for i in range(x.shape[0]):
        for y in range(m.n_classes):
            e = energy(m, x[i].expand(H.shape[0], -1), torch.full((H.shape[0],), y), H)
            out[i, y] = torch.logsumexp(-e, 0)
    return out


# -- the model: exact p(y|x), free energy ----------------------------------------------------------

def test_p_y_given_x_equals_enumeration_over_hidden_states():
    m = tiny(n_visible=5, n_classes=4, n_hidden=6)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(7, 5, generator=g, dtype=torch.float64)       # intensities, not only binary
    x[:3] = (x[:3] > 0.5).double()
    brute = enumerated_scores(m, x)
    torch.testing.assert_close(m.log_proba(x), torch.log_softmax(brute, 1), rtol=0, atol=1e-12)
    torch.testing.assert_close(m.predict_proba(x).sum(1), torch.ones(7, dtype=torch.float64))
    # the free energy of every (x, y): -F = log sum_h exp(-E), including the b.x term
    for y in range(4):
        labels = torch.full((7,), y)
        torch.testing.assert_close(-m.free_energy(x, labels), brute[:, y], rtol=0, atol=1e-12)
    assert torch.equal(m.predict(x), brute.argmax(1))


def test_class_scores_are_stable_and_chunked():
    m = tiny(n_visible=3, n_classes=2, n_hidden=2, scale=300.0)    # huge pre-activations
    x = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    logp = m.log_proba(x)
    assert torch.isfinite(logp).all() and (logp <= 0).all()
    torch.testing.assert_close(logp, torch.log_softmax(enumerated_scores(m, x), 1), rtol=1e-12, atol=1e-9)
    # many rows: computed in chunks, identical to row-by-row
    big = ClassRBM(20, 10, 64, seed=0, dtype=torch.float64)
    X = torch.rand(8000, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s = big.class_scores(X)
    torch.testing.assert_close(s[[0, 4321, 7999]], big.class_scores(X[[0, 4321, 7999]]), rtol=1e-13, atol=1e-12)


def test_initialisation_seeded_and_shapes():
    a, b = ClassRBM(6, 3, 5, seed=4), ClassRBM(6, 3, 5, seed=torch.Generator().manual_seed(4))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters().values(), b.parameters().values()))
    assert not torch.equal(a.W, ClassRBM(6, 3, 5, seed=5).W)
    assert a.W.shape == (6, 5) and a.U.shape == (3, 5) and a.class_bias.shape == (3,)
    assert a.dtype == torch.float32 and abs(float(a.W.abs().max())) <= 1 / math.sqrt(6)
    assert "n_classes=3" in repr(a)


# -- gradients -------------------------------------------------------------------------------------

def test_discriminative_gradient_matches_autograd_and_finite_differences():
    m = tiny(seed=2, n_visible=4, n_classes=3, n_hidden=5)
    g = torch.Generator().manual_seed(3)
    x = torch.rand(6, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    grads = m.discriminative_gradient(x, y)
    # autograd of mean log p(y|x)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in m.parameters().items()}
    graph = m.copy()
    for name, p in params.items():
        setattr(graph, name, p)
    loss = graph.discriminative_loss(x, y)
    auto = torch.autograd.grad(-loss, list(params.values()), allow_unused=True)
    for name, got in zip(params, auto):
        got = torch.zeros_like(params[name]) if got is None else got      # b does not enter p(y|x)
        torch.testing.assert_close(grads[name], got, rtol=1e-10, atol=1e-12, msg=name)
    assert torch.equal(grads["visible_bias"], torch.zeros(4, dtype=torch.float64))   # b.x cancels in p(y|x)
    # central finite differences of every entry
    eps = 1e-6
    for name, p in m.parameters().items():
        fd = torch.empty_like(p)
        for idx in itertools.product(*map(range, p.shape)):
            old = float(p[idx])
            p[idx] = old + eps
            up = -float(m.discriminative_loss(x, y))
            p[idx] = old - eps
            down = -float(m.discriminative_loss(x, y))
            p[idx] = old
            fd[idx] = (up - down) / (2 * eps)
        torch.testing.assert_close(grads[name], fd, rtol=1e-6, atol=1e-8, msg=name)


def exact_generative_gradient(m, x, y):
    """d mean log p(x, y) / d theta by enumeration of every (x, y, h) (binary x)."""
    X, H = all_binary(m.n_visible), all_binary(m.n_hidden)
    states = [(xi, yi, hi) for xi in range(X.shape[0]) for yi in range(m.n_classes) for hi in range(H.shape[0])]
    xs = X[[s[0] for s in states]]
    ys = torch.tensor([s[1] for s in states])
    hs = H[[s[2] for s in states]]
    w = torch.softmax(-energy(m, xs, ys, hs), 0)                    # p(x, y, h)
    Ys = torch.nn.functional.one_hot(ys, m.n_classes).double()
    model = {"W": xs.T @ (w[:, None] * hs), "U": Ys.T @ (w[:, None] * hs), "visible_bias": w @ xs,
             "hidden_bias": w @ hs, "class_bias": w @ Ys}
    ph = torch.sigmoid(x @ m.W + m.hidden_bias + m.U[y])           # data term: E[h | x, y]
    Y = torch.nn.functional.one_hot(y, m.n_classes).double()
    n = x.shape[0]
    data = {"W": x.T @ ph / n, "U": Y.T @ ph / n, "visible_bias": x.mean(0), "hidden_bias": ph.mean(0),
            "class_bias": Y.mean(0)}
    return {k: data[k] - model[k] for k in data}


def test_generative_gradient_is_cd_on_the_joint():
    """With many sweeps, CD-k is an unbiased estimate of the exact gradient of log p(x, y): the mean of
    CD-50 over 40,000 chains from one example agrees with the enumeration within 5 standard errors."""
    m = tiny(seed=5, n_visible=3, n_classes=2, n_hidden=3, scale=0.7)
    x = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64).repeat(40_000, 1)
    y = torch.zeros(40_000, dtype=torch.int64)
    exact = exact_generative_gradient(m, x[:1], y[:1])
    # per-chain estimates: the batch mean of CD over 40,000 rows, and its standard error from 20 blocks
    blocks = [m.generative_gradient(x[i::20], y[i::20], k=50, seed=i) for i in range(20)]
    for name in exact:
        est = torch.stack([b[name] for b in blocks])
        mean, sem = est.mean(0), est.std(0) / math.sqrt(est.shape[0])
        assert ((mean - exact[name]).abs() <= 5 * sem + 1e-3).all(), (name, mean, exact[name], sem)
    # CD-1 from the data is not the exact gradient: the test above can fail
    cd1 = m.generative_gradient(x, y, k=1, seed=0)
    assert (cd1["W"] - exact["W"]).abs().max() > 0.01


def test_hybrid_gradient_is_discriminative_plus_alpha_generative():
    m = tiny(seed=6)
    x = (torch.rand(8, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) > 0.5).double()
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    d = m.discriminative_gradient(x, y)
    gen = m.generative_gradient(x, y, k=2, seed=9)
    h = m.hybrid_gradient(x, y, alpha=0.3, k=2, seed=9)
    for name in d:
        torch.testing.assert_close(h[name], d[name] + 0.3 * gen[name], rtol=1e-12, atol=1e-14)
    g0 = m.hybrid_gradient(x, y, alpha=0.0, seed=1)
    assert all(torch.equal(g0[k], d[k]) for k in d)


def test_gibbs_sampling_matches_the_joint_distribution():
    m = tiny(seed=7, n_visible=2, n_classes=2, n_hidden=2, scale=0.8)
    n = 20_000
    x, y = m.gibbs(torch.zeros(n, 2, dtype=torch.float64), torch.zeros(n, dtype=torch.int64), steps=30, seed=0)
    X, H = all_binary(2), all_binary(2)
    p = torch.zeros(4, 2, dtype=torch.float64)
    for i in range(4):
        for c in range(2):
            p[i, c] = torch.exp(-energy(m, X[i].expand(4, -1), torch.full((4,), c), H)).sum()
    p /= p.sum()
    code = (x[:, 0] * 2 + x[:, 1]).long()
    freq = torch.zeros(4, 2, dtype=torch.float64)
    freq.index_put_((code, y), torch.ones(n, dtype=torch.float64), accumulate=True)
    assert (freq / n - p).abs().max() < 5 * math.sqrt(0.25 / n)


# -- labels and inputs -----------------------------------------------------------------------------

def test_labels_outside_the_classes_are_errors_naming_the_argument():
    m = ClassRBM(3, 2, 4, seed=0)
    x = torch.zeros(2, 3)
    for bad, what in (([0, 2], "in 0..1"), ([-1, 0], "in 0..1"), ([0.5, 1.0], "non-integer"),
                      ([[0, 1]], "1-d"), ([True, False], "dtype")):
        with pytest.raises(ValueError, match=r"^y: .*" + what):
            m.discriminative_loss(x, torch.as_tensor(bad))
    with pytest.raises(ValueError, match="^y: expected 2 labels"):
        m.discriminative_gradient(x, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="^x: expected 3 columns"):
        m.class_scores(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="^x: contains 1 NaN"):
        m.predict(torch.tensor([[0.0, float("nan"), 1.0]]))
    assert torch.equal(check_labels(np.array([1.0, 0.0]), 2), torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="^validation: "):
        check_labels([3], 2, "validation")


def test_trainer_argument_errors():
    m = ClassRBM(3, 2, 4, seed=0)
    x, y = torch.rand(10, 3), torch.randint(0, 2, (10,))
    for kwargs, name in (({"objective": "joint"}, "objective"), ({"alpha": -1.0}, "alpha"),
                         ({"epochs": -1}, "epochs"), ({"batch_size": 0}, "batch_size"), ({"lr": 0.0}, "lr"),
                         ({"k": 0}, "k"), ({"weight_decay": -0.1}, "weight_decay"), ({"patience": 0}, "patience"),
                         ({"validation": (x,)}, "validation"), ({"seed": -3}, "seed")):
        with pytest.raises(ValueError, match=f"^{name}: "):
            train_class_rbm(m, x, y, **kwargs)
    with pytest.raises(ValueError, match=r"^x: objective='hybrid' needs values in \[0, 1\]"):
        train_class_rbm(m, 2 * x + 1, y, objective="hybrid")
    with pytest.raises(ValueError, match=r"^y: expected class indices in 0..1"):
        train_class_rbm(m, x, y + 1)
    with pytest.raises(TypeError, match="^model: "):
        train_class_rbm("rbm", x, y)
    seen = []
    x = torch.rand(10, 3, generator=torch.Generator().manual_seed(0))
    with pytest.raises(TrainingDiverged, match="epoch 2"):            # float32 overflows in epoch 2
        train_class_rbm(m, x * 1e10, torch.tensor([0, 1] * 5), lr=1e30, epochs=3, seed=0,
                        callback=lambda record, model: seen.append(model.copy()))
    assert len(seen) == 1 and all(torch.equal(getattr(seen[0], k), v) for k, v in m.parameters().items())


# -- training ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits64():
    """Thresholded digits (X = digits.data > 7), a fixed stratified split."""
    X, y = load_digits(return_X_y=True)
    return train_test_split((X > 7).astype(np.float64), y, test_size=0.3, random_state=0, stratify=y)


@pytest.mark.parametrize("objective,lr,max_error", [("discriminative", 0.2, 0.25), ("generative", 0.1, 0.5),
                                                     ("hybrid", 0.2, 0.25)])
def test_training_lowers_the_discriminative_loss(digits64, objective, lr, max_error):
    Xtr, Xte, ytr, yte = digits64
    x, y = torch.from_numpy(Xtr[:600]), torch.from_numpy(ytr[:600])
    m = ClassRBM(64, 10, 50, seed=0, dtype=torch.float64)
    before = float(m.discriminative_loss(x, y))
    r = train_class_rbm(m, x, y, objective=objective, epochs=6, lr=lr, seed=0)
    after = float(m.discriminative_loss(x, y))
    print(f"{objective}: -log p(y|x) {before:.3f} -> {after:.3f}")
    assert after < before - 0.3, (before, after)
    assert r.steps == 6 and r.step_unit == "epoch" and [h["step"] for h in r.history] == [1, 2, 3, 4, 5, 6]
    assert r.best_valid_error is None and r.best_step == 6 and not r.stopped_early
    assert m.error_rate(torch.from_numpy(Xte), torch.from_numpy(yte)) < max_error


def test_early_stopping_keeps_the_best_validation_epoch(digits64):
    Xtr, Xte, ytr, yte = digits64
    x, y = torch.from_numpy(Xtr[:300]), torch.from_numpy(ytr[:300])
    xv, yv = torch.from_numpy(Xtr[900:]), torch.from_numpy(ytr[900:])
    m = ClassRBM(64, 10, 30, seed=1, dtype=torch.float64)
    seen = []
    r = train_class_rbm(m, x, y, epochs=60, lr=0.3, validation=(xv, yv), patience=3, seed=1,
                        callback=lambda rec, model: seen.append((rec["valid_error"], model.copy())))
    errors = r.column("valid_error")
    assert r.best_valid_error == min(errors) and errors[r.best_step - 1] == min(errors)
    assert errors.index(min(errors)) == r.best_step - 1             # the first epoch that reached it
    assert m.error_rate(xv, yv) == pytest.approx(r.best_valid_error)
    assert torch.equal(m.W, seen[r.best_step - 1][1].W)
    if r.stopped_early:
        assert r.steps == r.best_step + 3 and r.steps < 60
    assert all(isinstance(h["step"], int) and isinstance(h["valid_loss"], float) for h in r.history)


def test_same_seed_same_training():
    x = torch.rand(40, 5, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(1))
    runs = []
    for seed in (3, torch.Generator().manual_seed(3), 4):
        m = ClassRBM(5, 3, 6, seed=0)
        train_class_rbm(m, x, y, objective="hybrid", epochs=2, batch_size=7, seed=seed)
        runs.append(m.W.clone())
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


# -- the scikit-learn estimator ----------------------------------------------------------------------

@parametrize_with_checks([DiscriminativeRBM()])
def test_sklearn_compatible(estimator, check, monkeypatch):
    # scikit-learn runs its array-API check only with this set; set it so that it runs.
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


def test_defaults_at_least_as_accurate_as_logistic_regression(digits64):
    """Thresholded digits (X = digits.data > 7), one fixed split: both classifiers are fitted here."""
    Xtr, Xte, ytr, yte = digits64
    logistic = LogisticRegression().fit(Xtr, ytr).score(Xte, yte)
    drbm = DiscriminativeRBM(random_state=0).fit(Xtr, ytr).score(Xte, yte)
    print(f"thresholded digits test accuracy: DiscriminativeRBM() {drbm:.4f}, LogisticRegression() {logistic:.4f}")
    assert drbm >= logistic


def test_any_labels_and_float64_probabilities(digits64):
    Xtr, Xte, ytr, yte = digits64
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    codes = np.array([3, 8, 11, 20, 21, 40, 41, 42, 70, 99])
    a = DiscriminativeRBM(n_components=30, n_iter=5, random_state=0).fit(Xtr, names[ytr])
    b = DiscriminativeRBM(n_components=30, n_iter=5, random_state=0).fit(Xtr, codes[ytr])
    assert list(a.classes_) == sorted(names) and list(b.classes_) == list(codes)
    assert set(a.predict(Xte)) <= set(names) and b.predict(Xte).dtype == codes.dtype
    P = b.predict_proba(Xte)
    assert P.dtype == np.float64 and P.shape == (len(Xte), 10)
    np.testing.assert_allclose(P.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.log(P), b.predict_log_proba(Xte), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(b.predict(Xte), b.classes_[P.argmax(1)])
    # predict_proba is the exact p(y|x) of the fitted model
    torch.testing.assert_close(torch.from_numpy(P), b.model().predict_proba(torch.from_numpy(Xte)))
    # float32 data: float32 parameters, float64 probabilities
    c = clone(b).fit(Xtr.astype(np.float32), codes[ytr])
    assert c.components_.dtype == np.float32 and c.predict_proba(Xte.astype(np.float32)).dtype == np.float64
    assert b.components_.shape == (30, 64) and b.class_components_.shape == (10, 30)
    assert b.n_iter_ == 5 and len(b.history_) == 5


def test_estimator_errors_and_verbose(digits64, capsys):
    Xtr, _, ytr, _ = digits64
    with pytest.raises(ValueError, match=r"^X: objective='generative' needs values in \[0, 1\]"):
        DiscriminativeRBM(objective="generative", n_iter=1).fit(Xtr * 16, ytr)
    with pytest.raises(ValueError, match="objective"):
        DiscriminativeRBM(objective="joint").fit(Xtr, ytr)
    with pytest.raises(ValueError, match="continuous"):
        DiscriminativeRBM(n_iter=1).fit(Xtr, ytr + 0.5)
    DiscriminativeRBM(n_components=5, n_iter=2, verbose=1, random_state=0).fit(Xtr[:50], ytr[:50])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[DiscriminativeRBM] Iteration 1, loss = ") and lines[0].endswith("s")
    assert ", time = " in lines[1]


# -- the experiment ----------------------------------------------------------------------------------

def test_experiment_quick_point_and_plot(tmp_path):
    from thermolearn.experiments.ebm import drbm_mnist
    from thermolearn.experiments.registry import get

    exp = get("drbm-mnist")
    assert exp.name == "drbm-mnist" and len(exp.anchors) == 3
    p = {k: v[0] for k, v in drbm_mnist.QUICK_GRID[1].items()}
    p.update(seed=0, epochs=10)
    seen = []
    r = drbm_mnist.measure(p, on_epoch=seen.append)
    assert 0 <= r["test_error"] < 0.12 and 1 <= r["best_epoch"] <= r["epochs_run"] <= 10
    assert len(seen) == r["epochs_run"] and "test_error" in seen[0]
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    records = [dict(p, **r), dict(p, objective="hybrid", **dict(r, test_error=0.05))]
    fig = Figure(figsize=(10, 4))
    drbm_mnist.plot(records, fig)
    fig.savefig(tmp_path / "drbm.png")
    assert (tmp_path / "drbm.png").stat().st_size > 1000

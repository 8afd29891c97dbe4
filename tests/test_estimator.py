import importlib.util
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from thermolearn.ebm import RBM, exact_log_partition
from thermolearn.ebm.estimator import BernoulliRBM

HAS_TAP = importlib.util.find_spec("thermolearn.ebm.tap") is not None
HAS_AIS = importlib.util.find_spec("thermolearn.ebm.ais") is not None


@parametrize_with_checks([BernoulliRBM(n_components=8, n_iter=2)]
                         + ([BernoulliRBM(n_components=8, n_iter=2, method="tap2", k=2)] if HAS_TAP else []))
def test_sklearn_compatible(estimator, check, monkeypatch):
    # scikit-learn runs its array-API check (NumPy namespace, dispatch on) only with this set;
    # set it so that that check runs instead of being skipped.
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


def binary_data(n=200, d=8, seed=0):
    rng = np.random.RandomState(seed)
    proto = rng.rand(3, d) < 0.5
    X = proto[rng.randint(3, size=n)] ^ (rng.rand(n, d) < 0.1)
    return X.astype(np.float64)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.3, random_state=0, stratify=y)


def test_fitted_attributes_and_shapes():
    X = binary_data()
    est = BernoulliRBM(n_components=5, n_iter=3, random_state=0).fit(X)
    assert est.components_.shape == (5, 8)
    assert est.intercept_hidden_.shape == (5,)
    assert est.intercept_visible_.shape == (8,)
    assert est.n_features_in_ == 8 and est.n_iter_ == 3
    assert len(est.history_) == 3 and [r["step"] for r in est.history_] == [1, 2, 3]
    assert est.components_.dtype == np.float64          # float64 input -> float64 model
    Xf = X.astype(np.float32)
    est32 = clone(est).fit(Xf)
    assert est32.components_.dtype == np.float32
    H = est32.transform(Xf)
    assert H.shape == (200, 5) and H.dtype == np.float32 and ((H >= 0) & (H <= 1)).all()
    assert est.gibbs(X[:4]).shape == (4, 8)
    S = est.sample(6, n_steps=20, random_state=1)
    assert S.shape == (6, 8) and set(np.unique(S)) <= {0.0, 1.0}
    np.testing.assert_array_equal(S, est.sample(6, n_steps=20, random_state=1))
    assert list(est.get_feature_names_out()) == [f"bernoullirbm{i}" for i in range(5)]


def test_same_seed_same_result_and_pickle():
    X = binary_data()
    a = BernoulliRBM(n_components=6, n_iter=3, random_state=7).fit(X)
    b = BernoulliRBM(n_components=6, n_iter=3, random_state=7).fit(X)
    np.testing.assert_array_equal(a.components_, b.components_)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(c.score_samples(X), a.score_samples(X))
    np.testing.assert_array_equal(c.gibbs(X), a.gibbs(X))   # the random stream is pickled too
    a.fit(X)                                                 # refit: identical again
    np.testing.assert_array_equal(a.components_, b.components_)
    Xf = X.astype(np.float32)                                # float32: the numba sampler
    np.testing.assert_array_equal(clone(a).fit(Xf).components_, clone(a).fit(Xf).components_)


@pytest.mark.parametrize("dtype_in,dtype_out", [(np.float32, np.float32), (np.float64, np.float64),
                                                (int, np.float64), (bool, np.float64)])
def test_dtype_rule_is_scikit_learns(dtype_in, dtype_out):
    """As sklearn's test_transformer_dtypes_casting: float32 stays float32, the rest is float64."""
    X = binary_data(n=60).astype(dtype_in)
    est = BernoulliRBM(n_components=4, batch_size=5, n_iter=2, random_state=42)
    Xt = est.fit_transform(X)
    assert Xt.dtype == dtype_out and est.components_.dtype == dtype_out
    assert est.h_samples_.dtype == dtype_out and est.score_samples(X).dtype == np.float64


@pytest.mark.parametrize("method", ["pcd", "cd", "tap2"])
def test_h_samples_are_the_negative_phase_hidden_states(method):
    X = binary_data(n=60)
    est = BernoulliRBM(n_components=4, batch_size=5, n_iter=2, method=method, random_state=0).fit(X)
    assert est.h_samples_.shape == (5, 4)
    if method == "tap2":                    # magnetizations
        assert ((est.h_samples_ > 0) & (est.h_samples_ < 1)).all()
    else:                                   # binary samples
        assert set(np.unique(est.h_samples_)) <= {0.0, 1.0}
    assert BernoulliRBM(n_components=4, batch_size=5, n_iter=0).fit(X).h_samples_.shape == (5, 4)


def test_verbose_prints_scikit_learn_iteration_lines(capsys):
    import re

    X = binary_data(n=60)
    quiet = BernoulliRBM(n_components=3, batch_size=5, n_iter=2, random_state=42).fit(X)
    capsys.readouterr()
    loud = BernoulliRBM(n_components=3, batch_size=5, n_iter=2, random_state=42, verbose=True).fit(X)
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2 and captured.err == ""          # no progress bar
    for i, line in enumerate(lines, 1):                    # sklearn's test_sparse_and_verbose pattern
        assert re.match(rf"\[BernoulliRBM\] Iteration {i}, pseudo-likelihood = -?(\d)+(\.\d+)?, "
                        r"time = (\d|\.)+s$", line), line
    np.testing.assert_array_equal(quiet.components_, loud.components_)   # verbose changes nothing
    pl = float(lines[-1].split("= ")[1].split(",")[0])
    assert -8 * np.log(2) * 2 < pl < 0                     # 8 features: a log-probability per row


def test_partial_fit_continues():
    X = binary_data()
    est = BernoulliRBM(n_components=6, random_state=0, learning_rate=lambda e: 0.1 / (1 + e))
    for i in range(3):
        est.partial_fit(X[i * 50:(i + 1) * 50])
    assert est.n_iter_ == 3 and [r["step"] for r in est.history_] == [1, 2, 3]
    assert [r["lr"] for r in est.history_] == pytest.approx([0.1, 0.05, 0.1 / 3])
    W = est.components_.copy()
    est.partial_fit(X)
    assert not np.array_equal(W, est.components_)
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(X[:, :5])


def test_score_samples_is_exact_log_likelihood():
    X = binary_data(d=7)
    est = BernoulliRBM(n_components=4, n_iter=5, learning_rate=0.1, random_state=0).fit(X)
    rbm = RBM.from_weights(est.components_.T, est.intercept_visible_, est.intercept_hidden_,
                           dtype=torch.float64)
    log_z = exact_log_partition(rbm)
    expected = (-rbm.free_energy(torch.from_numpy(X)) - log_z).numpy()
    np.testing.assert_allclose(est.score_samples(X), expected, rtol=1e-12, atol=1e-12)
    assert est.score(X) == pytest.approx(expected.mean(), rel=1e-12)
    assert est.log_partition() == pytest.approx(log_z, rel=1e-12)
    # the probabilities of all 2^7 states sum to one
    from thermolearn.ebm.exact import all_states
    assert np.exp(est.score_samples(all_states(7).numpy())).sum() == pytest.approx(1.0, rel=1e-10)


def test_score_samples_with_beta():
    X = binary_data(d=6)
    est = BernoulliRBM(n_components=5, n_iter=3, beta=2.0, random_state=0).fit(X)
    from thermolearn.ebm.exact import all_states
    assert np.exp(est.score_samples(all_states(6).numpy())).sum() == pytest.approx(1.0, rel=1e-10)


@pytest.fixture(scope="module")
def large_model():
    """Smaller layer of 21 units: score_samples estimates log Z by AIS."""
    X = binary_data(n=300, d=21, seed=1)
    return X, BernoulliRBM(n_components=24, n_iter=2, random_state=0).fit(X)


@pytest.mark.skipif(not HAS_AIS, reason="thermolearn.ebm.ais not available")
def test_score_samples_uses_ais_for_large_models(large_model):
    from thermolearn.ebm.ais import ais_log_partition, base_rate_bias

    X, est = large_model
    s = est.score_samples(X[:10])
    rbm = RBM.from_weights(est.components_.T, est.intercept_visible_, est.intercept_hidden_)
    ais = ais_log_partition(rbm, n_chains=100, n_betas=10_000, base_visible_bias=base_rate_bias(X), seed=0)
    free = (-rbm.to(dtype=torch.float64).free_energy(torch.from_numpy(X[:10]))).numpy()
    np.testing.assert_allclose(s, free - ais.log_z, rtol=1e-12)
    assert est.log_partition() == ais.log_z
    np.testing.assert_array_equal(est.score_samples(X[:10]), s)   # cached log Z


@pytest.mark.skipif(not HAS_AIS, reason="thermolearn.ebm.ais not available")
def test_ais_log_partition_is_close_to_exact(large_model):
    _, est = large_model
    rbm = RBM.from_weights(est.components_.T, est.intercept_visible_, est.intercept_hidden_)
    assert est.log_partition() == pytest.approx(exact_log_partition(rbm, max_units=21), abs=0.05)


def test_binarize_none_rejects_non_binary_data():
    X = np.random.RandomState(0).rand(20, 4)
    unfitted = BernoulliRBM(n_components=3, binarize=None)
    with pytest.raises(ValueError, match="binarize"):
        unfitted.fit(X)
    assert not hasattr(unfitted, "components_") and not hasattr(unfitted, "random_state_")
    est = BernoulliRBM(n_components=3, n_iter=1, binarize=None).fit((X > 0.5).astype(float))
    with pytest.raises(ValueError, match="binarize"):
        est.transform(X)


def test_binarize_stochastic_needs_unit_interval():
    X = np.random.RandomState(0).rand(40, 4)
    est = BernoulliRBM(n_components=3, n_iter=2, binarize="stochastic", random_state=0).fit(X)
    np.testing.assert_allclose(est.transform(X).shape, (40, 3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        est.transform(X * 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        clone(est).fit(X - 0.5)


@pytest.mark.parametrize("params, match", [
    ({"method": "bogus"}, "method"),
    ({"n_components": 0}, "n_components"),
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"binarize": "round"}, "binarize"),
])
def test_invalid_parameters(params, match):
    with pytest.raises(InvalidParameterError, match=match):
        BernoulliRBM(**params).fit(binary_data(n=20))


def test_bad_device_is_a_value_error():
    with pytest.raises(ValueError, match="device"):
        BernoulliRBM(n_components=2, device="nonsense").fit(binary_data(n=20))


@pytest.mark.skipif(not HAS_TAP, reason="thermolearn.ebm.tap not available")
def test_tap2_method():
    X = binary_data()
    est = BernoulliRBM(n_components=6, method="tap2", k=3, n_iter=5, learning_rate=0.05,
                       random_state=0).fit(X)
    assert np.isfinite(est.components_).all()
    assert est.score(X) > BernoulliRBM(n_components=6, n_iter=0, random_state=0).fit(X).score(X)


def test_pipeline_on_digits(digits):
    X_train, X_test, y_train, y_test = digits
    pipe = Pipeline([
        ("rbm", BernoulliRBM(n_components=128, n_iter=15, learning_rate=0.05,
                             binarize="stochastic", random_state=0)),
        ("logistic", LogisticRegression(C=10.0, max_iter=2000)),
    ])
    pipe.fit(X_train, y_train)
    accuracy = pipe.score(X_test, y_test)
    assert accuracy > 0.92, accuracy       # measured 0.948 (0.952 with random_state=1)


def test_grid_search(digits):
    X_train, _, y_train, _ = digits
    pipe = Pipeline([("rbm", BernoulliRBM(n_iter=2, random_state=0)),
                     ("logistic", LogisticRegression(max_iter=300))])
    search = GridSearchCV(pipe, {"rbm__n_components": [8, 16]}, cv=2).fit(X_train[:400], y_train[:400])
    assert search.best_params_["rbm__n_components"] in (8, 16)
    # the RBM alone, selected by its own log-likelihood (score)
    X = binary_data(d=6)
    search = GridSearchCV(BernoulliRBM(n_iter=3, random_state=0), {"n_components": [2, 6]}, cv=2).fit(X)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_device():
    X = binary_data()
    est = BernoulliRBM(n_components=6, n_iter=2, device="cuda", random_state=0).fit(X)
    assert isinstance(est.components_, np.ndarray)
    assert isinstance(est.transform(X), np.ndarray) and isinstance(est.score_samples(X), np.ndarray)
    assert est.sample(3, n_steps=5).shape == (3, 8) and est.gibbs(X).shape == X.shape

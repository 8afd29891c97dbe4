"""A scikit-learn estimator around the library's RBM: ``BernoulliRBM``.

A thin shell: the algorithms are :class:`~thermolearn.ebm.RBM`,
:func:`~thermolearn.ebm.training.train`, :func:`~thermolearn.ebm.exact_log_partition` and
:func:`~thermolearn.ebm.ais.ais_log_partition`; this module only converts between scikit-learn's
conventions (NumPy arrays, ``random_state``, fitted attributes ending in ``_``) and the library's
(torch tensors, explicit seeds).

It follows scikit-learn's own ``sklearn.neural_network.BernoulliRBM`` (same fitted attributes,
``transform`` -> p(h=1|v), ``gibbs``), with two differences: ``score_samples`` is the true
log-likelihood log p(v) = -beta F(v) - log Z (exact log Z for small models, AIS otherwise) rather
than a pseudo-likelihood, and the negative phase can be any of the library's methods (cd, pcd,
mf, tap2, tap3). It passes ``sklearn.utils.estimator_checks.check_estimator``, so it can be used
in Pipelines and GridSearchCV.

Visible units are binary. ``binarize`` says how data are mapped to them, in every method that
takes ``X``:

- ``"threshold"`` (default): v = 1 where x > 0.5, else 0 (any real data are accepted);
- ``"stochastic"``: x must lie in [0, 1]; training draws v ~ Bernoulli(x) (one draw per call
  of ``fit``/``partial_fit``, made by ``train``); the other methods evaluate their formula at
  v = x (``transform`` -> the mean-field p(h=1|x); ``score_samples`` -> the free-energy
  formula, which is log p(v) for binary x; ``gibbs`` starts its sweep from x);
- ``None``: x must already be 0/1, otherwise a ValueError asks for ``binarize``.
"""

from __future__ import annotations

import hashlib
import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .._numerics import check_binary
from ..seeding import as_generator
from .exact import MAX_EXACT_UNITS, exact_log_partition
from .rbm import RBM
from .training import METHODS, train

#: AIS settings used by ``score_samples`` above that size.
AIS_N_BETAS = 10_000
AIS_N_CHAINS = 100
AIS_SEED = 0

_SEED_MAX = 2**31 - 1


class BernoulliRBM(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Bernoulli restricted Boltzmann machine (binary visible and hidden units).

    Parameters
    ----------
    n_components : int, default=256
        Number of hidden units.
    method : {"cd", "pcd", "mf", "tap2", "tap3"}, default="pcd"
        Estimator of the model term of the gradient (see :mod:`thermolearn.ebm.training`):
        contrastive divergence, persistent CD, or persistent naive mean-field / TAP2 / TAP3
        magnetizations.
    k : int, default=1
        Gibbs sweeps (cd, pcd) or fixed-point sweeps (mf, tap) per update.
    learning_rate : float or callable epoch -> float, default=0.05
        Step size; it multiplies the gradient averaged over the batch.
    batch_size : int, default=10
        Rows per update (the last partial batch of each epoch is skipped).
    n_iter : int, default=10
        Epochs (passes over the data) of ``fit``; 0 leaves the initial model, as in scikit-learn.
    momentum : float or callable epoch -> float, default=0.5
    weight_decay : float, default=0.0
        L2 penalty on the weights.
    beta : float, default=1.0
        Inverse temperature of the model, p(v, h) ~ exp(-beta E(v, h)).
    binarize : {"threshold", "stochastic"} or None, default="threshold"
        How data are mapped to binary visible units (see the module docstring).
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the shuffling, the chains and the sampling. An int
        gives identical results on every ``fit``.
    verbose : int, default=0
        Print one line per epoch in scikit-learn's format, ``[BernoulliRBM] Iteration 1,
        pseudo-likelihood = -25.39, time = 0.01s`` (the pseudo-likelihood of the training data,
        one randomly chosen unit flipped per row, as scikit-learn computes it).
    device : str, torch.device or None, default=None
        Where the computations run ("cpu" when None, "cuda" for a GPU). Fitted attributes are
        NumPy arrays either way.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Weights W^T (scikit-learn's layout; the library's ``RBM.W`` is its transpose).
    intercept_hidden_ : ndarray of shape (n_components,)
    intercept_visible_ : ndarray of shape (n_features,)
    n_features_in_ : int
    feature_names_in_ : ndarray of str, only when X has string column names
    n_iter_ : int
        Epochs trained so far (``fit`` sets it to ``n_iter``, ``partial_fit`` adds one).
    h_samples_ : ndarray of shape (batch_size, n_components)
        Hidden states of the negative phase after the last update (as scikit-learn's): the
        persistent chains for pcd, the last Gibbs sample for cd, the magnetizations for mf/tap.
    history_ : list of dict
        One record per epoch from :func:`~thermolearn.ebm.training.train` (free energy of a
        training subset, reconstruction error, seconds, learning rate, momentum) with ``step``
        the epochs done so far.
    random_state_ : numpy.random.RandomState
        The random stream that ``partial_fit``, ``gibbs`` and ``sample`` draw their seeds from.

    The parameters are float32 when ``fit`` (or the first ``partial_fit``) got float32 data,
    otherwise float64 (integer, boolean and float64 input), scikit-learn's rule; ``transform``
    returns that dtype.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "method": [StrOptions(set(METHODS))],
        "k": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither"), callable],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "n_iter": [Interval(Integral, 0, None, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="left"), callable],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="neither")],
        "binarize": [StrOptions({"threshold", "stochastic"}), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "device": [str, torch.device, None],
    }

    def __init__(self, n_components=256, method="pcd", k=1, learning_rate=0.05, batch_size=10,
                 n_iter=10, momentum=0.5, weight_decay=0.0, beta=1.0, binarize="threshold",
                 random_state=None, verbose=0, device=None):
        self.n_components = n_components
        self.method = method
        self.k = k
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.beta = beta
        self.binarize = binarize
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    # -- fitting ---------------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the model to the rows of X (``n_iter`` epochs from a fresh initialisation).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data (sparse input is densified).
        y : ignored

        Returns
        -------
        self
        """
        X = self._validate_X(X, reset=True)
        dtype = _dtype_of(X)
        V = self._visible(X, dtype)
        rng = check_random_state(self.random_state)
        rbm = self._new_rbm(V, dtype, rng)
        self._train(rbm, V, rng, epochs=int(self.n_iter), first=True)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """One epoch over the rows of X, continuing from the current parameters.

        The first call initialises the model (its dtype follows X's as in ``fit``). The momenta
        and persistent chains (or magnetizations) are re-created at every call; callable
        ``learning_rate``/``momentum`` are evaluated at the running epoch count ``n_iter_``.

        Returns
        -------
        self
        """
        first = not hasattr(self, "components_")
        X = self._validate_X(X, reset=first)
        rng = self.random_state_ if hasattr(self, "random_state_") else check_random_state(self.random_state)
        if first:
            dtype = _dtype_of(X)
            V = self._visible(X, dtype)
            rbm = self._new_rbm(V, dtype, rng)
        else:
            rbm = self._rbm()
            V = self._visible(X, _np_dtype(rbm))
        self._train(rbm, V, rng, epochs=1, first=first)
        return self

    def _new_rbm(self, V, dtype, rng) -> RBM:
        return RBM(V.shape[1], int(self.n_components), beta=self.beta, seed=int(rng.randint(_SEED_MAX)),
                   device=self._torch_device(),
                   dtype=torch.float64 if dtype == np.float64 else torch.float32)

    def _train(self, rbm, V, rng, epochs, first):
        """Train ``rbm`` on the visible data V for ``epochs``; then set the fitted attributes
        (only then, so that a failure leaves the estimator as it was)."""
        offset = 0 if first else getattr(self, "n_iter_", 0)
        result = None if epochs == 0 else train(
            rbm, torch.from_numpy(V), method=self.method, k=int(self.k), epochs=epochs,
            batch_size=int(self.batch_size), lr=_shifted(self.learning_rate, offset),
            momentum=_shifted(self.momentum, offset), weight_decay=float(self.weight_decay),
            binarize="stochastic" if self.binarize == "stochastic" else None,
            seed=int(rng.randint(_SEED_MAX)),
            callback=_IterationLines(type(self).__name__, V, offset) if self.verbose else None)
        records = [] if result is None else [dict(r, step=offset + r["step"]) for r in result.history]
        # running mean of the visible data: the base-rate model of AIS in score_samples
        mean, n = V.mean(0, dtype=np.float64), V.shape[0]
        n0 = 0 if first else getattr(self, "_n_samples_seen", 0)
        if n0:
            mean, n = (n0 * self._visible_mean + n * mean) / (n0 + n), n0 + n
        self.random_state_ = rng
        self.history_ = records if first else list(getattr(self, "history_", [])) + records
        self.n_iter_ = offset + epochs
        self.components_ = np.ascontiguousarray(rbm.W.T.cpu().numpy())
        self.intercept_hidden_ = rbm.hidden_bias.cpu().numpy().copy()
        self.intercept_visible_ = rbm.visible_bias.cpu().numpy().copy()
        self.h_samples_ = (np.zeros((int(self.batch_size), rbm.n_hidden), dtype=_np_dtype(rbm))
                           if result is None else result.negative_hidden.cpu().numpy().copy())
        self._visible_mean, self._n_samples_seen = mean, n
        self._log_z_cache = {}

    # -- transforming and scoring ---------------------------------------------------------------
    def transform(self, X):
        """Hidden activation probabilities p(h=1|v), shape (n_samples, n_components)."""
        check_is_fitted(self)
        rbm = self._rbm()
        v = self._model_input(X, rbm)
        with torch.inference_mode():
            return rbm.hidden_probabilities(v).cpu().numpy()

    def score_samples(self, X):
        """Log-likelihood log p(v) = -beta F(v) - log Z of each row, in nats (float64).

        log Z is exact (enumeration of the smaller layer, float64) when that layer has at most
        ``thermolearn.ebm.exact.MAX_EXACT_UNITS`` units, otherwise an AIS estimate
        (``ais_log_partition`` with 100 chains, 10,000 inverse temperatures and the base-rate
        model of the training data; AIS tends to under-estimate log Z, so these likelihoods
        tend to be a little high). log Z is cached per fitted state.
        """
        check_is_fitted(self)
        rbm = self._rbm()
        v = self._model_input(X, rbm)
        log_z = self._log_partition(rbm)
        with torch.inference_mode():
            r64 = rbm.to(dtype=torch.float64)
            log_p = -r64.beta * r64.free_energy(v.to(torch.float64)) - log_z
        return log_p.cpu().numpy()

    def score(self, X, y=None):
        """Mean log-likelihood of the rows of X in nats (see :meth:`score_samples`)."""
        return float(np.mean(self.score_samples(X)))

    def log_partition(self):
        """log Z(beta) of the fitted model (exact or AIS, as in :meth:`score_samples`)."""
        check_is_fitted(self)
        return self._log_partition(self._rbm())

    # -- sampling -------------------------------------------------------------------------------
    def gibbs(self, v):
        """One block-Gibbs sweep v -> h -> v' from each row of ``v``; returns v' (0/1 floats)."""
        check_is_fitted(self)
        rbm = self._rbm()
        x = self._model_input(v, rbm)
        g = as_generator(self._draw_seed(), rbm.device)
        with torch.inference_mode():
            return rbm.gibbs(x, 1, seed=g).cpu().numpy()

    def sample(self, n_samples=1, n_steps=1000, random_state=None):
        """Samples of the model: ``n_samples`` chains started at uniformly random visible
        states, each run for ``n_steps`` Gibbs sweeps. Returns (n_samples, n_features) 0/1 floats.

        random_state : None draws from ``random_state_``; an int or RandomState seeds the chains.
        """
        check_is_fitted(self)
        for name, value, low in (("n_samples", n_samples, 1), ("n_steps", n_steps, 0)):
            if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
                raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
        rng = self.random_state_ if random_state is None else check_random_state(random_state)
        rbm = self._rbm()
        g = as_generator(int(rng.randint(_SEED_MAX)), rbm.device)
        with torch.inference_mode():
            v0 = torch.full((int(n_samples), rbm.n_visible), 0.5, dtype=rbm.dtype, device=rbm.device)
            v0 = torch.bernoulli(v0, generator=g)
            return rbm.gibbs(v0, int(n_steps), seed=g).cpu().numpy()

    # -- scikit-learn plumbing ------------------------------------------------------------------
    @property
    def _n_features_out(self):
        """Output width for get_feature_names_out (AttributeError before fitting)."""
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # -- helpers --------------------------------------------------------------------------------
    def _validate_X(self, X, reset):
        """validate_data (finite, 2-d, non-empty, n_features_in_), sparse densified."""
        X = validate_data(self, X, accept_sparse=True, dtype="numeric", reset=reset)
        if hasattr(X, "toarray"):
            X = X.toarray()
        return X

    def _visible(self, X, dtype):
        """Map validated data to the visible layer as a writable C array of ``dtype``.

        threshold -> 0/1; None -> must be 0/1; stochastic -> must lie in [0, 1] (kept as
        probabilities here; ``train`` draws the binary samples).
        """
        if self.binarize == "threshold":
            return (X > 0.5).astype(dtype)
        V = np.require(X, dtype=dtype, requirements=["C", "W", "E"])
        if self.binarize is None:
            check_binary(torch.from_numpy(V), "X")
        else:
            lo, hi = float(V.min()), float(V.max())
            if lo < 0 or hi > 1:
                raise ValueError(f"X: binarize='stochastic' needs values in [0, 1], got [{lo:g}, {hi:g}]; "
                                 "use binarize='threshold' for other data")
        return V

    def _model_input(self, X, rbm):
        """Validated, binarized rows of X as a tensor in the model's dtype and device."""
        X = self._validate_X(X, reset=False)
        return torch.from_numpy(self._visible(X, _np_dtype(rbm))).to(rbm.device)

    def _rbm(self) -> RBM:
        """The library's RBM holding the fitted parameters."""
        W = np.ascontiguousarray(self.components_.T)
        return RBM.from_weights(W, self.intercept_visible_, self.intercept_hidden_, beta=self.beta,
                                device=self._torch_device())

    def _torch_device(self):
        try:
            return torch.device("cpu" if self.device is None else self.device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device: expected a torch device such as 'cpu' or 'cuda', "
                             f"got {self.device!r} ({exc})") from None

    def _draw_seed(self) -> int:
        return int(self.random_state_.randint(_SEED_MAX))

    def _log_partition(self, rbm) -> float:
        """log Z(beta), exact or AIS, cached per (parameters, beta)."""
        h = hashlib.sha1()
        for a in (self.components_, self.intercept_visible_, self.intercept_hidden_):
            h.update(np.ascontiguousarray(a).tobytes())
        key = (h.hexdigest(), float(self.beta), str(self.components_.dtype))
        cache = getattr(self, "_log_z_cache", None)
        if cache is None:
            cache = self._log_z_cache = {}
        if key not in cache:
            cache.clear()
            cache[key] = _log_z(rbm, getattr(self, "_visible_mean", None))
        return cache[key]


def _log_z(rbm, visible_mean) -> float:
    if min(rbm.n_visible, rbm.n_hidden) <= MAX_EXACT_UNITS:
        return exact_log_partition(rbm, max_units=MAX_EXACT_UNITS)
    try:
        from .ais import ais_log_partition, base_rate_bias
    except ImportError:  # pragma: no cover - depends on the installed modules
        raise NotImplementedError(
            f"log Z of an RBM whose smaller layer has more than {MAX_EXACT_UNITS} units needs "
            "thermolearn.ebm.ais (annealed importance sampling), which is not available") from None
    base = None
    if visible_mean is not None:
        base = base_rate_bias(torch.as_tensor(visible_mean, dtype=torch.float64).reshape(1, -1))
    result = ais_log_partition(rbm, n_chains=AIS_N_CHAINS, n_betas=AIS_N_BETAS,
                               base_visible_bias=base, seed=AIS_SEED)
    log_z = float(result.log_z)
    if not math.isfinite(log_z):
        raise RuntimeError(f"AIS returned a non-finite log Z ({log_z}) for {rbm!r}")
    return log_z


class _IterationLines:
    """verbose: scikit-learn's line per epoch, with its pseudo-likelihood of the training rows
    (``n_features * log sigmoid(beta (F(v~) - F(v)))``, v~ = v with one random unit flipped;
    the flips come from their own seeded stream, so verbose does not change the fit)."""

    def __init__(self, name, V, offset):
        self.name, self.V, self.offset = name, V, offset
        self.rng = np.random.RandomState(0)

    def __call__(self, record, rbm):
        v = torch.from_numpy(self.V).to(device=rbm.device, dtype=torch.float64)
        flip = torch.from_numpy(self.rng.randint(0, v.shape[1], v.shape[0])).to(v.device)
        rows = torch.arange(v.shape[0], device=v.device)
        v_flip = v.clone()
        v_flip[rows, flip] = 1.0 - v_flip[rows, flip]
        r64 = rbm.to(dtype=torch.float64)
        with torch.inference_mode():
            gap = r64.beta * (r64.free_energy(v_flip) - r64.free_energy(v))
            pl = float((v.shape[1] * torch.nn.functional.logsigmoid(gap)).mean())
        print(f"[{self.name}] Iteration {self.offset + record['step']:d}, "
              f"pseudo-likelihood = {pl:.2f}, time = {record['seconds']:.2f}s")


def _dtype_of(X):
    """scikit-learn's rule: float32 data give float32 parameters, anything else float64."""
    return np.float32 if X.dtype == np.float32 else np.float64


def _np_dtype(rbm):
    return np.float64 if rbm.dtype == torch.float64 else np.float32


def _shifted(schedule, offset):
    """A per-epoch schedule started at epoch ``offset`` (numbers pass through)."""
    if callable(schedule) and offset:
        return lambda epoch: schedule(epoch + offset)
    return schedule


__all__ = ["BernoulliRBM"]

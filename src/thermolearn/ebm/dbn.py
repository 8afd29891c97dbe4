"""Deep belief networks: RBMs stacked greedily, their variational bound and per-layer free energies.

Model (Hinton, Osindero & Teh 2006). Sizes n_0 (visible), n_1, ..., n_L (L >= 2 RBMs). RBM k has
visible layer h_{k-1} (h_0 = v) and hidden layer h_k, parameters (W_k, a_k, b_k) as in
:class:`~thermolearn.ebm.RBM`. The generative model is directed below the top and an RBM at the top:

    p(v, h_1, ..., h_L) = p(v | h_1) p(h_1 | h_2) ... p(h_{L-2} | h_{L-1}) p_L(h_{L-1}, h_L),

with p(h_{k-1} | h_k) = prod_i sigmoid(a_k + W_k h_k)_i^{h_{k-1,i}} (...)^{1-h_{k-1,i}} the visible
conditional of RBM k and p_L the top RBM. Summing out h_L, p_L(h_{L-1}) = exp(-F_L(h_{L-1})) / Z_L.

Greedy training (:meth:`DBN.fit`). RBM 1 is trained on the data; RBM k+1 on one binary sample
h_k ~ q(h_k | h_{k-1}) per row, drawn upwards from the data through the recognition conditionals
q(h_k | h_{k-1}) = p_k(h_k | h_{k-1}) of the RBMs below. Samples rather than probabilities,
because the variational bound below depends on RBM k+1 only through E_data E_q log p_{k+1}(h_k):
maximising it is maximum likelihood on samples of the aggregated posterior, and the RBM
gradient is not linear in h_k, so feeding probabilities optimises another objective (and
:func:`~thermolearn.ebm.train` takes binary data only). One sample is drawn per row, once.

Variational lower bound (Hinton et al. 2006; Salakhutdinov & Murray 2008, section 5). With
q(h_1, ..., h_{L-1} | v) = prod_k q(h_k | h_{k-1}) and Jensen's inequality,

    log p(v) >= E_q[ log p(v | h_1) + sum_{k=2}^{L-1} log p(h_{k-1} | h_k) - F_L(h_{L-1}) ]
                + H(q) - log Z_L.

For two hidden layers this is sum_h1 q(h1|v) [log p(v|h1) + log p2*(h1)] - log Z2 + H(q),
p2*(h1) = exp(-F2(h1)). The gap is the KL divergence from q to the model's posterior; it is zero
when q is that posterior, for instance when RBM 2 is RBM 1 transposed (then p2(h1) is RBM 1's own
hidden marginal and the DBN is RBM 1). :meth:`DBN.log_likelihood_bound` computes it exactly
(enumerating h_1..h_{L-1} and Z_L, float64) or by sampling h ~ q with log Z_L by AIS
(:func:`~thermolearn.ebm.ais_log_partition`). AIS under-estimates log Z on average, so the AIS
bound tends to be optimistic, like AIS log-likelihoods of RBMs.

Per-layer free energies (:meth:`DBN.free_energies`): the free energy of the data represented at
layer k-1, under RBM k, for training and held-out rows, per example and per unit of that layer,
with standard errors over rows; with log Z_k (exact where the smaller layer of RBM k has at most
:data:`~thermolearn.ebm.exact.MAX_EXACT_UNITS` units, AIS when asked) also the per-layer
log-likelihoods. In the renormalisation-group reading of a stack of RBMs (Mehta & Schwab 2014)
each layer is a coarse-graining and F_k its effective Hamiltonian; the records make the
comparison across layers a one-liner, they do not show that the analogy holds.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from .._numerics import as_tensor, check_int, softplus
from ..errors import ModelFileError
from ..io import load_tensors, save_tensors
from ..results import Result, json_ready
from ..seeding import as_generator, check_seed, spawn_seeds
from .ais import ais_log_partition, base_rate_bias
from .exact import MAX_EXACT_UNITS, all_states, exact_log_partition
from .rbm import RBM
from .training import train

UPWARD = ("sample", "mean")
BOUND_METHODS = ("exact", "ais")
_CHUNK_ELEMENTS = 2**22          # rows x enumerated states per block of the exact sums


@dataclass
class DBNFitResult(Result):
    """What :meth:`DBN.fit` returns (the layers are trained in place).

    history : one JSON-ready record per layer trained, ``step`` = the layer (1, 2, ...), with
        ``method``, ``epochs``, ``n_visible``, ``n_hidden``, the last epoch's
        ``free_energy_train`` / ``free_energy_valid`` / ``reconstruction_error`` and ``seconds``.
    layer_results : the :class:`~thermolearn.ebm.TrainResult` of every layer.
    seconds : wall time; steps : layers trained; step_unit : ``"layer"``.
    """

    history: list[dict] = field(default_factory=list)
    layer_results: list = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0
    step_unit: str = "layer"


@dataclass
class DBNBound:
    """A sampled estimate of the variational lower bound (``method="ais"``); ``float()`` is its value.

    value : mean over the rows of the bound on log p(v), nats per example.
    stderr : its standard error: the Monte Carlo error of the samples h ~ q and the AIS error of
        log Z_L, added in quadrature (the rows are held fixed).
    sample_stderr : the part from sampling h ~ q.
    row_stderr : standard deviation of the per-row values over sqrt(rows): the spread of the data,
        for comparing with other models on other rows.
    log_z, log_z_stderr : log Z_L of the top RBM by AIS and its delta-method standard error.
    log_z_lower, log_z_upper : log(Z-hat -/+ 3 sigma), as reported by AIS.
    expected_log_joint : mean over rows of E_q[log p*(v, h)] (the unnormalised part).
    entropy : mean over rows of H(q).
    per_row : (rows,) float64 per-row bound values.
    n_rows, samples_per_row, ais_chains, n_betas, seconds : the run.
    """

    value: float
    stderr: float
    sample_stderr: float
    row_stderr: float
    log_z: float
    log_z_stderr: float
    log_z_lower: float
    log_z_upper: float
    expected_log_joint: float
    entropy: float
    per_row: torch.Tensor
    n_rows: int
    samples_per_row: int
    ais_chains: int
    n_betas: int
    seconds: float

    def __float__(self) -> float:
        return float(self.value)


@dataclass
class LayerFreeEnergies:
    """What :meth:`DBN.free_energies` returns.

    records : one JSON-ready dict per RBM, ``layer`` = k (1..L): ``n_visible`` (units of the data
        at that layer, n_{k-1}) and ``n_hidden``; ``free_energy_{split}`` (mean of F_k over rows),
        ``free_energy_{split}_sem`` (std / sqrt(rows), ddof 1), the same ``_per_unit`` (divided by
        n_visible), ``free_energy_gap`` (test minus train) and, when log Z_k is known,
        ``log_z``, ``log_z_stderr`` (0 when exact), ``log_z_method`` ("exact" or "ais"),
        ``log_likelihood_{split}`` (mean of -beta F_k - log Z_k), its ``_sem`` and ``_per_unit``.
        ``split`` is ``train`` and ``test``.
    upward : how the data were carried up ("sample" or "mean").
    seconds : wall time.
    """

    records: list[dict] = field(default_factory=list)
    upward: str = "sample"
    seconds: float = 0.0

    def column(self, key: str) -> list:
        """``[record[key] for record in records]`` (None where a record lacks the key)."""
        return [r.get(key) for r in self.records]


def check_sizes(sizes) -> list[int]:
    """``sizes`` as a list of at least two positive ints (ValueError naming ``sizes``)."""
    try:
        items = list(sizes)
    except TypeError:
        raise ValueError(f"sizes: expected a list of layer sizes [n_visible, n_hidden_1, ...], got {sizes!r}") \
            from None
    if isinstance(sizes, (str, bytes)) or len(items) < 3:
        raise ValueError(f"sizes: expected at least three layer sizes (visible and two hidden layers), got {sizes!r}")
    out = []
    for s in items:
        try:
            out.append(check_int(s, "sizes"))
        except ValueError:
            raise ValueError(f"sizes: expected positive integers, got {sizes!r}") from None
    return out


def _per_layer(value, name: str, n: int) -> list:
    """A list gives one value per layer (length ``n``); anything else is used for every layer."""
    if isinstance(value, list):
        if len(value) != n:
            raise ValueError(f"{name}: a list gives one value per layer, expected {n} values, got {len(value)}")
        return list(value)
    return [value] * n


def _log_bernoulli(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """sum_i x_i log sigmoid(l_i) + (1 - x_i) log sigmoid(-l_i) = x.l - sum softplus(l), per row."""
    return (x * logits).sum(-1) - softplus(logits).sum(-1)


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of independent Bernoulli units with these logits, per row: sum softplus(l) - l sigmoid(l)."""
    return (softplus(logits) - logits * torch.sigmoid(logits)).sum(-1)


class DBN:
    """A deep belief network: a stack of binary RBMs (see the module docstring).

    Parameters
    ----------
    sizes : [n_visible, n_hidden_1, n_hidden_2, ...], at least two hidden layers, positive ints.
    seed : seed of the weight initialisation (one stream per layer, ``spawn_seeds``).
    device, dtype : of the layers' parameters (float32 by default); the bound and the exact sums
        are computed in float64 whatever the dtype.
    """

    def __init__(self, sizes, seed=None, device=None, dtype=torch.float32):
        sizes = check_sizes(sizes)
        seeds = spawn_seeds(check_seed(seed), len(sizes) - 1)
        self.layers: list[RBM] = [RBM(n_v, n_h, seed=s, device=device, dtype=dtype)
                                  for n_v, n_h, s in zip(sizes[:-1], sizes[1:], seeds)]

    # -- construction, files ----------------------------------------------------------------------
    @classmethod
    def from_rbms(cls, rbms) -> DBN:
        """A DBN from a list of RBMs whose sizes chain (RBM k's n_hidden is RBM k+1's n_visible)."""
        rbms = list(rbms)
        if len(rbms) < 2 or not all(isinstance(r, RBM) for r in rbms):
            raise TypeError(f"rbms: expected a list of at least two RBMs, got {rbms!r}")
        for k, (lo, hi) in enumerate(zip(rbms[:-1], rbms[1:]), start=1):
            if lo.n_hidden != hi.n_visible:
                raise ValueError(f"rbms: RBM {k} has {lo.n_hidden} hidden units but RBM {k + 1} has "
                                 f"{hi.n_visible} visible units")
        dbn = cls.__new__(cls)
        dbn.layers = [r.copy() for r in rbms]
        return dbn

    def save(self, path, extra: dict | None = None):
        """Write the stack to ``path`` (safetensors + JSON metadata, atomically)."""
        tensors = {}
        for k, r in enumerate(self.layers, start=1):
            tensors.update({f"{k}.W": r.W, f"{k}.visible_bias": r.visible_bias, f"{k}.hidden_bias": r.hidden_bias})
        meta = {"kind": "dbn", "sizes": self.sizes, "betas": [r.beta for r in self.layers],
                "dtype": str(self.dtype).removeprefix("torch.")}
        meta.update(extra or {})
        return save_tensors(path, tensors, json_ready(meta))

    @classmethod
    def load(cls, path, device=None) -> DBN:
        """Read a stack written by :meth:`save`."""
        tensors, meta = load_tensors(path, kind="dbn")
        try:
            sizes = check_sizes(meta.get("sizes"))
            betas = meta.get("betas") or [1.0] * (len(sizes) - 1)
            rbms = [RBM.from_weights(tensors[f"{k}.W"], tensors[f"{k}.visible_bias"], tensors[f"{k}.hidden_bias"],
                                     beta=betas[k - 1], device=device) for k in range(1, len(sizes))]
            return cls.from_rbms(rbms)
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise ModelFileError(f"{path}: inconsistent DBN file: {exc}") from None

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def sizes(self) -> list[int]:
        return [self.layers[0].n_visible] + [r.n_hidden for r in self.layers]

    @property
    def dtype(self):
        return self.layers[0].dtype

    @property
    def device(self):
        return self.layers[0].device

    def __repr__(self):
        return f"DBN(sizes={self.sizes}, dtype={self.dtype}, device={self.device})"

    def _rows(self, v, name: str = "v") -> torch.Tensor:
        t = as_tensor(v, name, dtype=self.dtype, device=self.device)
        if t.ndim == 1:
            t = t.unsqueeze(0)
        if t.ndim != 2 or t.shape[1] != self.sizes[0] or t.shape[0] < 1:
            raise ValueError(f"{name}: expected shape (batch, {self.sizes[0]}), got {tuple(t.shape)}")
        return t

    def _layer(self, layer, name: str = "layer", low: int = 0) -> int:
        n = len(self.layers)
        if layer is None:
            return n
        layer = check_int(layer, name, minimum=low)
        if layer > n:
            raise ValueError(f"{name}: expected a layer in {low}..{n}, got {layer}")
        return layer

    # -- upward and downward passes -------------------------------------------------------------
    def represent(self, v, layer=None, how: str = "mean", seed=0) -> torch.Tensor:
        """The rows of ``v`` carried up to ``layer`` (0 = v itself, default the top).

        how : "mean" (mean activations, m_k = p(h_k = 1 | m_{k-1})) or "sample" (h_k ~ q(h_k | h_{k-1})
            from a sample of the layer below, the data each RBM is trained on); ``seed`` for "sample".
        """
        if how not in UPWARD:
            raise ValueError(f"how: expected one of {', '.join(UPWARD)}, got {how!r}")
        layer = self._layer(layer)
        x = self._rows(v)
        g = as_generator(seed) if how == "sample" else None
        with torch.no_grad():
            for r in self.layers[:layer]:
                p = r.hidden_probabilities(x)
                x = p if g is None else torch.bernoulli(p, generator=g)
        return x.clone()

    def transform(self, v, layer=None) -> torch.Tensor:
        """Mean activations of the rows of ``v`` at hidden ``layer`` (1..L, default the top)."""
        return self.represent(v, self._layer(layer, low=1), how="mean")

    def reconstruct(self, v, layer=None) -> torch.Tensor:
        """Up to ``layer`` (1..L, default the top) and back down by mean field: the visible means."""
        layer = self._layer(layer, low=1)
        m = self.transform(v, layer)
        with torch.no_grad():
            for r in reversed(self.layers[:layer]):
                m = r.visible_probabilities(m)
        return m.clone()

    # -- training -------------------------------------------------------------------------------
    def fit(self, data, epochs=10, method="pcd", batch_size=100, validation=None, binarize=None,
            init_visible_bias: bool = True, tied_init: bool = False, seed=0, progress: bool = False,
            **train_options) -> DBNFitResult:
        """Train the stack greedily, bottom up, with :func:`~thermolearn.ebm.train`.

        Parameters
        ----------
        data : (n, n_visible) binary rows (or in [0, 1] with ``binarize``).
        epochs, method, batch_size : as in ``train``; a list gives one value per layer.
        validation : held-out rows, carried up like the data (their free energy is monitored).
        binarize : of the data (the layers above receive binary samples).
        init_visible_bias : start each RBM's visible biases at the logit of the smoothed means of its
            training data (Hinton's practical guide; :func:`base_rate_bias`).
        tied_init : start RBM k+1 as RBM k transposed (W_k^T, biases swapped; needs n_{k+1} = n_{k-1}),
            as in the argument of Hinton, Osindero & Teh (2006): the stack then starts as the model of
            the layer below, with a tight bound, and training RBM k+1 by maximum likelihood on the
            samples of q can only raise the bound (CD and PCD approximate that gradient).
        seed : int, Generator or None: one integer stream per layer for its training, one for drawing
            the samples passed up from it, and one for ``binarize`` (``spawn_seeds``).
        train_options : further arguments of ``train`` (lr, momentum, k, weight_decay, ...), a list
            giving one value per layer. ``checkpoint`` is refused (one file per layer would be needed).
        """
        t0 = time.perf_counter()
        n = len(self.layers)
        if "checkpoint" in train_options:
            raise ValueError("checkpoint: not supported by DBN.fit; train the layers one by one with train()")
        epochs_l = _per_layer(epochs, "epochs", n)
        method_l = _per_layer(method, "method", n)
        batch_l = _per_layer(batch_size, "batch_size", n)
        opts_l = [{} for _ in range(n)]
        for name, value in train_options.items():
            for k, v in enumerate(_per_layer(value, name, n)):
                opts_l[k][name] = v
        seeds = spawn_seeds(check_seed(seed), 2 * n + 1)
        x = self._rows(data, "data") if binarize is None else as_tensor(data, "data", dtype=self.dtype,
                                                                         device=self.device, ndim=2)
        xv = None if validation is None else as_tensor(validation, "validation", dtype=self.dtype,
                                                       device=self.device, ndim=2)
        if binarize is not None:              # binarize once here, so the layers above see the same rows
            from .._numerics import binarize as _binarize
            g = as_generator(seeds[-1])
            x = _binarize(x, binarize, "data", generator=g)
            xv = None if xv is None else _binarize(xv, binarize, "validation", generator=g)
        history, results = [], []
        if tied_init:
            sizes = self.sizes
            bad = [k for k in range(1, n) if sizes[k + 1] != sizes[k - 1]]
            if bad:
                raise ValueError(f"tied_init: RBM {bad[0] + 1} would start as RBM {bad[0]} transposed, which needs "
                                 f"sizes[{bad[0] + 1}] == sizes[{bad[0] - 1}], got sizes {sizes}")
        for k, r in enumerate(self.layers):
            if tied_init and k > 0:
                below = self.layers[k - 1]
                r.W.copy_(below.W.T)
                r.visible_bias.copy_(below.hidden_bias)
                r.hidden_bias.copy_(below.visible_bias)
            elif init_visible_bias:
                r.visible_bias.copy_(base_rate_bias(x).to(r.dtype))
            res = train(r, x, method=method_l[k], epochs=epochs_l[k], batch_size=batch_l[k], validation=xv,
                        seed=seeds[2 * k], progress=progress, **opts_l[k])
            results.append(res)
            last = res.last
            history.append(json_ready({
                "step": k + 1, "method": method_l[k], "epochs": epochs_l[k], "n_visible": r.n_visible,
                "n_hidden": r.n_hidden, "free_energy_train": last.get("free_energy_train"),
                "free_energy_valid": last.get("free_energy_valid"),
                "reconstruction_error": last.get("reconstruction_error"), "seconds": res.seconds}))
            if k + 1 < n:                       # the next layer's data: one sample of q per row
                g = as_generator(seeds[2 * k + 1])
                with torch.no_grad():
                    x = torch.bernoulli(r.hidden_probabilities(x), generator=g).clone()
                    if xv is not None:
                        xv = torch.bernoulli(r.hidden_probabilities(xv), generator=g).clone()
        return DBNFitResult(history=history, layer_results=results, seconds=time.perf_counter() - t0,
                            steps=n)

    # -- the variational bound and the exact likelihood -------------------------------------------
    def _params64(self):
        return [r.scaled_parameters(torch.float64) for r in self.layers]

    def _enumerated_units(self) -> int:
        return sum(self.sizes[1:-1])

    def _check_exact(self, what: str, max_units: int):
        U = self._enumerated_units()
        if U > max_units:
            raise ValueError(
                f"method: 'exact' enumerates the 2^{U} joint states of the hidden layers h_1..h_{{L-1}} "
                f"(sizes {self.sizes[1:-1]}), above the limit max_units={max_units}; use method='ais' "
                f"for the {what}")
        top = self.layers[-1]
        if min(top.n_visible, top.n_hidden) > max_units:   # cannot happen when U <= max_units
            raise ValueError(f"method: the top RBM is too large for an exact log Z (max_units={max_units})")

    def _state_terms(self, H: torch.Tensor, P):
        """For joint states H = [h_1 | ... | h_{L-1}] (S rows, float64): the state-only parts.

        Returns (gen, rec, h1): gen = -sum softplus(a_1 + W_1 h_1) + sum_{k=2}^{L-1} log p(h_{k-1} | h_k)
        - F_L(h_{L-1}); rec = sum_{k=2}^{L-1} log q(h_k | h_{k-1}); h1 the first block.
        """
        sizes = self.sizes
        blocks = list(torch.split(H, sizes[1:-1], dim=1))
        W1, a1, _ = P[0]
        gen = -softplus(torch.addmm(a1, blocks[0], W1.T)).sum(1)
        rec = torch.zeros_like(gen)
        for k in range(1, len(blocks)):               # RBM k+1 joins blocks k-1 (visible) and k (hidden)
            W, a, b = P[k]
            lo, hi = blocks[k - 1], blocks[k]
            gen = gen + _log_bernoulli(lo, torch.addmm(a, hi, W.T))
            rec = rec + _log_bernoulli(hi, torch.addmm(b, lo, W))
        Wt, at, bt = P[-1]
        top = blocks[-1]
        gen = gen + top @ at + softplus(torch.addmm(bt, top, Wt)).sum(1)
        return gen, rec, blocks[0]

    def _exact_sums(self, v64: torch.Tensor, P, want: str, max_units: int):
        """Per row: sum_H q(H|v) [log p*(v, H) - log q(H|v)] ("bound") or log sum_H p*(v, H) ("loglik")."""
        U = self._enumerated_units()
        W1, a1, b1 = P[0]
        N = v64.shape[0]
        va = v64 @ a1                                   # (N,)
        vW = v64 @ W1                                   # (N, n_1)
        Y = vW + b1                                     # logits of q(h_1 | v)
        sY = softplus(Y).sum(1)
        n_states = 2**U
        S = max(1, min(n_states, _CHUNK_ELEMENTS // max(N, 1)))
        acc = []
        for start in range(0, n_states, S):
            H = all_states(U, start, min(start + S, n_states), device=v64.device)
            gen, rec, h1 = self._state_terms(H, P)
            g = va[:, None] + vW @ h1.T + gen[None, :]   # log p*(v, H): (N, S)
            if want == "loglik":
                acc.append(torch.logsumexp(g, 1))
            else:
                logq = Y @ h1.T - sY[:, None] + rec[None, :]
                acc.append((torch.exp(logq) * (g - logq)).sum(1))
        stacked = torch.stack(acc, 1)
        return torch.logsumexp(stacked, 1) if want == "loglik" else stacked.sum(1)

    def log_likelihood(self, v, max_units: int = MAX_EXACT_UNITS) -> float:
        """Mean exact log p(v) of the DBN's generative model, nats per example (float64).

        Enumerates the joint states of h_1..h_{L-1} (h_L is summed analytically in F_L) and takes the
        top RBM's log Z exactly; a ValueError naming ``method`` when they have more than
        ``max_units`` units in all.
        """
        max_units = check_int(max_units, "max_units")
        self._check_exact("log-likelihood", max_units)
        v64 = self._rows(v).to(torch.float64)
        P = self._params64()
        with torch.no_grad():
            rows = self._exact_sums(v64, P, "loglik", max_units)
        return float(rows.mean()) - exact_log_partition(self.layers[-1], max_units=max_units)

    def log_likelihood_bound(self, v, method: str = "exact", samples: int = 10, ais_chains: int = 100,
                             n_betas="sm08", base_visible_bias=None, max_units: int = MAX_EXACT_UNITS,
                             seed=0, progress: bool = False):
        """The variational lower bound on log p(v) (module docstring), mean over the rows of ``v``.

        method : "exact": enumerate h_1..h_{L-1} and the top RBM's log Z (at most ``max_units`` hidden
            units below the top layer in all, else a ValueError naming ``method``); returns a float.
            "ais": ``samples`` draws of h ~ q per row (the entropy of q(h_1|v) exactly, those of the
            layers above given the sampled layer below) and log Z_L by forward AIS with
            ``ais_chains`` chains and the ladder ``n_betas``; returns a :class:`DBNBound` whose
            ``float()`` is the value and which carries its standard error.
        base_visible_bias : of the AIS base model (over h_{L-1}); default the base rate of the sampled
            h_{L-1} of the rows of ``v`` (:func:`base_rate_bias`).
        seed : of the samples and of AIS (int, Generator or None).
        """
        if method not in BOUND_METHODS:
            raise ValueError(f"method: expected one of {', '.join(BOUND_METHODS)}, got {method!r}")
        max_units = check_int(max_units, "max_units")
        v64 = self._rows(v).to(torch.float64)
        P = self._params64()
        if method == "exact":
            self._check_exact("bound", max_units)
            with torch.no_grad():
                rows = self._exact_sums(v64, P, "bound", max_units)
            return float(rows.mean()) - exact_log_partition(self.layers[-1], max_units=max_units)
        samples = check_int(samples, "samples")
        ais_chains = check_int(ais_chains, "ais_chains")
        return self._ais_bound(v64, P, samples, ais_chains, n_betas, base_visible_bias, seed, progress)

    def _ais_bound(self, v64, P, samples, ais_chains, n_betas, base_visible_bias, seed, progress) -> DBNBound:
        t0 = time.perf_counter()
        seeds = spawn_seeds(check_seed(seed), 2)
        g = as_generator(seeds[0])
        N = v64.shape[0]
        sizes = self.sizes
        per_row, var_row, joint_row, ent_row, tops = [], [], [], [], []
        block = max(1, 2**16 // samples)
        with torch.no_grad():
            for start in range(0, N, block):
                v = v64[start:start + block]
                n = v.shape[0]
                W1, a1, b1 = P[0]
                Y = torch.addmm(b1, v, W1)
                ent1 = _entropy(Y)                                    # H(q(h_1 | v)), exactly
                vv = v.repeat_interleave(samples, 0)
                lo = torch.bernoulli(torch.sigmoid(Y).repeat_interleave(samples, 0), generator=g)
                joint = _log_bernoulli(vv, torch.addmm(a1, lo, W1.T))  # log p(v | h_1)
                ent = torch.zeros_like(joint)
                for k in range(1, len(sizes) - 2):                     # the directed layers above h_1
                    W, a, b = P[k]
                    Yk = torch.addmm(b, lo, W)
                    ent = ent + _entropy(Yk)
                    hi = torch.bernoulli(torch.sigmoid(Yk), generator=g)
                    joint = joint + _log_bernoulli(lo, torch.addmm(a, hi, W.T))
                    lo = hi
                Wt, at, bt = P[-1]
                joint = joint + lo @ at + softplus(torch.addmm(bt, lo, Wt)).sum(1)   # -F_L(h_{L-1})
                tops.append(lo.to(torch.float32))
                f = (joint + ent).view(n, samples)
                per_row.append(f.mean(1) + ent1)
                var_row.append(f.var(1) / samples if samples > 1 else torch.full((n,), float("nan"),
                                                                                  dtype=torch.float64))
                joint_row.append(joint.view(n, samples).mean(1))
                ent_row.append(ent.view(n, samples).mean(1) + ent1)
        per_row_t, var_t = torch.cat(per_row), torch.cat(var_row)
        top = self.layers[-1]
        base = base_rate_bias(torch.cat(tops)) if base_visible_bias is None else base_visible_bias
        ais = ais_log_partition(top, n_chains=ais_chains, n_betas=n_betas, base_visible_bias=base,
                                seed=seeds[1], progress=progress)
        rows = per_row_t - ais.log_z
        sample_se = math.sqrt(float(var_t.sum())) / N
        stderr = math.sqrt(sample_se**2 + ais.stderr**2)
        row_se = float(rows.std()) / math.sqrt(N) if N > 1 else float("nan")
        return DBNBound(value=float(rows.mean()), stderr=stderr, sample_stderr=sample_se, row_stderr=row_se,
                        log_z=ais.log_z, log_z_stderr=ais.stderr, log_z_lower=ais.log_z_lower,
                        log_z_upper=ais.log_z_upper, expected_log_joint=float(torch.cat(joint_row).mean()),
                        entropy=float(torch.cat(ent_row).mean()), per_row=rows.clone(), n_rows=N,
                        samples_per_row=samples, ais_chains=ais_chains, n_betas=ais.n_betas,
                        seconds=time.perf_counter() - t0)

    # -- per-layer free energies ----------------------------------------------------------------
    def free_energies(self, train, test, upward: str = "sample", ais: dict | None = None, log_z=None,
                      max_units: int = MAX_EXACT_UNITS, seed=0) -> LayerFreeEnergies:
        """Free energies of the training and held-out rows at every layer, with standard errors.

        At layer k the rows are represented at h_{k-1} (``upward``: "sample", one draw of q per row as
        in training, or "mean", the mean activations) and scored by RBM k: F_k in nats (float64),
        per example and per unit of h_{k-1}. log Z_k is exact where the smaller layer of RBM k has at
        most ``max_units`` units; elsewhere by AIS when ``ais`` is a dict of
        :func:`~thermolearn.ebm.ais_log_partition` options (e.g. ``{"n_chains": 100, "n_betas":
        "sm08"}``; the base rate is that of the training rows at that layer), else left out. With
        log Z_k the records hold the per-layer log-likelihoods (meaningful for binary states, i.e.
        ``upward="sample"``). ``log_z``: a list with one entry per layer, None or a known
        (log Z_k, its standard error) to use instead (e.g. the top RBM's from
        :meth:`log_likelihood_bound`; recorded with ``log_z_method`` "given"). See
        :class:`LayerFreeEnergies` for the keys.
        """
        t0 = time.perf_counter()
        if upward not in UPWARD:
            raise ValueError(f"upward: expected one of {', '.join(UPWARD)}, got {upward!r}")
        if ais is not None and not isinstance(ais, dict):
            raise TypeError(f"ais: expected None or a dict of ais_log_partition options, got {ais!r}")
        max_units = check_int(max_units, "max_units")
        given = [None] * len(self.layers) if log_z is None else list(log_z)
        if len(given) != len(self.layers) or any(g is not None and len(g) != 2 for g in given):
            raise ValueError(f"log_z: expected {len(self.layers)} entries, each None or (log Z, stderr), got {log_z!r}")
        seeds = spawn_seeds(check_seed(seed), 2 + len(self.layers))
        x = {"train": self._rows(train, "train"), "test": self._rows(test, "test")}
        gens = {"train": as_generator(seeds[0]), "test": as_generator(seeds[1])}
        records = []
        for k, r in enumerate(self.layers):
            r64 = r.to(dtype=torch.float64)
            rec = {"layer": k + 1, "n_visible": r.n_visible, "n_hidden": r.n_hidden}
            F = {}
            with torch.no_grad():
                for split, rows in x.items():
                    F[split] = r64.free_energy(rows.to(torch.float64))
                    _stats(rec, f"free_energy_{split}", F[split], r.n_visible)
            rec["free_energy_gap"] = rec["free_energy_test"] - rec["free_energy_train"]
            log_z = log_z_se = method = None
            if given[k] is not None:
                log_z, log_z_se, method = float(given[k][0]), float(given[k][1]), "given"
            elif min(r.n_visible, r.n_hidden) <= max_units:
                log_z, log_z_se, method = exact_log_partition(r, max_units=max_units), 0.0, "exact"
            elif ais is not None:
                opts = {"n_chains": 100, "n_betas": "sm08", "seed": seeds[2 + k],
                        "base_visible_bias": base_rate_bias(x["train"]), **ais}
                res = ais_log_partition(r, **opts)
                log_z, log_z_se, method = res.log_z, res.stderr, "ais"
            if log_z is not None:
                rec.update(log_z=log_z, log_z_stderr=log_z_se, log_z_method=method)
                for split in x:
                    _stats(rec, f"log_likelihood_{split}", -r.beta * F[split] - log_z, r.n_visible)
            records.append(json_ready(rec))
            if k + 1 < len(self.layers):
                with torch.no_grad():
                    for split in x:
                        p = r.hidden_probabilities(x[split])
                        x[split] = (p if upward == "mean" else torch.bernoulli(p, generator=gens[split])).clone()
        return LayerFreeEnergies(records=records, upward=upward, seconds=time.perf_counter() - t0)


def _stats(rec: dict, key: str, values: torch.Tensor, units: int) -> None:
    """rec[key], rec[key_sem] (std / sqrt(n), ddof 1; NaN for one row) and the same per unit."""
    n = values.numel()
    mean = float(values.mean())
    sem = float(values.std()) / math.sqrt(n) if n > 1 else float("nan")
    rec[key], rec[f"{key}_sem"] = mean, sem
    rec[f"{key}_per_unit"], rec[f"{key}_per_unit_sem"] = mean / units, sem / units


__all__ = ["DBN", "DBNBound", "DBNFitResult", "LayerFreeEnergies", "check_sizes"]

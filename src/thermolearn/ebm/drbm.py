"""Classification RBM trained generatively, discriminatively or both (Larochelle & Bengio 2008).

Model (H. Larochelle and Y. Bengio, "Classification using discriminative restricted Boltzmann
machines", ICML 2008): visible units x (binary, or intensities in [0, 1] read as probabilities),
a one-hot label y of C classes (e_y), binary hidden units h; weights W (n_visible, n_hidden),
U (C, n_hidden), biases b (visible), c (hidden), d (classes). Rows are examples.

    E(x, y, h) = -b.x - c.h - d_y - x.W.h - U_y.h,        p(x, y, h) = exp(-E) / Z,

    -F(x, y) = b.x + d_y + sum_j softplus(o_yj(x)),        o_yj(x) = c_j + U_yj + (xW)_j,

    p(y | x) = exp(-F(x, y)) / sum_y' exp(-F(x, y'))      (exact: b.x cancels, no sampling).

:meth:`ClassRBM.class_scores` gives the (n, C) matrix d_y + sum_j softplus(o_yj(x)) in one batched
pass (the hidden pre-activations xW + c once, then the C label offsets broadcast over them).

Gradients of one example (the trainer averages them over a batch):

- discriminative, exact: d log p(y|x) / d theta = sum_j sigmoid(o_yj) d o_yj / d theta
  - sum_{y*, j} p(y*|x) sigmoid(o_y*j) d o_y*j / d theta (:meth:`ClassRBM.discriminative_gradient`);
- generative, d log p(x, y) / d theta: contrastive divergence CD-k on the joint (x, y): the data
  term at (x, y) minus the same statistics after k block-Gibbs sweeps h -> (x, y) -> h started
  from the data (Hinton 2002) (:meth:`ClassRBM.generative_gradient`);
- hybrid: the gradient of log p(y|x) + alpha log p(x, y) (:meth:`ClassRBM.hybrid_gradient`).

:func:`train_class_rbm` runs stochastic gradient ascent on the chosen objective (``"generative"``,
``"discriminative"`` or ``"hybrid"``), with optional L2 weight decay on W and U and early
stopping on a validation set (the parameters of the epoch with the lowest validation error are
kept), as the paper selects its models. Classification is always by the exact p(y|x).

Labels in this module are integers 0..C-1 (a ``ValueError`` naming the argument otherwise); the
scikit-learn estimator :class:`DiscriminativeRBM` encodes any labels to them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .._numerics import as_tensor, check_int, check_real, softplus
from ..errors import TrainingDiverged
from ..results import Result
from ..schedules import as_schedule
from ..seeding import as_generator

OBJECTIVES = ("generative", "discriminative", "hybrid")
PARAMETERS = ("W", "U", "visible_bias", "hidden_bias", "class_bias")

# rows per chunk of the batched class scores: keeps the (rows, C, n_hidden) block near 2^22 entries
_CHUNK_ENTRIES = 1 << 22


def check_labels(y, n_classes: int, name: str = "y", device=None) -> torch.Tensor:
    """``y`` as an int64 tensor of class indices in 0..n_classes-1 (1-d), else a ValueError."""
    t = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
    if t.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array of class indices, got shape {tuple(t.shape)}")
    if t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"{name}: expected integer class indices 0..{n_classes - 1}, got dtype {t.dtype}")
    if t.is_floating_point():
        if t.numel() and not bool(torch.all(t == torch.round(t))):
            raise ValueError(f"{name}: expected integer class indices 0..{n_classes - 1}, got non-integer values")
    t = t.to(torch.int64)
    if t.numel():
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= n_classes:
            raise ValueError(f"{name}: expected class indices in 0..{n_classes - 1}, got values in [{lo}, {hi}]")
    return t.to(device) if device is not None else t


class ClassRBM:
    """A classification RBM: visible x, one-hot label y, binary hidden units (module docstring).

    Parameters
    ----------
    n_visible, n_classes, n_hidden : layer sizes (n_classes may be 1: then p(y|x) = 1).
    seed : seed of the initialisation W, U ~ Uniform(-r, r), r = 1 / sqrt(max(n_visible,
        n_hidden)); biases 0.
    device, dtype : where the parameters live (CPU and float32 by default).

    The parameters are plain tensors ``W``, ``U``, ``visible_bias`` (b), ``hidden_bias`` (c) and
    ``class_bias`` (d).
    """

    def __init__(self, n_visible: int, n_classes: int, n_hidden: int, seed=None, device=None,
                 dtype=torch.float32):
        n_visible = check_int(n_visible, "n_visible")
        n_classes = check_int(n_classes, "n_classes")
        n_hidden = check_int(n_hidden, "n_hidden")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"dtype: expected a floating torch dtype, got {dtype!r}")
        g = as_generator(seed)
        r = 1.0 / math.sqrt(max(n_visible, n_hidden))
        W = (2 * torch.rand(n_visible, n_hidden, generator=g, dtype=torch.float64) - 1) * r
        U = (2 * torch.rand(n_classes, n_hidden, generator=g, dtype=torch.float64) - 1) * r
        self.W = W.to(device=device, dtype=dtype)
        self.U = U.to(device=device, dtype=dtype)
        self.visible_bias = torch.zeros(n_visible, device=device, dtype=dtype)
        self.hidden_bias = torch.zeros(n_hidden, device=device, dtype=dtype)
        self.class_bias = torch.zeros(n_classes, device=device, dtype=dtype)

    # -- construction and conversion ------------------------------------------------------------
    @classmethod
    def from_weights(cls, W, U, visible_bias, hidden_bias, class_bias, device=None, dtype=None) -> ClassRBM:
        """A model from given parameters (arrays or tensors): W (n_v, n_h), U (C, n_h), b, c, d."""
        W = as_tensor(W, "W", ndim=2)
        dtype = dtype or W.dtype
        W = W.to(device=device, dtype=dtype)
        n_v, n_h = W.shape
        U = as_tensor(U, "U", ndim=2).to(device=W.device, dtype=dtype)
        if U.shape[1] != n_h:
            raise ValueError(f"U: expected {n_h} columns (W has shape {tuple(W.shape)}), got shape {tuple(U.shape)}")
        vectors = {}
        for name, value, n in (("visible_bias", visible_bias, n_v), ("hidden_bias", hidden_bias, n_h),
                               ("class_bias", class_bias, U.shape[0])):
            v = as_tensor(value, name, ndim=1).to(device=W.device, dtype=dtype)
            if v.shape[0] != n:
                raise ValueError(f"{name}: expected length {n}, got {v.shape[0]}")
            vectors[name] = v
        model = cls.__new__(cls)
        model.W, model.U = W.contiguous(), U.contiguous()
        for name, v in vectors.items():
            setattr(model, name, v.contiguous())
        return model

    def to(self, device=None, dtype=None) -> ClassRBM:
        """A copy on another device or in another dtype (the same object when nothing changes)."""
        if (device is None or torch.device(device) == self.device) and (dtype is None or dtype == self.dtype):
            return self
        return ClassRBM.from_weights(*self.parameters().values(), device=device or self.device,
                                     dtype=dtype or self.dtype)

    def copy(self) -> ClassRBM:
        return ClassRBM.from_weights(*(p.clone() for p in self.parameters().values()))

    def parameters(self) -> dict[str, torch.Tensor]:
        """{name: tensor} in the order W, U, visible_bias, hidden_bias, class_bias."""
        return {name: getattr(self, name) for name in PARAMETERS}

    @property
    def n_visible(self) -> int:
        return int(self.W.shape[0])

    @property
    def n_hidden(self) -> int:
        return int(self.W.shape[1])

    @property
    def n_classes(self) -> int:
        return int(self.U.shape[0])

    @property
    def device(self):
        return self.W.device

    @property
    def dtype(self):
        return self.W.dtype

    def __repr__(self):
        return (f"ClassRBM(n_visible={self.n_visible}, n_classes={self.n_classes}, n_hidden={self.n_hidden}, "
                f"dtype={self.dtype}, device={self.device})")

    # -- inputs ----------------------------------------------------------------------------------
    def _x(self, x, name: str = "x") -> torch.Tensor:
        x = as_tensor(x, name, ndim=2)
        if x.shape[1] != self.n_visible:
            raise ValueError(f"{name}: expected {self.n_visible} columns, got shape {tuple(x.shape)}")
        return x.to(device=self.device, dtype=self.dtype)

    def _xy(self, x, y):
        x = self._x(x)
        y = check_labels(y, self.n_classes, "y", device=self.device)
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"y: expected {x.shape[0]} labels (one per row of x), got {y.shape[0]}")
        return x, y

    # -- energies and exact class probabilities -------------------------------------------------
    def hidden_inputs(self, x) -> torch.Tensor:
        """c + xW, shape (n, n_hidden): the hidden pre-activations without the label."""
        return torch.addmm(self.hidden_bias, self._x(x), self.W)

    def _scores(self, a: torch.Tensor) -> torch.Tensor:
        """d_y + sum_j softplus(a_j + U_yj) from the pre-activations a (n, n_hidden), in chunks."""
        n = a.shape[0]
        rows = max(1, _CHUNK_ENTRIES // max(1, self.n_classes * self.n_hidden))
        if n <= rows:
            return self.class_bias + softplus(a.unsqueeze(1) + self.U).sum(-1)
        return torch.cat([self._scores(a[i:i + rows]) for i in range(0, n, rows)])

    def class_scores(self, x) -> torch.Tensor:
        """-F(x, y) - b.x = d_y + sum_j softplus(c_j + U_yj + (xW)_j), shape (n, C)."""
        return self._scores(self.hidden_inputs(x))

    def free_energy(self, x, y) -> torch.Tensor:
        """F(x, y) = -b.x - d_y - sum_j softplus(o_yj(x)) of each row, shape (n,)."""
        x, y = self._xy(x, y)
        a = torch.addmm(self.hidden_bias, x, self.W) + self.U[y]
        return -(x @ self.visible_bias) - self.class_bias[y] - softplus(a).sum(-1)

    def log_proba(self, x) -> torch.Tensor:
        """log p(y|x) for every class, shape (n, C): a log-softmax of the class scores."""
        return torch.log_softmax(self.class_scores(x), dim=-1)

    def predict_proba(self, x) -> torch.Tensor:
        """p(y|x), shape (n, C), rows summing to 1."""
        return torch.softmax(self.class_scores(x), dim=-1)

    def predict(self, x) -> torch.Tensor:
        """argmax_y p(y|x), int64 class indices, shape (n,)."""
        return self.class_scores(x).argmax(-1)

    def discriminative_loss(self, x, y) -> torch.Tensor:
        """-mean log p(y|x) over the rows (nats), differentiable by autograd."""
        x, y = self._xy(x, y)
        return F.cross_entropy(self.class_scores(x), y)

    def error_rate(self, x, y) -> float:
        """Fraction of rows whose argmax_y p(y|x) differs from ``y``."""
        x, y = self._xy(x, y)
        return float((self.predict(x) != y).double().mean()) if x.shape[0] else float("nan")

    # -- gradients (of the batch mean, in ascent direction) -------------------------------------
    def _discriminative(self, x, y):
        """(gradient dict of mean log p(y|x), mean log p(y|x)) for validated x, y."""
        n = x.shape[0]
        a = torch.addmm(self.hidden_bias, x, self.W)
        o = a.unsqueeze(1) + self.U                               # (n, C, n_hidden)
        scores = self.class_bias + softplus(o).sum(-1)
        logp = torch.log_softmax(scores, dim=-1)
        coef = -logp.exp()
        coef[torch.arange(n, device=x.device), y] += 1.0          # e_y - p(.|x)
        G = torch.sigmoid(o).mul_(coef.unsqueeze(-1))             # d log p(y|x) / d o
        Gh = G.sum(1)                                             # (n, n_hidden)
        grads = {"W": x.T @ Gh / n, "U": G.sum(0) / n, "visible_bias": torch.zeros_like(self.visible_bias),
                 "hidden_bias": Gh.mean(0), "class_bias": coef.mean(0)}
        return grads, float(logp.gather(1, y.unsqueeze(1)).mean())

    def discriminative_gradient(self, x, y) -> dict[str, torch.Tensor]:
        """The exact gradient of mean log p(y|x) over the rows, {parameter name: tensor}."""
        x, y = self._xy(x, y)
        return self._discriminative(x, y)[0]

    def _generative(self, x, y, k, g):
        """CD-k estimate of the gradient of mean log p(x, y) for validated x, y."""
        n = x.shape[0]
        Y = F.one_hot(y, self.n_classes).to(self.dtype)
        h0 = torch.sigmoid(torch.addmm(self.hidden_bias, x, self.W) + self.U[y])
        hk = h0
        for _ in range(k):
            h = torch.bernoulli(hk, generator=g)
            xs = torch.bernoulli(torch.sigmoid(torch.addmm(self.visible_bias, h, self.W.T)), generator=g)
            py = torch.softmax(torch.addmm(self.class_bias, h, self.U.T), dim=-1)
            ys = torch.multinomial(py, 1, generator=g).squeeze(1)
            hk = torch.sigmoid(torch.addmm(self.hidden_bias, xs, self.W) + self.U[ys])
        Ys = F.one_hot(ys, self.n_classes).to(self.dtype)
        return {"W": (x.T @ h0 - xs.T @ hk) / n, "U": (Y.T @ h0 - Ys.T @ hk) / n,
                "visible_bias": (x - xs).mean(0), "hidden_bias": (h0 - hk).mean(0),
                "class_bias": (Y - Ys).mean(0)}

    def generative_gradient(self, x, y, k: int = 1, seed=None) -> dict[str, torch.Tensor]:
        """CD-k estimate of the gradient of mean log p(x, y) over the rows (one chain per row,
        started at the data; the negative statistics use p(h|x_k, y_k) at the sampled x_k, y_k)."""
        x, y = self._xy(x, y)
        return self._generative(x, y, check_int(k, "k"), as_generator(seed, self.device))

    def hybrid_gradient(self, x, y, alpha: float = 0.01, k: int = 1, seed=None) -> dict[str, torch.Tensor]:
        """Gradient of mean [log p(y|x) + alpha log p(x, y)]: exact + alpha * CD-k."""
        alpha = check_real(alpha, "alpha", minimum=0.0, strict=False)
        x, y = self._xy(x, y)
        disc = self._discriminative(x, y)[0]
        gen = self._generative(x, y, check_int(k, "k"), as_generator(seed, self.device))
        return {name: disc[name] + alpha * gen[name] for name in PARAMETERS}

    # -- sampling --------------------------------------------------------------------------------
    def gibbs(self, x, y, steps: int = 1, seed=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``steps`` block-Gibbs sweeps (x, y) -> h -> (x', y') from each row; (x', y')."""
        x, y = self._xy(x, y)
        steps = check_int(steps, "steps", minimum=0)
        g = as_generator(seed, self.device)
        for _ in range(steps):
            h = torch.bernoulli(torch.sigmoid(torch.addmm(self.hidden_bias, x, self.W) + self.U[y]), generator=g)
            x = torch.bernoulli(torch.sigmoid(torch.addmm(self.visible_bias, h, self.W.T)), generator=g)
            py = torch.softmax(torch.addmm(self.class_bias, h, self.U.T), dim=-1)
            y = torch.multinomial(py, 1, generator=g).squeeze(1)
        return x, y


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

@dataclass
class ClassRBMTrainResult(Result):
    """What :func:`train_class_rbm` returns.

    seconds : wall time; steps : epochs run; step_unit : "epoch".
    history : one record per epoch: ``step`` (epochs done), ``loss`` (mean -log p(y|x) of the
        training batches during the epoch, nats), ``lr``, ``seconds``, and with a validation set
        ``valid_error`` and ``valid_loss``.
    best_step : the epoch whose parameters were kept (lowest validation error; the last epoch
        without a validation set); best_valid_error : its validation error (None without one).
    stopped_early : True when ``patience`` epochs passed without a better validation error.
    """

    seconds: float
    steps: int
    step_unit: str
    history: list = field(default_factory=list)
    best_step: int = 0
    best_valid_error: float | None = None
    stopped_early: bool = False


def train_class_rbm(model: ClassRBM, x, y, objective: str = "discriminative", alpha: float = 0.01,
                    epochs: int = 10, batch_size: int = 10, lr=0.05, k: int = 1, weight_decay: float = 0.0,
                    validation=None, patience: int | None = None, seed=None, callback=None,
                    progress: bool = False) -> ClassRBMTrainResult:
    """Train ``model`` in place by stochastic gradient ascent; returns a :class:`ClassRBMTrainResult`.

    Parameters
    ----------
    model : the :class:`ClassRBM` to train.
    x, y : training rows (n, n_visible) and their class indices 0..C-1. The generative and
        hybrid objectives need x in [0, 1] (Bernoulli visible units; intensities are read as
        probabilities in the data term).
    objective : "discriminative" (exact gradient of log p(y|x)), "generative" (CD-k on log
        p(x, y)) or "hybrid" (log p(y|x) + alpha log p(x, y)).
    alpha : weight of the generative term of the hybrid objective (ignored otherwise).
    epochs : passes over the data (the cap when early stopping); batch_size : rows per update
        (the gradient is the batch mean; the last batch of an epoch may be smaller).
    lr : learning rate, a number or a schedule of the epoch (``thermolearn.schedules``).
    k : Gibbs sweeps of CD-k (generative and hybrid).
    weight_decay : L2 penalty on W and U: the update adds ``-lr * weight_decay * W``.
    validation : optional (x_valid, y_valid); each epoch records their error and loss, and the
        parameters of the epoch with the lowest validation error are restored at the end.
    patience : with ``validation``, stop after this many epochs without a lower validation
        error (None: run all ``epochs``).
    seed : shuffling and CD sampling (int, torch.Generator or None).
    callback : called as ``callback(record, model)`` after each epoch.
    progress : a progress bar over the epochs on standard error.

    A non-finite loss or parameter raises :class:`~thermolearn.errors.TrainingDiverged`, with the
    model reset to its parameters before the failing epoch.
    """
    if not isinstance(model, ClassRBM):
        raise TypeError(f"model: expected a ClassRBM, got {type(model).__name__}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {', '.join(OBJECTIVES)}, got {objective!r}")
    alpha = check_real(alpha, "alpha", minimum=0.0, strict=False)
    epochs = check_int(epochs, "epochs", minimum=0)
    batch_size = check_int(batch_size, "batch_size")
    k = check_int(k, "k")
    weight_decay = check_real(weight_decay, "weight_decay", minimum=0.0, strict=False)
    lr_schedule = as_schedule(lr, "lr", minimum=0.0, strict=True)
    patience = check_int(patience, "patience", allow_none=True)
    x, y = model._xy(as_tensor(x, "x", ndim=2), y)
    if x.shape[0] == 0:
        raise ValueError("x: expected at least one row, got 0")
    if objective != "discriminative":
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            raise ValueError(f"x: objective={objective!r} needs values in [0, 1] (Bernoulli visible units), "
                             f"got [{lo:g}, {hi:g}]")
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise ValueError("validation: expected a pair (x_valid, y_valid)")
        xv, yv = validation
        xv = model._x(xv, "validation")
        yv = check_labels(yv, model.n_classes, "validation", device=model.device)
        if yv.shape[0] != xv.shape[0] or xv.shape[0] == 0:
            raise ValueError(f"validation: expected as many labels as rows (at least one), got "
                             f"{yv.shape[0]} labels for {xv.shape[0]} rows")
    g = as_generator(seed, model.device)
    n = x.shape[0]
    start = time.perf_counter()
    history: list[dict] = []
    best = None if validation is None else (math.inf, 0, model.copy())
    since_best, stopped = 0, False
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=epochs, desc=f"{objective} RBM", unit="epoch")
    for epoch in range(epochs):
        t0 = time.perf_counter()
        eta = float(lr_schedule(epoch))
        if not math.isfinite(eta) or eta <= 0:
            raise ValueError(f"lr: the schedule gave {eta!r} at epoch {epoch}; expected a finite number > 0")
        saved = {name: p.clone() for name, p in model.parameters().items()}
        order = torch.randperm(n, generator=g, device="cpu").to(model.device)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            xb, yb = x[idx], y[idx]
            if objective == "generative":
                grads = model._generative(xb, yb, k, g)
                with torch.no_grad():
                    scores = model._scores(torch.addmm(model.hidden_bias, xb, model.W))
                    logp = -float(F.cross_entropy(scores, yb))
            else:
                grads, logp = model._discriminative(xb, yb)
            if objective == "hybrid":
                gen = model._generative(xb, yb, k, g)
                for name in PARAMETERS:
                    grads[name].add_(gen[name], alpha=alpha)
            total -= logp * xb.shape[0]
            for name, p in model.parameters().items():
                if weight_decay and name in ("W", "U"):
                    p.mul_(1.0 - eta * weight_decay)
                p.add_(grads[name], alpha=eta)
        loss = total / n
        if not math.isfinite(loss) or not all(bool(torch.isfinite(p).all()) for p in model.parameters().values()):
            for name, p in saved.items():
                getattr(model, name).copy_(p)
            raise TrainingDiverged(f"training diverged at epoch {epoch + 1} (objective={objective!r}, lr={eta:g}): "
                                   "a non-finite loss or parameter; the model keeps the parameters of the "
                                   "previous epoch")
        record = {"step": epoch + 1, "loss": loss, "lr": eta}
        if validation is not None:
            with torch.no_grad():
                scores = model.class_scores(xv)
            record["valid_error"] = float((scores.argmax(-1) != yv).double().mean())
            record["valid_loss"] = float(F.cross_entropy(scores.double(), yv))
            if record["valid_error"] < best[0]:
                best = (record["valid_error"], epoch + 1, model.copy())
                since_best = 0
            else:
                since_best += 1
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        if callback is not None:
            callback(record, model)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", **({"valid_error": f"{record['valid_error']:.4f}"}
                                                   if validation is not None else {}))
        if patience is not None and validation is not None and since_best >= patience:
            stopped = True
            break
    if bar is not None:
        bar.close()
    best_step, best_error = len(history), None
    if best is not None and history:
        best_error, best_step, kept = best
        for name, p in kept.parameters().items():
            getattr(model, name).copy_(p)
    return ClassRBMTrainResult(seconds=time.perf_counter() - start, steps=len(history), step_unit="epoch",
                               history=history, best_step=best_step, best_valid_error=best_error,
                               stopped_early=stopped)


# ---------------------------------------------------------------------------------------------
# scikit-learn estimator
# ---------------------------------------------------------------------------------------------

_SEED_MAX = 2**31 - 1


class DiscriminativeRBM(ClassifierMixin, BaseEstimator):
    """Classification RBM (Larochelle & Bengio 2008) as a scikit-learn classifier.

    ``predict_proba`` is the exact p(y|x) of the model (see :mod:`thermolearn.ebm.drbm`); training
    maximises log p(y|x) (``objective="discriminative"``, the DRBM), log p(x, y) by CD-k
    (``"generative"``) or log p(y|x) + alpha log p(x, y) (``"hybrid"``, the HDRBM) by
    mini-batch stochastic gradient ascent. Labels may be anything scikit-learn accepts for
    classification (strings, non-contiguous integers); they are encoded to 0..C-1 in the order
    of ``classes_``.

    Parameters
    ----------
    n_components : int, default=100
        Number of hidden units.
    objective : {"discriminative", "generative", "hybrid"}, default="discriminative"
    alpha : float, default=0.01
        Weight of the generative term of the hybrid objective.
    learning_rate : float or callable epoch -> float, default=1.0
        Step size; it multiplies the gradient averaged over the batch (1.0 with batches of 10 is,
        to first order, a step of 0.1 per example). Features should lie in [0, 1] or be
        standardized for this default.
    n_iter : int, default=40
        Epochs (passes over the data); 0 leaves the initial model.
    batch_size : int, default=10
        Rows per update (the last batch of an epoch may be smaller).
    k : int, default=1
        Gibbs sweeps of CD-k (generative and hybrid objectives).
    weight_decay : float, default=0.0
        L2 penalty on the weights W and U.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the shuffling and the CD sampling; an int gives identical
        results on every ``fit``.
    verbose : int, default=0
        Print one line per epoch in scikit-learn's format, ``[DiscriminativeRBM] Iteration 1,
        loss = 0.4213, time = 0.05s`` (the mean -log p(y|x) of the training batches, nats).
    device : str, torch.device or None, default=None
        Where the computations run ("cpu" when None). Fitted attributes are NumPy arrays.

    The generative and hybrid objectives need X in [0, 1] (binary or intensities); the
    discriminative objective accepts any real X.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    components_ : ndarray of shape (n_components, n_features)
        W^T (scikit-learn's layout).
    class_components_ : ndarray of shape (n_classes, n_components)
        U, the label-to-hidden weights.
    intercept_visible_, intercept_hidden_, intercept_class_ : ndarrays
        b (n_features,), c (n_components,), d (n_classes,).
    n_features_in_ : int
    feature_names_in_ : ndarray of str, only when X has string column names
    n_iter_ : int
        Epochs trained.
    history_ : list of dict
        One record per epoch (``step``, ``loss``, ``lr``, ``seconds``).

    The parameters are float32 when ``fit`` got float32 data, otherwise float64 (scikit-learn's
    rule); ``predict_proba`` and ``predict_log_proba`` are float64 either way.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "objective": [StrOptions(set(OBJECTIVES))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither"), callable],
        "n_iter": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "k": [Interval(Integral, 1, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "device": [str, torch.device, None],
    }

    def __init__(self, n_components=100, objective="discriminative", alpha=0.01, learning_rate=1.0, n_iter=40,
                 batch_size=10, k=1, weight_decay=0.0, random_state=None, verbose=0, device=None):
        self.n_components = n_components
        self.objective = objective
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.n_iter = n_iter
        self.batch_size = batch_size
        self.k = k
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit the model to (X, y): ``n_iter`` epochs from a fresh initialisation.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, accept_sparse=True, dtype="numeric")
        if hasattr(X, "toarray"):
            X = X.toarray()
        check_classification_targets(y)
        if self.objective != "discriminative" and X.size and (X.min() < 0 or X.max() > 1):
            raise ValueError(f"X: objective={self.objective!r} needs values in [0, 1] (Bernoulli visible units), "
                             f"got [{X.min():g}, {X.max():g}]; scale the data or use objective='discriminative'")
        classes, codes = np.unique(y, return_inverse=True)
        dtype = torch.float32 if X.dtype == np.float32 else torch.float64
        device = self._torch_device()
        xt = torch.tensor(np.asarray(X), dtype=dtype, device=device)
        rng = check_random_state(self.random_state)
        model = ClassRBM(X.shape[1], len(classes), int(self.n_components), seed=int(rng.randint(_SEED_MAX)),
                         device=device, dtype=dtype)
        lr = self.learning_rate
        result = train_class_rbm(
            model, xt, torch.from_numpy(codes.astype(np.int64)), objective=self.objective, alpha=float(self.alpha),
            epochs=int(self.n_iter), batch_size=int(self.batch_size),
            lr=lr if callable(lr) else float(lr), k=int(self.k), weight_decay=float(self.weight_decay),
            seed=int(rng.randint(_SEED_MAX)),
            callback=_IterationLine(type(self).__name__) if self.verbose else None)
        self.classes_ = classes
        self.components_ = np.ascontiguousarray(model.W.T.cpu().numpy())
        self.class_components_ = model.U.cpu().numpy().copy()
        self.intercept_visible_ = model.visible_bias.cpu().numpy().copy()
        self.intercept_hidden_ = model.hidden_bias.cpu().numpy().copy()
        self.intercept_class_ = model.class_bias.cpu().numpy().copy()
        self.n_iter_ = result.steps
        self.history_ = result.history
        return self

    def model(self) -> ClassRBM:
        """The fitted parameters as a float64 :class:`ClassRBM` on ``device``."""
        check_is_fitted(self)
        return ClassRBM.from_weights(self.components_.T, self.class_components_, self.intercept_visible_,
                                     self.intercept_hidden_, self.intercept_class_,
                                     device=self._torch_device(), dtype=torch.float64)

    def predict_log_proba(self, X):
        """log p(y|x) for every class, shape (n_samples, n_classes), float64."""
        check_is_fitted(self)
        model = self.model()
        X = validate_data(self, X, accept_sparse=True, dtype="numeric", reset=False)
        if hasattr(X, "toarray"):
            X = X.toarray()
        x = torch.tensor(np.asarray(X), dtype=torch.float64, device=model.device)
        with torch.inference_mode():
            return model.log_proba(x).cpu().numpy()

    def predict_proba(self, X):
        """The exact p(y|x), shape (n_samples, n_classes), float64 rows summing to 1."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X):
        """The class of highest p(y|x), in the labels of ``classes_``."""
        log_p = self.predict_log_proba(X)
        return self.classes_[np.argmax(log_p, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _torch_device(self):
        try:
            return torch.device("cpu" if self.device is None else self.device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device: expected a torch device such as 'cpu' or 'cuda', "
                             f"got {self.device!r} ({exc})") from None


class _IterationLine:
    """verbose: scikit-learn's line per epoch."""

    def __init__(self, name):
        self.name = name

    def __call__(self, record, model):
        print(f"[{self.name}] Iteration {record['step']:d}, loss = {record['loss']:.4f}, "
              f"time = {record['seconds']:.2f}s")


__all__ = ["ClassRBM", "ClassRBMTrainResult", "DiscriminativeRBM", "OBJECTIVES", "check_labels",
           "train_class_rbm"]

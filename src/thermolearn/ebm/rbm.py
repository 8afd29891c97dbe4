"""Bernoulli-Bernoulli restricted Boltzmann machine with an explicit inverse temperature.

Conventions (Hinton 2002; Salakhutdinov & Murray 2008, with an inverse temperature): units
v in {0,1}^n_v, h in {0,1}^n_h, weights W of shape (n_v, n_h), visible bias a, hidden bias b,

    E(v, h) = -a.v - b.h - v.W.h,        p(v, h) = exp(-beta E(v, h)) / Z(beta),

    F_beta(v) = -a.v - (1/beta) sum_j softplus(beta (b_j + (vW)_j)),

so that p(v) = exp(-beta F_beta(v)) / Z(beta) and log p(v) = -beta F_beta(v) - log Z(beta).
At beta = 1 these are the usual F(v) and log p(v) = -F(v) - log Z.

Conditionals: p(h_j = 1 | v) = sigmoid(beta (b_j + (vW)_j)), p(v_i = 1 | h) = sigmoid(beta (a_i + (Wh)_i)).
Batches are rows: v has shape (batch, n_v), h has shape (batch, n_h).
"""

from __future__ import annotations

import torch

from .._numerics import as_tensor, check_int, check_real, softplus
from ..io import load_tensors, save_tensors
from ..seeding import as_generator


class RBM:
    """A binary RBM. Parameters are plain tensors: ``W``, ``visible_bias``, ``hidden_bias``.

    Parameters
    ----------
    n_visible, n_hidden : layer sizes.
    beta : inverse temperature (1/T), > 0.
    seed : seed of the weight initialisation, W ~ N(0, 0.01^2) (Hinton's guide); biases 0.
    device, dtype : where the parameters live (CPU and float32 by default).
    """

    def __init__(self, n_visible: int, n_hidden: int, beta: float = 1.0, seed=None,
                 device=None, dtype=torch.float32):
        n_visible, n_hidden = check_int(n_visible, "n_visible"), check_int(n_hidden, "n_hidden")
        self.beta = check_real(beta, "beta", what=" (inverse temperature)")
        g = as_generator(seed)
        W = 0.01 * torch.randn(n_visible, n_hidden, generator=g, dtype=torch.float64)
        self.W = W.to(device=device, dtype=dtype)
        self.visible_bias = torch.zeros(n_visible, device=device, dtype=dtype)
        self.hidden_bias = torch.zeros(n_hidden, device=device, dtype=dtype)

    # -- construction, conversion, files --------------------------------------------------------
    @classmethod
    def from_weights(cls, W, visible_bias, hidden_bias, beta: float = 1.0, device=None, dtype=None):
        """Build an RBM from given parameters (NumPy arrays or tensors); W has shape (n_v, n_h)."""
        W = as_tensor(W, "W", ndim=2)
        dtype = dtype or (W.dtype if W.is_floating_point() else torch.float32)
        W = W.to(device=device, dtype=dtype)
        n_v, n_h = W.shape
        a = as_tensor(visible_bias, "visible_bias", ndim=1).to(device=W.device, dtype=dtype)
        b = as_tensor(hidden_bias, "hidden_bias", ndim=1).to(device=W.device, dtype=dtype)
        if a.shape[0] != n_v:
            raise ValueError(f"visible_bias: expected length {n_v} (W has shape {tuple(W.shape)}), got {a.shape[0]}")
        if b.shape[0] != n_h:
            raise ValueError(f"hidden_bias: expected length {n_h} (W has shape {tuple(W.shape)}), got {b.shape[0]}")
        rbm = cls.__new__(cls)
        rbm.W, rbm.visible_bias, rbm.hidden_bias = W.clone(), a.clone(), b.clone()
        rbm.beta = check_real(beta, "beta", what=" (inverse temperature)")
        return rbm

    def to(self, device=None, dtype=None) -> RBM:
        """A copy on another device and/or dtype."""
        return RBM.from_weights(self.W, self.visible_bias, self.hidden_bias, self.beta,
                                device=device or self.W.device, dtype=dtype or self.W.dtype)

    def copy(self) -> RBM:
        return self.to()

    def save(self, path, extra: dict | None = None):
        """Write the model to ``path`` (safetensors + JSON metadata)."""
        meta = {"kind": "rbm", "beta": self.beta, "n_visible": self.n_visible,
                "n_hidden": self.n_hidden, "dtype": str(self.W.dtype).removeprefix("torch.")}
        meta.update(extra or {})
        return save_tensors(path, {"W": self.W, "visible_bias": self.visible_bias,
                                   "hidden_bias": self.hidden_bias}, meta)

    @classmethod
    def load(cls, path, device=None) -> RBM:
        """Read a model written by :meth:`save` (or a training checkpoint)."""
        from ..errors import ModelFileError

        tensors, meta = load_tensors(path)
        if meta.get("kind") not in ("rbm", "rbm-checkpoint"):
            raise ModelFileError(f"{path}: holds a {meta.get('kind')!r}, not an RBM")
        missing = {"W", "visible_bias", "hidden_bias"} - set(tensors)
        if missing:
            raise ModelFileError(f"{path}: missing tensor(s) {sorted(missing)}")
        try:
            return cls.from_weights(tensors["W"], tensors["visible_bias"], tensors["hidden_bias"],
                                    beta=meta.get("beta", 1.0), device=device)
        except ValueError as exc:
            raise ModelFileError(f"{path}: inconsistent model: {exc}") from None

    def as_mlp(self, steps: int, tied: bool = True):
        """The unrolled mean field of this model, ``steps`` rounds after h_0 = sigmoid(beta (b + vW)),
        as a torch module (:class:`~thermolearn.ebm.unrolled.MeanFieldMLP`) mapping v to the hidden
        means. Its parameters W, visible_bias, hidden_bias are copies (training it leaves this RBM
        unchanged); ``MeanFieldMLP.to_rbm()`` gives the trained values back as an RBM."""
        from .unrolled import MeanFieldMLP

        return MeanFieldMLP.from_rbm(self, steps, tied=tied)

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def n_visible(self) -> int:
        return self.W.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[1]

    @property
    def device(self):
        return self.W.device

    @property
    def dtype(self):
        return self.W.dtype

    def __repr__(self):
        return (f"RBM(n_visible={self.n_visible}, n_hidden={self.n_hidden}, beta={self.beta:g}, "
                f"dtype={self.dtype}, device={self.device})")

    # -- energies ------------------------------------------------------------------------------
    def _input(self, x, name: str, n: int) -> torch.Tensor:
        t = as_tensor(x, name, dtype=self.dtype, device=self.device)
        if t.ndim == 1:
            t = t.unsqueeze(0)
        if t.ndim != 2 or t.shape[1] != n:
            raise ValueError(f"{name}: expected shape (batch, {n}), got {tuple(t.shape)}")
        return t

    def energy(self, v, h) -> torch.Tensor:
        """E(v, h) = -a.v - b.h - v.W.h, one value per row (temperature-free)."""
        v = self._input(v, "v", self.n_visible)
        h = self._input(h, "h", self.n_hidden)
        if v.shape[0] != h.shape[0]:
            raise ValueError(f"v and h: batch sizes differ ({v.shape[0]} vs {h.shape[0]})")
        return -(v @ self.visible_bias) - (h @ self.hidden_bias) - ((v @ self.W) * h).sum(1)

    def free_energy(self, v) -> torch.Tensor:
        """F_beta(v) = -a.v - (1/beta) sum_j softplus(beta (b + vW)_j), one value per row."""
        v = self._input(v, "v", self.n_visible)
        x = torch.addmm(self.hidden_bias, v, self.W)
        return -(v @ self.visible_bias) - softplus(self.beta * x).sum(1) / self.beta

    def log_likelihood(self, v, log_z: float) -> float:
        """Mean log p(v) in nats per example, given log Z(beta)."""
        return float((-self.beta * self.free_energy(v)).double().mean() - log_z)

    # -- sampling ------------------------------------------------------------------------------
    def hidden_probabilities(self, v) -> torch.Tensor:
        v = self._input(v, "v", self.n_visible)
        return torch.sigmoid(self.beta * torch.addmm(self.hidden_bias, v, self.W))

    def visible_probabilities(self, h) -> torch.Tensor:
        h = self._input(h, "h", self.n_hidden)
        return torch.sigmoid(self.beta * torch.addmm(self.visible_bias, h, self.W.T))

    def sample_hidden(self, v, seed=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(p(h=1|v), a sample h ~ p(h|v)); ``seed``: int, torch.Generator (advanced) or None."""
        p = self.hidden_probabilities(v)
        return p, torch.bernoulli(p, generator=as_generator(seed, self.device))

    def sample_visible(self, h, seed=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(p(v=1|h), a sample v ~ p(v|h)); ``seed`` as in :meth:`sample_hidden`."""
        p = self.visible_probabilities(h)
        return p, torch.bernoulli(p, generator=as_generator(seed, self.device))

    def gibbs(self, v, steps: int = 1, seed=None) -> torch.Tensor:
        """Run ``steps`` block-Gibbs sweeps v -> h -> v from the rows of ``v``; return the last v."""
        steps = check_int(steps, "steps", minimum=0)
        v = self._input(v, "v", self.n_visible)
        g = as_generator(seed, self.device)
        for _ in range(steps):
            _, h = self.sample_hidden(v, g)
            _, v = self.sample_visible(h, g)
        return v

    # -- parameters scaled by beta (what samplers and partition functions use) -------------------
    def scaled_parameters(self, dtype=None):
        """(beta W, beta a, beta b): the parameters of the equivalent beta = 1 model."""
        dtype = dtype or self.dtype
        return tuple((self.beta * t).to(dtype) for t in (self.W, self.visible_bias, self.hidden_bias))


"""Unrolled mean field of an RBM as a tied-weight sigmoid network (a torch module).

Naive mean field of a binary RBM (notation of :mod:`thermolearn.ebm.rbm`: weights W of shape
(n_v, n_h), visible bias a, hidden bias b, inverse temperature beta) iterates the
magnetisations of the two layers. Clamped at a visible vector v and run for ``steps`` rounds,

    h_0 = sigmoid(beta (b + v W)),
    v_r = sigmoid(beta (a + h_{r-1} W^T)),    h_r = sigmoid(beta (b + v_r W)),    r = 1..steps,

so that h_steps is computed by a feed-forward network of 2 steps + 1 sigmoid layers, alternately
of widths n_h and n_v, whose layers all use the same W (transposed on the way down) and the same
two bias vectors: a *tied-weight* multilayer perceptron. This is the observation behind the
conjecture of Martin (2017, "Why deep learning works 3: backprop minimizes the free energy?")
that backpropagation through such a network and the mean-field (EMF) training of an RBM
(Gabrie, Tramel & Krzakala 2015; without the Onsager term here) minimise related free energies,
and that untying the layers' weights may relax the constraint. The module only makes the
network trainable by backpropagation; the experiment ``mf-as-mlp`` measures the conjecture.

:class:`MeanFieldMLP` with ``tied=True`` holds exactly three parameters, ``W`` (n_v, n_h),
``visible_bias`` (n_v,) and ``hidden_bias`` (n_h,), so after any training it is still an RBM
(:meth:`MeanFieldMLP.to_rbm`). With ``tied=False`` every one of the 2 steps + 1 layers has its
own weights and biases, initialised from the same RBM (so both variants compute the same
function before training): ``W`` (2 steps + 1, n_v, n_h), upward layers 0, 2, 4, ... used as
v W_l and downward layers 1, 3, ... as h W_l^T; ``hidden_bias`` (steps + 1, n_h) and
``visible_bias`` (steps, n_v). The parameters are copies: training the module never changes the
RBM it came from.
"""

from __future__ import annotations

import torch
from torch import nn

from .._numerics import as_tensor, check_int, check_real


class MeanFieldMLP(nn.Module):
    """``steps`` rounds of RBM mean field as a sigmoid network: forward(v) = h_steps.

    Parameters
    ----------
    W, visible_bias, hidden_bias : the RBM's parameters ((n_v, n_h), (n_v,), (n_h,)); copied.
    steps : rounds of mean field after h_0 = sigmoid(beta (b + v W)), an integer >= 0.
    beta : the RBM's inverse temperature (a constant, not a parameter), > 0.
    tied : one W, a, b shared by every layer (True), or each layer its own copy (False).
    dtype : dtype of the parameters (default: W's floating dtype, else float32); device: W's.

    Build it from a model with :meth:`thermolearn.ebm.RBM.as_mlp` or :meth:`from_rbm`.
    """

    def __init__(self, W, visible_bias, hidden_bias, steps: int, beta: float = 1.0, tied: bool = True,
                 dtype=None):
        super().__init__()
        self.steps = check_int(steps, "steps", minimum=0)
        self.beta = check_real(beta, "beta", what=" (inverse temperature)")
        if not isinstance(tied, bool):
            raise TypeError(f"tied: expected True or False, got {tied!r}")
        self.tied = tied
        W = as_tensor(W, "W", ndim=2)
        dtype = dtype or (W.dtype if W.is_floating_point() else torch.float32)
        W = W.detach().to(dtype)
        n_v, n_h = W.shape
        a = as_tensor(visible_bias, "visible_bias", ndim=1).detach().to(device=W.device, dtype=dtype)
        b = as_tensor(hidden_bias, "hidden_bias", ndim=1).detach().to(device=W.device, dtype=dtype)
        if a.shape[0] != n_v:
            raise ValueError(f"visible_bias: expected length {n_v} (W has shape {tuple(W.shape)}), got {a.shape[0]}")
        if b.shape[0] != n_h:
            raise ValueError(f"hidden_bias: expected length {n_h} (W has shape {tuple(W.shape)}), got {b.shape[0]}")
        if tied:
            self.W = nn.Parameter(W.clone())
            self.visible_bias = nn.Parameter(a.clone())
            self.hidden_bias = nn.Parameter(b.clone())
        else:
            s = self.steps
            self.W = nn.Parameter(W.expand(2 * s + 1, n_v, n_h).clone())
            self.visible_bias = nn.Parameter(a.expand(s, n_v).clone())
            self.hidden_bias = nn.Parameter(b.expand(s + 1, n_h).clone())

    @classmethod
    def from_rbm(cls, rbm, steps: int, tied: bool = True) -> MeanFieldMLP:
        """The unrolled mean field of ``rbm`` (parameters copied, in its dtype and on its device)."""
        return cls(rbm.W, rbm.visible_bias, rbm.hidden_bias, steps, beta=rbm.beta, tied=tied)

    @property
    def n_visible(self) -> int:
        return self.W.shape[-2]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[-1]

    @property
    def n_layers(self) -> int:
        """Sigmoid layers of the network: 2 steps + 1."""
        return 2 * self.steps + 1

    def extra_repr(self) -> str:
        return (f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, steps={self.steps}, "
                f"beta={self.beta:g}, tied={self.tied}")

    def _layer(self, name: str, i: int) -> torch.Tensor:
        p = getattr(self, name)
        return p if self.tied else p[i]

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """Hidden means h_steps of shape (batch, n_h) from visible rows v of shape (batch, n_v)."""
        if v.ndim != 2 or v.shape[1] != self.n_visible:
            raise ValueError(f"v: expected shape (batch, {self.n_visible}), got {tuple(v.shape)}")
        beta = self.beta
        v = v.to(self.W.dtype)
        h = torch.sigmoid(beta * torch.addmm(self._layer("hidden_bias", 0), v, self._layer("W", 0)))
        for r in range(1, self.steps + 1):
            m = torch.sigmoid(beta * torch.addmm(self._layer("visible_bias", r - 1), h,
                                                 self._layer("W", 2 * r - 1).T))
            h = torch.sigmoid(beta * torch.addmm(self._layer("hidden_bias", r), m, self._layer("W", 2 * r)))
        return h

    def to_rbm(self):
        """A new :class:`~thermolearn.ebm.RBM` with the current (tied) parameters and beta."""
        if not self.tied:
            raise ValueError("tied: an untied network (tied=False) has one W per layer and is no RBM")
        from .rbm import RBM

        return RBM.from_weights(self.W.detach(), self.visible_bias.detach(), self.hidden_bias.detach(),
                                beta=self.beta)


__all__ = ["MeanFieldMLP"]

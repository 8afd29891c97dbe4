"""The Ising model an RBM induces on its visible units: the exact many-body couplings of F(v).

Summing out the hidden units leaves a Boltzmann distribution p(v) = exp(-beta H(v)) / Z on the
visible units alone, with the effective Hamiltonian H(v) = F_beta(v), the RBM's free energy

    H(v) = -a.v - sum_j f_j(v),      f_j(v) = softplus(beta (b_j + (v W)_j)) / beta,

(energy units; ``beta`` is the RBM's). A function of n binary variables is one multilinear
polynomial,

    H(v) = sum_{S subset of {1..n}} J_S prod_{i in S} v_i,    J_S = sum_{T subset of S} (-1)^{|S|-|T|} H(1_T),

(Moebius inversion: J_S is the |S|-th mixed finite difference of H at v = 0). Here it is done
on the softplus part, G(T) = sum_j f_j(1_T), for every subset T of at most ``order`` units:
J_S = -(G(S) - sum_{T proper subset of S} (-J_T)), level by level, with the visible bias added
to the fields. So J_{} = -sum_j f_j(0), J_i = -a_i - sum_j [f_j(e_i) - f_j(0)], and for pairs
J_ik = -sum_j [f_j(e_i + e_k) - f_j(e_i) - f_j(e_k) + f_j(0)]: a single hidden unit couples
every subset of visible units it reads, with coefficients that do not vanish at any order,
while the RBM itself has only pairwise (visible-hidden) interactions. The low-order terms are
the "renormalised" Ising model of the visible units; ``order = n_visible`` is exact.

``basis="spin"`` writes the same function of s = 2v - 1 in {-1, +1}^n,
H = sum_U K_U prod_{i in U} s_i with K_U = 2^-n sum_s H(s) prod_{i in U} s_i (the Walsh-Fourier
coefficients, by a fast Walsh-Hadamard transform over all 2^n visible states, so n_visible is at
most MAX_EXACT_UNITS). In the physicists' sign convention H = -sum h_i s_i - sum J_ik s_i s_k - ...
the fields and couplings are the negatives of ``fields`` and ``couplings``.

Cost and limits. The binary basis evaluates G on sum_{k<=order} C(n, k) subsets of n_hidden units
each and gathers 2^k lower-order terms for each k-subset; the work is
sum_{k<=order} C(n, k) (n_hidden + 2^k), at most :data:`MAX_WORK` (about 10^9: pairs of the
784 MNIST pixels with 500 hidden units, triples of 64 pixels, every order up to 18 visible
units); above it a ValueError names ``order``. The dense triple tensor is built for at most
:data:`MAX_DENSE_TRIPLES_UNITS` visible units; the coefficients of every order are always in
``terms`` (subsets as sorted index rows, lexicographic order).

All arithmetic is float64.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field

import torch

from .._numerics import as_tensor, check_int, softplus
from .exact import MAX_EXACT_UNITS, all_states
from .rbm import RBM

BASES = ("binary", "spin")
MAX_WORK = 2**30
"""The largest sum_{k<=order} C(n_visible, k) (n_hidden + 2^k) that :func:`effective_couplings` accepts."""
MAX_DENSE_TRIPLES_UNITS = 256
"""``triples`` is a dense (n, n, n) tensor when n_visible is at most this, else None."""
_ROWS = 2**22        # subset rows times hidden units per chunk of softplus evaluations


@dataclass
class EffectiveCouplings:
    """What :func:`effective_couplings` returns: H(v) = F_beta(v) as a polynomial, float64.

    H(x) = constant + fields.x + sum_{i<k} couplings[i, k] x_i x_k
           + sum_{i<k<l} triples[i, k, l] x_i x_k x_l + ... (up to ``order``),
    x = v in {0, 1}^n (``basis="binary"``) or s = 2v - 1 in {-1, +1}^n (``basis="spin"``).

    constant : the coefficient of the empty set.
    fields : (n,) first-order coefficients.
    couplings : (n, n) symmetric, zero diagonal: pair coefficients (each pair stored twice, so the
        pair term is x.couplings.x / 2); None when order < 2.
    triples : (n, n, n) fully symmetric, zero where two indices coincide; None when order < 3 or
        n > MAX_DENSE_TRIPLES_UNITS.
    terms : {k: (subsets (m_k, k) int64 sorted index rows in lexicographic order, coefficients
        (m_k,) float64)} for k = 1..order.
    order, basis, beta : the truncation order, the variables, the RBM's inverse temperature.
    seconds : wall time.
    """

    constant: float
    fields: torch.Tensor
    couplings: torch.Tensor | None
    triples: torch.Tensor | None
    terms: dict = field(default_factory=dict)
    order: int = 1
    basis: str = "binary"
    beta: float = 1.0
    seconds: float = 0.0

    def energy(self, x) -> torch.Tensor:
        """The truncated polynomial at the rows of ``x`` ((batch, n) or (n,); 0/1 for the binary
        basis, -1/+1 for the spin basis), float64, one value per row."""
        n = self.fields.shape[0]
        t = as_tensor(x, "x", dtype=torch.float64)
        if t.ndim == 1:
            t = t.unsqueeze(0)
        if t.ndim != 2 or t.shape[1] != n:
            raise ValueError(f"x: expected shape (batch, {n}), got {tuple(t.shape)}")
        out = torch.full((t.shape[0],), self.constant, dtype=torch.float64)
        for k, (subsets, coef) in sorted(self.terms.items()):
            step = max(1, 2**22 // (t.shape[0] * k))       # bounds the (batch, step, k) gather
            for start in range(0, subsets.shape[0], step):
                out += t[:, subsets[start:start + step]].prod(-1) @ coef[start:start + step]
        return out


def _work(n: int, n_h: int, order: int) -> int:
    return sum(math.comb(n, k) * (n_h + 2**k) for k in range(order + 1))


def _combinations(n: int, k: int) -> torch.Tensor:
    """The k-subsets of range(n) as sorted int64 rows in lexicographic order, shape (C(n, k), k)."""
    if k == 1:
        return torch.arange(n).unsqueeze(1)
    if k == 2:
        return torch.triu_indices(n, n, 1).T.contiguous()
    flat = torch.tensor(list(itertools.chain.from_iterable(itertools.combinations(range(n), k))), dtype=torch.int64)
    return flat.view(-1, k)


def _colex_rank(subsets: torch.Tensor, binom: torch.Tensor) -> torch.Tensor:
    """Colexicographic ranks of sorted index rows: sum_t C(c_t, t + 1)."""
    k = subsets.shape[1]
    if k == 0:
        return torch.zeros(subsets.shape[0], dtype=torch.int64)
    return binom[subsets, torch.arange(1, k + 1)].sum(1)


def _softplus_sum(W, b, beta, subsets: torch.Tensor) -> torch.Tensor:
    """G(T) = sum_j softplus(beta (b_j + sum_{i in T} W_ij)) / beta for each row T of ``subsets``."""
    m, k = subsets.shape
    n_h = W.shape[1]
    out = torch.empty(m, dtype=torch.float64)
    step = max(1, _ROWS // max(n_h, 1))
    for start in range(0, m, step):
        idx = subsets[start:start + step]
        drive = b.expand(idx.shape[0], n_h).clone()
        for t in range(k):
            drive += W[idx[:, t]]
        out[start:start + step] = softplus(beta * drive).sum(1) / beta
    return out


def _binary_terms(rbm, order: int):
    W = rbm.W.detach().to(torch.float64).cpu()
    a = rbm.visible_bias.detach().to(torch.float64).cpu()
    b = rbm.hidden_bias.detach().to(torch.float64).cpu()
    beta, n = float(rbm.beta), W.shape[0]
    binom = torch.tensor([[math.comb(i, j) for j in range(order + 1)] for i in range(n)], dtype=torch.int64)
    constant = -float(_softplus_sum(W, b, beta, torch.zeros(1, 0, dtype=torch.int64))[0])
    # by_rank[k]: the coefficients of -G of the k-subsets in colex order (for the gathers)
    by_rank = {0: torch.tensor([constant], dtype=torch.float64)}
    terms = {}
    for k in range(1, order + 1):
        subsets = _combinations(n, k)
        coef = -_softplus_sum(W, b, beta, subsets)           # -G(S)
        for mask in range(2**k - 1):                          # proper subsets T of S
            pos = [t for t in range(k) if mask >> t & 1]
            sub = subsets[:, pos]
            coef -= by_rank[len(pos)][_colex_rank(sub, binom)]
        ranks = _colex_rank(subsets, binom)
        table = torch.empty(subsets.shape[0], dtype=torch.float64)
        table[ranks] = coef                                   # the softplus part only
        by_rank[k] = table
        terms[k] = (subsets, coef - a if k == 1 else coef)
    return constant, terms


def _walsh(values: torch.Tensor) -> torch.Tensor:
    """Unnormalised Walsh-Hadamard transform of a length-2^n vector (index bit i is unit i):
    out[U] = sum_x values[x] (-1)^{|U & x|}."""
    n = values.numel().bit_length() - 1
    y = values.clone()
    for i in range(n):
        y = y.view(-1, 2, 2**i)
        y = torch.stack([y[:, 0] + y[:, 1], y[:, 0] - y[:, 1]], 1)
    return y.reshape(-1)


def _spin_terms(rbm, order: int):
    n = rbm.n_visible
    states = all_states(n)                                    # bit i of the index is v_i
    model = rbm.to(device="cpu", dtype=torch.float64)
    H = torch.cat([model.free_energy(states[s:s + 2**16]) for s in range(0, 2**n, 2**16)])
    # s_i = 2 v_i - 1: state x has s_i = -1 where v_i = 0, and prod_{i in U} s_i = (-1)^{|U \ x|}.
    # K_U = 2^-n sum_x H(x) (-1)^{|U| - |U & x|}.
    K = _walsh(H) / 2**n
    idx = torch.arange(2**n)
    popcount = ((idx.unsqueeze(1) >> torch.arange(n)) & 1).sum(1)
    K = K * torch.where(popcount % 2 == 0, 1.0, -1.0).to(torch.float64)
    terms = {}
    for k in range(1, order + 1):
        subsets = _combinations(n, k)
        masks = (1 << subsets).sum(1)
        terms[k] = (subsets, K[masks].clone())
    return float(K[0]), terms


def effective_couplings(rbm, order: int = 2, basis: str = "binary") -> EffectiveCouplings:
    """The coefficients of H(v) = F_beta(v) of ``rbm`` up to ``order`` (exact, not fitted).

    Parameters
    ----------
    rbm : an :class:`~thermolearn.ebm.RBM` (its beta is used: H is in energy units and the visible
        distribution is exp(-beta H) / Z).
    order : the highest order kept, 1 <= order <= n_visible; ``order = n_visible`` reproduces F
        exactly. The work sum_{k<=order} C(n_v, k) (n_h + 2^k) must be at most MAX_WORK.
    basis : "binary" (v in {0, 1}) or "spin" (s = 2v - 1; all 2^n_v states are enumerated, so
        n_visible <= MAX_EXACT_UNITS).

    Returns an :class:`EffectiveCouplings` (float64, CPU).
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm: expected a thermolearn.ebm.RBM, got {type(rbm).__name__}")
    n, n_h = rbm.n_visible, rbm.n_hidden
    order = check_int(order, "order")
    if order > n:
        raise ValueError(f"order: expected an integer in [1, {n}] (n_visible), got {order}")
    if basis not in BASES:
        raise ValueError(f"basis: expected one of {', '.join(map(repr, BASES))}, got {basis!r}")
    if basis == "spin" and n > MAX_EXACT_UNITS:
        raise ValueError(f"basis: 'spin' enumerates all 2^n_visible states and needs n_visible <= "
                         f"MAX_EXACT_UNITS={MAX_EXACT_UNITS}, got {n}; use basis='binary'")
    if basis == "binary" and _work(n, n_h, order) > MAX_WORK:
        raise ValueError(f"order: {order} with {n} visible and {n_h} hidden units needs work "
                         f"{_work(n, n_h, order):.3g} > MAX_WORK={MAX_WORK:.3g} (sum_k C(n_v, k) (n_h + 2^k)); "
                         f"lower the order")
    t0 = time.perf_counter()
    constant, terms = (_binary_terms if basis == "binary" else _spin_terms)(rbm, order)
    fields = terms[1][1].clone()
    couplings = triples = None
    if order >= 2:
        couplings = torch.zeros(n, n, dtype=torch.float64)
        (s, c) = terms[2]
        couplings[s[:, 0], s[:, 1]] = c
        couplings[s[:, 1], s[:, 0]] = c
    if order >= 3 and n <= MAX_DENSE_TRIPLES_UNITS:
        triples = torch.zeros(n, n, n, dtype=torch.float64)
        (s, c) = terms[3]
        for p in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
            triples[s[:, p[0]], s[:, p[1]], s[:, p[2]]] = c
    return EffectiveCouplings(constant=constant, fields=fields, couplings=couplings, triples=triples, terms=terms,
                              order=order, basis=basis, beta=float(rbm.beta), seconds=time.perf_counter() - t0)


__all__ = ["EffectiveCouplings", "effective_couplings", "MAX_WORK", "MAX_DENSE_TRIPLES_UNITS", "BASES"]

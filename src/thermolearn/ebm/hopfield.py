"""Hopfield associative memory: Hebbian storage, retrieval dynamics, capacity, and its RBM form.

Model (Hopfield 1982). P patterns xi^mu in {-1, +1}^N are stored in the Hebbian couplings

    J_ij = (1/N) sum_mu xi_i^mu xi_j^mu   (i != j),     J_ii = 0,

with energy E(s) = -1/2 s.J.s of a state s in {-1, +1}^N, local fields h_i = (J s)_i and
overlaps m^mu = xi^mu . s / N. The load is alpha = P / N. The kernels work with the integer
matrix C = N J (|C_ij| <= P) and the integer fields N h, so that the dynamics are exact (no
rounding decides a spin) and the same on every machine.

Dynamics (many independent runs in parallel, one xorshift128+ stream per run,
:func:`thermolearn._random.xorshift_next`; a sweep visits the N spins once in a fresh random
order, a Fisher-Yates shuffle):

* zero temperature, :meth:`Hopfield.retrieve`: asynchronous updates s_i <- sign(h_i), a spin
  with h_i = 0 is left as it is. Every update lowers the energy or leaves it unchanged
  (dE = -2 |h_i| when s_i flips). A run stops at a fixed point (a sweep without a flip:
  ``converged``) or after ``max_iter`` sweeps.
* finite temperature, :meth:`Hopfield.glauber`: heat-bath (Glauber) updates at inverse
  temperature beta, P(s_i = +1) = 1 / (1 + exp(-2 beta h_i)), for a fixed number of sweeps;
  beta is a number or a schedule of the sweep clock t = 0, 1, ... .

Storage capacity. Started at (or near) a pattern, the zero-temperature dynamics stays near it
(final overlap close to 1) while alpha < alpha_c, and falls to a state of much smaller overlap
above. In the replica-symmetric theory of Amit, Gutfreund & Sompolinsky (1985, PRL 55, 1530;
1987, Ann. Phys. 173, 30) [unverified: not read in the papers] the retrieval states exist for
alpha < alpha_c ~ 0.138 at T = 0, with overlap ~ 0.967 at alpha_c, and for alpha below a line
alpha_M(T) that falls to 0 at T = 1. :func:`rs_retrieval` solves the replica-symmetric
equations of those papers (as written in Hertz, Krogh & Palmer 1991, chapter 2 [unverified]):

    m = < tanh(beta (m + sqrt(alpha r) z)) >_z,   q = < tanh^2(...) >_z,
    r = q / (1 - beta (1 - q))^2,                  z ~ N(0, 1),

and at T = 0, with y = m / sqrt(2 alpha r), the single equation
y (sqrt(2 alpha) + (2 / sqrt(pi)) exp(-y^2)) = erf(y), m = erf(y). Solved here, the T = 0
equation gives alpha_c = 0.13791 and m(alpha_c) = 0.9674 (``rs_capacity(math.inf)``), the
recalled 0.138 and 0.967.

Mixture (spurious) states. The symmetric mixture of an odd number of patterns,
sign(xi^1 + xi^2 + xi^3) for three, has overlap 1/2 with each of them; at low load it is a
fixed point of the zero-temperature dynamics (Amit, Gutfreund & Sompolinsky 1985, PRA 32,
1007: with finitely many patterns, mixture states become stable below T ~ 0.46, read in the
abstract; the mean-field Hessian of the symmetric 3-mixture, computed here, turns negative
between T = 0.45 and 0.46). :meth:`Hopfield.mixture_state` builds it and
:meth:`Hopfield.is_fixed_point` checks it. At finite N its basin is shallow: measured here
(``python benchmarks/hopfield_capacity.py --mixture``, N = 1000 and 4000, P = 3), 100 Glauber
sweeps keep it at T = 0.1 and 0.2 but take it to a single pattern at T = 0.3, well below 0.46.

RBM with Gaussian hidden units (Barra, Bernacchia, Santucci & Contucci 2012, Neural Networks 34,
1). Visible units s in {-1, +1}^N, P real hidden units z_mu, weights W (N, P), and at inverse
temperature beta the joint density (with respect to ds dz)

    p(s, z) = exp(-beta H(s, z)) / Z_RBM,      H(s, z) = -s.W.z + |z|^2 / 2,

i.e. hidden units with the Gaussian prior N(0, 1/beta) coupled to the visible ones. Given s,
z ~ N(W^T s, 1/beta) independently per unit; integrating z out,

    p(s) = exp((beta/2) |W^T s|^2 + (P/2) log(2 pi / beta)) / Z_RBM.

With W = xi^T / sqrt(N) (the patterns as weights), |W^T s|^2 / 2 = (1/(2N)) sum_mu (xi^mu.s)^2
= -E(s) + P/2, because the RBM form keeps the diagonal J_ii = P/N, a constant for +-1 spins.
So the RBM marginal is exactly the Hopfield Boltzmann distribution at the same beta and

    log Z_RBM = log Z_Hopfield(beta) + beta P / 2 + (P/2) log(2 pi / beta).

For general weights the couplings are J = W W^T with its diagonal removed and the constant is
(beta/2) sum_i J_ii + (P/2) log(2 pi / beta) (:meth:`GaussianHiddenRBM.couplings`).
:meth:`Hopfield.to_rbm` and :meth:`GaussianHiddenRBM.to_hopfield` go both ways; both classes
enumerate their 2^N visible states for N <= thermolearn.ebm.exact.MAX_EXACT_UNITS.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .._numerics import as_tensor, check_int, check_real
from .._random import xorshift_next
from ..results import Result
from ..schedules import as_schedule, schedule_values
from ..seeding import as_generator
from .exact import MAX_EXACT_UNITS, all_states

__all__ = ["Hopfield", "RetrievalResult", "GaussianHiddenRBM", "rs_retrieval", "rs_capacity",
           "RETRIEVAL_THRESHOLD"]

try:
    from numba import njit, prange
except ImportError:  # pragma: no cover
    njit = None
    prange = range

RETRIEVAL_THRESHOLD = 0.9
"""A pattern counts as retrieved when the final overlap with it exceeds this."""


# ---------------------------------------------------------------------------------------------
# Kernels (one run per row; rows are independent, so the loop over runs is parallel)
# ---------------------------------------------------------------------------------------------

def _shuffle(perm, st):  # pragma: no cover - compiled
    """Fisher-Yates shuffle of perm in place with the xorshift stream st (row 0)."""
    n = perm.shape[0]
    for i in range(n - 1, 0, -1):
        j = np.int64(((xorshift_next(st, 0) >> np.uint64(32)) * np.uint64(i + 1)) >> np.uint64(32))
        tmp = perm[i]
        perm[i] = perm[j]
        perm[j] = tmp


def _flip(C, S, H, r, i, new):  # pragma: no cover - compiled
    """Set S[r, i] = new (= -old) and update the integer fields of run r."""
    S[r, i] = new
    two = np.int32(2 * new)
    for j in range(C.shape[0]):
        H[r, j] += two * C[i, j]


def _run(C, S, H, T, Q, betas, rng, perms, M, F, done, conv, trace, zero_t):  # pragma: no cover - compiled
    """Zero-temperature (zero_t) or heat-bath sweeps of every run.

    C (N, N) int16 = N J; S (R, N) int8 states; H (R, N) int32 fields N h; T (R, N) int8 target
    pattern of each run (zeros: none); Q (R,) int64 = s.C.s; betas (sweeps,) float64 (unused at
    T = 0); rng (R, 2) uint64; perms (R, N) int64 scratch; out: M (R, sweeps + 1) overlap with
    the target after each sweep, F (R, sweeps) flips per sweep, done (R,) sweeps done, conv (R,)
    fixed point reached (zero_t), trace (R, sweeps * N) energy after every update (size 0: off).
    """
    R, N = S.shape
    n_sweeps = F.shape[1]
    tracing = trace.shape[1] > 0
    for r in prange(R):
        st = rng[r:r + 1].copy()
        perm = perms[r]
        for i in range(N):
            perm[i] = i
        m = np.int64(0)
        for i in range(N):
            m += np.int64(S[r, i]) * np.int64(T[r, i])
        M[r, 0] = m / N
        q = Q[r]
        t_done = 0
        for t in range(n_sweeps):
            _shuffle(perm, st)
            b2 = 2.0 * betas[t] / N
            flips = 0
            for k in range(N):
                i = perm[k]
                h = H[r, i]
                s = S[r, i]
                if zero_t:
                    new = s
                    if h > 0:
                        new = 1
                    elif h < 0:
                        new = -1
                else:
                    u = np.float64(xorshift_next(st, 0) >> np.uint64(11)) * (1.0 / 9007199254740992.0)
                    new = 1 if u * (1.0 + math.exp(-b2 * h)) < 1.0 else -1
                if new != s:
                    q -= np.int64(4) * np.int64(s) * np.int64(h)
                    m += np.int64(2) * np.int64(new) * np.int64(T[r, i])
                    _flip(C, S, H, r, i, np.int8(new))
                    flips += 1
                if tracing:
                    trace[r, t * N + k] = -q / (2.0 * N)
            M[r, t + 1] = m / N
            F[r, t] = flips
            t_done = t + 1
            if zero_t and flips == 0:
                conv[r] = True
                break
        for t in range(t_done, n_sweeps):          # a converged run keeps its overlap
            M[r, t + 1] = M[r, t_done]
        done[r] = t_done
        Q[r] = q
        rng[r, 0] = st[0, 0]
        rng[r, 1] = st[0, 1]


if njit is not None:
    _shuffle = njit(inline="always", cache=True)(_shuffle)
    _flip = njit(inline="always", cache=True)(_flip)
    _kernel = njit(parallel=True, cache=True, nogil=True)(_run)
else:  # pragma: no cover
    _kernel = _run


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------

@dataclass
class RetrievalResult(Result):
    """What :meth:`Hopfield.retrieve` and :meth:`Hopfield.glauber` return (R runs).

    states : (R, N) int8 final states (+-1).
    overlaps : (R, P) float64 final overlaps m^mu = xi^mu . s / N with every pattern.
    energies : (R,) float64 final energies E(s) = -1/2 s.J.s.
    target : (R,) int64 index of each run's target pattern (-1: none given).
    target_overlaps : (R, steps + 1) float64 overlap with the target after each sweep (column 0:
        the initial state); a run that stopped early keeps its final value (0 without a target).
    converged : (R,) bool, a fixed point was reached (zero temperature; all False for Glauber).
    sweeps : (R,) int64 sweeps each run did (the last one, without a flip, included).
    flips : (R, steps) int64 spins flipped in each sweep.
    trace : (R, steps * N) float64 energy after every single-spin update (NaN after a run
        stopped), or None unless asked for with ``trace=True``.
    steps : sweeps of the longest run; step_unit "sweep"; seconds : wall time.
    history : one record per sweep t = 0..steps: step, overlap_mean, overlap_min, overlap_max
        (over runs, with the target), converged (runs at a fixed point by then), flips (in sweep
        t; 0 at step 0), beta (at sweep t - 1; None at zero temperature and at step 0).
    """

    states: torch.Tensor
    overlaps: torch.Tensor
    energies: torch.Tensor
    target: torch.Tensor
    target_overlaps: torch.Tensor
    converged: torch.Tensor
    sweeps: torch.Tensor
    flips: torch.Tensor
    seconds: float
    steps: int
    step_unit: str = "sweep"
    trace: torch.Tensor | None = None
    history: list[dict] = field(default_factory=list)

    def final_target_overlap(self, last: int = 1) -> torch.Tensor:
        """(R,) overlap with the target averaged over the last ``last`` sweeps (1: the final state)."""
        last = check_int(last, "last")
        return self.target_overlaps[:, -min(last, self.target_overlaps.shape[1]):].mean(1)

    def retrieved(self, threshold: float = RETRIEVAL_THRESHOLD, last: int = 1) -> torch.Tensor:
        """(R,) bool: the (averaged) overlap with the target exceeds ``threshold``."""
        threshold = check_real(threshold, "threshold", minimum=None)
        return self.final_target_overlap(last) > threshold


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------

def _check_spins(x, name: str, ndim=None) -> torch.Tensor:
    """x as an int8 tensor of +-1 entries, else a ValueError naming ``name``."""
    t = as_tensor(x, name, dtype=torch.float64)
    if ndim is not None and t.ndim not in ndim:
        want = " or ".join(f"{d}-d" for d in ndim)
        raise ValueError(f"{name}: expected a {want} array, got shape {tuple(t.shape)}")
    bad = int(((t != 1) & (t != -1)).sum())
    if bad:
        raise ValueError(f"{name}: expected entries -1 or +1, got {bad} other value(s)")
    return t.to(torch.int8).contiguous()


class Hopfield:
    """A Hopfield network storing ``patterns`` (P, N) of +-1 entries with Hebbian couplings.

    See the module docstring for the equations. Attributes: ``patterns`` (P, N) int8,
    ``n_units`` N, ``n_patterns`` P, ``load`` alpha = P / N; ``couplings`` J (N, N) float64.
    """

    def __init__(self, patterns):
        xi = _check_spins(patterns, "patterns", ndim=(1, 2))
        if xi.ndim == 1:
            xi = xi.unsqueeze(0)
        if xi.shape[1] < 2 or xi.shape[0] < 1:
            raise ValueError(f"patterns: expected at least one pattern of at least 2 units, got shape "
                             f"{tuple(xi.shape)}")
        if xi.shape[0] >= 2**15:
            raise ValueError(f"patterns: at most 32767 patterns, got {xi.shape[0]}")
        self.patterns = xi
        self._C = None

    @classmethod
    def random(cls, n_units: int, n_patterns: int, seed=None) -> Hopfield:
        """P = ``n_patterns`` independent uniform +-1 patterns of N = ``n_units`` units."""
        n_units = check_int(n_units, "n_units", minimum=2)
        n_patterns = check_int(n_patterns, "n_patterns")
        g = as_generator(seed)
        bits = torch.randint(0, 2, (n_patterns, n_units), generator=g, dtype=torch.int8)
        return cls(2 * bits - 1)

    def __repr__(self):
        return f"Hopfield(n_units={self.n_units}, n_patterns={self.n_patterns}, load={self.load:.4g})"

    @property
    def n_units(self) -> int:
        return self.patterns.shape[1]

    @property
    def n_patterns(self) -> int:
        return self.patterns.shape[0]

    @property
    def load(self) -> float:
        return self.n_patterns / self.n_units

    def _integer_couplings(self) -> np.ndarray:
        """C = N J as int16 (zero diagonal; |C_ij| <= P < 2^15), computed once."""
        if self._C is None:
            x = self.patterns.to(torch.float64)
            C = x.T @ x                                   # exact: integers below 2^15
            C.fill_diagonal_(0.0)
            self._C = np.ascontiguousarray(C.numpy().astype(np.int16))
        return self._C

    @property
    def couplings(self) -> torch.Tensor:
        """J (N, N) float64, zero diagonal."""
        return torch.from_numpy(self._integer_couplings().astype(np.float64)) / self.n_units

    # -- observables ----------------------------------------------------------------------------
    def _states(self, s, name: str = "s") -> torch.Tensor:
        t = _check_spins(s, name, ndim=(1, 2))
        t2 = t.unsqueeze(0) if t.ndim == 1 else t
        if t2.shape[1] != self.n_units:
            raise ValueError(f"{name}: expected {self.n_units} units per state, got shape {tuple(t.shape)}")
        return t2

    def local_fields(self, s) -> torch.Tensor:
        """h = J s, (R, N) float64 (a 1-d state gives one row)."""
        x = self._states(s).to(torch.float64)
        return x @ self.couplings

    def energy(self, s) -> torch.Tensor:
        """E(s) = -1/2 s.J.s, (R,) float64."""
        x = self._states(s).to(torch.float64)
        return -0.5 * ((x @ self.couplings) * x).sum(1)

    def overlaps(self, s) -> torch.Tensor:
        """m^mu = xi^mu . s / N, (R, P) float64."""
        x = self._states(s).to(torch.float64)
        return x @ self.patterns.to(torch.float64).T / self.n_units

    def is_fixed_point(self, s) -> torch.Tensor:
        """(R,) bool: no spin is against its field (s_i h_i >= 0 for all i), i.e. a fixed point of
        the zero-temperature dynamics (which leaves spins with h_i = 0 alone)."""
        x = self._states(s)
        h = torch.from_numpy(x.numpy().astype(np.int64) @ self._integer_couplings().astype(np.int64))
        return ((h * x.to(torch.int64)) >= 0).all(1)

    def mixture_state(self, indices=(0, 1, 2)) -> torch.Tensor:
        """The symmetric mixture sign(sum_{mu in indices} xi^mu), (N,) int8; an odd number of
        distinct pattern indices (no ties)."""
        idx = list(indices) if not isinstance(indices, int) else [indices]
        if (not idx or len(idx) % 2 == 0 or len(set(idx)) != len(idx)
                or any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) for i in idx)
                or any(not 0 <= int(i) < self.n_patterns for i in idx)):
            raise ValueError(f"indices: expected an odd number of distinct pattern indices in "
                             f"[0, {self.n_patterns}), got {indices!r}")
        total = self.patterns[[int(i) for i in idx]].to(torch.int32).sum(0)
        return torch.sign(total).to(torch.int8)

    def corrupt(self, s, flip_fraction: float, seed=None) -> torch.Tensor:
        """Copies of the states ``s`` with exactly round(flip_fraction * N) spins of each flipped,
        chosen uniformly (one random subset per row). (R, N) int8."""
        x = self._states(s).clone()
        f = check_real(flip_fraction, "flip_fraction", minimum=0.0, strict=False)
        if f > 1:
            raise ValueError(f"flip_fraction: expected a number in [0, 1], got {flip_fraction!r}")
        n_flip = int(round(f * self.n_units))
        if n_flip:
            g = as_generator(seed)
            keys = torch.rand(x.shape, generator=g)
            idx = keys.argsort(1)[:, :n_flip]
            x.scatter_(1, idx, -x.gather(1, idx))
        return x

    def pattern_starts(self, flip_fraction: float = 0.0, indices=None, seed=None):
        """(states, targets): every pattern (or those in ``indices``) with round(flip_fraction N)
        spins flipped, and its index; the starts of a capacity measurement."""
        if indices is None:
            targets = torch.arange(self.n_patterns)
        else:
            targets = torch.as_tensor(list(indices), dtype=torch.int64)
            if targets.ndim != 1 or not len(targets) or bool(((targets < 0) | (targets >= self.n_patterns)).any()):
                raise ValueError(f"indices: expected pattern indices in [0, {self.n_patterns}), got {indices!r}")
        return self.corrupt(self.patterns[targets], flip_fraction, seed=seed), targets

    # -- dynamics -------------------------------------------------------------------------------
    def retrieve(self, s0, target=None, max_iter: int = 100, seed=None, trace: bool = False) -> RetrievalResult:
        """Zero-temperature asynchronous dynamics from the states ``s0`` ((R, N) or (N,), +-1).

        Each sweep updates the N spins in a fresh random order, s_i <- sign(h_i) (h_i = 0 keeps
        s_i); a run stops at a fixed point (``converged``) or after ``max_iter`` sweeps.
        ``target``: a pattern index per run (an int for all, or (R,) ints; None: no target)
        whose overlap the result records after every sweep. ``trace``: record the energy after
        every single-spin update (small systems). ``seed``: int, torch.Generator or None; it
        seeds one xorshift128+ stream per run.
        """
        max_iter = check_int(max_iter, "max_iter")
        return self._dynamics(s0, target, None, max_iter, seed, trace)

    def glauber(self, s0, beta, sweeps: int = 100, target=None, seed=None, trace: bool = False) -> RetrievalResult:
        """Heat-bath dynamics at inverse temperature ``beta`` for ``sweeps`` sweeps.

        P(s_i = +1) = 1 / (1 + exp(-2 beta h_i)), spins in a fresh random order each sweep.
        ``beta``: a number > 0 or a schedule of the sweep clock t = 0, 1, ... (sweep t uses
        beta(t)); other arguments as in :meth:`retrieve`.
        """
        sweeps = check_int(sweeps, "sweeps")
        schedule = as_schedule(beta, "beta", minimum=0.0, strict=True)
        betas = schedule_values(schedule, sweeps, "beta")
        if not (np.isfinite(betas).all() and (betas > 0).all()):
            bad = betas[~(np.isfinite(betas) & (betas > 0))][0]
            raise ValueError(f"beta: expected finite values > 0 at every sweep, got {bad!r}")
        return self._dynamics(s0, target, betas, sweeps, seed, trace)

    def _targets(self, target, R: int) -> torch.Tensor:
        if target is None:
            return torch.full((R,), -1, dtype=torch.int64)
        if isinstance(target, bool):
            raise ValueError(f"target: expected a pattern index or one per run, got {target!r}")
        t = torch.as_tensor(target)
        if t.is_floating_point() or t.dtype == torch.bool:
            raise ValueError(f"target: expected integer pattern indices, got {target!r}")
        t = t.to(torch.int64)
        if t.ndim == 0:
            t = t.expand(R).clone()
        if t.shape != (R,):
            raise ValueError(f"target: expected an index or {R} indices (one per run), got shape {tuple(t.shape)}")
        if bool(((t < 0) | (t >= self.n_patterns)).any()):
            raise ValueError(f"target: expected indices in [0, {self.n_patterns}), got {t.tolist()[:8]}")
        return t

    def _dynamics(self, s0, target, betas, n_sweeps: int, seed, trace: bool) -> RetrievalResult:
        if not isinstance(trace, bool):
            raise ValueError(f"trace: expected True or False, got {trace!r}")
        S = self._states(s0, "s0").numpy().copy()
        R, N = S.shape
        tgt = self._targets(target, R)
        g = as_generator(seed)
        t0 = time.perf_counter()
        C = self._integer_couplings()
        H = np.ascontiguousarray((S.astype(np.int64) @ C.astype(np.int64)).astype(np.int32))
        Q = (H.astype(np.int64) * S).sum(1)
        T = np.zeros((R, N), dtype=np.int8)
        has = tgt >= 0
        if bool(has.any()):
            T[has.numpy()] = self.patterns[tgt[has]].numpy()
        zero_t = betas is None
        beta_arr = np.zeros(n_sweeps) if zero_t else np.ascontiguousarray(betas, dtype=np.float64)
        rng = torch.randint(1, 2**62, (R, 2), generator=g, dtype=torch.int64).numpy().astype(np.uint64)
        perms = np.empty((R, N), dtype=np.int64)
        M = np.zeros((R, n_sweeps + 1))
        F = np.zeros((R, n_sweeps), dtype=np.int64)
        done = np.zeros(R, dtype=np.int64)
        conv = np.zeros(R, dtype=np.bool_)
        tr = np.full((R, n_sweeps * N) if trace else (R, 0), np.nan)
        _kernel(C, S, H, T, Q, beta_arr, rng, perms, M, F, done, conv, tr, zero_t)
        steps = int(done.max()) if R else 0
        M, F = M[:, :steps + 1], F[:, :steps]
        states = torch.from_numpy(S)
        x = states.to(torch.float64)
        overlaps = x @ self.patterns.to(torch.float64).T / N
        energies = torch.from_numpy(-Q / (2.0 * N))
        if not has.all():
            M[~has.numpy()] = 0.0
        history = []
        for t in range(steps + 1):
            col = M[:, t]
            history.append({"step": t, "overlap_mean": float(col.mean()), "overlap_min": float(col.min()),
                            "overlap_max": float(col.max()),
                            "converged": int((conv & (done <= t)).sum()) if zero_t else 0,
                            "flips": int(F[:, t - 1].sum()) if t else 0,
                            "beta": None if zero_t or t == 0 else float(beta_arr[t - 1])})
        return RetrievalResult(
            states=states, overlaps=overlaps, energies=energies, target=tgt,
            target_overlaps=torch.from_numpy(M), converged=torch.from_numpy(conv),
            sweeps=torch.from_numpy(done), flips=torch.from_numpy(F), seconds=time.perf_counter() - t0,
            steps=steps, trace=torch.from_numpy(tr[:, :steps * N]) if trace else None, history=history)

    # -- exact enumeration and the RBM form ------------------------------------------------------
    def _check_exact(self, max_units: int) -> None:
        max_units = check_int(max_units, "max_units")
        if self.n_units > max_units:
            raise ValueError(f"max_units: enumerating 2^{self.n_units} states is above the limit "
                             f"max_units={max_units}")

    def log_boltzmann_weights(self, beta: float = 1.0, max_units: int = MAX_EXACT_UNITS):
        """(states, log_weights): all 2^N states (rows, +-1, float64; bit i of the row index is
        unit i, 1 -> +1) and -beta E(s), by enumeration."""
        beta = check_real(beta, "beta", what=" (inverse temperature)")
        self._check_exact(max_units)
        s = 2.0 * all_states(self.n_units) - 1.0
        E = -0.5 * ((s @ self.couplings) * s).sum(1)
        return s, -beta * E

    def boltzmann(self, beta: float = 1.0, max_units: int = MAX_EXACT_UNITS) -> torch.Tensor:
        """p(s) = exp(-beta E(s)) / Z over all 2^N states (order of :meth:`log_boltzmann_weights`)."""
        _s, lw = self.log_boltzmann_weights(beta, max_units)
        return torch.exp(lw - torch.logsumexp(lw, 0))

    def log_partition(self, beta: float = 1.0, max_units: int = MAX_EXACT_UNITS) -> float:
        """log Z(beta) = log sum_s exp(-beta E(s)), exactly (float64 enumeration)."""
        _s, lw = self.log_boltzmann_weights(beta, max_units)
        return float(torch.logsumexp(lw, 0))

    def to_rbm(self, beta: float = 1.0) -> GaussianHiddenRBM:
        """The RBM with Gaussian hidden units whose visible marginal is this network's Boltzmann
        distribution at ``beta``: W = xi^T / sqrt(N) (Barra et al. 2012; module docstring)."""
        W = self.patterns.to(torch.float64).T / math.sqrt(self.n_units)
        return GaussianHiddenRBM(W, beta=beta)


class GaussianHiddenRBM:
    """RBM with N binary +-1 visible units and P Gaussian hidden units (module docstring).

    H(s, z) = -s.W.z + |z|^2 / 2, p(s, z) proportional to exp(-beta H(s, z)) (density in z);
    ``W`` (N, P) float64, ``beta`` > 0.
    """

    def __init__(self, W, beta: float = 1.0):
        self.W = as_tensor(W, "W", dtype=torch.float64, ndim=2).contiguous()
        if self.W.shape[0] < 1 or self.W.shape[1] < 1:
            raise ValueError(f"W: expected shape (visible, hidden) with both >= 1, got {tuple(self.W.shape)}")
        self.beta = check_real(beta, "beta", what=" (inverse temperature)")

    def __repr__(self):
        return f"GaussianHiddenRBM(n_visible={self.n_visible}, n_hidden={self.n_hidden}, beta={self.beta:g})"

    @property
    def n_visible(self) -> int:
        return self.W.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[1]

    def _visible(self, s) -> torch.Tensor:
        t = _check_spins(s, "s", ndim=(1, 2)).to(torch.float64)
        t = t.unsqueeze(0) if t.ndim == 1 else t
        if t.shape[1] != self.n_visible:
            raise ValueError(f"s: expected {self.n_visible} visible units, got shape {tuple(t.shape)}")
        return t

    def joint_log_weight(self, s, z) -> torch.Tensor:
        """-beta H(s, z) for rows s (R, N) and z (R, P)."""
        x = self._visible(s)
        zt = as_tensor(z, "z", dtype=torch.float64)
        zt = zt.unsqueeze(0) if zt.ndim == 1 else zt
        if zt.shape != (x.shape[0], self.n_hidden):
            raise ValueError(f"z: expected shape {(x.shape[0], self.n_hidden)}, got {tuple(zt.shape)}")
        return self.beta * (((x @ self.W) * zt).sum(1) - 0.5 * (zt * zt).sum(1))

    def log_marginal(self, s) -> torch.Tensor:
        """log of the unnormalized visible marginal, log integral exp(-beta H(s, z)) dz
        = (beta/2) |W^T s|^2 + (P/2) log(2 pi / beta), (R,) float64."""
        a = self._visible(s) @ self.W
        return 0.5 * self.beta * (a * a).sum(1) + 0.5 * self.n_hidden * math.log(2 * math.pi / self.beta)

    def hidden_mean(self, s) -> torch.Tensor:
        """E[z | s] = W^T s, (R, P); the conditional is Gaussian with variance 1/beta per unit."""
        return self._visible(s) @ self.W

    def sample_hidden(self, s, seed=None) -> torch.Tensor:
        """z ~ N(W^T s, 1/beta) given s, (R, P) float64."""
        mean = self.hidden_mean(s)
        g = as_generator(seed)
        return mean + torch.randn(mean.shape, generator=g, dtype=torch.float64) / math.sqrt(self.beta)

    def couplings(self):
        """(J, constant): J = W W^T with zero diagonal, and constant = (beta/2) sum_i (W W^T)_ii
        + (P/2) log(2 pi / beta), so that log_marginal(s) = -beta E_J(s) + constant for +-1 s,
        with E_J(s) = -1/2 s.J.s."""
        G = self.W @ self.W.T
        diag = torch.diagonal(G).clone()
        J = G.clone()
        J.fill_diagonal_(0.0)
        const = 0.5 * self.beta * float(diag.sum()) + 0.5 * self.n_hidden * math.log(2 * math.pi / self.beta)
        return J, const

    def to_hopfield(self, tol: float = 1e-9) -> Hopfield:
        """The Hopfield network with patterns xi = sqrt(N) W^T, when those are +-1 (within
        ``tol``); a ValueError naming W otherwise (use :meth:`couplings` for general weights)."""
        tol = check_real(tol, "tol")
        xi = self.W.T * math.sqrt(self.n_visible)
        rounded = torch.sign(xi)
        if bool(((xi - rounded).abs() > tol).any()) or bool((rounded == 0).any()):
            raise ValueError("W: the weights are not +-1/sqrt(N) patterns; use couplings() for general weights")
        return Hopfield(rounded)

    def log_partition(self, max_units: int = MAX_EXACT_UNITS) -> float:
        """log Z_RBM = log sum_s integral exp(-beta H(s, z)) dz, enumerating the 2^N visible states."""
        return float(torch.logsumexp(self._enumerate(max_units)[1], 0))

    def marginal(self, max_units: int = MAX_EXACT_UNITS) -> torch.Tensor:
        """p(s) over all 2^N visible states, in the order of :meth:`Hopfield.log_boltzmann_weights`."""
        lw = self._enumerate(max_units)[1]
        return torch.exp(lw - torch.logsumexp(lw, 0))

    def _enumerate(self, max_units: int):
        max_units = check_int(max_units, "max_units")
        if self.n_visible > max_units:
            raise ValueError(f"max_units: enumerating 2^{self.n_visible} visible states is above the "
                             f"limit max_units={max_units}")
        s = 2.0 * all_states(self.n_visible) - 1.0
        return s, self.log_marginal(s)


# ---------------------------------------------------------------------------------------------
# Replica-symmetric theory (Amit, Gutfreund & Sompolinsky 1985, 1987)
# ---------------------------------------------------------------------------------------------

# z ~ N(0, 1) on a uniform grid (spacing 0.004): the integrands approach steps of width
# ~ 1 / (beta sqrt(alpha r)) at low temperature, which a Gauss-Hermite rule does not resolve
_Z = np.linspace(-12.0, 12.0, 6001)
_ZW = np.exp(-0.5 * _Z * _Z)
_ZW = _ZW / _ZW.sum()


def _g(y: float) -> float:
    """erf(y) / y - (2 / sqrt(pi)) exp(-y^2): the T = 0 equation reads g(y) = sqrt(2 alpha)."""
    return math.erf(y) / y - 2.0 / math.sqrt(math.pi) * math.exp(-y * y)


def _bisect(f, lo: float, hi: float, steps: int = 200) -> float:
    """A root of f in [lo, hi] where f(lo), f(hi) differ in sign."""
    f_lo = f(lo) > 0
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        if (f(mid) > 0) == f_lo:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# g rises from 0 at y = 0 to its peak (at y ~ 1.51) and falls as ~ 1/y beyond: the retrieval
# root is the one above the peak, where g' = 0
_Y_PEAK = _bisect(lambda y: _g(y * (1 + 1e-7)) - _g(y), 0.5, 3.0)


def _rs_zero_t(alpha: float) -> float:
    """m = erf(y) at the retrieval root y > y_peak of g(y) = sqrt(2 alpha), or 0 (no root)."""
    target = math.sqrt(2.0 * alpha)
    if target > _g(_Y_PEAK):
        return 0.0
    y = _bisect(lambda y: _g(y) - target, _Y_PEAK, 1.0 / target + 1.0)
    return math.erf(y)


def rs_retrieval(alpha: float, beta: float = math.inf, iterations: int = 5000, tol: float = 1e-12) -> float:
    """The replica-symmetric retrieval overlap m(alpha, T = 1/beta) of the Hopfield model, 0
    where no retrieval solution exists (module docstring; Amit, Gutfreund & Sompolinsky 1987).

    beta = inf solves the T = 0 equation for its retrieval root; a finite beta iterates the
    (m, q) equations from m = q = 1 (z on a uniform grid of spacing 0.004 in [-12, 12], accurate
    for beta up to about 50) until they move by less than ``tol``; an overlap below 0.05
    counts as none.
    """
    alpha = check_real(alpha, "alpha", minimum=0.0, strict=False)
    beta = float(beta)
    if not beta > 0 or math.isnan(beta):
        raise ValueError(f"beta: expected a number > 0 or inf, got {beta!r}")
    iterations = check_int(iterations, "iterations")
    if math.isinf(beta):
        return 1.0 if alpha == 0 else _rs_zero_t(alpha)
    m, q = 1.0, 1.0
    for _ in range(iterations):
        d = 1.0 - beta * (1.0 - q)
        if d <= 0:
            return 0.0
        r = q / (d * d)
        u = np.tanh(beta * (m + math.sqrt(alpha * r) * _Z))
        m_new, q_new = float(_ZW @ u), float(_ZW @ (u * u))
        done = abs(m_new - m) < tol and abs(q_new - q) < tol
        m, q = m_new, q_new
        if done:
            break
    return m if m > 0.05 else 0.0


def rs_capacity(beta: float = math.inf, tol: float = 1e-6):
    """(alpha_M, m): the largest load with a replica-symmetric retrieval solution at inverse
    temperature ``beta`` and the overlap there, by bisection on alpha (to ``tol``). At beta = inf
    this is the AGS capacity alpha_c (0.13791, m = 0.9674 computed here)."""
    beta = float(beta)
    if not beta > 0 or math.isnan(beta):
        raise ValueError(f"beta: expected a number > 0 or inf, got {beta!r}")
    tol = check_real(tol, "tol")
    if not math.isinf(beta) and beta <= 1.0:
        return 0.0, 0.0
    lo, hi = 0.0, 0.2
    m_lo = rs_retrieval(0.0, beta)
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        m = rs_retrieval(mid, beta)
        if m > 0:
            lo, m_lo = mid, m
        else:
            hi = mid
    return lo, m_lo

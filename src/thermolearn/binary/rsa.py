"""Replicated simulated annealing (robust-ensemble Metropolis) for binary perceptrons and
committee machines.

Baldassi, Borgs, Chayes, Ingrosso, Lucibello, Saglietti, Zecchina, "Unreasonable effectiveness
of learning neural networks: from accessible states and robust ensembles to basic algorithmic
schemes", PNAS 113 (48), E7655 (2016), appendix on replicated simulated annealing.

Networks (conventions of :mod:`thermolearn.binary.models`). Weights W in {-1, +1} of shape
(K, n): the perceptron is K = 1, n = N; a committee machine has K odd > 1 hidden units, fully
connected (n = N, every unit sees the whole pattern) or tree-like (n = N / K, unit k sees the
block xi_k = xi[k n : (k + 1) n]). Stability fields, one per pattern and unit,

    Delta_{mu,k} = y_mu W_k . xi_{mu,k}        (odd: n is odd),

and the "minimum flips" energy E(W) = sum_mu e_mu of models.energies: the perceptron pays
e_mu = (1 - Delta_mu) / 2 when Delta_mu < 0; a committee whose majority vote is wrong fixes the
ceil((|h_out| + 1) / 2) wrong units with the smallest |Delta_k|, each at cost (1 - Delta_k) / 2.

System. y replicas W^1..W^y, each coupled with strength gamma to a reference W~ that is traced
out, which gives the robust-ensemble energy (one interaction term per weight (k, i))

    H_RE = sum_a E(W^a) - (1/beta) sum_{k,i} log(2 cosh(gamma S_ki)),     S_ki = sum_a W_ki^a.

Move. Pick a replica a (uniformly, from a "chooser" stream), pick a weight (k, i) uniformly
(from replica a's own stream) and propose W_ki^a -> -W_ki^a. Only unit k's fields change,

    Delta_{mu,k} -> Delta_{mu,k} - 2 s_mu,    s_mu = W_ki^a y_mu xi_{mu,k,i} = +-1,

and log A = -beta dE + log(2 cosh(gamma S_ki,new)) - log(2 cosh(gamma S_ki,old)), accepted with
probability min(1, A) (Metropolis on exp(-beta H_RE)).

Energy change in O(M) per proposal, for every K. Sort the K fields of a pattern,
d_(1) <= ... <= d_(K), and let m = (K + 1) / 2. A pattern is misclassified exactly when the
median d_(m) < 0, and the units to fix are then the wrong ones ranked m, m+1, ... from the bottom
(the ones closest to zero): the energy of the pattern is sum_{j >= m, d_(j) < 0} (1 - d_(j)) / 2.
Changing one field x = Delta_{mu,k} by -2 s (the next odd value, so at most one order statistic
moves) changes e_mu by

    s = +1 (x -> x - 2):  +1  iff  x <= 1  and  x >= d_(m)  and  x > d_(m-1)
    s = -1 (x -> x + 2):  -1  iff  x <= -1 and  x >= d_(m)

(d_(0) = -infinity: for the perceptron, d_(1) = x, this is the familiar "+-1 when x < 1 + s").
So each replica keeps, besides the fields Delta (replicas, K, M), the two order statistics
Med = d_(m) and Sub = d_(m-1) per pattern, and a proposal reads four numbers per pattern, all in
16-bit integers (32-bit when n >= 2^15 - 4), and sums the +-1 contributions in 16 bits when
M < 2^15 (exact, since |dE| <= M; 32 bits otherwise), so that the loop runs on wide SIMD lanes.
On acceptance, the changed order statistic is the last one equal to x (x -> x + 2) or the first
one equal to x (x -> x - 2); its rank is 1 + #{j != k : d_j <= x}, resp. 1 + #{j != k : d_j < x},
so Med and Sub are updated with K - 1 counting passes over the patterns (K > 1 only).

Interaction. With a = |S_old|, b = |S_new| (b - a in {-2, 0, 2}) and Q_j = exp(-2 gamma j),

    cosh(gamma S_new) / cosh(gamma S_old) = exp(gamma (b - a)) (1 + Q_b) / (1 + Q_a),

so A = exp(-beta dE + gamma (b - a)) (1 + Q_b) / (1 + Q_a). Each replica keeps the tables
Q_j (j = 0..y) and exp(-beta j) (j < 32), rebuilt when its gamma or beta changes (one exp and a
few products per accepted move); a proposal with 0 < dE < 32 reads A off the tables, other
proposals call exp once (none when A >= 1 is certain). A >= 1 is accepted without drawing a
number; otherwise u in [0, 1) is drawn and the move accepted when u < A.

Schedule. ``beta`` and ``gamma`` are numbers (constants) or ``Geometric(start, rate)``
schedules of the accepted-move clock: after each accepted move of replica a, beta_a *= rate
(annealing) and gamma_a *= rate (scoping), so that after t accepted moves beta_a =
start * rate**t up to rounding (the kernel multiplies; other schedule kinds are refused). The
clock is per replica: each replica counts its own accepted moves (every replica starts at the
same beta, gamma). This is what makes gamma = 0
exactly y independent plain SA runs (each replica uses only its own RNG stream and its own
clock); with gamma > 0 the replicas' betas and gammas stay close because they accept at similar
rates. (A single global clock, as one might read the paper, would couple the replicas' schedules
even at gamma = 0.) beta and gamma stop growing at the schedule's ``cap`` (1e12 by default).

Seeds. Replica a draws its initial weights, weights to flip and acceptance numbers from its own
integer seed, ``spawn_seeds(seed, replicas)[a]`` (or ``replica_seeds[a]``); the replica to move
is drawn from one more seed spawned after those. So replica a of a gamma = 0 run is exactly the
one-replica run with ``replica_seeds=[spawn_seeds(seed, replicas)[a]]``, its move budget being the
proposals that replica received. The uniform numbers come from xorshift128+
(:func:`thermolearn._random.xorshift_next`), one stream per replica.

Stopping: zero energy in any replica (converged; that replica is returned), or ``patience``
consecutive proposals without a new lowest energy over all replicas, or ``max_iter`` proposals.

The biased proposal of the paper's appendix (which absorbs the interaction field) is not
implemented: moves are plain single-flip Metropolis.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from .._numerics import check_int
from .._random import xorshift_next
from ..schedules import Constant, Geometric, Schedule
from ..seeding import as_generator, spawn_seeds
from ._progress import bar
from .models import Architecture, check_problem
from .models import energies as _energies
from .models import energy as _energy
from .models import errors as _errors
from .overlaps import center_overlap, replica_overlap
from .result import SolverResult
from .rsgd import check_replica_seeds

__all__ = ["BETA", "GAMMA", "replicated_annealing"]

try:
    from numba import njit
except ImportError:  # pragma: no cover
    njit = None

_BLOCK = 32768          # below this many patterns the energy change is summed in 16 bits (exact)
_PT = 32                # exp(-beta dE) is tabulated for 0 <= dE < _PT


# ---------------------------------------------------------------------------------------------
# Kernel
# ---------------------------------------------------------------------------------------------

def _fill_pow(T, a, rate):  # pragma: no cover - compiled
    """T[a, j] = exp(-rate j) for j = 0..T.shape[1]-1, by repeated products."""
    q = math.exp(-rate)
    v = 1.0
    for j in range(T.shape[1]):
        T[a, j] = v
        v *= q


def _de_perceptron(XyT, c, Delta, a, w):  # pragma: no cover - compiled
    """Energy change of x -> x - 2 s for every field x = Delta[a, 0, mu], s = w XyT[c, mu]: the
    sum of s over {mu : x <= s} (x odd). 16-bit lanes when M < 2^15 (the partial sums are then
    exact); the arrays are indexed directly (no views, no blocks), which keeps the loop vectorized."""
    M = XyT.shape[1]
    if M < _BLOCK:
        acc = np.int16(0)
        for mu in range(M):
            s = np.int16(w * XyT[c, mu])
            acc = np.int16(acc + (s if Delta[a, 0, mu] <= s else np.int16(0)))
        return np.int64(acc)
    acc32 = np.int32(0)
    for mu in range(M):
        s = np.int32(w * XyT[c, mu])
        acc32 = np.int32(acc32 + (s if Delta[a, 0, mu] <= s else np.int32(0)))
    return np.int64(acc32)


def _de_committee(XyT, c, Delta, a, k, Med, Sub, w):  # pragma: no cover - compiled
    """Committee energy change (module docstring): s = w XyT[c, mu] counts when x <= s,
    x >= Med and, for s = +1, x > Sub, with x = Delta[a, k, mu]."""
    M = XyT.shape[1]
    if M < _BLOCK:
        acc = np.int16(0)
        for mu in range(M):
            s = np.int16(w * XyT[c, mu])
            x = Delta[a, k, mu]
            ok = (x <= s) & (x >= Med[a, mu]) & ((s < 0) | (x > Sub[a, mu]))
            acc = np.int16(acc + (s if ok else np.int16(0)))
        return np.int64(acc)
    acc32 = np.int32(0)
    for mu in range(M):
        s = np.int32(w * XyT[c, mu])
        x = Delta[a, k, mu]
        ok = (x <= s) & (x >= Med[a, mu]) & ((s < 0) | (x > Sub[a, mu]))
        acc32 = np.int32(acc32 + (s if ok else np.int32(0)))
    return np.int64(acc32)


def _accept_perceptron(XyT, c, Delta, a, w):  # pragma: no cover - compiled
    two_w = 2 * w
    for mu in range(XyT.shape[1]):
        Delta[a, 0, mu] = Delta[a, 0, mu] - two_w * XyT[c, mu]


def _accept_committee(XyT, c, Delta, a, k, Med, Sub, w, thr, cnt):  # pragma: no cover - compiled
    """Flip weight w of unit k of replica a: update Med, Sub (rank counting) and the fields."""
    K = Delta.shape[1]
    M = Delta.shape[2]
    m = (K + 1) // 2
    for mu in range(M):
        # d_j < thr  <=>  d_j <= x (s = -1), d_j < x (s = +1);  rank = 1 + #{j != k : d_j < thr}
        thr[mu] = Delta[a, k, mu] + 1 - w * XyT[c, mu]
        cnt[mu] = 1
    for j in range(K):
        if j != k:
            for mu in range(M):
                cnt[mu] = cnt[mu] + (1 if Delta[a, j, mu] < thr[mu] else 0)
    for mu in range(M):
        ch = -2 * w * XyT[c, mu]
        r = cnt[mu]
        Med[a, mu] = Med[a, mu] + (ch if r == m else 0)
        Sub[a, mu] = Sub[a, mu] + (ch if r == m - 1 else 0)
        Delta[a, k, mu] = Delta[a, k, mu] + ch


def _anneal(XyT, W, Delta, Med, Sub, E, S, P, Q, beta, gamma, beta_rate, gamma_rate, beta_cap, gamma_cap,
            rng, chooser, n_prop, n_acc, n_moves, counters, patience, off, thr, cnt):  # pragma: no cover - compiled
    """Run up to n_moves proposals. counters = [best_energy, since_best] (in/out).

    XyT (N, M) int8: y_mu xi_mu,i; W (R, K, n) int8; Delta (R, K, M); Med, Sub (R, M) (K > 1);
    S (K, n) int32; P (R, _PT) float64, P[a, j] = exp(-beta_a j); Q (R, R + 1) float64,
    Q[a, j] = exp(-2 gamma_a j); off: input offset of unit k is k * off (n for a
    tree-like committee, 0 otherwise); thr, cnt: scratch of length M.
    Returns (moves_done, accepted, status, winner): status 0 budget, 1 solved, 2 patience.
    """
    R, K, n = W.shape
    best = counters[0]
    since = counters[1]
    accepted = 0
    anneal = beta_rate != 1.0
    rescope = gamma_rate != 1.0
    for t in range(n_moves):
        if R == 1:
            a = 0
        else:
            a = np.int64(((xorshift_next(chooser, 0) >> np.uint64(32)) * np.uint64(R)) >> np.uint64(32))
        r = xorshift_next(rng, a)
        i = np.int64(((r >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32))
        k = np.int64(((r & np.uint64(0xFFFFFFFF)) * np.uint64(K)) >> np.uint64(32))   # 0 when K = 1
        w = W[a, k, i]
        c = k * off + i                   # column of XyT seen by weight (k, i)
        if K == 1:
            dE = _de_perceptron(XyT, c, Delta, a, w)
        else:
            dE = _de_committee(XyT, c, Delta, a, k, Med, Sub, w)
        s_old = S[k, i]
        s_new = s_old - 2 * np.int32(w)
        g = gamma[a]
        G = 1.0
        da = 0                            # |S_new| - |S_old|, in {-2, 0, 2}
        if g != 0.0:
            ao = abs(s_old)
            an = abs(s_new)
            da = an - ao
            G = (1.0 + Q[a, an]) / (1.0 + Q[a, ao])
        n_prop[a] += 1
        # A = exp(-beta dE + gamma da) G; from the tables when 0 < dE < _PT (no exp call)
        if 0 < dE < _PT and (da <= 0 or Q[a, 1] > 1e-150):
            A = P[a, dE] * G
            if da != 0:
                A = A * Q[a, 1] if da < 0 else A / Q[a, 1]
        else:
            x = -beta[a] * dE + g * da
            if x >= 0.7:                  # G >= 1/2, so A >= 1
                A = 2.0
            elif x > -746.0:
                A = math.exp(x) * G
            else:                         # exp(x) = 0 (and libm's underflow path is slow)
                A = 0.0
        acc = A >= 1.0
        if not acc:
            u = np.float64(xorshift_next(rng, a) >> np.uint64(11)) * (1.0 / 9007199254740992.0)
            acc = u < A
        if acc:
            W[a, k, i] = -w
            S[k, i] = s_new
            if K == 1:
                _accept_perceptron(XyT, c, Delta, a, w)
            else:
                _accept_committee(XyT, c, Delta, a, k, Med, Sub, w, thr, cnt)
            E[a] += dE
            n_acc[a] += 1
            accepted += 1
            if anneal:
                beta[a] = min(beta[a] * beta_rate, beta_cap)
                _fill_pow(P, a, beta[a])
            if rescope and g != 0.0:
                gamma[a] = min(g * gamma_rate, gamma_cap)
                _fill_pow(Q, a, 2.0 * gamma[a])
            if E[a] < best:
                best = E[a]
                since = 0
                if best == 0:
                    counters[0] = best
                    counters[1] = since
                    return t + 1, accepted, 1, a
                continue
        since += 1
        if since >= patience:
            counters[0] = best
            counters[1] = since
            return t + 1, accepted, 2, -1
    counters[0] = best
    counters[1] = since
    return n_moves, accepted, 0, -1


if njit is not None:
    _fill_pow = njit(cache=True)(_fill_pow)
    _de_perceptron = njit(inline="always", cache=True)(_de_perceptron)
    _de_committee = njit(inline="always", cache=True)(_de_committee)
    _accept_perceptron = njit(inline="always", cache=True)(_accept_perceptron)
    _accept_committee = njit(cache=True)(_accept_committee)
    _anneal_kernel = njit(cache=True, nogil=True)(_anneal)
else:  # pragma: no cover
    _anneal_kernel = _anneal


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------

def _stream(g: torch.Generator) -> np.ndarray:
    """Two nonzero uint64 words of xorshift128+ state drawn from g."""
    return torch.randint(1, 2**62, (2,), generator=g, dtype=torch.int64).numpy().astype(np.uint64)


BETA = Geometric(1.0, 1.0005)
"""Default annealing: beta = 1.0005**t after t accepted moves of a replica."""
GAMMA = Geometric(0.1, 1.0005)
"""Default scoping: gamma = 0.1 * 1.0005**t after t accepted moves of a replica."""


def _geometric(value, name: str, positive: bool) -> tuple[float, float, float]:
    """(start, rate, cap) of a number or a Geometric / Constant schedule, else a ValueError."""
    if isinstance(value, Geometric):
        start, rate, cap = float(value.start), float(value.rate), float(value.cap)
    elif isinstance(value, Constant):
        start, rate, cap = float(value.value), 1.0, math.inf
    elif isinstance(value, Schedule) or callable(value):
        raise ValueError(f"{name}: replicated_annealing multiplies {name} per accepted move, so it takes a "
                         f"number or Geometric(start, rate), got {value!r}")
    elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        start, rate, cap = float(value), 1.0, math.inf
    else:
        raise ValueError(f"{name}: expected a number or Geometric(start, rate), got {value!r}")
    ok = start > 0 if positive else start >= 0
    if not (math.isfinite(start) and ok):
        raise ValueError(f"{name}: expected a finite start {'> 0' if positive else '>= 0'}, got {start!r}")
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"{name}: expected a rate > 0 (factor per accepted move), got {rate!r}")
    return start, rate, cap


def _initial_fields(W: np.ndarray, XyT: np.ndarray, arch: Architecture) -> np.ndarray:
    """Delta[a, k, mu] = y_mu W^a_k . xi_{mu,k}, int64, shape (R, K, M) (float64 products: exact,
    the sums are integers below 2^31)."""
    Wf = W.astype(np.float64)
    Xf = XyT.astype(np.float64)
    if not arch.tree:
        D = Wf @ Xf                                                       # (R, K, N) @ (N, M)
    else:
        D = np.einsum("rki,kim->rkm", Wf, Xf.reshape(arch.K, arch.n_per_unit, -1), optimize=True)
    return np.ascontiguousarray(np.rint(D).astype(np.int64))


def replicated_annealing(X, y, K: int = 1, replicas: int = 3, beta=BETA, gamma=GAMMA,
                         max_iter: int = 10_000_000, patience: int | None = None, seed=0,
                         history_every: int | None = None, debug: bool = False, tree: bool = False,
                         progress: bool = False, *, replica_seeds=None) -> SolverResult:
    """Replicated simulated annealing on a binary perceptron (K = 1) or committee machine (K odd
    > 1, fully connected or tree-like); gamma = 0 gives independent plain SA runs.

    Metropolis on H_RE = sum_a E(W^a) - (1/beta) sum_{k,i} log(2 cosh(gamma sum_a W_ki^a)) with
    single weight flips, annealing beta and scoping gamma multiplicatively after each accepted
    move (equations, schedule, seeds and stopping rules in the module docstring; Baldassi et al.,
    PNAS 2016, appendix on replicated simulated annealing). E is the "minimum flips" energy of
    :func:`thermolearn.binary.models.energies`.

    Parameters
    ----------
    X, y : patterns (M, N) and labels (M,), entries +-1; N odd (fully connected, perceptron) or
        a multiple of K with N/K odd (tree-like).
    K : hidden units, odd; 1 = perceptron.
    replicas : number of replicas y (1 = plain SA).
    beta : inverse temperature, a number (> 0, constant) or ``Geometric(start, rate)`` over each
        replica's accepted moves (default ``Geometric(1.0, 1.0005)``). Other schedules are refused.
    gamma : coupling, a number (>= 0; 0 = independent replicas) or ``Geometric(start, rate)``
        (default ``Geometric(0.1, 1.0005)``).
    max_iter : budget of proposed moves (all replicas together); the result's step_unit is "move".
    patience : stop after this many consecutive proposals without a new lowest energy over all
        replicas (None = no such stop).
    seed : int, torch.Generator or None; it spawns the replicas' seeds and the chooser's.
    replica_seeds : optional ``replicas`` integer seeds used instead of the spawned ones (see the
        module docstring: the route from a gamma = 0 run to its single-replica runs).
    history_every : proposals per history entry (default max(1000, 10 * n_weights * replicas)).
    debug : fill ``result.debug`` with the kernel-maintained stability fields ``delta``
        ((replicas, M) for the perceptron, (replicas, M, K) for a committee, the layout of
        models.hidden_fields times y), per-pattern order statistics ``median`` and ``sub`` (the
        ((K+1)/2)-th and ((K-1)/2)-th smallest field, committee only), energies ``energies``
        (replicas,), per-replica proposal and acceptance counts, beta, gamma and S (NumPy arrays).
    tree : tree-like committee (unit k sees inputs k*N/K .. (k+1)*N/K - 1); ignored for K = 1.
    progress : draw a progress bar over the move budget on standard error.

    Returns a :class:`SolverResult`: ``weights`` the solved replica (or the lowest-energy one),
    shape (N,) for the perceptron and (K, n) for a committee; ``errors``/``energy`` recounted by
    thermolearn.binary.models; ``steps`` proposed moves (``step_unit`` "move"); ``stop_reason``
    "solved", "patience" or "max_iter"; ``replicas`` the final (replicas, *weights.shape)
    weights; ``history`` per chunk of ``history_every`` proposals: step (proposals so far),
    replicas, beta and gamma (mean over replicas), energy_min, energy_mean, errors_min, overlap
    (mean W^a.W^b / n_weights between replicas), overlap_center (mean overlap of the replicas
    with the traced-out reference, whose mean given the replicas is tanh(gamma S_i):
    sum_i tanh(gamma S_i) S_i / (y n_weights), with the mean gamma; 0 when gamma = 0; both from
    :mod:`thermolearn.binary.overlaps`), acceptance (rate in the chunk).
    """
    Xt, yt, arch = check_problem(X, y, K, tree)
    K = arch.K
    M, N = Xt.shape
    if N >= 2**31 - 1 or M >= 2**31 - 1:
        raise ValueError(f"X: shape {(M, N)} is too large (need N, M < 2^31 - 1)")
    R = check_int(replicas, "replicas")
    beta0, brate, bcap = _geometric(beta, "beta", positive=True)
    gamma0, grate, gcap = _geometric(gamma, "gamma", positive=False)
    max_iter = check_int(max_iter, "max_iter")
    patience = check_int(patience, "patience", allow_none=True)
    n, n_w = arch.n_per_unit, arch.n_weights
    chunk = check_int(history_every, "history_every", allow_none=True) or max(1000, 10 * n_w * R)
    given = check_replica_seeds(replica_seeds, R)
    if not isinstance(debug, bool):
        raise ValueError(f"debug: expected True or False, got {debug!r}")
    g = as_generator(seed)
    seeds = spawn_seeds(g, R)
    chooser_seed = spawn_seeds(g, 1)[0]
    if given is not None:
        seeds = given

    t0 = time.perf_counter()
    Xc, yc = Xt.cpu(), yt.cpu()
    Xn = Xc.numpy().astype(np.int8)
    yn = yc.numpy().astype(np.int8)
    XyT = np.ascontiguousarray((Xn * yn[:, None]).T)                    # (N, M) int8, y_mu xi_mu,i
    W = np.empty((R, K, n), dtype=np.int8)
    rng = np.empty((R, 2), dtype=np.uint64)
    for a, s in enumerate(seeds):
        ga = as_generator(s)
        W[a] = arch.random_weights(ga).numpy().reshape(K, n)
        rng[a] = _stream(ga)
    chooser = _stream(as_generator(chooser_seed)).reshape(1, 2)
    dtype = np.int16 if n + 4 < 2**15 else np.int32
    D64 = _initial_fields(W, XyT, arch)                                   # (R, K, M)
    Delta = np.ascontiguousarray(D64, dtype=dtype)                       # C order: the kernel's loops vectorize
    if K > 1:
        srt = np.sort(D64, axis=1)
        Med = np.ascontiguousarray(srt[:, (K + 1) // 2 - 1]).astype(dtype)   # (R, M)
        Sub = np.ascontiguousarray(srt[:, (K - 1) // 2 - 1]).astype(dtype)
    else:
        Med = np.zeros((R, 1), dtype=dtype)                               # unused by the perceptron
        Sub = np.zeros((R, 1), dtype=dtype)
    thr = np.zeros(M, dtype=dtype)
    cnt = np.zeros(M, dtype=dtype)

    def weights_view(Wk: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(Wk.reshape(Wk.shape[:-2] + arch.weight_shape).copy())

    E = _energies(weights_view(W), Xc, yc, K).sum(-1).numpy().astype(np.int64)
    S = W.astype(np.int32).sum(0)                                         # (K, n)
    betas = np.full(R, beta0)
    gammas = np.full(R, gamma0)
    P = np.ones((R, _PT))
    Q = np.ones((R, R + 1))
    for a in range(R):
        _fill_pow(P, a, beta0)
        _fill_pow(Q, a, 2.0 * gamma0)
    n_prop = np.zeros(R, np.int64)
    n_acc = np.zeros(R, np.int64)
    counters = np.array([E.min(), 0], dtype=np.int64)
    pat = patience if patience is not None else np.iinfo(np.int64).max
    off = n if arch.tree else 0

    def n_errors() -> np.ndarray:
        return ((Delta[:, 0] if K == 1 else Med) < 0).sum(1)

    history: list[dict] = []
    done, status, winner = 0, 0, -1
    if E.min() == 0:
        status, winner = 1, int(E.argmin())
    pbar = bar(progress, max_iter, "move", "replicated SA" if R > 1 and gamma0 > 0 else "SA")
    while status == 0 and done < max_iter:
        m_chunk = min(chunk, max_iter - done)
        moves, acc, status, winner = _anneal_kernel(XyT, W, Delta, Med, Sub, E, S, P, Q, betas, gammas,
                                                    brate, grate, bcap, gcap, rng, chooser, n_prop, n_acc,
                                                    m_chunk, counters, pat, off, thr, cnt)
        done += int(moves)
        history.append({
            "step": done, "replicas": R, "beta": float(betas.mean()), "gamma": float(gammas.mean()),
            "energy_min": int(E.min()), "energy_mean": float(E.mean()),
            "errors_min": int(n_errors().min()),
            "overlap": replica_overlap(S, R), "overlap_center": center_overlap(S, R, float(gammas.mean())),
            "acceptance": acc / max(int(moves), 1),
        })
        pbar.update(int(moves))
        pbar.set_postfix_str(f"energy {int(E.min())}")
    pbar.close()
    status, winner = int(status), int(winner)
    if winner < 0:
        winner = int(E.argmin())
    weights = weights_view(W[winner])
    err = int(_errors(weights, Xc, yc, K))
    en = int(_energy(weights, Xc, yc, K))
    dbg = None
    if debug:
        dbg = {"energies": E.copy(), "proposals": n_prop.copy(), "accepted": n_acc.copy(),
               "beta": betas.copy(), "gamma": gammas.copy(), "S": S.reshape(arch.weight_shape).copy()}
        if K == 1:
            dbg["delta"] = Delta[:, 0].astype(np.int64)
        else:
            dbg["delta"] = Delta.transpose(0, 2, 1).astype(np.int64)
            dbg["median"] = Med.astype(np.int64)
            dbg["sub"] = Sub.astype(np.int64)
    return SolverResult(weights=weights, errors=err, energy=en, converged=err == 0,
                        seconds=time.perf_counter() - t0, steps=done, step_unit="move",
                        stop_reason={0: "max_iter", 1: "solved", 2: "patience"}[status],
                        history=history, replicas=weights_view(W), debug=dbg)

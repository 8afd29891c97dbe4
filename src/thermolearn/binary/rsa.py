"""Replicated simulated annealing (robust-ensemble Metropolis) for the binary perceptron.

Spec: shared/specs/replicas.md, "Robust ensemble" and "Replicated simulated annealing";
Baldassi, Borgs, Chayes, Ingrosso, Lucibello, Saglietti, Zecchina, "Unreasonable effectiveness
of learning neural networks: from accessible states and robust ensembles to basic algorithmic
schemes", PNAS 113 (48), E7655 (2016), appendix on replicated simulated annealing.

System. y replicas W^1..W^y in {-1, +1}^N, each coupled with strength gamma to a reference W~
that is traced out, which gives the robust-ensemble energy

    H_RE = sum_a E(W^a) - (1/beta) sum_i log(2 cosh(gamma S_i)),     S_i = sum_a W_i^a,

with E the "minimum flips" energy of the perceptron (spec, "Energy used by local search"):

    E(W) = sum_mu e(Delta_mu),   Delta_mu = y_mu W . xi_mu  (odd),
    e(D) = ceil((|D| + 1) / 2) = (1 - D) / 2  if D < 0,   0 otherwise.

Move. Pick a replica a (uniformly, from a "chooser" stream), pick a site i (uniformly, from
replica a's own stream) and propose W_i^a -> -W_i^a. Then

    Delta^a_mu -> Delta^a_mu - 2 y_mu W_i^a xi_mu,i   for all mu       (O(M) per proposal)
    dE  = sum_mu [e(Delta_new) - e(Delta_old)]
    S_i -> S_i - 2 W_i^a
    log A = -beta dE + log(2 cosh(gamma S_i,new)) - log(2 cosh(gamma S_i,old)),

accepted with probability min(1, A) (Metropolis on exp(-beta H_RE)). The stability fields Delta
of every replica are kept up to date incrementally (never recomputed in the loop).

Schedule. After each accepted move of replica a: beta_a *= beta_rate (annealing) and
gamma_a *= gamma_rate (scoping). The schedule clock is per replica: each replica counts its own
accepted moves (every replica starts at the same beta, gamma). This is what makes gamma = 0
exactly y independent plain SA runs (each replica uses only its own RNG stream and its own
clock); with gamma > 0 the replicas' betas and gammas stay close because they accept at similar
rates. (A single global clock, as one might read the paper, would couple the replicas' schedules
even at gamma = 0.) beta and gamma are capped at 1e12 to stay finite.

Stopping: zero energy in any replica (converged; that replica is returned), or ``patience``
consecutive proposals without a new lowest energy over all replicas, or ``max_moves`` proposals.

Only the perceptron (K = 1) is implemented; the biased proposal of the paper's appendix (which
absorbs the interaction field) is not.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from .._numerics import check_int, check_real
from .models import _check_K, as_pm1, energy as _energy, errors as _errors
from .result import SolverResult

__all__ = ["replicated_annealing", "replica_seeds"]

try:
    from numba import njit
except ImportError:  # pragma: no cover
    njit = None

_CAP = 1e12


# ---------------------------------------------------------------------------------------------
# Kernel
# ---------------------------------------------------------------------------------------------

def _next(state, r):  # pragma: no cover - compiled
    """xorshift128+ step on row r of ``state`` (uint64, shape (.., 2)); returns a uint64."""
    a = state[r, 0]
    b = state[r, 1]
    state[r, 0] = b
    a ^= a << np.uint64(23)
    a ^= a >> np.uint64(17)
    a ^= b ^ (b >> np.uint64(26))
    state[r, 1] = a
    return a + b


def _log2cosh(x):  # pragma: no cover - compiled
    ax = abs(x)
    return ax + math.log1p(math.exp(-2.0 * ax))


def _anneal(XyT, W, Delta, E, S, beta, gamma, beta_rate, gamma_rate, rng, chooser,
            n_prop, n_acc, n_moves, counters, patience):  # pragma: no cover - compiled
    """Run up to n_moves proposals. counters = [best_energy, since_best] (in/out).

    Returns (moves_done, accepted, status, winner): status 0 budget, 1 solved, 2 patience.
    """
    R, N = W.shape
    M = XyT.shape[1]
    best = counters[0]
    since = counters[1]
    accepted = 0
    for t in range(n_moves):
        if R == 1:
            a = 0
        else:
            a = np.int64(((_next(chooser, 0) >> np.uint64(32)) * np.uint64(R)) >> np.uint64(32))
        i = np.int64(((_next(rng, a) >> np.uint64(32)) * np.uint64(N)) >> np.uint64(32))
        w = W[a, i]
        col = XyT[i]
        d = Delta[a]
        # dE = sum_mu e(D - 2 s) - e(D) with s = w y_mu xi_mu,i = +-1 and D odd. Case by case
        # (e(D) = (1 - D)/2 for D < 0, else 0): the difference is s when min(D, D - 2s) < 0,
        # i.e. when D < 1 + s, and 0 otherwise -- one compare and one add per pattern.
        # Summed in float32 (exact: |dE| <= M < 2^24) so that the loop vectorizes with wide lanes.
        two_w = 2 * np.int32(w)
        wf = np.float32(w)
        acc32 = np.float32(0.0)
        for mu in range(M):
            sm = wf * np.float32(col[mu])
            acc32 += sm if np.float32(d[mu]) < np.float32(1.0) + sm else np.float32(0.0)
        dE = np.int64(acc32)
        s_old = S[i]
        s_new = s_old - two_w
        g = gamma[a]
        logA = 0.0
        if dE != 0:
            logA = -beta[a] * dE
        if g != 0.0:
            logA += _log2cosh(g * s_new) - _log2cosh(g * s_old)
        n_prop[a] += 1
        acc = logA >= 0.0
        if not acc:
            u = np.float64(_next(rng, a) >> np.uint64(11)) * (1.0 / 9007199254740992.0)
            acc = u < math.exp(logA)
        if acc:
            W[a, i] = -w
            S[i] = s_new
            for mu in range(M):
                d[mu] = d[mu] - two_w * col[mu]
            E[a] += dE
            n_acc[a] += 1
            accepted += 1
            beta[a] = min(beta[a] * beta_rate, _CAP)
            gamma[a] = min(gamma[a] * gamma_rate, _CAP)
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
    _next = njit(inline="always", cache=True)(_next)
    _log2cosh = njit(inline="always", cache=True)(_log2cosh)
    _anneal_kernel = njit(cache=True, nogil=True, fastmath={"reassoc"})(_anneal)
else:  # pragma: no cover
    _anneal_kernel = _anneal


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------

def replica_seeds(seed, replicas: int) -> list[int]:
    """The per-replica seeds used by :func:`replicated_annealing` for an integer ``seed``.

    ``replicated_annealing(..., replicas=1, seed=[replica_seeds(s, y)[a]])`` reproduces replica a
    of a ``replicas=y, gamma=0`` run with ``seed=s`` (same initial weights, same RNG stream).
    """
    replicas = check_int(replicas, "replicas")
    if isinstance(seed, (list, tuple, np.ndarray)):
        seeds = [int(s) for s in seed]
        if len(seeds) != replicas:
            raise ValueError(f"seed: expected an int or a sequence of {replicas} ints (one per replica), "
                             f"got {len(seeds)} values")
        return seeds
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed: expected a non-negative int or a sequence of ints, got {seed!r}")
    return [int(s) for s in np.random.SeedSequence(int(seed)).generate_state(replicas, np.uint64)]


def _stream(seed_words) -> np.ndarray:
    st = np.random.SeedSequence(seed_words).generate_state(2, np.uint64)
    if st[0] == 0 and st[1] == 0:  # pragma: no cover - astronomically unlikely
        st[0] = 1
    return st


def _overlap(S: np.ndarray, R: int, N: int) -> float:
    """Mean pairwise overlap q_ab = W^a.W^b / N over a < b: (sum S_i^2 - R N) / (R (R-1) N)."""
    if R < 2:
        return float("nan")
    s2 = float(np.dot(S.astype(np.float64), S.astype(np.float64)))
    return (s2 - R * N) / (R * (R - 1) * N)


def replicated_annealing(X, y, K: int = 1, replicas: int = 3, beta: float = 1.0,
                         beta_rate: float = 1.0005, gamma: float = 0.1, gamma_rate: float = 1.0005,
                         max_moves: int = 10_000_000, patience: int | None = None, seed=0,
                         history_every: int | None = None, debug: bool = False) -> SolverResult:
    """Replicated simulated annealing on the binary perceptron (K = 1); gamma = 0 is plain SA.

    Metropolis on H_RE = sum_a E(W^a) - (1/beta) sum_i log(2 cosh(gamma sum_a W_i^a)) with single
    weight flips, annealing beta and scoping gamma multiplicatively after each accepted move
    (equations, schedule and stopping rules in the module docstring; Baldassi et al., PNAS 2016,
    appendix on replicated simulated annealing).

    Parameters
    ----------
    X, y : patterns (M, N) and labels (M,), entries +-1; N odd.
    K : hidden units; only 1 (perceptron) is implemented.
    replicas : number of replicas y (1 = plain SA).
    beta, beta_rate : initial inverse temperature (> 0) and its factor per accepted move (> 0).
    gamma, gamma_rate : initial coupling (>= 0; 0 = independent replicas) and its factor per
        accepted move (> 0).
    max_moves : budget of proposed moves (all replicas together).
    patience : stop after this many consecutive proposals without a new lowest energy over all
        replicas (None = no such stop).
    seed : int, or a sequence of one int per replica (see :func:`replica_seeds`). Replica a draws
        its initial weights, sites and acceptance numbers from its own seed only; the replica to
        move is drawn from a separate stream.
    history_every : proposals per history entry (default max(1000, 10 * N * replicas)).
    debug : attach ``result.debug`` with the kernel-maintained stability fields ``delta``
        (replicas, M) and energies ``energies`` (replicas,), and per-replica proposal counts.

    Returns a :class:`SolverResult`: ``weights`` the solved replica (or the lowest-energy one),
    ``errors``/``energy`` recounted by thermolearn.binary.models, ``steps`` proposed moves,
    ``replicas`` the final (replicas, N) weights, ``history`` per chunk of ``history_every``
    proposals: step, beta and gamma (mean over replicas), y, energy_min, energy_mean,
    errors_min, overlap (mean between replicas), acceptance (rate in the chunk).
    """
    K = _check_K(K)
    if K != 1:
        raise NotImplementedError(f"K: replicated_annealing supports only the perceptron (K = 1) so far, "
                                  f"got K = {K}; committee machines are not implemented")
    Xt = as_pm1(X, "X", ndim=2)
    yt = as_pm1(y, "y", ndim=1)
    M, N = Xt.shape
    if yt.shape[0] != M:
        raise ValueError(f"y: expected shape ({M},) to match X of shape {tuple(Xt.shape)}, got {tuple(yt.shape)}")
    if N % 2 == 0:
        raise ValueError(f"X: has N = {N} columns; expected an odd number of inputs so that fields are never zero")
    if N >= 2**31 - 1 or M >= 2**24:
        raise ValueError(f"X: shape {(M, N)} is too large (need N < 2^31 and M < 2^24)")
    R = check_int(replicas, "replicas")
    beta0 = check_real(beta, "beta", what=" (inverse temperature)")
    brate = check_real(beta_rate, "beta_rate", what=" (factor per accepted move)")
    gamma0 = check_real(gamma, "gamma", strict=False, what=" (coupling)")
    grate = check_real(gamma_rate, "gamma_rate", what=" (factor per accepted move)")
    max_moves = check_int(max_moves, "max_moves")
    patience = check_int(patience, "patience", allow_none=True)
    chunk = check_int(history_every, "history_every", allow_none=True) or max(1000, 10 * N * R)
    seeds = replica_seeds(seed, R)

    t0 = time.perf_counter()
    Xn = Xt.cpu().numpy().astype(np.int8)
    yn = yt.cpu().numpy().astype(np.int8)
    XyT = np.ascontiguousarray((Xn * yn[:, None]).T)                    # (N, M) int8, y_mu xi_mu,i
    W = np.empty((R, N), dtype=np.int8)
    rng = np.empty((R, 2), dtype=np.uint64)
    for a, s in enumerate(seeds):
        W[a] = np.random.default_rng(s).integers(0, 2, N, dtype=np.int8) * 2 - 1
        rng[a] = _stream([s, 1])
    chooser = _stream(seeds + [2]).reshape(1, 2)
    dtype = np.int16 if N < 2**15 else np.int32
    Delta = (W.astype(np.int32) @ XyT.astype(np.int32)).astype(dtype)    # (R, M)
    D64 = Delta.astype(np.int64)
    E = np.where(D64 < 0, (1 - D64) // 2, 0).sum(1).astype(np.int64)
    S = W.astype(np.int32).sum(0)
    betas = np.full(R, beta0)
    gammas = np.full(R, gamma0)
    n_prop = np.zeros(R, np.int64)
    n_acc = np.zeros(R, np.int64)
    counters = np.array([E.min(), 0], dtype=np.int64)
    pat = patience if patience is not None else np.iinfo(np.int64).max

    history: list[dict] = []
    done, status, winner = 0, 0, -1
    if E.min() == 0:
        status, winner = 1, int(E.argmin())
    while status == 0 and done < max_moves:
        n = min(chunk, max_moves - done)
        moves, acc, status, winner = _anneal_kernel(XyT, W, Delta, E, S, betas, gammas, brate, grate,
                                                    rng, chooser, n_prop, n_acc, n, counters, pat)
        done += int(moves)
        history.append({
            "step": done, "y": R, "beta": float(betas.mean()), "gamma": float(gammas.mean()),
            "energy_min": int(E.min()), "energy_mean": float(E.mean()),
            "errors_min": int((Delta < 0).sum(1).min()),
            "overlap": _overlap(S, R, N), "acceptance": acc / max(int(moves), 1),
        })
    status, winner = int(status), int(winner)
    if winner < 0:
        winner = int(E.argmin())
    weights = torch.from_numpy(W[winner].copy())
    err = int(_errors(weights, Xt.cpu(), yt.cpu()))
    en = int(_energy(weights, Xt.cpu(), yt.cpu()))
    res = SolverResult(weights=weights, errors=err, energy=en, converged=err == 0,
                       seconds=time.perf_counter() - t0, steps=done, history=history,
                       replicas=torch.from_numpy(W.copy()))
    res.stop_reason = {0: "max_moves", 1: "solved", 2: "patience"}[status]
    if debug:
        res.debug = {"delta": Delta.astype(np.int64), "energies": E.copy(), "proposals": n_prop.copy(),
                     "accepted": n_acc.copy(), "beta": betas.copy(), "gamma": gammas.copy(),
                     "S": S.copy()}
    return res

"""Fast Bernoulli sampling for the Gibbs samplers.

Gibbs sampling of an RBM draws one uniform number per unit and sweep. On a CPU, torch's
generator produces them at a few nanoseconds each, which costs as much as the matrix products
of a training step; this module draws them with xorshift128+ in a parallel numba kernel,
fused with the comparison ``u < p``. The streams are fixed in number (not tied to the thread
count), so a seed gives the same samples on any machine. On CUDA devices torch's own
generator is fast and is used instead.
"""

from __future__ import annotations

import numpy as np
import torch

from .seeding import as_generator

N_STREAMS = 16

try:  # numba is a dependency, but keep the library importable without it
    from numba import njit, prange
except ImportError:  # pragma: no cover
    njit = None
    prange = range


PARALLEL_MIN_SIZE = 2**15
"""Arrays smaller than this are sampled by one thread: waking the thread pool costs more."""


def xorshift_next(state, r):  # pragma: no cover - compiled
    """One step of xorshift128+ (Vigna 2017, shifts 23, 17, 26) on row ``r`` of ``state``
    (uint64, shape (streams, 2)), advanced in place; returns the next uint64 output.

    The one generator of the library's numba kernels (the Bernoulli sampler here and the
    annealing kernel of thermolearn.binary.rsa): a kernel draws from stream r with
    ``xorshift_next(state, r)``; uniform floats come from the top bits (24 for float32, 53 for
    float64). A state of two zero words is a fixed point and must not be used.
    """
    a = state[r, 0]
    b = state[r, 1]
    state[r, 0] = b
    a ^= a << np.uint64(23)
    a ^= a >> np.uint64(17)
    a ^= b ^ (b >> np.uint64(26))
    state[r, 1] = a
    return a + b


def _fill(out, p, state):  # pragma: no cover - compiled
    """out[i] = (u_i < p[i]) with u_i from xorshift128+ stream s on the s-th chunk of the array."""
    n = p.size
    n_streams = state.shape[0]
    chunk = (n + n_streams - 1) // n_streams
    for s in prange(n_streams):
        lo = s * chunk
        hi = min(n, lo + chunk)
        st = state[s:s + 1].copy()          # a private copy: no false sharing between threads
        for i in range(lo, hi):
            u = np.float32(xorshift_next(st, 0) >> np.uint64(40)) * np.float32(1.0 / 16777216.0)
            out[i] = np.float32(1.0) if u < p[i] else np.float32(0.0)
        state[s, 0] = st[0, 0]
        state[s, 1] = st[0, 1]


if njit is not None:
    xorshift_next = njit(inline="always", cache=True, nogil=True)(xorshift_next)
    # the same streams either way, so serial and parallel give identical samples
    _kernel_serial = njit(cache=True, nogil=True)(_fill)
    _kernel_parallel = njit(parallel=True, cache=True, nogil=True)(_fill)


class BernoulliSampler:
    """Draws x ~ Bernoulli(p) into a preallocated tensor: ``sampler.sample_(out, p)``.

    seed: an int, a torch.Generator (its next draws seed the streams) or None.
    float32 tensors on the CPU use the numba kernel; other dtypes and devices use a torch
    generator seeded from the same source. ``get_state``/``set_state`` serve checkpoints.
    """

    def __init__(self, seed=None, device="cpu"):
        self.device = torch.device(device)
        g = as_generator(seed)
        words = torch.randint(1, 2**62, (N_STREAMS + 1, 2), generator=g, dtype=torch.int64)
        self.state = words[:N_STREAMS].numpy().astype(np.uint64)
        self.torch_generator = torch.Generator(device=self.device)
        self.torch_generator.manual_seed(int(words[N_STREAMS, 0]))

    def sample_(self, out: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Fill ``out`` with Bernoulli(p) samples (0.0/1.0) and return it."""
        fast = (njit is not None and out.device.type == "cpu" and out.dtype == torch.float32
                and p.dtype == torch.float32 and out.is_contiguous() and p.is_contiguous()
                and out.shape == p.shape)
        if not fast:
            return torch.bernoulli(p, generator=self.torch_generator, out=out)
        kernel = _kernel_parallel if out.numel() >= PARALLEL_MIN_SIZE else _kernel_serial
        kernel(out.view(-1).numpy(), p.view(-1).numpy(), self.state)
        return out

    def sample(self, p: torch.Tensor) -> torch.Tensor:
        p = p.contiguous()
        return self.sample_(torch.empty_like(p), p)

    def get_state(self) -> dict[str, torch.Tensor]:
        return {"streams": torch.from_numpy(self.state.view(np.int64).copy()),
                "torch_generator": self.torch_generator.get_state()}

    def set_state(self, state: dict[str, torch.Tensor]) -> None:
        self.state = state["streams"].numpy().copy().view(np.uint64)
        self.torch_generator.set_state(state["torch_generator"])

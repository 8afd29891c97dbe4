"""Seeds: every function and class that draws random numbers takes ``seed=``.

``seed`` is an int in [0, 2**63), a ``torch.Generator``, or None (fresh entropy). An int ``s``
means exactly ``torch.Generator().manual_seed(s)``, so ``f(seed=s)`` and
``f(seed=torch.Generator().manual_seed(s))`` give identical results. A generator passed in is
used, and advanced, in place: two calls with the same generator object continue its stream.

Parallel streams (replicas, workers, chains) get their own integer seeds from
:func:`spawn_seeds`, drawn from the caller's generator; the first ``n`` seeds do not depend on
how many more are asked for, so replica ``a`` of a ``y``-replica run has the same stream
whatever ``y`` is.
"""

from __future__ import annotations

import numbers

import torch

SEED_MAX = 2**63 - 1
"""Integer seeds lie in [0, SEED_MAX]."""


def check_seed(seed, name: str = "seed"):
    """``seed`` unchanged when it is an int in range, a torch.Generator or None; else ValueError."""
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"{name}: expected an integer, a torch.Generator or None, got {seed!r}")
    if not 0 <= int(seed) <= SEED_MAX:
        raise ValueError(f"{name}: expected an integer in [0, 2**63 - 1], got {int(seed)}")
    return int(seed)


def as_generator(seed, device=None) -> torch.Generator:
    """A torch.Generator from ``seed`` (see the module docstring); ``device`` for a new one."""
    seed = check_seed(seed)
    if isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator(device=device if device is not None else "cpu")
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


def spawn_seeds(seed, n: int) -> list[int]:
    """``n`` independent integer seeds drawn from ``seed`` (for replicas, workers, chains)."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n: expected a non-negative integer, got {n!r}")
    g = as_generator(seed)
    return [int(s) for s in torch.randint(0, 2**62, (int(n),), generator=g, dtype=torch.int64)]

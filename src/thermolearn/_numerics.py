"""Numerically stable special functions and input checks shared by the whole package.

Everything here takes and returns torch tensors. Functions that decide an answer's precision
(log-partition sums, entropies) work in the dtype they are given; callers pass float64 where
it matters.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
import torch.nn.functional as F

LOG2 = math.log(2.0)


SOFTPLUS64_THRESHOLD = 50.0
"""Above it float64 softplus(x) is x: the neglected log1p(exp(-50)) ~ 2e-22 is below x's rounding."""


def softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + exp(x)), stable for all x.

    torch's fused kernel: log1p(exp(x)), and x itself above a threshold. float64 uses the
    threshold 50, where the neglected log1p(exp(-50)) ~ 2e-22 is below the rounding of x
    (agreeing with max(x, 0) + log1p(exp(-|x|)) to 1 ulp, about 3.5x faster on a CPU); lower
    precisions keep torch's 20, below their rounding error.
    """
    if x.dtype == torch.float64:
        return F.softplus(x, 1.0, SOFTPLUS64_THRESHOLD)
    return F.softplus(x)


def log_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """log(sigmoid(x)) = -softplus(-x)."""
    return F.logsigmoid(x)


def logit(p: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """log(p / (1 - p)) with p clamped to [eps, 1 - eps]."""
    p = p.clamp(eps, 1.0 - eps)
    return torch.log(p) - torch.log1p(-p)


def binary_entropy_terms(m: torch.Tensor) -> torch.Tensor:
    """m ln m + (1 - m) ln(1 - m), elementwise, with 0 ln 0 = 0 (the negative entropy)."""
    return torch.xlogy(m, m) + torch.xlogy(1.0 - m, 1.0 - m)


def logmeanexp(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log(mean(exp(x))) along ``dim``."""
    return torch.logsumexp(x, dim=dim) - math.log(x.shape[dim])


# ---------------------------------------------------------------------------------------------
# Input checks. Errors name the argument, what was expected and what was received.
# ---------------------------------------------------------------------------------------------

def check_int(value, name: str, minimum: int = 1, allow_none: bool = False):
    """``value`` as an int >= ``minimum`` (bools refused), or None when ``allow_none``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        want = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name}: expected {want}{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


def check_real(value, name: str, minimum: float | None = 0.0, strict: bool = True, what: str = "") -> float:
    """``value`` as a finite float > ``minimum`` (>= when not ``strict``; no bound when None)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number{what}, got {value!r}") from None
    low = minimum is not None and (f <= minimum if strict else f < minimum)
    if isinstance(value, bool) or not math.isfinite(f) or low:
        bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
        raise ValueError(f"{name}: expected a finite number{bound}{what}, got {value!r}")
    return f


def check_reals(values, name: str, minimum: float = 0.0, maximum: float | None = None) -> np.ndarray:
    """A number or a non-empty 1-d sequence of finite numbers in [minimum, maximum] (no upper
    bound when None), as a float64 array."""
    span = f"numbers in [{minimum:g}, {maximum:g}]" if maximum is not None else f"finite numbers >= {minimum:g}"
    try:
        arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number or a 1-d sequence of {span}, got {values!r}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a number or a non-empty 1-d sequence of {span}, got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr < minimum)
    if maximum is not None:
        bad |= arr > maximum
    if bad.any():
        raise ValueError(f"{name}: expected {span}, got {arr[bad].tolist()}")
    return arr


def to_tensor(x, name: str) -> torch.Tensor:
    """A tensor from a NumPy array, list or tensor, dtype kept (dtypes torch lacks are widened)."""
    if isinstance(x, torch.Tensor):
        return x
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name}: expected an array or tensor, got {type(x).__name__}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name}: expected numeric data, got dtype {arr.dtype}")
    if arr.dtype.byteorder == ">" or arr.dtype in (np.uint16, np.uint32, np.uint64):
        arr = arr.astype(np.int64 if np.issubdtype(arr.dtype, np.integer) else np.float64)
    return torch.from_numpy(np.ascontiguousarray(arr))


def as_tensor(x, name: str, *, dtype=None, device=None, ndim: int | None = None) -> torch.Tensor:
    """Convert a NumPy array, list or tensor to a finite floating tensor, with clear errors."""
    t = to_tensor(x, name)
    if t.dtype == torch.bool or not t.is_floating_point():
        t = t.to(torch.get_default_dtype() if dtype is None else dtype)
    if dtype is not None or device is not None:
        t = t.to(dtype=dtype if dtype is not None else t.dtype, device=device)
    if ndim is not None and t.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {tuple(t.shape)}")
    if t.numel() and not all(math.isfinite(float(m)) for m in torch.aminmax(t)):  # NaN propagates
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name}: contains {bad} NaN or Inf value(s)")
    return t


def _non_binary_kernel():
    """A parallel numba counter of entries that are neither 0 nor 1 (compiled on first use, so
    importing the package does not import numba), or None without numba."""
    global _NON_BINARY_KERNEL
    if _NON_BINARY_KERNEL is None:
        try:
            from numba import njit, prange
        except ImportError:  # pragma: no cover
            _NON_BINARY_KERNEL = False
            return None

        @njit(parallel=True, cache=True)
        def count(flat):  # pragma: no cover - compiled
            n = 0
            for i in prange(flat.size):
                if flat[i] != 0 and flat[i] != 1:
                    n += 1
            return n

        _NON_BINARY_KERNEL = count
    return _NON_BINARY_KERNEL or None


_NON_BINARY_KERNEL = None


def _count_non_binary(x: torch.Tensor) -> int:
    """Entries of x that are neither 0 nor 1 (one parallel pass on contiguous CPU float tensors)."""
    kernel = _non_binary_kernel() if x.device.type == "cpu" and x.is_contiguous() \
        and x.dtype in (torch.float32, torch.float64) else None
    if kernel is None:
        return int(torch.count_nonzero((x != 0) & (x != 1)))
    return int(kernel(x.view(-1).numpy()))


def check_binary(x: torch.Tensor, name: str) -> None:
    """Raise if ``x`` has entries other than 0 and 1."""
    bad = _count_non_binary(x) if x.numel() else 0
    if bad:
        lo, hi = float(x.min()), float(x.max())
        raise ValueError(
            f"{name}: Bernoulli units need binary data (0/1), got {bad} other value(s), range "
            f"[{lo:g}, {hi:g}]; pass binarize='threshold' or binarize='stochastic' for data in [0, 1]"
        )


def binarize(x: torch.Tensor, how: str | None, name: str, generator=None) -> torch.Tensor:
    """Binarize data in [0, 1]: 'threshold' (at 0.5), 'stochastic' (Bernoulli samples), or None."""
    if how is None:
        check_binary(x, name)
        return x
    if how not in ("threshold", "stochastic"):
        raise ValueError(f"binarize: expected None, 'threshold' or 'stochastic', got {how!r}")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError(
            f"{name}: binarize={how!r} needs values in [0, 1], "
            f"got [{float(x.min()):g}, {float(x.max()):g}]"
        )
    if how == "threshold":
        return (x > 0.5).to(x.dtype)
    return torch.bernoulli(x, generator=generator)

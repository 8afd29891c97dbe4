"""The progress bar of the binary solvers (``progress=True``): tqdm on standard error."""

from __future__ import annotations

import sys


class _Silent:
    def update(self, n=1):
        pass

    def set_postfix_str(self, text):
        pass

    def close(self):
        pass


def bar(enabled: bool, total: int, unit: str, desc: str):
    """A tqdm bar over ``total`` ``unit``s on stderr when ``enabled``, else an object that does nothing."""
    if not isinstance(enabled, bool):
        raise ValueError(f"progress: expected True or False, got {enabled!r}")
    if not enabled:
        return _Silent()
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, leave=False, mininterval=0.5)

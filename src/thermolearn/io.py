"""Model and checkpoint files: safetensors tensors plus JSON metadata. Never pickle.

A file holds named tensors and one JSON document (stored in the safetensors header under the
key ``thermolearn``). Reading a file runs no code from it; a truncated, corrupted or foreign
file raises :class:`ModelFileError` with a message saying what is wrong.

Writes are atomic: the file is written beside its destination and renamed over it, so an
interruption leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from .errors import ModelFileError

FORMAT_KEY = "thermolearn"


def save_tensors(path, tensors: dict[str, torch.Tensor], metadata: dict) -> Path:
    """Write ``tensors`` and JSON-serialisable ``metadata`` to ``path`` atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    header = {FORMAT_KEY: json.dumps(metadata, sort_keys=True)}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(flat, tmp, metadata=header)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_tensors(path, kind: str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a file written by :func:`save_tensors`; check its ``kind`` when one is given."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except ModelFileError:
        raise
    except Exception as exc:  # safetensors raises several exception types for bad files
        raise ModelFileError(
            f"{path}: not a readable thermolearn model file (truncated or corrupted?): {exc}"
        ) from None
    if FORMAT_KEY not in header:
        raise ModelFileError(f"{path}: a safetensors file, but not one written by thermolearn")
    try:
        meta = json.loads(header[FORMAT_KEY])
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: metadata is not valid JSON: {exc}") from None
    if kind is not None and meta.get("kind") != kind:
        raise ModelFileError(f"{path}: holds a {meta.get('kind')!r}, expected a {kind!r}")
    return tensors, meta

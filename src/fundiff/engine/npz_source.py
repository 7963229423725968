"""Image K of an ``.npz`` written by ``--save-array`` (its ``images`` array), read without loading the archive.

The ``images.npy`` member is streamed: its header gives the shape and dtype, the images before K are
decompressed and discarded a chunk at a time, and only image K is kept, so a 10-million-image file
costs the memory of one image.  Python objects are refused (nothing is unpickled).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any
from zlib import error as zlib_error

import numpy as np

from fundiff.engine.pixel_limit import check_pixels
from fundiff.errors import FundiffError
from fundiff.errors import one_line as _one_line


def npz_image(path: Path, index: int) -> np.ndarray:
    """Image ``index`` of the ``images`` array of an .npz, streamed: the archive is never loaded whole."""
    try:
        with zipfile.ZipFile(path) as zf:
            if "images.npy" not in zf.namelist():
                found = ", ".join(n.removesuffix(".npy") for n in zf.namelist()) or "nothing"
                raise FundiffError(f"{path} has no 'images' array (found: {found}); expected a file written by --save-array")
            with zf.open("images.npy") as fh:
                shape, dtype = _npy_header(fh, path)
                if len(shape) not in (3, 4):
                    raise FundiffError(f"{path}: 'images' has shape {shape}, expected N x H x W or N x C x H x W")
                n = shape[0]
                if n == 0:
                    raise FundiffError(f"{path} holds no images")
                if index >= n:
                    raise FundiffError(f"image index {index} out of range for {path}: it holds {n} images (0..{n - 1})")
                channels = shape[1] if len(shape) == 4 and shape[1] in (1, 3, 4) else shape[-1] if len(shape) == 4 else 1
                per_image = int(np.prod(shape[1:], dtype=np.int64))
                check_pixels(per_image // channels, f"image {index} of {path}")
                size = per_image * dtype.itemsize
                fh.seek(index * size, 1)   # decompresses and discards, a chunk at a time
                data = fh.read(size)
    except FundiffError:
        raise
    except PermissionError:
        raise FundiffError(f"cannot read {path}: permission denied") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib_error) as exc:
        raise FundiffError(f"{path} is not a readable .npz file ({_one_line(exc)})") from None
    if len(data) != size:
        raise FundiffError(f"{path} is truncated: image {index} is incomplete")
    return np.frombuffer(data, dtype=dtype).reshape(shape[1:])


def _npy_header(fh: Any, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype of a .npy stream (format 1.0 or 2.0, C order, no Python objects)."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise FundiffError(f"{path}: unsupported .npy format version {version[0]}.{version[1]}")
    if dtype.hasobject:
        raise FundiffError(f"{path}: 'images' holds Python objects, not pixels (fundiff never unpickles data)")
    if fortran and len(shape) > 1:
        raise FundiffError(f"{path}: 'images' is stored in Fortran order; save it with numpy's default C order")
    return tuple(int(d) for d in shape), dtype

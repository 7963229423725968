"""Image files: plain PNG grids, GIF animations and .npz arrays, all written atomically."""

from __future__ import annotations

import contextlib
import io
import math
import os
import zipfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from fundiff.io import atomic_path, write_atomic


def tile(images: torch.Tensor, nrow: int | None = None, pad: int = 2, scale: int = 1) -> np.ndarray:
    """(N, C, H, W) in [0, 1] to one uint8 image (rows of ``nrow``), grey (H, W) or RGB (H, W, 3)."""
    x = images.detach().float().clamp(0, 1).cpu()
    n, c, h, w = x.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol_rows = math.ceil(n / nrow)
    canvas = torch.zeros(c, ncol_rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for i in range(n):
        r, col = divmod(i, nrow)
        canvas[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = x[i]
    arr = (canvas * 255).round().byte().numpy()
    arr = arr[0] if c == 1 else np.transpose(arr, (1, 2, 0))
    if scale > 1:
        arr = np.kron(arr, np.ones((scale, scale) + (() if arr.ndim == 2 else (1,)), dtype=np.uint8))
    return arr


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None, scale: int = 2,
              pad: int = 2) -> Path:
    """A PNG grid of the images."""
    img = Image.fromarray(tile(images, nrow, pad=pad, scale=scale))
    return write_atomic(path, lambda tmp: img.save(tmp, format="PNG"))


def save_gif(frames: Sequence[torch.Tensor], path: str | os.PathLike, nrow: int | None = None, scale: int = 3,
             duration_ms: int = 60, hold_last_ms: int = 1200) -> Path:
    """An animated GIF of a sequence of image batches (e.g. a sampling trajectory)."""
    pics = [Image.fromarray(tile(f, nrow, scale=scale)) for f in frames]
    durations = [duration_ms] * (len(pics) - 1) + [hold_last_ms]
    return write_atomic(path, lambda tmp: pics[0].save(
        tmp, format="GIF", save_all=True, append_images=pics[1:], duration=durations, loop=0))


def save_npz(path: str | os.PathLike, images: torch.Tensor, **extra: np.ndarray | Sequence) -> Path:
    """Raw images (float32 in [0, 1]) plus labels / prompts, as a compressed .npz (:func:`streamed_npz` in one batch)."""
    with streamed_npz(path, tuple(images.shape)) as npz:
        npz.add(images)
        npz.finish(**extra)
    return Path(path)


class NpzImages:
    """An .npz whose ``images`` array (float32, known shape) is written batch by batch: memory stays one batch."""

    def __init__(self, zf: zipfile.ZipFile, shape: tuple[int, ...]):
        self.zf, self.shape, self.written = zf, tuple(shape), 0
        self._fh = zf.open("images.npy", "w", force_zip64=True)
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False, "shape": self.shape}
        np.lib.format.write_array_header_2_0(self._fh, header)

    def add(self, images: torch.Tensor) -> None:
        arr = images.detach().float().cpu().numpy().astype("<f4")
        if arr.shape[1:] != self.shape[1:] or self.written + len(arr) > self.shape[0]:
            raise ValueError(f"batch of shape {arr.shape} does not fit {self.shape} after {self.written} images")
        self._fh.write(arr.tobytes())
        self.written += len(arr)

    def finish(self, **extra: np.ndarray | Sequence) -> None:
        self._fh.close()
        if self.written != self.shape[0]:
            raise ValueError(f"{self.written} of {self.shape[0]} images were written")
        for name, value in extra.items():
            buf = io.BytesIO()
            np.save(buf, np.asarray(value))
            self.zf.writestr(f"{name}.npy", buf.getvalue())


@contextlib.contextmanager
def streamed_npz(path: str | os.PathLike, shape: tuple[int, ...]) -> Iterator[NpzImages]:
    """``with streamed_npz(p, (N, C, H, W)) as npz: npz.add(batch) ...; npz.finish(labels=...)``; atomic (a failure
    leaves no file), compressed, read back by ``np.load`` like :func:`save_npz`'s files."""
    with atomic_path(path) as tmp:
        zf = zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        npz = NpzImages(zf, shape)
        try:
            yield npz
        except BaseException:   # an error or Ctrl-C mid-stream: close quietly, atomic_path removes the temp file
            with contextlib.suppress(Exception):
                npz._fh.close()
            with contextlib.suppress(Exception):
                zf.close()
            raise
        zf.close()


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for images in [0, 1]: 10 log10(1 / MSE), capped at 100 dB (identical images)."""
    mse = ((pred - target) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(1.0 / mse)

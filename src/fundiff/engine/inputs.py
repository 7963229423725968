"""Engine inputs: images and masks as float32 tensors, from files, arrays or bundled samples.

The engine's image convention is float32 in [-1, 1], shape (N, C, H, W).  :func:`load_image` turns
any supported source into a (1, C, size, size) tensor the way the study's ``process_pil_im`` does:
convert to RGB (transparent pixels composited on white), resize so the shorter side is ``size``
(PIL bilinear with antialiasing, as torchvision's ``Resize`` on a PIL image), centre-crop to
``size`` x ``size`` (torchvision ``CenterCrop`` rounding), grey via PIL's "L" luma when one channel
is asked for, then ``x / 255 * 2 - 1``.  JPEG EXIF orientation is applied first, so a phone photo
is used the way it is displayed.

A source is, tried in this order:

- a ``PIL.Image.Image``, or a numpy array / torch tensor: (H, W) or (H, W, C) uint8 (C = 1, 3 or
  4), or (H, W), (C, H, W), (1, C, H, W) float in [0, 1] (C = 1 or 3);
- an existing file: any image PIL reads (a GIF gives its first frame), or a ``.npz`` written by
  ``--save-array`` (its ``images`` array; image 0);
- ``PATH.npz:K``: image K of that ``.npz``;
- ``mnist-test:N`` / ``mnist-train:N``: digit N of that MNIST split (:func:`fundiff.data.load_mnist`);
- the name of a bundled sample (:func:`sample_names`), e.g. ``"astronaut"`` or ``"digit-7"``.

Masks (:func:`load_mask`; rectangles in :mod:`fundiff.engine.masks`) are (1, 1, size, size) float32 holding exactly 0.0
and 1.0: white (1) is the region to generate, black (0) the region to keep.  A mask file goes
through the same resize and crop as an image, so a mask drawn over a photo lines up with it.

Every problem the user can fix raises :class:`~fundiff.errors.FundiffError` with a one-line message.

Size limit: an image of more than :data:`MAX_IMAGE_PIXELS` pixels (width x height) is refused from its
header, before any pixel is decoded (a decompression bomb, a few hundred KB of PNG that would decode to
gigabytes, costs nothing); so are arrays and ``.npz`` images over it.  ``with pixel_limit(n):`` (the
CLI's ``--max-image-pixels``) raises or lowers it for the code inside.  Image K of an ``.npz`` is read
on its own, streamed from the archive, so a 10-million-image ``--save-array`` file costs one image.
"""

from __future__ import annotations

import importlib.resources
import os
import re
import warnings
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from fundiff.engine.npz_source import npz_image
from fundiff.engine.pixel_limit import MAX_IMAGE_PIXELS, check_pixels, pixel_limit
from fundiff.errors import DataError, FundiffError, one_line as _one_line

__all__ = [
    "DEFAULT_IMAGES",
    "MAX_IMAGE_PIXELS",
    "ImageSource",
    "default_image",
    "from_unit",
    "load_image",
    "load_mask",
    "pixel_limit",
    "sample_names",
    "sample_path",
    "to_unit",
]

ImageSource = Union[str, os.PathLike, Image.Image, np.ndarray, torch.Tensor]

#: The input the CLI uses when none is given, by channel count.  For RGB it is "astronaut" (our
#: stand-in for the study's Campanile photo): square, so nothing is cropped away, a recognisable
#: subject at every size, and the study's Campanile mask ``rect_mask(64, (2, 20), (24, 42))``
#: falls on her face, so the inpainting demo has something to redraw.  For grey, MNIST digit 3.
DEFAULT_IMAGES: dict[int, str] = {3: "astronaut", 1: "digit-3"}

_SAMPLE_SUFFIXES = (".png", ".jpg")
_FLOAT_TOLERANCE = 1e-3  # float inputs may overshoot [0, 1] by this much (then are clamped)
_NPZ_INDEX = re.compile(r"^(?P<path>.+\.npz):(?P<index>[^:/\\]*)$", re.IGNORECASE)
_MNIST = re.compile(r"^mnist-(?P<split>test|train):(?P<index>.*)$")


# --------------------------------------------------------------------------------------------------
# Public API


def load_image(source: ImageSource, size: int, channels: int = 3) -> torch.Tensor:
    """``source`` as a (1, channels, size, size) float32 tensor in [-1, 1] (see the module doc)."""
    _check_size(size)
    if isinstance(channels, bool) or channels not in (1, 3):
        raise FundiffError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    image = _open(source)
    if isinstance(image, Image.Image):
        rgb = _resize_crop(_to_rgb(image, background=(255, 255, 255)), size)
        pil = rgb.convert("L") if channels == 1 else rgb
        arr = np.asarray(pil, dtype=np.float32) / 255.0
        unit = torch.from_numpy(arr.reshape(size, size, channels).transpose(2, 0, 1).copy())
    else:
        unit = _float_resize_crop(image, size)
        unit = _grey(unit) if channels == 1 else unit.expand(3, -1, -1) if unit.shape[0] == 1 else unit
    return from_unit(unit.unsqueeze(0).contiguous())


def load_mask(source: ImageSource, size: int, invert: bool = False) -> torch.Tensor:
    """A mask as (1, 1, size, size) float32 of 0.0 / 1.0; white (1) = generate, black (0) = keep.

    Read as grey (transparent pixels count as black), resized and centre-cropped exactly like
    :func:`load_image`, binarised at 0.5, inverted if ``invert``.  An all-zero mask is returned as is.
    """
    _check_size(size)
    image = _open(source)
    if isinstance(image, Image.Image):
        grey = _resize_crop(_to_rgb(image, background=(0, 0, 0)).convert("L"), size)
        unit = torch.from_numpy(np.asarray(grey, dtype=np.float32) / 255.0).unsqueeze(0)
    else:
        unit = _float_resize_crop(_grey(image), size)
    mask = (unit >= 0.5).to(torch.float32)
    if invert:
        mask = 1.0 - mask
    return mask.reshape(1, 1, size, size).contiguous()


def sample_names() -> list[str]:
    """Names of the bundled sample images, sorted (photos, ``digit-0`` .. ``digit-9``, sketches)."""
    folder = _samples_dir()
    return sorted(p.stem for p in folder.iterdir() if p.suffix.lower() in _SAMPLE_SUFFIXES)


def sample_path(name: str) -> Path:
    """The file of bundled sample ``name``; FundiffError naming the samples if there is none."""
    folder = _samples_dir()
    for suffix in _SAMPLE_SUFFIXES:
        path = folder / f"{name}{suffix}"
        if isinstance(name, str) and name and "/" not in name and path.is_file():
            return path
    raise FundiffError(f"unknown sample {name!r}: the bundled samples are {_describe_samples()}")


def default_image(channels: int) -> str:
    """The sample name the CLI uses when no input is given: ``"astronaut"`` (RGB), ``"digit-3"`` (grey)."""
    try:
        return DEFAULT_IMAGES[channels]
    except (KeyError, TypeError):
        raise FundiffError(f"channels must be 1 (grey) or 3 (RGB), got {channels}") from None


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


def from_unit(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]."""
    return x * 2.0 - 1.0


# --------------------------------------------------------------------------------------------------
# Sources -> a PIL image or a float (C, H, W) tensor in [0, 1]


def _open(source: Any) -> Image.Image | torch.Tensor:
    if isinstance(source, Image.Image):
        check_pixels(source.size[0] * source.size[1], "the image", source.size)
        return source
    if isinstance(source, (np.ndarray, torch.Tensor)):
        return _from_array(source, what="the array")
    if isinstance(source, os.PathLike):
        return _open_file(Path(source).expanduser(), index=None)
    if not isinstance(source, str):
        raise FundiffError(
            f"cannot use a {type(source).__name__} as an image: pass a file path, a sample name, "
            "a PIL image, or a numpy array / torch tensor"
        )
    text = source.strip()
    if not text:
        raise FundiffError(f"empty image name: pass a file path or a bundled sample: {_describe_samples()}")
    path = Path(text).expanduser()
    try:
        exists = path.exists()
    except (OSError, ValueError):  # a name too long for a path, or holding a NUL byte
        exists = False
    if exists:
        return _open_file(path, index=None)
    npz = _NPZ_INDEX.match(text)
    if npz is not None:
        index = npz.group("index")
        if not index.isdigit():
            raise FundiffError(f"bad image index {index!r} in {text}: expected PATH.npz:K with K a whole number >= 0")
        return _open_file(Path(npz.group("path")).expanduser(), index=int(index))
    mnist = _MNIST.match(text)
    if mnist is not None:
        return _open_mnist(mnist.group("split"), mnist.group("index"), text)
    if _is_sample(text):
        return _open_file(sample_path(text), index=None)
    if os.sep in text or "/" in text or Path(text).suffix:
        raise FundiffError(
            f"no such image file: {text} (expected an image file, PATH.npz[:K], mnist-test:N, "
            f"or a bundled sample: {_describe_samples()})"
        )
    raise FundiffError(
        f"unknown sample {text!r} and no such file: the bundled samples are {_describe_samples()} "
        "(or pass an image file, PATH.npz[:K], or mnist-test:N)"
    )


def _open_file(path: Path, index: int | None) -> Image.Image | torch.Tensor:
    if path.is_dir():
        raise FundiffError(f"{path} is a folder, not an image file")
    if not path.exists():
        raise FundiffError(f"no such image file: {path}")
    if path.suffix.lower() == ".npz":
        index = 0 if index is None else index
        return _from_array(npz_image(path, index), what=f"image {index} of {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)   # our own limit is checked instead
            with Image.open(path) as im:   # reads the header only
                check_pixels(im.size[0] * im.size[1], str(path), im.size)
                im.seek(0)
                im.load()
                image = ImageOps.exif_transpose(im)  # always a loaded copy
    except FundiffError:
        raise
    except UnidentifiedImageError:
        raise FundiffError(f"{path} is not an image PIL can read") from None
    except Image.DecompressionBombError as exc:
        raise FundiffError(f"{path} is too large to load safely ({_one_line(exc)}); --max-image-pixels N raises "
                           "the limit") from None
    except PermissionError:
        raise FundiffError(f"cannot read {path}: permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise FundiffError(f"{path} is not an image PIL can read (truncated or corrupt: {_one_line(exc)})") from None
    return image


def _open_mnist(split: str, index_text: str, text: str) -> Image.Image:
    if not index_text.isdigit():
        raise FundiffError(f"bad MNIST index in {text!r}: expected mnist-{split}:N with N a whole number >= 0")
    from fundiff.data import load_mnist

    images, _ = load_mnist().split(split)
    index, n = int(index_text), images.shape[0]
    if index >= n:
        raise DataError(f"MNIST {split} index {index} out of range: the {split} split has {n} digits (0..{n - 1})")
    return Image.fromarray(images[index].numpy(), mode="L")


def _from_array(array: np.ndarray | torch.Tensor, what: str) -> Image.Image | torch.Tensor:
    """uint8 arrays -> a PIL image; float / bool arrays -> a float (C, H, W) tensor in [0, 1]."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        array = array.float().numpy() if array.dtype in (torch.float16, torch.bfloat16) else array.numpy()
    arr = np.asarray(array)
    shape = tuple(arr.shape)
    if arr.ndim >= 2:
        channels = shape[-1] if arr.ndim == 3 and shape[-1] in (1, 3, 4) else shape[-3] if arr.ndim >= 3 else 1
        check_pixels(int(np.prod(shape, dtype=np.int64)) // max(channels, 1), what)
    if arr.dtype == np.uint8:
        if arr.ndim == 2:
            return Image.fromarray(np.ascontiguousarray(arr), mode="L")
        if arr.ndim == 3:
            if arr.shape[-1] not in (1, 3, 4) and arr.shape[0] in (1, 3):
                arr = arr.transpose(1, 2, 0)  # unambiguously (C, H, W)
            c = arr.shape[-1]
            if c not in (1, 3, 4):
                raise FundiffError(f"expected an image with 1 or 3 channels (or 4 for RGBA), got {c} in {what} of shape {shape}")
            arr = np.ascontiguousarray(arr)
            return Image.fromarray(arr[..., 0], mode="L") if c == 1 else Image.fromarray(arr, mode="RGB" if c == 3 else "RGBA")
        raise FundiffError(f"expected a uint8 image of shape (H, W) or (H, W, C), got {shape} in {what}")
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.floating):
        x = arr.astype(np.float32)
        if x.ndim == 4:
            if x.shape[0] != 1:
                raise FundiffError(f"expected one image (1, C, H, W), got a batch of {x.shape[0]} in {what}")
            x = x[0]
        if x.ndim == 2:
            x = x[None]
        elif x.ndim == 3:
            if x.shape[0] not in (1, 3) and x.shape[-1] in (1, 3):
                x = x.transpose(2, 0, 1)  # unambiguously (H, W, C)
        else:
            raise FundiffError(f"expected a float image of shape (H, W), (C, H, W) or (1, C, H, W), got {shape} in {what}")
        if x.shape[0] not in (1, 3):
            raise FundiffError(f"expected an image with 1 or 3 channels, got {x.shape[0]} in {what} of shape {shape}")
        if min(x.shape[1:]) < 1:
            raise FundiffError(f"{what} is empty (shape {shape})")
        if not np.isfinite(x).all():
            raise FundiffError(f"{what} holds NaN or infinite values")
        lo, hi = float(x.min()), float(x.max())
        if lo < -_FLOAT_TOLERANCE or hi > 1 + _FLOAT_TOLERANCE:
            raise FundiffError(
                f"expected float pixels in [0, 1], got {lo:.3g}..{hi:.3g} in {what} "
                "(a [-1, 1] engine image? pass to_unit(x); 0..255 values? pass them as uint8)"
            )
        return torch.from_numpy(np.ascontiguousarray(np.clip(x, 0.0, 1.0)))
    raise FundiffError(f"expected a uint8 or float image, got dtype {arr.dtype} in {what}")


# --------------------------------------------------------------------------------------------------
# Geometry: resize the shorter side to ``size`` (bilinear, antialiased), centre-crop ``size`` x ``size``


def _check_size(size: Any) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise FundiffError(f"image size must be a whole number >= 1, got {size}")


def _target(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """(new_width, new_height, left, top) as torchvision's Resize(size) + CenterCrop(size)."""
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    return new_w, new_h, left, top


MAX_ASPECT = 16   # beyond this, only the kept square is resampled (the same pixels to within one level of 255)


def _resize_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize(size) + CenterCrop(size).  A thin or wide image (a side over ``MAX_ASPECT`` times the other) would
    resize to ``size`` x ``size * aspect`` first (28 x 28,000,000 for a 1 x 1,000,000 PNG), so there only the source
    box that the crop keeps is resampled, which bounds memory by the output size."""
    new_w, new_h, left, top = _target(image.width, image.height, size)
    if new_w * new_h > MAX_ASPECT * size * size:
        sx, sy = image.width / new_w, image.height / new_h
        box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
        return image.resize((size, size), Image.BILINEAR, box=box, reducing_gap=None)
    if (new_w, new_h) != image.size:
        image = image.resize((new_w, new_h), Image.BILINEAR, reducing_gap=None)
    return image.crop((left, top, left + size, top + size))


def _float_resize_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The same geometry on a float (C, H, W) tensor, channel by channel in PIL's "F" mode."""
    c, h, w = x.shape
    new_w, new_h, left, top = _target(w, h, size)
    planes = []
    for plane in x.numpy():
        im = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
        planes.append(np.asarray(_resize_crop(im, size), dtype=np.float32))
    return torch.from_numpy(np.clip(np.stack(planes), 0.0, 1.0))


def _to_rgb(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """RGB, with any transparency composited on ``background``; 16-bit and float images scaled to 8 bits."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(image, dtype=np.float64)
        peak = 1.0 if image.mode == "F" and arr.max() <= 1.0 else 255.0 if arr.max() <= 255 else 65535.0
        image = Image.fromarray(np.clip(np.rint(arr / peak * 255.0), 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P" or image.mode == "PA":
        image = image.convert("RGBA")
    elif "transparency" in image.info and image.mode in ("L", "RGB"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def _grey(x: torch.Tensor) -> torch.Tensor:
    """Float (3, H, W) -> (1, H, W) with PIL's "L" weights; (1, H, W) unchanged."""
    if x.shape[0] == 1:
        return x
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(3, 1, 1)
    return (x * weights).sum(0, keepdim=True)


# --------------------------------------------------------------------------------------------------
# Bundled samples


def _samples_dir() -> Path:
    return Path(str(importlib.resources.files("fundiff") / "assets" / "samples"))


def _is_sample(name: str) -> bool:
    folder = _samples_dir()
    return "/" not in name and any((folder / f"{name}{s}").is_file() for s in _SAMPLE_SUFFIXES)


def _describe_samples() -> str:
    names = sample_names()
    digits = [n for n in names if re.fullmatch(r"digit-\d", n)]
    others = [n for n in names if n not in digits]
    if len(digits) > 2:
        others.append(f"{digits[0]}..{digits[-1]}")
    else:
        others.extend(digits)
    return ", ".join(others) if others else "(none installed)"




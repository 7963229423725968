"""The web UI's inputs: form values checked into numbers, uploads and drawing canvases into images, errors
into messages on the page (``gr.Error``), and the results back into pictures."""

from __future__ import annotations

import atexit
import functools
import html
import math
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

# No usage statistics or version checks: set before gradio is imported.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, UnidentifiedImageError  # noqa: E402

from fundiff.engine.views.base import MAX_SEED  # noqa: E402
from fundiff.errors import FundiffError  # noqa: E402

DEFAULT_STEPS = 20       # fewer than the study's 34 strided steps, for speed on a CPU
MAX_STEPS = 100
MAX_IMAGES = 16
MAX_BEST_OF = 8          # candidates per illusion for best-of (MNIST)
MAX_MEASURE = 64         # new images an illusion's measured rate may count (MNIST)
CANVAS = 256             # the drawing canvases are CANVAS x CANVAS pixels
DISPLAY = 256            # results are enlarged (nearest neighbour) to about this many pixels
ANIMATION_FRAMES = 24
# Views that need no file and change the image (``permute`` needs a .npy, ``identity`` is the first prompt's).
ANAGRAM_VIEWS = ["flip", "mirror", "rotate_180", "rotate_cw", "rotate_ccw", "negate", "skew", "patch_permute",
                 "pixel_permute", "jigsaw", "inner_circle"]
HYBRID_KINDS = ["hybrid", "triple", "color", "motion"]
OUTPUT_BUTTONS = ["download", "fullscreen"]
MAX_UPLOAD = "25mb"             # larger uploads are refused by gradio with a message


# --------------------------------------------------------------------------------------------------
# Errors the user can fix -> a message on the page


def _message(exc: BaseException) -> str:
    return html.escape(" ".join(str(exc).split()) or type(exc).__name__, quote=False)


def user_errors(fn: Callable) -> Callable:
    """Run ``fn``; a FundiffError or an unreadable image becomes ``gr.Error`` (a message on the page)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except FundiffError as exc:
            raise gr.Error(_message(exc), print_exception=False) from None
        except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
            raise gr.Error(f"that file is not an image that can be read ({_message(exc)})", print_exception=False) from None

    return wrapper


# --------------------------------------------------------------------------------------------------
# Helpers: numbers from the form, tensors <-> pictures


def _int(value: Any, name: str, lo: int, hi: int, default: int | None = None) -> int:
    if value is None or value == "":
        if default is None:
            raise FundiffError(f"{name} is missing")
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        if not lo <= value <= hi:
            raise FundiffError(f"{name} must be a whole number in {lo}..{hi}, got {value}")
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FundiffError(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(number) or number != int(number) or not lo <= number <= hi:
        raise FundiffError(f"{name} must be a whole number in {lo}..{hi}, got {value}")
    return int(number)


def _float(value: Any, name: str, lo: float, hi: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FundiffError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or not lo <= number <= hi:
        raise FundiffError(f"{name} must be in {lo:g}..{hi:g}, got {value}")
    return number


def _prompt(den, text: str | None) -> str:
    return den.default_prompt if text is None else str(text).strip()


def _fork(value: Any, last: int) -> int | str | None:
    """The Hybrid tab's "fork at t": 'auto' (or empty), 'off' (None: composed to the end) or a timestep 0..``last``,
    parsed as ``fundiff hybrid --fork-t`` parses it."""
    from fundiff.engine.illusions import parse_fork

    text = "" if value is None else str(value).strip()
    return parse_fork(text or "auto", last, "fork at t")


def _seed(seed: Any) -> int:
    return _int(seed, "seed", 0, MAX_SEED, default=0)


def _generator(seed: Any) -> torch.Generator:
    return torch.Generator().manual_seed(_seed(seed))


def _unit(x: torch.Tensor) -> torch.Tensor:
    from fundiff.pipelines.base import to_unit

    return to_unit(x)


def _scale(size: int) -> int:
    return max(1, DISPLAY // size)


def to_picture(images: torch.Tensor, nrow: int | None = None) -> Image.Image:
    """(N, C, H, W) in [0, 1] -> one PIL image (a grid when N > 1), enlarged with nearest neighbour."""
    from fundiff.images import tile

    n, _, h, w = images.shape
    return Image.fromarray(tile(images, nrow=nrow, pad=0 if n == 1 else 2, scale=_scale(max(h, w))))


def _progress(progress, total: int, desc: str):
    """A loop callback (i, t, x) driving a ``gr.Progress`` (or nothing, outside a request)."""
    done = [0]
    if progress is not None:
        progress((0, total), desc=desc, unit="steps")

    def step(i, t, x) -> None:
        done[0] += 1
        if progress is not None:
            progress((min(done[0], total), total), desc=desc, unit="steps")

    return step


_SCRATCH: list[Path] = []
SCRATCH_MAX_AGE_S = 3600


def _scratch_file(stem: str, suffix: str) -> Path:
    """A new file name in this process's scratch folder (removed at exit; files older than an hour pruned).

    gradio copies returned files into its own cache, so these only need to outlive the request.
    """
    if not _SCRATCH:
        folder = Path(tempfile.mkdtemp(prefix="fundiff-web-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        _SCRATCH.append(folder)
    folder = _SCRATCH[0]
    now = time.time()
    for old in folder.iterdir():
        try:
            if now - old.stat().st_mtime > SCRATCH_MAX_AGE_S:
                old.unlink()
        except OSError:
            pass
    return folder / f"{stem}-{uuid.uuid4().hex}{suffix}"


# --------------------------------------------------------------------------------------------------
# Inputs: uploaded files and the drawing canvases


def load_upload(path: Any, size: int = CANVAS) -> torch.Tensor:
    """An uploaded file as a (1, 3, size, size) image in [-1, 1]; FundiffError naming the file if it is not one."""
    from fundiff.engine.inputs import load_image

    if isinstance(path, dict):  # a FileData-like value
        path = path.get("path")
    if path is None or str(path) == "":
        raise FundiffError("no file was uploaded")
    file = Path(str(path))
    try:
        return load_image(file, size, 3)
    except FundiffError as exc:  # name the file as the user knows it, not gradio's temporary copy
        raise FundiffError(str(exc).replace(str(file), file.name)) from None


def _blank_canvas(den) -> np.ndarray:
    """The SDEdit canvas: black for MNIST digits (white strokes), white for photos."""
    fill = 0 if den.channels == 1 else 255
    return np.full((CANVAS, CANVAS, 4), fill, dtype=np.uint8) | np.array([0, 0, 0, 255], dtype=np.uint8)


def _square(image: torch.Tensor) -> np.ndarray:
    """A (1, 3, CANVAS, CANVAS) image in [-1, 1] as RGBA uint8."""
    unit = _unit(image[0])
    rgb = (unit.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return np.concatenate([rgb, np.full((CANVAS, CANVAS, 1), 255, np.uint8)], axis=2)


def _editor_value(background: np.ndarray) -> dict:
    return {"background": background, "layers": [], "composite": background}


def _default_photo(den) -> np.ndarray:
    from fundiff.engine.inputs import default_image, load_image

    return _square(load_image(default_image(den.channels), CANVAS, 3))


@user_errors
def upload_to_canvas(den, path) -> dict:
    """An uploaded file -> the value of an image editor with it as the background (to draw over).

    The file is decoded once, here, and only after its header passed the pixel limit (a decompression bomb is
    refused without decoding); a file that is not an image is a message on the page (``gr.Error``)."""
    return _editor_value(_square(load_upload(path)))


def _rgba(array: Any) -> np.ndarray | None:
    if array is None:
        return None
    if isinstance(array, Image.Image):
        array = np.asarray(array.convert("RGBA"))
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3 + [np.full_like(arr, 255)], axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 3:
        arr = np.concatenate([arr, np.full(arr.shape[:2] + (1,), 255, arr.dtype)], axis=2)
    if arr.ndim != 3 or arr.shape[2] != 4:
        raise FundiffError(f"unexpected canvas image of shape {arr.shape}")
    return arr.astype(np.uint8)


def canvas_image(editor: Any) -> np.ndarray:
    """The picture in an image editor (background with the strokes on it) as RGB uint8.

    Raises FundiffError if there is none or it is blank (one colour everywhere).
    """
    if isinstance(editor, dict):
        picture = _rgba(editor.get("composite"))
        if picture is None:
            picture = _rgba(editor.get("background"))
    else:
        picture = _rgba(editor)
    if picture is None:
        raise FundiffError("the canvas is empty: draw something on it or upload an image")
    alpha = picture[..., 3:4].astype(np.float32) / 255
    rgb = (picture[..., :3].astype(np.float32) * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
    if int(rgb.max()) == int(rgb.min()):
        raise FundiffError("the canvas is empty: draw something on it or upload an image")
    return rgb


def canvas_mask(editor: Any) -> np.ndarray | None:
    """Where strokes were painted in an image editor's layers: (H, W) bool, or None if nowhere."""
    if not isinstance(editor, dict):
        return None
    mask = None
    for layer in editor.get("layers") or []:
        arr = _rgba(layer)
        if arr is None:
            continue
        painted = arr[..., 3] > 0
        mask = painted if mask is None else (mask | painted)
    if mask is None or not mask.any():
        return None
    return mask

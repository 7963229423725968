"""``fundiff serve``: a local web UI over the engine, built with gradio.

Tabs: Generate (prompt -> images), SDEdit (an uploaded image or a digit drawn on a canvas -> edited
images), Inpaint (a mask painted on the image, or a rectangle -> regenerated region), Anagram (two
prompts and a view -> one image that reads differently under the view, with its animation) and
Hybrid (prompts per frequency band -> one image and its components).

The model is loaded once per server process (:func:`build_app`); every job goes through gradio's
queue, ``concurrency`` at a time (default 1: in order of arrival) with at most ``max_queue``
waiting, and reports its progress step by step.  The server listens on the loopback interface
unless told otherwise, never opens a share link and sends no analytics.

The work is done by the module-level ``run_*`` functions (plain Python: a denoiser and the form's
values in, PIL images out), which the tests call directly.  Errors the user can fix (a prompt the
model does not know, an upload that is not an image, an empty canvas) are raised as ``gr.Error``
with a one-line message, shown on the page.
"""

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

from fundiff.errors import FundiffError  # noqa: E402

__all__ = [
    "DEFAULT_STEPS",
    "MAX_STEPS",
    "build_app",
    "load_upload",
    "run_anagram",
    "run_generate",
    "run_hybrid",
    "run_inpaint",
    "run_sdedit",
    "serve",
]

DEFAULT_STEPS = 20       # fewer than the study's 34 strided steps, for speed on a CPU
MAX_STEPS = 100
MAX_IMAGES = 16
CANVAS = 256             # the drawing canvases are CANVAS x CANVAS pixels
DISPLAY = 256            # results are enlarged (nearest neighbour) to about this many pixels
ANIMATION_FRAMES = 24
# Views that need no file and change the image (``permute`` needs a .npy, ``identity`` is the first prompt's).
ANAGRAM_VIEWS = ["flip", "rotate_180", "rotate_cw", "rotate_ccw", "negate", "skew", "patch_permute",
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


def _generator(seed: Any) -> torch.Generator:
    return torch.Generator().manual_seed(_int(seed, "seed", 0, 2**63 - 1, default=0))


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
def check_upload(path) -> None:
    """gr.Error with a clear message if an uploaded file is not an image."""
    load_upload(path, size=8)


@user_errors
def upload_to_canvas(den, path) -> dict:
    """An uploaded file -> the value of an image editor with it as the background (to draw over)."""
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


# --------------------------------------------------------------------------------------------------
# The jobs: plain functions of a denoiser and the form's values


def _pipe(cls, den):
    """The pipeline ``cls`` over ``den``: a loaded pipeline (shares its model and thresholding) or a denoiser."""
    from fundiff.pipelines import DiffusionPipeline

    return cls.from_pipe(den) if isinstance(den, DiffusionPipeline) else cls(den)


@user_errors
def run_generate(den, prompt: str, steps: Any = DEFAULT_STEPS, guidance_scale: Any = 7.0, seed: Any = 0,
                 num_images: Any = 4, progress=None) -> Image.Image:
    """Images from a prompt (reference 1.5-1.6): pure noise through the loop with CFG; a grid."""
    from fundiff.pipelines import Text2ImagePipeline

    pipe = _pipe(Text2ImagePipeline, den)
    n_steps = _int(steps, "steps", 1, MAX_STEPS)
    out = pipe(_prompt(pipe.denoiser, prompt), num_inference_steps=n_steps,
               guidance_scale=_float(guidance_scale, "guidance scale", 0, 100),
               num_images_per_prompt=_int(num_images, "number of images", 1, MAX_IMAGES), generator=_generator(seed),
               output_type="pt", callback=_progress(progress, n_steps, "sampling"))
    return to_picture(out.images)


@user_errors
def run_sdedit(den, editor: Any, prompt: str, strength: Any = 0.6, steps: Any = DEFAULT_STEPS,
               guidance_scale: Any = 7.0, seed: Any = 0, num_images: Any = 2, progress=None) -> tuple[Image.Image, str]:
    """SDEdit (reference 1.7): the canvas picture noised to ``strength`` of the way and denoised toward the prompt.

    Returns the grid (the model's view of the input first, then the results) and a caption.
    """
    from fundiff.engine.schedule import Schedule
    from fundiff.pipelines import SDEditPipeline

    picture = canvas_image(editor)
    pipe = _pipe(SDEditPipeline, den)
    n = _int(num_images, "number of images", 1, MAX_IMAGES)
    n_steps = _int(steps, "steps", 1, MAX_STEPS)
    ts = pipe.check_steps(n_steps)
    i_start = Schedule.i_start_for_strength(len(ts), _float(strength, "strength", 0.01, 1.0))
    prompt = _prompt(pipe.denoiser, prompt)
    out = pipe(prompt, picture, i_start=i_start, num_inference_steps=n_steps,
               guidance_scale=_float(guidance_scale, "guidance scale", 0, 100), num_images_per_prompt=n,
               generator=_generator(seed), output_type="pt", callback=_progress(progress, len(ts) - i_start, "SDEdit"))
    grid = to_picture(torch.cat([_unit(out.extras["input"]), out.images]), nrow=n + 1)
    caption = (f"input (as the model sees it), then {n} result(s): noised to t = {ts[i_start]} "
               f"(i_start {i_start} of {len(ts)} steps) and denoised toward {prompt!r}")
    return grid, caption


@user_errors
def run_inpaint(den, editor: Any, rect: str | None, prompt: str, steps: Any = DEFAULT_STEPS,
                guidance_scale: Any = 7.0, seed: Any = 0, num_images: Any = 2,
                progress=None) -> tuple[Image.Image, str]:
    """Inpainting (reference 1.7.2): regenerate where the mask was painted (or the rectangle), keep the rest.

    The mask comes from the strokes painted on the editor; with none, from ``rect`` ('r0:r1,c0:c1' in
    64-px coordinates).  Returns the grid (input, mask, results) and a caption.
    """
    from fundiff.engine.inputs import load_mask
    from fundiff.pipelines import InpaintPipeline

    background = editor.get("background") if isinstance(editor, dict) else editor
    if _rgba(background) is None:
        raise FundiffError("no image to inpaint: upload one first")
    picture = canvas_image(_rgba(background))
    painted = canvas_mask(editor)
    pipe = _pipe(InpaintPipeline, den)
    size = pipe.image_size
    if painted is not None:
        mask = load_mask(painted.astype(np.uint8) * 255, size)
        source = "painted"
    elif rect and str(rect).strip():
        mask = pipe.rect_mask(str(rect))
        source = f"rectangle {str(rect).strip()}"
    else:
        raise FundiffError("no mask: paint over the part of the image to regenerate, or give a rectangle")
    n = _int(num_images, "number of images", 1, MAX_IMAGES)
    n_steps = _int(steps, "steps", 1, MAX_STEPS)
    prompt = _prompt(pipe.denoiser, prompt)
    out = pipe(prompt, picture, mask, num_inference_steps=n_steps,
               guidance_scale=_float(guidance_scale, "guidance scale", 0, 100), num_images_per_prompt=n,
               generator=_generator(seed), output_type="pt", callback=_progress(progress, n_steps, "inpainting"))
    shown_mask = out.extras["mask"].expand(1, pipe.denoiser.channels, -1, -1)
    grid = to_picture(torch.cat([_unit(out.extras["input"]), shown_mask, out.images]), nrow=n + 2)
    caption = (f"input, mask ({source}; white = regenerated, {100 * out.record['mask_fraction']:.0f}% of the image), "
               f"then {n} result(s) toward {prompt!r}")
    return grid, caption


@user_errors
def run_anagram(den, prompt1: str, prompt2: str, view: str = "flip", steps: Any = DEFAULT_STEPS,
                guidance_scale: Any = 7.0, seed: Any = 0, frames: Any = ANIMATION_FRAMES,
                progress=None, out_dir: str | os.PathLike | None = None) -> tuple[Image.Image, Image.Image, str]:
    """A visual anagram (reference 1.8): the image reads as prompt 1, and as prompt 2 under ``view``.

    Returns the image, the image under the view, and the path of the GIF animation between them.
    """
    from fundiff.engine.animation import save_animation, view_frames
    from fundiff.pipelines import AnagramPipeline

    if not view or str(view).strip().split(":")[0] in ("identity", "permute"):
        raise FundiffError(f"choose a view that changes the image: {', '.join(ANAGRAM_VIEWS)}")
    pipe = _pipe(AnagramPipeline, den)
    prompts = [_prompt(pipe.denoiser, prompt1), _prompt(pipe.denoiser, prompt2)]
    n_frames = _int(frames, "frames", 2, 120, default=ANIMATION_FRAMES)
    n_steps = _int(steps, "steps", 1, MAX_STEPS)
    out = pipe(prompts, ["identity", str(view)], num_inference_steps=n_steps,
               guidance_scale=_float(guidance_scale, "guidance scale", 0, 100), num_images_per_prompt=1,
               generator=_generator(seed), output_type="pt", callback=_progress(progress, n_steps, "anagram"))
    flip = out.extras["views"][1]
    unit = out.images[0]
    viewed = _unit(flip.view(out.samples)[0])
    path = Path(out_dir) / "anagram.gif" if out_dir is not None else _scratch_file("anagram", ".gif")
    gif = save_animation(view_frames(unit, flip, n_frames), path)
    return to_picture(unit[None]), to_picture(viewed[None]), str(gif)


@user_errors
def run_hybrid(den, kind: str, prompt1: str, prompt2: str, prompt3: str | None = None, steps: Any = DEFAULT_STEPS,
               guidance_scale: Any = 7.0, seed: Any = 0, progress=None) -> tuple[Image.Image, list]:
    """A hybrid / factorized image (reference 1.9): component i of the image from prompt i.

    Returns the image and a list of (component picture, caption).
    """
    from fundiff.pipelines import HybridPipeline

    pipe = _pipe(HybridPipeline, den)
    dec = pipe.decomposition(str(kind))
    prompts = [_prompt(pipe.denoiser, p) for p in [prompt1, prompt2, prompt3][:len(dec)]]
    n_steps = _int(steps, "steps", 1, MAX_STEPS)
    out = pipe(prompts, str(kind), num_inference_steps=n_steps,
               guidance_scale=_float(guidance_scale, "guidance scale", 0, 100), num_images_per_prompt=1,
               generator=_generator(seed), output_type="pt", callback=_progress(progress, n_steps, "hybrid"))
    gallery = [(to_picture(_unit(p)), f"{name}: {prompt!r}")
               for p, name, prompt in zip(out.extras["components"], dec.names, prompts)]
    return to_picture(out.images), gallery


# --------------------------------------------------------------------------------------------------
# The app


def usable_views(den) -> list[str]:
    """The anagram views that work at this model's image size (e.g. patch_permute needs sides divisible by 8)."""
    from fundiff.engine.views import get_view

    size, ok = den.image_size, []
    for name in ANAGRAM_VIEWS:
        try:
            get_view(name).view(torch.zeros(1, den.channels, size, size))
        except FundiffError:
            continue
        ok.append(name)
    return ok


def usable_kinds(den) -> list[str]:
    """The hybrid decompositions that work for this model ('color' needs RGB)."""
    from fundiff.engine.decompositions import get_decomposition

    ok = []
    for name in HYBRID_KINDS:
        try:
            get_decomposition(name, den.image_size, den.channels)
        except FundiffError:
            continue
        ok.append(name)
    return ok


def _steps_slider(elem_id: str | None = None) -> gr.Slider:
    return gr.Slider(1, MAX_STEPS, value=DEFAULT_STEPS, step=1, label="steps",
                     info="denoising steps (the study uses 34; fewer is faster)", elem_id=elem_id)


def _guidance_slider() -> gr.Slider:
    return gr.Slider(0, 15, value=7.0, step=0.5, label="guidance scale", info="classifier-free guidance (1 = none)")


def _seed_box(seed: int = 0) -> gr.Number:
    return gr.Number(value=seed, precision=0, minimum=0, label="seed", info="same seed, same images")


def _prompt_help(den) -> str:
    if den.name == "mnist":
        return "a digit: '0'..'9', 'seven', 'a 7', or empty for any digit"
    return "a text prompt (without --text-encoder it must be in the --embeddings cache)"


def _editor_brush(den, mask: bool) -> gr.Brush:
    if mask:
        return gr.Brush(colors=[("#ff00aa", 0.6)], default_color=("#ff00aa", 0.6), color_mode="fixed",
                        default_size=max(4, CANVAS // 16))
    colour = "#ffffff" if den.channels == 1 else "#000000"
    return gr.Brush(colors=[colour], default_color=colour, color_mode="defaults" if den.channels == 3 else "fixed",
                    default_size=max(4, CANVAS // 24))


def build_app(model: str = "mnist", *, denoiser=None, concurrency: int = 1, max_queue: int = 16,
              threshold: bool | str = True, seed: int = 0, **backend_kwargs) -> gr.Blocks:
    """The gradio app over one denoiser, loaded once here (``model`` and ``backend_kwargs`` as for
    :func:`fundiff.backends.load_denoiser`, or an already loaded ``denoiser``).

    The queue runs ``concurrency`` jobs at a time (default 1: in order) with at most ``max_queue`` waiting.
    ``threshold`` is a ``--threshold`` choice (auto, dynamic, static, none; True = auto, False = none: the
    study's plain x0 formula); ``seed`` is the
    seed the forms start with.
    """
    if denoiser is None:
        from fundiff.backends import load_denoiser

        if backend_kwargs.get("device") in (None, "auto"):
            backend_kwargs["device"] = None if model == "deepfloyd" else "cpu"
        denoiser = load_denoiser(model, **backend_kwargs)
    from fundiff.pipelines import DiffusionPipeline

    # one loaded model and its thresholding, shared by every tab's pipeline (the denoiser is not mutated)
    base = DiffusionPipeline(denoiser, threshold={True: "auto", False: "none"}.get(threshold, threshold))
    den = denoiser
    if concurrency < 1 or max_queue < 1:
        raise FundiffError("concurrency and max_queue must be at least 1")
    mnist = den.name == "mnist"
    helptext = _prompt_help(den)
    default_prompt = "7" if mnist else "a high quality photo"

    def generate_job(prompt, steps, guidance, seed, n, progress=gr.Progress()):
        return run_generate(base, prompt, steps, guidance, seed, n, progress=progress)

    def sdedit_job(editor, prompt, strength, steps, guidance, seed, n, progress=gr.Progress()):
        return run_sdedit(base, editor, prompt, strength, steps, guidance, seed, n, progress=progress)

    def inpaint_job(editor, rect, prompt, steps, guidance, seed, n, progress=gr.Progress()):
        return run_inpaint(base, editor, rect, prompt, steps, guidance, seed, n, progress=progress)

    def anagram_job(p1, p2, view, steps, guidance, seed, progress=gr.Progress()):
        return run_anagram(base, p1, p2, view, steps, guidance, seed, progress=progress)

    def hybrid_job(kind, p1, p2, p3, steps, guidance, seed, progress=gr.Progress()):
        return run_hybrid(base, kind, p1, p2, p3, steps, guidance, seed, progress=progress)

    def to_canvas(path):  # the upload box is emptied, ready for the next file
        return (upload_to_canvas(den, path) if path else gr.skip()), None

    def on_upload(upload: gr.File, editor: gr.ImageEditor) -> None:
        """Uploads are checked first (a bad file: a message on the page, the box emptied), then put on the canvas."""
        # queued (so that gr.Error reaches the page) but not behind the model's jobs: no concurrency limit
        light = {"api_visibility": "private", "concurrency_limit": None, "show_progress": "hidden"}
        checked = upload.upload(check_upload, upload, None, **light)
        checked.success(to_canvas, upload, [editor, upload], **light)
        checked.failure(lambda: None, None, upload, **light)

    # every job that runs the model shares one queue slot pool: `concurrency` jobs at once, the rest wait in order
    job = {"concurrency_id": "model", "concurrency_limit": concurrency}

    size = f"{den.image_size} px, {'grey' if den.channels == 1 else 'RGB'}"
    with gr.Blocks(title="fundiff", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"## fundiff\nModel: **{den.name}** ({size}, on {den.device}). Jobs run "
                    f"{'one at a time, in order' if concurrency == 1 else f'{concurrency} at a time'}; "
                    "the progress bar shows your place in the queue, then the steps.")
        with gr.Tabs():
            with gr.Tab("Generate", id="generate", elem_id="tab-generate"):
                with gr.Row():
                    with gr.Column():
                        g_prompt = gr.Textbox(value=default_prompt, label="prompt", info=helptext, elem_id="gen-prompt")
                        g_steps = _steps_slider("gen-steps")
                        g_guidance = _guidance_slider()
                        with gr.Row():
                            g_seed = _seed_box(seed)
                            g_n = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="number of images", elem_id="gen-n")
                        g_button = gr.Button("Generate", variant="primary", elem_id="gen-button")
                    with gr.Column():
                        g_out = gr.Image(label="images", type="pil", format="png", interactive=False,
                                         buttons=OUTPUT_BUTTONS, elem_id="gen-output")
                g_inputs = [g_prompt, g_steps, g_guidance, g_seed, g_n]
                g_button.click(generate_job, g_inputs, g_out, api_name="generate", **job)
                g_prompt.submit(generate_job, g_inputs, g_out, api_visibility="private", **job)

            with gr.Tab("SDEdit", id="sdedit", elem_id="tab-sdedit"):
                gr.Markdown(("Draw a digit on the canvas" if mnist else "Draw on the canvas") +
                            " or upload an image (you can draw over it too); it is noised part of the way and "
                            "denoised toward the prompt. More strength = more change.")
                with gr.Row():
                    with gr.Column():
                        s_canvas = gr.ImageEditor(
                            value=_editor_value(_blank_canvas(den)), label="canvas", type="numpy", image_mode="RGBA",
                            sources=(), brush=_editor_brush(den, mask=False), eraser=gr.Eraser(),
                            transforms=(), layers=False, canvas_size=(CANVAS, CANVAS), fixed_canvas=True,
                            height=CANVAS + 150, elem_id="sdedit-canvas")
                        s_upload = gr.File(label="...or upload an image (PNG, JPEG)", file_types=["image"],
                                           type="filepath", height=110, elem_id="sdedit-upload")
                        s_prompt = gr.Textbox(value=default_prompt, label="prompt", info=helptext, elem_id="sdedit-prompt")
                        s_strength = gr.Slider(0.05, 1.0, value=0.6, step=0.05, label="strength",
                                               info="how far to noise the input (1 = all the way: ignores it)")
                        s_steps = _steps_slider("sdedit-steps")
                        s_guidance = _guidance_slider()
                        with gr.Row():
                            s_seed = _seed_box(seed)
                            s_n = gr.Slider(1, 8, value=2, step=1, label="number of images", elem_id="sdedit-n")
                        with gr.Row():
                            s_clear = gr.Button("Clear canvas")
                            s_button = gr.Button("Run SDEdit", variant="primary", elem_id="sdedit-button")
                    with gr.Column():
                        s_out = gr.Image(label="input, then results", type="pil", format="png", interactive=False,
                                         buttons=OUTPUT_BUTTONS, elem_id="sdedit-output")
                        s_caption = gr.Markdown(elem_id="sdedit-caption")
                on_upload(s_upload, s_canvas)
                s_clear.click(lambda: _editor_value(_blank_canvas(den)), None, s_canvas, api_visibility="private", queue=False)
                s_button.click(sdedit_job, [s_canvas, s_prompt, s_strength, s_steps, s_guidance, s_seed, s_n],
                               [s_out, s_caption], api_name="sdedit", **job)

            with gr.Tab("Inpaint", id="inpaint", elem_id="tab-inpaint"):
                gr.Markdown("Paint over the part of the image to regenerate (or give a rectangle instead); the rest "
                            "is kept. Upload your own image below.")
                with gr.Row():
                    with gr.Column():
                        i_editor = gr.ImageEditor(
                            value=_editor_value(_default_photo(den)), label="image: paint the mask",
                            type="numpy", image_mode="RGBA", sources=(), brush=_editor_brush(den, mask=True),
                            eraser=gr.Eraser(), transforms=(), layers=False, canvas_size=(CANVAS, CANVAS),
                            fixed_canvas=True, height=CANVAS + 150, elem_id="inpaint-editor")
                        i_upload = gr.File(label="upload an image (PNG, JPEG)", file_types=["image"], type="filepath",
                                           height=110, elem_id="inpaint-upload")
                        i_rect = gr.Textbox(value="", label="...or a rectangle (used when nothing is painted)",
                                            placeholder="rows,cols in 64-px coordinates, e.g. 2:20,24:42",
                                            elem_id="inpaint-rect")
                        i_prompt = gr.Textbox(value="" if mnist else default_prompt, label="prompt", info=helptext)
                        i_steps = _steps_slider("inpaint-steps")
                        i_guidance = _guidance_slider()
                        with gr.Row():
                            i_seed = _seed_box(seed)
                            i_n = gr.Slider(1, 8, value=2, step=1, label="number of images")
                        i_button = gr.Button("Inpaint", variant="primary", elem_id="inpaint-button")
                    with gr.Column():
                        i_out = gr.Image(label="input, mask, results", type="pil", format="png", interactive=False,
                                         buttons=OUTPUT_BUTTONS, elem_id="inpaint-output")
                        i_caption = gr.Markdown()
                on_upload(i_upload, i_editor)
                i_button.click(inpaint_job, [i_editor, i_rect, i_prompt, i_steps, i_guidance, i_seed, i_n],
                               [i_out, i_caption], api_name="inpaint", **job)

            with gr.Tab("Anagram", id="anagram", elem_id="tab-anagram"):
                gr.Markdown("One image that shows the first prompt, and the second under the view "
                            "(reference 1.8), with the animation from one to the other.")
                with gr.Row():
                    with gr.Column():
                        a_p1 = gr.Textbox(value="6" if mnist else "an oil painting of people around a campfire",
                                          label="prompt 1 (as is)", info=helptext)
                        a_p2 = gr.Textbox(value="9" if mnist else "an oil painting of an old man",
                                          label="prompt 2 (under the view)")
                        views = usable_views(den)
                        a_view = gr.Dropdown(views, value="rotate_180" if mnist else views[0], label="view",
                                             info="what the second prompt is seen through")
                        a_steps = _steps_slider("anagram-steps")
                        a_guidance = _guidance_slider()
                        a_seed = _seed_box(seed)
                        a_button = gr.Button("Make anagram", variant="primary", elem_id="anagram-button")
                    with gr.Column():
                        with gr.Row():
                            a_img = gr.Image(label="prompt 1", type="pil", format="png", interactive=False,
                                             buttons=OUTPUT_BUTTONS, elem_id="anagram-image")
                            a_viewed = gr.Image(label="prompt 2 (the view)", type="pil", format="png",
                                                interactive=False, buttons=OUTPUT_BUTTONS, elem_id="anagram-viewed")
                        a_gif = gr.Image(label="animation", type="filepath", interactive=False, buttons=OUTPUT_BUTTONS,
                                         elem_id="anagram-gif")
                a_button.click(anagram_job, [a_p1, a_p2, a_view, a_steps, a_guidance, a_seed],
                               [a_img, a_viewed, a_gif], api_name="anagram", **job)

            with gr.Tab("Hybrid", id="hybrid", elem_id="tab-hybrid"):
                gr.Markdown("Each component of the image (e.g. low / high frequencies) follows its own prompt "
                            "(reference 1.9). 'triple' uses all three prompts.")
                with gr.Row():
                    with gr.Column():
                        h_kind = gr.Dropdown(usable_kinds(den), value="hybrid", label="kind",
                                             info="hybrid: low / high frequencies; triple: three bands; "
                                                  "color: grey / colour; motion: motion blur / the rest")
                        h_p1 = gr.Textbox(value="1" if mnist else "a lithograph of a skull",
                                          label="prompt 1 (low frequencies / first component)", info=helptext)
                        h_p2 = gr.Textbox(value="7" if mnist else "a lithograph of waterfalls",
                                          label="prompt 2 (high frequencies / second component)")
                        h_p3 = gr.Textbox(value="0" if mnist else "a high quality photo",
                                          label="prompt 3 (third component, 'triple' only)")
                        h_steps = _steps_slider("hybrid-steps")
                        h_guidance = _guidance_slider()
                        h_seed = _seed_box(seed)
                        h_button = gr.Button("Make hybrid", variant="primary", elem_id="hybrid-button")
                    with gr.Column():
                        h_img = gr.Image(label="hybrid image", type="pil", format="png", interactive=False,
                                         buttons=OUTPUT_BUTTONS, elem_id="hybrid-image")
                        h_parts = gr.Gallery(label="components", columns=3, format="png", buttons=OUTPUT_BUTTONS,
                                             elem_id="hybrid-parts")
                h_button.click(hybrid_job, [h_kind, h_p1, h_p2, h_p3, h_steps, h_guidance, h_seed],
                               [h_img, h_parts], api_name="hybrid", **job)
    demo.queue(default_concurrency_limit=concurrency, max_size=max_queue)
    demo.fundiff_pipeline = base   # the shared model and its thresholding (for tests and embedding apps)
    return demo


def serve(host: str = "127.0.0.1", port: int = 7860, *, model: str = "mnist", max_queue: int = 16,
          concurrency: int = 1, quiet: bool = False, **kwargs) -> None:
    """Build the app and serve it on http://host:port until interrupted (never a public share link).

    ``kwargs`` go to :func:`build_app` (``threshold``, ``seed``, and the backend's options)."""
    demo = build_app(model, concurrency=concurrency, max_queue=max_queue, **kwargs)
    demo.launch(server_name=host, server_port=port, share=False, inbrowser=False, show_error=True, quiet=quiet,
                max_file_size=MAX_UPLOAD,
                footer_links=["api", "gradio", "settings"], run_history=False, mcp_server=False)

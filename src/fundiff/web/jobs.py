"""The web UI's jobs: plain functions of a loaded pipeline (or denoiser) and the form's values, returning
pictures; each calls one pipeline (the tests call these directly)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fundiff.errors import FundiffError
from fundiff.pipelines.natural_anagrams import natural_entry, natural_note
from fundiff.pipelines.readings import hybrid_readable, hybrid_reader, hybrid_reader_name, readable_digits
from fundiff.studies.illusions import check_measure, fork_text, measured_rate, rate_text, read_as
from fundiff.web.forms import (ANAGRAM_VIEWS, ANIMATION_FRAMES, DEFAULT_STEPS, HYBRID_KINDS, MAX_BEST_OF, MAX_IMAGES,
                               MAX_MEASURE, MAX_STEPS, _float, _fork, _generator, _int, _progress, _prompt, _rgba,
                               _scratch_file, _seed, _unit, canvas_image, canvas_mask, to_picture, user_errors)

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
def run_generate_fast(pipe, prompt: str, steps: Any = None, guidance_scale: Any = None, seed: Any = 0,
                      num_images: Any = 4, progress=None) -> Image.Image:
    """Images from a prompt with the distilled few-step model (a :class:`~fundiff.pipelines.SamplePipeline` over
    "mnist-fast"): one UNet pass per step; ``steps`` and ``guidance_scale`` None are its defaults."""
    gen = pipe.model
    n_steps = gen.default_steps if steps in (None, "") else _int(steps, "steps", 1, MAX_STEPS)
    if n_steps not in gen.shortcut_steps:
        raise FundiffError(f"the fast model takes {', '.join(map(str, gen.shortcut_steps))} steps, got {n_steps}")
    low, high = gen.guidance_range
    scale = gen.default_guidance_scale if guidance_scale in (None, "") else _float(guidance_scale, "guidance scale", low, high)
    out = pipe("" if prompt is None else str(prompt).strip(), num_inference_steps=n_steps, guidance_scale=scale,
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
                guidance_scale: Any = 7.0, seed: Any = 0, best_of: Any = 1, measure: Any = 0,
                frames: Any = ANIMATION_FRAMES, progress=None,
                out_dir: str | os.PathLike | None = None) -> tuple[Image.Image, Image.Image, str, str]:
    """A visual anagram (reference 1.8): the image reads as prompt 1, and as prompt 2 under ``view``.

    MNIST with digit prompts: ``best_of`` N keeps the best of N candidates, and ``measure`` N > 0 makes N more
    images (no best-of) to count how often the classifier reads them right both ways.  Returns the image, the
    image under the view, the path of the GIF animation between them, and a caption with the readings.
    """
    from fundiff.engine.animation import save_animation, view_frames
    from fundiff.pipelines import AnagramPipeline
    from fundiff.pipelines.readings import anagram_readings

    if not view or str(view).strip().split(":")[0] in ("identity", "permute"):
        raise FundiffError(f"choose a view that changes the image: {', '.join(ANAGRAM_VIEWS)}")
    pipe = _pipe(AnagramPipeline, den)
    prompts = [_prompt(pipe.denoiser, prompt1), _prompt(pipe.denoiser, prompt2)]
    n_frames = _int(frames, "frames", 2, 120, default=ANIMATION_FRAMES)
    n_steps = _int(steps, "steps", 1, MAX_STEPS)
    settings = dict(views=["identity", str(view)], num_inference_steps=n_steps,
                    guidance_scale=_float(guidance_scale, "guidance scale", 0, 100), output_type="pt")
    n_best, n_measure, digits = _reading_options(pipe, prompts, best_of, measure)
    out = pipe(prompts, **settings, num_images_per_prompt=1, generator=_generator(seed), best_of=n_best,
               callback=_progress(progress, n_steps, "anagram"))
    flip = out.extras["views"][1]
    measured = measured_rate(digits, n_measure, _seed(seed), lambda n, gen: pipe(
        prompts, **settings, num_images_per_prompt=n, generator=gen,
        callback=_progress(progress, n_steps * len(pipe.batches(n, None)), "measuring")).samples,
        lambda x: anagram_readings(x, out.extras["views"]))
    unit = out.images[0]
    viewed = _unit(flip.view(out.samples)[0])
    path = Path(out_dir) / "anagram.gif" if out_dir is not None else _scratch_file("anagram", ".gif")
    gif = save_animation(view_frames(unit, flip, n_frames), path)
    caption = _reading_caption(pipe, prompts, ["as is", f"under {flip.name}"],
                               lambda: anagram_readings(out.samples, out.extras["views"]), n_best, measured)
    note = natural_note(natural_entry(readable_digits(pipe, prompts), out.extras["views"]))
    return to_picture(unit[None]), to_picture(viewed[None]), str(gif), "\n\n".join(filter(None, [caption, note]))


@user_errors
def run_hybrid(den, kind: str, prompt1: str, prompt2: str, prompt3: str | None = None, steps: Any = DEFAULT_STEPS,
               guidance_scale: Any = 7.0, seed: Any = 0, best_of: Any = 1, measure: Any = 0, fork_t: Any = "auto",
               progress=None) -> tuple[Image.Image, list, str]:
    """A hybrid / factorized image (reference 1.9): component i of the image from prompt i.

    ``best_of`` and ``measure`` as for :func:`run_anagram` (a two-component hybrid is read from afar and up close);
    ``fork_t`` "auto", "off" or a timestep, as ``fundiff hybrid --fork-t``.  Returns the image, a list of (component
    picture, caption), and a caption with the readings (and the fork, when there is one).
    """
    from fundiff.pipelines import HybridPipeline
    from fundiff.pipelines.readings import check_readable, hybrid_readings

    pipe = _pipe(HybridPipeline, den)
    dec = pipe.decomposition(str(kind))
    prompts = [_prompt(pipe.denoiser, p) for p in [prompt1, prompt2, prompt3][:len(dec)]]
    n_steps = _int(steps, "steps", 1, MAX_STEPS)
    fork = pipe.resolve_fork(_fork(fork_t, pipe.denoiser.schedule.num_train_timesteps - 1), str(kind), None)
    settings = dict(num_inference_steps=n_steps, guidance_scale=_float(guidance_scale, "guidance scale", 0, 100),
                    output_type="pt", fork_t=fork)
    n_best, n_measure, digits = _reading_options(pipe, prompts, best_of, measure)
    if digits is not None:
        check_readable(dec)
    out = pipe(prompts, str(kind), **settings, num_images_per_prompt=1, generator=_generator(seed), best_of=n_best,
               callback=_progress(progress, n_steps, "hybrid"))
    measured = measured_rate(digits, n_measure, _seed(seed), lambda n, gen: pipe(
        prompts, str(kind), **settings, num_images_per_prompt=n, generator=gen,
        callback=_progress(progress, n_steps * len(pipe.batches(n, None)), "measuring")).samples,
        lambda x: hybrid_readings(x, dec), hybrid_reader(dec) if digits is not None else None)
    gallery = [(to_picture(_unit(p)), f"{name}: {prompt!r}")
               for p, name, prompt in zip(out.extras["components"], dec.names, prompts)]
    readable = hybrid_readable(pipe, prompts, dec)
    caption = _reading_caption(pipe, prompts, ["from afar", "up close"],
                               lambda: hybrid_readings(out.samples, dec) if readable else None, n_best, measured, dec)
    caption = "\n\n".join(filter(None, [caption, fork_text(out.record)]))
    return to_picture(out.images), gallery, caption


def _reading_options(pipe, prompts: list[str], best_of: Any, measure: Any) -> tuple[int, int, list[int] | None]:
    """The form's best-of N and measure N, checked before any model call (the pipeline checks best-of's prompts);
    the prompts' digits when measuring."""
    n_best = _int(best_of, "best of", 1, MAX_BEST_OF, default=1)
    n_measure = _int(measure, "measure", 0, MAX_MEASURE, default=0)
    return n_best, n_measure, check_measure(pipe, prompts, n_measure)


def _reading_caption(pipe, prompts: list[str], names: list[str], readings, best_of: int, measured: dict,
                     decomposition=None) -> str:
    """What the shipped classifier (an anagram) or the hybrid's reader (``decomposition``:
    ``readings.hybrid_reader``) reads in the shown image (MNIST, digit prompts; '' otherwise), whether best-of chose
    it, and the measured rate when one was asked for."""
    labels = readable_digits(pipe, prompts)
    views = None if labels is None else readings()
    if views is None:
        return ""
    classifier = None if decomposition is None else hybrid_reader(decomposition)
    who = "the shipped classifier" if decomposition is None else hybrid_reader_name(decomposition, with_file=False)
    read = read_as(views, classifier)[0]
    seen = " and ".join(f"**{digit}** {name} ({p:.0%})" for (digit, p), name in zip(read, names))
    right = all(digit == label for (digit, _), label in zip(read, labels))
    wanted = " and ".join(f"{label} {name}" for label, name in zip(labels, names))
    lines = [f"{who[0].upper() + who[1:]} reads this image as {seen}: "
             f"{'right both ways' if right else 'wanted ' + wanted}."]
    if best_of > 1:
        lines.append(f"Best of {best_of}: {who} chose it from {best_of} candidates (read right both ways, "
                     "most confident), so it shows a selection, not how often the model succeeds.")
    if measured:
        lines.append(f"Measured: {rate_text(measured['measured'], 'new images')} from this seed, without best-of, "
                     "read right both ways.")
    return "\n\n".join(lines)


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

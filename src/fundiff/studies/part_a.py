"""Part A items 1.1-1.6 as runs that write the study's figures and the numbers behind them.

* :func:`run_forward`   1.1  the image noised to t = 250, 500, 750
* :func:`run_denoise`   1.2-1.4  Gaussian blur vs one-step vs iterative denoising, with PSNR against the original
* :func:`run_generate`  0, 1.5, 1.6  sampling from pure noise (with or without CFG) at several step counts, timed

Every run works on any :class:`~fundiff.engine.denoiser.Denoiser` (the embedded MNIST model or
DeepFloyd IF); images are in [-1, 1] inside and [0, 1] in every file.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from fundiff.engine.blur import gaussian_blur
from fundiff.engine.denoiser import Conditioned, Denoiser
from fundiff.engine.loops import forward, iterative_denoise
from fundiff.engine.schedule import BACKEND_DEFAULT, describe_threshold, resolve_threshold
from fundiff.figures import image_grid
from fundiff.images import psnr, save_grid, save_npz
from fundiff.io import ensure_writable_dir, write_json
from fundiff.pipelines.base import to_unit as unit
from fundiff.pipelines.text2image import Text2ImagePipeline

STUDY_TIMESTEPS = (250, 500, 750)


def _psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float(psnr(unit(x), unit(ref)).mean())


def _check_timesteps(den: Denoiser, ts: Sequence[int]) -> list[int]:
    return [den.schedule.check_timestep(t) for t in ts]


def run_forward(den: Denoiser, image: torch.Tensor, out: str | os.PathLike, *,
                timesteps: Sequence[int] = STUDY_TIMESTEPS, seed: int = 0, save_array: bool = False) -> dict[str, Any]:
    """1.1: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps at each t (one noise draw per t, seeded)."""
    ts = _check_timesteps(den, timesteps)
    out = ensure_writable_dir(out)   # only once the inputs are known to be good: a bad one leaves no folder
    g = torch.Generator().manual_seed(seed)
    noisy = [forward(den.schedule, image.cpu(), t, generator=g) for t in ts]
    results = {"timesteps": ts, "psnr_noisy_db": {str(t): _psnr(x, image) for t, x in zip(ts, noisy)},
               "alpha_bar": {str(t): float(den.schedule.alpha_bar(t)) for t in ts}, "seed": seed}
    # everything computed before the first file, as in run_denoise and run_generate
    image_grid([[unit(image[0])] + [unit(x[0]) for x in noisy]], out / "forward.png",
               col_labels=["original"] + [f"t = {t}" for t in ts], cell=1.8)
    if save_array:
        save_npz(out / "forward.npz", torch.cat([unit(x) for x in noisy]), timesteps=ts)
    write_json(out / "forward.json", results)
    return results


@dataclass
class DenoiseConfig:
    timesteps: Sequence[int] = STUDY_TIMESTEPS
    prompt: str | None = None          # None: the backend's default ("a high quality photo" / "")
    i_start: int = 10                  # iterative denoising starts at strided_timesteps[i_start] (t = 690)
    stride: int = 30
    blur_kernel: int = 5
    blur_sigma: float = 2.0
    guidance_scale: float = 1.0        # 1.3 and 1.4 use no guidance
    threshold: Any = BACKEND_DEFAULT   # a Threshold, None (the plain formula) or the denoiser's own
    show_every: int = 5
    seed: int = 0
    final_step: bool = True            # False: the study's loop, which stops at t = 0
    extra: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def run_denoise(den: Denoiser, image: torch.Tensor, out: str | os.PathLike, config: DenoiseConfig = DenoiseConfig(),
                save_array: bool = False, progress: Callable[[int, int, torch.Tensor], None] | None = None) -> dict[str, Any]:
    """1.2-1.4: blur, one-step and iterative denoising of the same noisy images; PSNR against the original."""
    ts = _check_timesteps(den, config.timesteps)
    strided = den.schedule.strided_timesteps(stride=config.stride)
    den.schedule.check_i_start(strided, config.i_start)
    out = ensure_writable_dir(out)   # only once the inputs are known to be good
    prompt = den.default_prompt if config.prompt is None else config.prompt
    predict = Conditioned.from_prompts(den, [prompt], config.guidance_scale)
    threshold = resolve_threshold(config.threshold, den)
    g = torch.Generator().manual_seed(config.seed)
    x0 = image.to(den.device, den.dtype)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return gaussian_blur(x.float().cpu(), config.blur_kernel, config.blur_sigma)

    def one_step(x: torch.Tensor, t: int) -> torch.Tensor:
        return predict(x, t).x0.clamp(-1, 1)

    # 1.1-1.3 at t = 250, 500, 750
    noisy = {t: forward(den.schedule, x0, t, generator=g) for t in ts}
    blurred = {t: blur(noisy[t]) for t in ts}
    estimated = {t: one_step(noisy[t], t) for t in ts}

    # 1.4: iterative denoising from strided[i_start]
    t_start = strided[config.i_start]
    x_start = forward(den.schedule, x0, t_start, generator=g)
    # the study shows x at strided[i] for every show_every-th step of the loop, from the noisy start: only those
    # states are kept (not the whole trajectory, which would grow with the number of steps)
    shown = [(t_start, x_start.cpu())]

    def keep(i: int, t: int, x: torch.Tensor) -> None:
        t_next = strided[i + 1] if i + 1 < len(strided) else -1
        if (i - config.i_start + 1) % config.show_every == 0 and t_next >= 0:
            shown.append((t_next, x.detach().cpu()))
        if progress is not None:
            progress(i, t, x)

    res = iterative_denoise(den.schedule, predict, x_start, strided, config.i_start, threshold=threshold,
                            generator=g, final_step=config.final_step, callback=keep)
    one_start, blur_start = one_step(x_start, t_start), blur(x_start)

    # every model call before the first file: an interrupted run leaves nothing (the CLI says so)
    cols = [f"t = {t}" for t in ts]
    image_grid([[unit(noisy[t][0]) for t in ts], [unit(blurred[t][0]) for t in ts]], out / "blur.png",
               row_labels=["noisy", f"blur k={config.blur_kernel}\nσ={config.blur_sigma:g}"], col_labels=cols, cell=1.8)
    image_grid([[unit(x0[0]), unit(noisy[t][0]), unit(estimated[t][0])] for t in ts], out / "one_step.png",
               row_labels=cols, col_labels=["original", "noisy", "one-step estimate"], cell=1.8)
    image_grid([[unit(x[0]) for _, x in shown] + [unit(res.image[0])]], out / "iterative.png",
               col_labels=[f"t = {t}" for t, _ in shown] + ["clean"], cell=1.8,
               title=f"iterative denoising from t = {t_start} (every {config.show_every}th step)")
    image_grid([[unit(x0[0]), unit(x_start[0]), unit(res.image[0]), unit(one_start[0]), unit(blur_start[0])]],
               out / "comparison.png", cell=1.8,
               col_labels=["original", f"noisy t = {t_start}", "iterative", "one-step", "Gaussian blur"])

    results = {
        "backend": den.name, "prompt": prompt, "seed": config.seed, "thresholding": describe_threshold(threshold),
        "blur": {"kernel_size": config.blur_kernel, "sigma": config.blur_sigma},
        "psnr_note": "PSNR against the original in [0, 1], dB",
        "psnr_db": {str(t): {"noisy": _psnr(noisy[t], x0), "blur": _psnr(blurred[t], x0),
                             "one_step": _psnr(estimated[t], x0)} for t in ts},
        "iterative": {"i_start": config.i_start, "t_start": t_start, "steps": res.model_calls,
                      "psnr_db": {"noisy": _psnr(x_start, x0), "iterative": _psnr(res.image.clamp(-1, 1), x0),
                                  "one_step": _psnr(one_start, x0), "blur": _psnr(blur_start, x0)}},
        **config.extra,
    }
    if save_array:
        save_npz(out / "denoise.npz", torch.cat([unit(res.image), unit(one_start), unit(blur_start)]),
                 labels=["iterative", "one_step", "blur"])
    write_json(out / "denoise.json", results)
    return results


@dataclass
class GenerateConfig:
    prompts: Sequence[str] = ("",)
    num_images: int = 5
    guidance_scale: float = 7.0
    steps: Sequence[int | None] = (None,)   # None: the study's strided list 990, 960, ..., 0
    seed: int = 0


GENERATE_FIGURE_MAX_COLUMNS = 12


def _generate_figure(config: GenerateConfig, rows: list[list[torch.Tensor]], labels: list[str], path) -> None:
    """generate.png, laid out to be looked at rather than scrolled.

    One step count and several prompts: one column per prompt, one row per sample (the study's "4 of each
    digit").  Several step counts: one row per step count (labelled with its time), showing the first
    sample of each prompt (or, for one prompt, its samples), at most 12 columns; every sample is in the
    samples_<N>steps.png files.
    """
    guidance = "CFG γ = %g" % config.guidance_scale if config.guidance_scale != 1 else "no CFG"
    prompts, n = list(config.prompts), config.num_images
    named = [repr(p) for p in prompts]
    if len(prompts) > 1 and len(rows) == 1:
        grid = [[rows[0][p * n + k] for p in range(len(prompts))] for k in range(n)]
        image_grid(grid, path, col_labels=named, title=f"{guidance}, {labels[0].replace(chr(10), ', ')}", cell=1.0)
        return
    picks = [p * n for p in range(len(prompts))] if len(prompts) > 1 else list(range(n))
    picks = picks[:GENERATE_FIGURE_MAX_COLUMNS]
    grid = [[row[i] for i in picks] for row in rows]
    if len(prompts) > 1:
        col_labels, title = named[: len(picks)], f"{guidance}, the first sample of each prompt"
    else:
        col_labels, title = None, f"{named[0]}, {guidance}"
    image_grid(grid, path, row_labels=labels, col_labels=col_labels, title=title, cell=1.2)


@torch.no_grad()
def run_generate(pipe: Text2ImagePipeline, out: str | os.PathLike, config: GenerateConfig, save_array: bool = False,
                 progress: Callable[[int, int, torch.Tensor], None] | None = None,
                 classify: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 upsample: Callable[[torch.Tensor, list[str]], torch.Tensor] | None = None) -> dict[str, Any]:
    """Sampling from pure noise (1.5 without guidance, 1.6 with), once per step count, timed.

    The same seed gives the same initial noise for every step count, so the rows differ only in steps.
    ``classify`` (MNIST: the shipped classifier) adds the fraction of images read as their prompt.
    ``upsample(images, prompts)`` (DeepFloyd's stage II) runs on every image before any file is written and makes
    upsampled.png.
    """
    den = pipe.denoiser
    prompts = [p for p in config.prompts for _ in range(config.num_images)]
    for steps in config.steps:   # every input checked before the output folder exists
        pipe.check_inputs(list(config.prompts), None, steps, config.guidance_scale, config.num_images, "pt", None, progress)
    out = ensure_writable_dir(out)
    size = den.image_size
    runs, rows, labels, arrays = [], [], [], []
    for steps in config.steps:
        g = torch.Generator().manual_seed(config.seed)
        if den.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        res = pipe(list(config.prompts), num_inference_steps=steps, guidance_scale=config.guidance_scale,
                   num_images_per_prompt=config.num_images, generator=g, output_type="pt", callback=progress)
        if den.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        images = res.images
        n_steps = res.record["num_inference_steps"]
        run = {"num_inference_steps": n_steps, "timesteps": res.record["timesteps"],
               "seconds": round(seconds, 3), "seconds_per_image": round(seconds / len(prompts), 4),
               "model_evaluations_per_image": res.record["model_evaluations_per_image"]}
        if classify is not None and all(p.strip() for p in config.prompts):
            wanted = den.encode(prompts).cpu()
            run["accuracy"] = float((classify(images).argmax(1) == wanted).float().mean())
        runs.append(run)
        rows.append(list(images))
        labels.append(f"{n_steps} steps\n{seconds:.1f} s")
        arrays.append(images)   # the images only (small); the files once every step count has run
    big = None if upsample is None else upsample(torch.cat(arrays), prompts * len(arrays))
    # every model call before the first file: an interrupted run leaves nothing (the CLI says so)
    for run, images in zip(runs, arrays):
        save_grid(images, out / f"samples_{run['num_inference_steps']}steps.png", nrow=config.num_images,
                  scale=max(1, 128 // size))
    _generate_figure(config, rows, labels, out / "generate.png")
    results = {"backend": den.name, "prompts": list(config.prompts), "num_images": config.num_images,
               "guidance_scale": config.guidance_scale, "thresholding": res.record["thresholding"],
               "seed": config.seed, "runs": runs}
    if save_array:
        save_npz(out / "generate.npz", torch.cat(arrays), prompts=prompts * len(arrays),
                 steps=[r["num_inference_steps"] for r in runs for _ in prompts])
    if big is not None:
        save_grid(big, out / "upsampled.png", nrow=config.num_images, scale=1)
    write_json(out / "generate.json", results)
    return results

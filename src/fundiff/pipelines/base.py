"""What every fundiff pipeline shares: loading, input checks, noise, batching and the output object.

A pipeline is a denoiser (the embedded MNIST model or DeepFloyd IF) plus the thresholding of x0-hat
that its loops use, and a ``__call__`` with diffusers' argument names:

* ``prompt`` (str or list), ``negative_prompt``, ``num_inference_steps`` (None: the study's strided
  list 990, 960, ..., 0; N: diffusers' "leading" spacing), ``guidance_scale`` (gamma of
  eps = eps_u + gamma (eps_c - eps_u); 1 = no guidance), ``num_images_per_prompt``, ``generator``
  (a ``torch.Generator``: same seed, same images), ``output_type`` ("pil", "np", "pt") and
  ``callback(step, timestep, x)``, called after every denoising step.

``from_pretrained("mnist" | run folder | model.safetensors | "deepfloyd" | an IF folder)`` loads the model;
``OtherPipeline.from_pipe(pipe)`` shares an already loaded one.  Every input is checked up front in
``check_inputs``, which raises :class:`~fundiff.errors.FundiffError` with one line.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from fundiff.backends import load_denoiser
from fundiff.engine.denoiser import Denoiser
from fundiff.engine.schedule import THRESHOLD_CHOICES, Threshold, choose_threshold, describe_threshold
from fundiff.errors import FundiffError

OUTPUT_TYPES = ("pil", "np", "pt")
MAX_IMAGES_PER_CALL = 10_000   # a call keeps its images in memory; stream more with several calls
MAX_GUIDANCE_SCALE = 100.0
Callback = Callable[[int, int, torch.Tensor], None]   # (step index, timestep, x after the step)


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Images in the model's range [-1, 1] -> float32 in [0, 1] on the CPU (the one place this is written)."""
    return ((x.detach().float().cpu() + 1) / 2).clamp(0, 1)


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(N, C, H, W) in [0, 1] -> PIL images (grey "L" for one channel, "RGB" for three), rounded like the PNGs."""
    arr = (images.detach().float().cpu().clamp(0, 1) * 255).round().byte().numpy()
    return [Image.fromarray(a[0] if a.shape[0] == 1 else np.transpose(a, (1, 2, 0))) for a in arr]


def convert_images(unit: torch.Tensor, output_type: str) -> Any:
    """[0, 1] images as ``output_type``: PIL images, a (N, H, W, C) float32 array, or the (N, C, H, W) tensor."""
    if output_type == "pt":
        return unit
    if output_type == "np":
        return unit.permute(0, 2, 3, 1).numpy()
    return to_pil(unit)


@dataclass
class PipelineOutput:
    """``images``: as ``output_type`` asked; ``record``: what ran (the content the CLI writes as JSON);
    ``samples``: the raw result in the model's range [-1, 1] (N, C, H, W), float32 on the CPU;
    ``extras``: what a figure needs besides (the input as the model saw it, the mask, the views ...)."""

    images: Any
    record: dict[str, Any] = field(default_factory=dict)
    samples: torch.Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def check_prompts(prompt: str | Sequence[str] | None, default: str, what: str = "prompt") -> list[str]:
    """``prompt`` as a non-empty list of strings (None: ``[default]``)."""
    if prompt is None:
        return [default]
    prompts = [prompt] if isinstance(prompt, str) else list(prompt) if isinstance(prompt, (list, tuple)) else None
    if prompts is None or not all(isinstance(p, str) for p in prompts):
        raise FundiffError(f"{what} must be a string or a list of strings, got {type(prompt).__name__}")
    if not prompts:
        raise FundiffError(f"{what} is an empty list: give at least one prompt")
    return prompts


def check_count(value: Any, name: str, lo: int = 1, hi: int = MAX_IMAGES_PER_CALL) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= int(value) <= hi:
        raise FundiffError(f"{name} must be a whole number in {lo}..{hi}, got {value!r}")
    return int(value)


def check_scale(value: Any, name: str = "guidance_scale", lo: float = 0.0, hi: float = MAX_GUIDANCE_SCALE) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FundiffError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number) or not lo <= number <= hi:
        raise FundiffError(f"{name} must be in [{lo:g}, {hi:g}], got {value!r}")
    return number


def check_common(output_type: str, generator: Any, callback: Any) -> None:
    if output_type not in OUTPUT_TYPES:
        raise FundiffError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise FundiffError(f"generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)), "
                           f"got {type(generator).__name__}")
    if callback is not None and not callable(callback):
        raise FundiffError("callback must be a function (step, timestep, x) -> None")


FINAL_STEPS = ("clean", "none")


class DiffusionPipeline:
    """A denoiser, the thresholding its loops apply and how they end; subclasses add ``check_inputs`` and ``__call__``.

    ``final_step``: "clean" (diffusers' loops, the default) ends with one more step from the last timestep, t = 0,
    to the clean image; "none" is the study's loop, which stops at t = 0 (33 model calls on the strided list, not 34).
    """

    def __init__(self, denoiser: Denoiser, threshold: str | Threshold | None = "auto", final_step: str = "clean"):
        if not isinstance(denoiser, Denoiser):
            raise FundiffError(f"a pipeline needs a fundiff Denoiser, got {type(denoiser).__name__}")
        if final_step not in FINAL_STEPS:
            raise FundiffError(f"final_step must be one of {', '.join(FINAL_STEPS)}, got {final_step!r}")
        self.denoiser = denoiser
        self.threshold = choose_threshold(threshold, denoiser.threshold) if isinstance(threshold, str) else threshold
        self.final_step = final_step == "clean"

    # -- loading --------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = "mnist", *, threshold: str = "auto",
                        final_step: str = "clean", **load_options: Any) -> "DiffusionPipeline":
        """Load ``name_or_path`` ("mnist", a fundiff flow model, "deepfloyd" or an IF folder).

        ``load_options``: ``weights`` (IF stage I folder), ``embeddings`` (.pth prompt cache), ``device``,
        ``dtype`` ("fp16", "bf16", "fp32"), ``cpu_offload``, ``text_encoder``, ``download`` (off: offline);
        ``precision`` ("fp32", "bf16", "auto") for fundiff's own models.
        ``threshold``: "auto" (the backend's), "dynamic", "static" or "none"; ``final_step``: "clean" or "none".
        """
        if threshold not in THRESHOLD_CHOICES:
            raise FundiffError(f"threshold must be one of {', '.join(THRESHOLD_CHOICES)}, got {threshold!r}")
        known = {"weights", "embeddings", "device", "dtype", "cpu_offload", "text_encoder", "download", "max_batch",
                 "precision"}
        unknown = sorted(set(load_options) - known)
        if unknown:
            raise FundiffError(f"unknown load option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(load_denoiser(name_or_path, **load_options), threshold=threshold, final_step=final_step)

    @classmethod
    def from_pipe(cls, pipe: "DiffusionPipeline", **options: Any) -> "DiffusionPipeline":
        """A pipeline of this class over ``pipe``'s already loaded model (and thresholding, unless given)."""
        model = getattr(pipe, "model", None)
        if not isinstance(pipe, DiffusionPipeline) and model is not None and hasattr(model, "is_flow"):
            from fundiff.backends.mnist import MnistDenoiser   # a SamplePipeline's flow model as a Part A denoiser

            return cls(MnistDenoiser(model), threshold=options.pop("threshold", "auto"), **options)
        if not isinstance(pipe, DiffusionPipeline):
            raise FundiffError(f"from_pipe needs a fundiff pipeline, got {type(pipe).__name__}")
        final = options.pop("final_step", "clean" if pipe.final_step else "none")
        return cls(pipe.denoiser, threshold=options.pop("threshold", pipe.threshold), final_step=final, **options)

    # -- shared pieces of a call ----------------------------------------------------------------
    @property
    def image_size(self) -> int:
        return self.denoiser.image_size

    def check_steps(self, num_inference_steps: int | None) -> list[int]:
        """The timesteps: the study's strided list (None) or ``num_inference_steps`` diffusers-spaced ones."""
        schedule = self.denoiser.schedule
        if num_inference_steps is None:
            return schedule.strided_timesteps()
        steps = check_count(num_inference_steps, "num_inference_steps", 1, schedule.num_train_timesteps)
        return schedule.inference_timesteps(steps)

    def prompt_or_default(self, prompt: str | Sequence[str] | None, what: str = "prompt") -> list[str]:
        return check_prompts(prompt, self.denoiser.default_prompt, what)

    def check_encodable(self, prompts: Sequence[str], negative_prompt: str | Sequence[str | None] | None,
                        per_prompt: bool = False) -> None:
        """Prompts the model cannot read ("seven" is fine on MNIST, "a cat" is not) fail here, before any work.

        ``per_prompt``: ``negative_prompt`` may also be a list with one entry (a string or None) per prompt."""
        negs = [negative_prompt]
        if per_prompt and isinstance(negative_prompt, (list, tuple)):
            if len(negative_prompt) != len(prompts):
                raise FundiffError(f"negative_prompt must be one string or a list of {len(prompts)} (one per prompt), "
                                   f"got {len(negative_prompt)}")
            negs = list(negative_prompt)
        for neg in negs:
            if neg is not None and not isinstance(neg, str):
                what = "a string or a list of strings" if per_prompt else "a string"
                raise FundiffError(f"negative_prompt must be {what}, got {type(neg).__name__}")
        self.denoiser.encode(list(dict.fromkeys(list(prompts) + [n for n in negs if n])))

    def initial(self, latents: torch.Tensor | None, part: slice, generator: torch.Generator | None) -> torch.Tensor:
        """The starting x of one batch: the given ``latents`` rows, or fresh noise from ``generator``."""
        if latents is None:
            return self.noise(part.stop - part.start, generator)
        return latents[part].to(self.denoiser.device, self.denoiser.dtype)

    def check_latents(self, latents: Any, n: int) -> None:
        """``latents`` (diffusers' name for the initial noise): None, or a (n, C, H, W) float tensor."""
        if latents is None:
            return
        den, size = self.denoiser, self.denoiser.image_size
        want = (n, den.channels, size, size)
        if not isinstance(latents, torch.Tensor) or tuple(latents.shape) != want or not latents.is_floating_point():
            got = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
            raise FundiffError(f"latents must be a float tensor of shape {want}, got {got}")

    def noise(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """Initial noise (n, C, H, W), drawn on the CPU from ``generator`` (same seed, same numbers on any device)."""
        den, size = self.denoiser, self.denoiser.image_size
        return torch.randn(n, den.channels, size, size, generator=generator).to(den.device, den.dtype)

    def image_tensor(self, image: Any, channels: int | None = None) -> torch.Tensor:
        """An input image (file, sample name, PIL, array, tensor in [0, 1]) as (1, C, size, size) in [-1, 1]."""
        from fundiff.engine.inputs import default_image, load_image

        den = self.denoiser
        source = default_image(den.channels) if image is None else image
        return load_image(source, den.image_size, channels or den.channels).to(den.device, den.dtype)

    def denoise_batches(self, n: int, batch_size: int | None, timesteps: list[int], make_predict: Callable,
                        latents: torch.Tensor | None, generator: torch.Generator | None, callback: Callback | None,
                        make_hook: Callable | None = None, resample: tuple[int, int] = (0, 1),
                        corrector: Any = None, make_loop: Callable | None = None) -> torch.Tensor:
        """The strided loop from pure noise over ``n`` images, batch by batch: ``make_predict(part)`` builds each
        batch's prediction, ``make_hook()`` its after-step hook (applied to the start too), if any; ``resample``:
        (steps, times) of the loop's high-noise resampling; ``corrector``: Langevin steps at each noise level, or None
        (both in ``iterative_denoise``); ``make_loop(part)``: a loop with ``iterative_denoise``'s signature to run
        instead (the forked hybrid's)."""
        from fundiff.engine.loops import iterative_denoise

        outs = []
        for part in self.batches(n, batch_size):
            hook = make_hook() if make_hook is not None else None
            x = self.initial(latents, part, generator)
            if hook is not None:
                x = hook(x, timesteps[0])
            loop = make_loop(part) if make_loop is not None else iterative_denoise
            outs.append(loop(self.denoiser.schedule, make_predict(part), x, timesteps,
                                          threshold=self.threshold, generator=generator, after_step=hook,
                                          final_step=self.final_step, callback=callback, resample_steps=resample[0],
                                          resample_times=resample[1], corrector=corrector).image)
        return torch.cat(outs)

    def record(self, **extra: Any) -> dict[str, Any]:
        return {"backend": self.denoiser.name, "thresholding": describe_threshold(self.threshold),
                "final_step": "t = 0 to the clean image" if self.final_step else "none: stops at t = 0 (the study's)",
                **extra}

    def guidance_record(self, prompts: Sequence[str], guidance_scale: float, negative_prompt: str | None) -> dict:
        """What guidance ran: none when every prompt is the negative one (then one unguided pass, same result)."""
        from fundiff.engine.denoiser import guidance_applies

        applied = guidance_scale != 1.0 and guidance_applies(self.denoiser, prompts, negative_prompt)
        note = {} if applied or guidance_scale == 1.0 else {
            "guidance": "one unguided pass: the prompt is the null prompt, so CFG would compare it with itself"}
        return {"guidance_scale": guidance_scale, **note, "passes_per_step": 2 if applied else 1}

    def loop_calls(self, timesteps: list[int], i_start: int = 0) -> int:
        """Model calls of the loop from ``timesteps[i_start]`` (one fewer without the final step)."""
        return len(timesteps) - i_start - (0 if self.final_step else 1)

    def output(self, samples: torch.Tensor, output_type: str, record: dict[str, Any]) -> PipelineOutput:
        raw = samples.detach().float().cpu()
        return PipelineOutput(convert_images(to_unit(raw), output_type), record, raw)

    def batches(self, n: int, batch_size: int | None) -> list[slice]:
        """Slices of at most ``batch_size`` images (default: the backend's ``max_batch_images``), in order."""
        size = self.denoiser.max_batch_images if batch_size is None else check_count(batch_size, "batch_size")
        return [slice(k, min(k + size, n)) for k in range(0, n, size)]

"""Part B's fast samplers as a pipeline: digits from a fundiff flow or DDPM model (``fundiff sample``).

Flow models integrate dx/dt = u(x, t) from noise (t = 0) to data (t = 1) with Euler, midpoint (the
default, 7 steps) or Heun; DDPM models walk the 2024 study's T = 300 chain (DDIM by default, or
ancestral).  Class prompts ("7", "seven", "a 7") are guided with u = u_u + gamma (u_c - u_u).
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Sequence

import torch

from fundiff.errors import FundiffError
from fundiff.generate import EMBEDDED, Generator, evaluations_per_image, generate_batches, load_generator
from fundiff.pipelines.base import (MAX_IMAGES_PER_CALL, Callback, DiffusionPipeline, PipelineOutput, check_common,
                                    check_count, convert_images)
from fundiff.prompts import parse_digit_prompt

BATCH_SIZE = 500

MAX_STREAMED_IMAGES = 10_000_000   # one streamed run (batches, fundiff sample --save-array): 7.8 GB of 28-px images


class SamplePipeline:
    """``SamplePipeline.from_pretrained("mnist")(prompt="7", num_images_per_prompt=8).images``; "mnist-fast" is the
    distilled student (one UNet pass per step, a few steps)."""

    def __init__(self, generator_model: Generator):
        if not isinstance(generator_model, Generator):
            raise FundiffError(f"SamplePipeline needs a loaded fundiff model, got {type(generator_model).__name__}")
        self.model = generator_model

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = EMBEDDED, *, device: str = "auto",
                        precision: str = "fp32") -> "SamplePipeline":
        """"mnist" (the embedded class-conditional flow model) or a model.safetensors / run folder of
        ``fundiff train flow|ddpm``; ``precision`` "fp32", "bf16" or "auto" (fundiff.training.precision)."""
        from fundiff.training import resolve_device

        return cls(load_generator(name_or_path, resolve_device(device), precision))

    @classmethod
    def from_pipe(cls, pipe: Any) -> "SamplePipeline":
        """Over the model of a Part A pipeline on a fundiff flow model (or another SamplePipeline)."""
        if isinstance(pipe, SamplePipeline):
            return cls(pipe.model)
        gen = getattr(getattr(pipe, "denoiser", None), "generator", None)
        if not isinstance(pipe, DiffusionPipeline) or gen is None:
            raise FundiffError("SamplePipeline.from_pipe needs a pipeline over a fundiff flow model (e.g. 'mnist')")
        return cls(gen)

    def check_inputs(self, prompt: str | Sequence[str] | None, num_images_per_prompt: int,
                     num_inference_steps: int | None, sampler: str | None, guidance_scale: float | None, output_type: str,
                     generator: Any, callback: Any, limit: int | None = MAX_IMAGES_PER_CALL):
        """(prompts, labels or None, number of images, sampler, steps); one-line errors for everything else."""
        from fundiff.generate import validate_sampling

        gen = self.model
        sampler = sampler or gen.default_sampler
        steps = num_inference_steps or gen.default_steps
        if not isinstance(steps, int) or isinstance(steps, bool):
            raise FundiffError(f"num_inference_steps must be a whole number, got {steps!r}")
        try:
            scale = gen.default_guidance_scale if guidance_scale is None else float(guidance_scale)
        except (TypeError, ValueError):
            raise FundiffError(f"--guidance-scale must be a number, got {guidance_scale!r}") from None
        validate_sampling(gen, sampler, steps, scale)
        per = check_count(num_images_per_prompt, "num_images_per_prompt", 1, 10**9)
        check_common(output_type, generator, callback)
        if prompt is None:
            prompts = [str(d) for d in range(10)] if gen.is_class_conditional else [""]
        elif isinstance(prompt, str):
            prompts = [prompt]
        elif isinstance(prompt, (list, tuple)) and prompt and all(isinstance(p, str) for p in prompt):
            prompts = list(prompt)
        else:
            raise FundiffError(f"prompt must be a string or a non-empty list of strings, got {prompt!r}")
        classes = [parse_digit_prompt(p) for p in prompts]
        if any(c is not None for c in classes) and not gen.is_class_conditional:
            raise FundiffError(f"{gen.source} is not class-conditional: use --prompt ''")
        n = per * len(prompts)
        if n > MAX_STREAMED_IMAGES:   # the labels (8 bytes each) and the .npz's prompt column grow with n
            raise FundiffError(f"{n:,} images is more than {MAX_STREAMED_IMAGES:,} in one run: split it into several runs")
        if all(c is None for c in classes):
            labels = None
        elif any(c is None for c in classes):
            raise FundiffError("mix of class prompts and the empty prompt: sample them in separate calls")
        else:
            labels = torch.tensor(classes).repeat_interleave(per)   # no Python list of N labels
        if limit is not None and n > limit:
            raise FundiffError(f"{n} images in one call is more than {limit}: use pipe.batches(...) to stream them")
        return prompts, labels, n, sampler, steps

    def batches(self, prompt: str | Sequence[str] | None = None, *, num_images_per_prompt: int = 4,
                num_inference_steps: int | None = None, sampler: str | None = None, guidance_scale: float | None = None,
                generator: torch.Generator | None = None, callback: Callback | None = None,
                batch_size: int = BATCH_SIZE, return_trajectory: bool = False) -> Iterator[tuple[torch.Tensor, list]]:
        """The images as (B, 1, 28, 28) tensors in [0, 1], ``batch_size`` at a time (any number, bounded memory),
        each with its trajectory if asked; the same images, in the same order, as one ``__call__``."""
        prompts, labels, n, sampler, steps = self.check_inputs(prompt, num_images_per_prompt, num_inference_steps,
                                                               sampler, guidance_scale, "pt", generator, callback, None)
        check_count(batch_size, "batch_size", 1, 10**6)
        return generate_batches(self.model, labels, n, num_inference_steps=steps, sampler=sampler,
                                guidance_scale=guidance_scale, generator=generator, keep_trajectory=return_trajectory,
                                batch_size=batch_size, callback=callback)

    def record(self, prompts: list[str], num_images_per_prompt: int, num_inference_steps: int | None,
               sampler: str | None, guidance_scale: float | None) -> dict[str, Any]:
        gen = self.model
        guidance_scale = gen.default_guidance_scale if guidance_scale is None else guidance_scale
        sampler, steps = sampler or gen.default_sampler, num_inference_steps or gen.default_steps
        conditional = gen.is_class_conditional and any(parse_digit_prompt(p) is not None for p in prompts)
        return {"model": gen.source, "objective": gen.objective.get("name"), "prompts": prompts,
                "num_images": num_images_per_prompt, "sampler": sampler, "num_inference_steps": steps,
                "guidance_scale": guidance_scale, "precision": gen.precision,
                "model_evaluations_per_image": evaluations_per_image(gen, sampler, steps, guidance_scale, conditional)}

    @torch.no_grad()
    def __call__(self, prompt: str | Sequence[str] | None = None, *, num_images_per_prompt: int = 4,
                 num_inference_steps: int | None = None, sampler: str | None = None, guidance_scale: float | None = None,
                 generator: torch.Generator | None = None, output_type: str = "pil", callback: Callback | None = None,
                 batch_size: int = BATCH_SIZE, return_trajectory: bool = False) -> PipelineOutput:
        """``num_images_per_prompt`` digits per prompt (None: every digit), prompt by prompt; defaults are
        ``fundiff sample``'s (``guidance_scale`` None: the model's, 5 for a teacher, a distilled model's own).  ``return_trajectory`` puts the states after each step in ``extras["trajectory"]``."""
        prompts, labels, n, sampler_, steps = self.check_inputs(prompt, num_images_per_prompt, num_inference_steps,
                                                                sampler, guidance_scale, output_type, generator, callback)
        outs, trajs = [], []
        for images, traj in self.batches(prompt, num_images_per_prompt=num_images_per_prompt,
                                         num_inference_steps=num_inference_steps, sampler=sampler,
                                         guidance_scale=guidance_scale, generator=generator, callback=callback,
                                         batch_size=batch_size, return_trajectory=return_trajectory):
            outs.append(images)
            trajs.append(traj)
        unit = torch.cat(outs)
        out = PipelineOutput(convert_images(unit, output_type),
                             self.record(prompts, num_images_per_prompt, num_inference_steps, sampler, guidance_scale),
                             unit * 2 - 1)
        out.extras["labels"] = labels
        if return_trajectory:
            out.extras["trajectory"] = [torch.cat([t[i] for t in trajs]).clamp(0, 1) for i in range(len(trajs[0]))]
        return out

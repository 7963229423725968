"""Text-to-image (reference 1.5-1.6): pure noise x_T ~ N(0, I) through the strided loop, with CFG.

Each step runs the DDPM posterior of :func:`~fundiff.engine.loops.iterative_denoise` on the guided
prediction eps = eps_u + gamma (eps_c - eps_u) (one batched model call of 2N when gamma != 1).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from fundiff.engine.denoiser import Conditioned
from fundiff.errors import FundiffError
from fundiff.pipelines.base import (MAX_IMAGES_PER_CALL, Callback, DiffusionPipeline, PipelineOutput, check_common,
                                    check_count, check_scale)


def timesteps_label(num_inference_steps: int | None) -> str:
    return "strided 990..0 by 30" if num_inference_steps is None else "leading"


class Text2ImagePipeline(DiffusionPipeline):
    """Images from prompts: ``pipe(prompt="7", num_images_per_prompt=4).images``."""

    def check_inputs(self, prompt: str | Sequence[str] | None, negative_prompt: str | None, num_inference_steps: int | None,
                     guidance_scale: float, num_images_per_prompt: int, output_type: str, generator: Any,
                     callback: Any) -> tuple[list[str], list[int]]:
        prompts = self.prompt_or_default(prompt)
        per = check_count(num_images_per_prompt, "num_images_per_prompt", 1, 10**9)
        if per * len(prompts) > MAX_IMAGES_PER_CALL:
            raise FundiffError(f"{per * len(prompts)} images in one call is more than {MAX_IMAGES_PER_CALL}: "
                               "split the request into several calls")
        check_scale(guidance_scale)
        check_common(output_type, generator, callback)
        self.check_encodable(prompts, negative_prompt)
        return prompts, self.check_steps(num_inference_steps)

    @torch.no_grad()
    def __call__(self, prompt: str | Sequence[str] | None = None, *, negative_prompt: str | None = None,
                 num_inference_steps: int | None = None, guidance_scale: float = 7.0, num_images_per_prompt: int = 5,
                 generator: torch.Generator | None = None, output_type: str = "pil", callback: Callback | None = None,
                 batch_size: int | None = None, latents: torch.Tensor | None = None) -> PipelineOutput:
        """``num_images_per_prompt`` images for each prompt, prompt by prompt (defaults: ``fundiff generate``'s).

        ``latents``: the starting noise (N, C, H, W) instead of a draw from ``generator``."""
        prompts, ts = self.check_inputs(prompt, negative_prompt, num_inference_steps, guidance_scale,
                                        num_images_per_prompt, output_type, generator, callback)
        every = [p for p in prompts for _ in range(num_images_per_prompt)]
        self.check_latents(latents, len(every))
        samples = self.denoise_batches(
            len(every), batch_size, ts, lambda part: Conditioned.from_prompts(
                self.denoiser, every[part], guidance_scale, negative_prompt), latents, generator, callback)
        guidance = self.guidance_record(prompts, guidance_scale, negative_prompt)
        calls = self.loop_calls(ts) * guidance["passes_per_step"]
        record = self.record(prompts=prompts, negative_prompt=negative_prompt, num_images=num_images_per_prompt,
                             **guidance, num_inference_steps=len(ts),
                             timesteps=timesteps_label(num_inference_steps), model_evaluations_per_image=calls)
        return self.output(samples, output_type, record)

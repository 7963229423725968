"""Image editing (reference 1.7-1.7.3): SDEdit and inpainting as pipelines.

* :class:`SDEditPipeline`  x = forward(image, timesteps[i_start]), then the strided loop from i_start
  toward the prompt.  ``strength`` in (0, 1] is diffusers' name for the same knob:
  i_start = n - int(n strength) of the n timesteps.
* :class:`InpaintPipeline` generate where the mask is 1, keep the image where it is 0: after every step
  x <- m x + (1 - m) forward(image, t'); with ``jump_length`` / ``jump_n_sample`` > 1, RePaint's resampling.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from fundiff.engine.denoiser import Conditioned
from fundiff.engine.editing import SDEDIT_I_STARTS, inpaint, repaint_schedule, sdedit
from fundiff.engine.schedule import Schedule
from fundiff.errors import FundiffError
from fundiff.pipelines.base import (MAX_IMAGES_PER_CALL, Callback, DiffusionPipeline, PipelineOutput, check_common,
                                    check_count, check_scale)

STUDY_RECT = "2:20,24:42"   # the study's Campanile mask, rows 2:20 and columns 24:42 at 64 px


def _check_jumps(jump_length: int, jump_n_sample: int) -> None:
    check_count(jump_length, "jump_length", 1, 1000)
    check_count(jump_n_sample, "jump_n_sample", 1, 100)


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


class SDEditPipeline(DiffusionPipeline):
    """``pipe(image="digit-3", prompt="8", i_start=10)``; one result per (setting, prompt, image) in that order."""

    def check_inputs(self, prompt: Any, image: Any, strength: Any, i_start: Any, negative_prompt: str | None,
                     num_inference_steps: int | None, guidance_scale: float, num_images_per_prompt: int,
                     output_type: str, generator: Any, callback: Any) -> tuple[list[str], list[int], list[int], torch.Tensor]:
        prompts = self.prompt_or_default(prompt)
        per = check_count(num_images_per_prompt, "num_images_per_prompt", 1, 10**9)
        ts = self.check_steps(num_inference_steps)
        if strength is not None and i_start is not None:
            raise FundiffError("give strength or i_start, not both")
        if strength is not None:
            starts = [Schedule.i_start_for_strength(len(ts), check_scale(s, "strength", 0.0, 1.0))
                      for s in _as_list(strength)]
        else:
            starts = _as_list(SDEDIT_I_STARTS if i_start is None else i_start)
            for i in starts:
                if isinstance(i, bool) or not isinstance(i, int):
                    raise FundiffError(f"i_start must be a whole number (or a list of them), got {i!r}")
                Schedule.check_i_start(ts, i)
        if per * len(prompts) * len(starts) > MAX_IMAGES_PER_CALL:
            raise FundiffError(f"more than {MAX_IMAGES_PER_CALL} images in one call: split the request")
        check_scale(guidance_scale)
        check_common(output_type, generator, callback)
        self.check_encodable(prompts, negative_prompt)
        return prompts, ts, starts, self.image_tensor(image)

    @torch.no_grad()
    def __call__(self, prompt: str | Sequence[str] | None = None, image: Any = None, *, strength: float | None = None,
                 i_start: int | Sequence[int] | None = None, negative_prompt: str | None = None,
                 num_inference_steps: int | None = None, guidance_scale: float = 7.0, num_images_per_prompt: int = 1,
                 generator: torch.Generator | None = None, output_type: str = "pil", callback: Callback | None = None,
                 batch_size: int | None = None) -> PipelineOutput:
        """Without ``strength`` or ``i_start``: the study's sweep i_start = 1, 3, 5, 7, 10, 20 (``fundiff edit``'s default).

        ``image``: a file, a bundled sample name ("digit-7", "sketch-house"), mnist-test:N, a PIL image or
        an array in [0, 1]; None is the backend's sample.
        """
        prompts, ts, starts, x0 = self.check_inputs(prompt, image, strength, i_start, negative_prompt, num_inference_steps,
                                                    guidance_scale, num_images_per_prompt, output_type, generator, callback)
        every = [p for p in prompts for _ in range(num_images_per_prompt)]
        outs = []
        for i in starts:
            for part in self.batches(len(every), batch_size):
                predict = Conditioned.from_prompts(self.denoiser, every[part], guidance_scale, negative_prompt)
                n = len(every[part])
                outs.append(sdedit(self.denoiser, predict, x0.expand(n, -1, -1, -1), ts, i, generator=generator,
                                   threshold=self.threshold, final_step=self.final_step, callback=callback).image)
        record = self.record(prompt=prompts[0] if len(prompts) == 1 else prompts, i_start=starts,
                             t_start=[ts[i] for i in starts],
                             **self.guidance_record(prompts, guidance_scale, negative_prompt),
                             num_inference_steps=len(ts), num_images=num_images_per_prompt)
        out = self.output(torch.cat(outs), output_type, record)
        out.extras["input"] = x0.detach().float().cpu()
        return out


class InpaintPipeline(DiffusionPipeline):
    """``pipe(image=..., mask_image=..., prompt=...)``: white (1) in the mask is generated, black (0) kept."""

    def rect_mask(self, rect: str = STUDY_RECT, invert: bool = False) -> torch.Tensor:
        """A rectangle 'r0:r1,c0:c1' given in 64-px coordinates (scaled to the model's size) as a (1, 1, H, W) mask."""
        from fundiff.engine.masks import parse_rect, rect_mask

        rows, cols = parse_rect(rect)
        mask = rect_mask(self.image_size, rows, cols, reference_size=64)
        return 1 - mask if invert else mask

    def mask_tensor(self, mask_image: Any) -> torch.Tensor:
        from fundiff.engine.inputs import load_mask

        if mask_image is None:
            mask = self.rect_mask()
        elif isinstance(mask_image, torch.Tensor) and mask_image.ndim == 4:
            mask = mask_image.float()
        else:
            mask = load_mask(mask_image, self.image_size)
        return mask.to(self.denoiser.device, self.denoiser.dtype)

    def check_inputs(self, prompt: Any, image: Any, mask_image: Any, negative_prompt: str | None,
                     num_inference_steps: int | None, guidance_scale: float, num_images_per_prompt: int,
                     jump_length: int, jump_n_sample: int, i_start: int, output_type: str, generator: Any,
                     callback: Any) -> tuple[list[str], list[int], torch.Tensor, torch.Tensor]:
        from fundiff.engine.editing import check_mask

        prompts = self.prompt_or_default(prompt)
        per = check_count(num_images_per_prompt, "num_images_per_prompt", 1, 10**9)
        if per * len(prompts) > MAX_IMAGES_PER_CALL:
            raise FundiffError(f"more than {MAX_IMAGES_PER_CALL} images in one call: split the request")
        _check_jumps(jump_length, jump_n_sample)
        ts = self.check_steps(num_inference_steps)
        if isinstance(i_start, bool) or not isinstance(i_start, int):
            raise FundiffError(f"i_start must be a whole number, got {i_start!r}")
        Schedule.check_i_start(ts, i_start)
        check_scale(guidance_scale)
        check_common(output_type, generator, callback)
        self.check_encodable(prompts, negative_prompt)
        x0 = self.image_tensor(image)
        return prompts, ts, x0, check_mask(self.mask_tensor(mask_image), x0)

    def num_steps(self, num_inference_steps: int | None, i_start: int, jump_length: int, jump_n_sample: int) -> int:
        """Steps of the walk (denoising and RePaint's re-noising), e.g. for a progress bar."""
        _check_jumps(jump_length, jump_n_sample)   # before the walk is built: its length grows with both
        ts = self.check_steps(num_inference_steps)
        return len(repaint_schedule(self.loop_calls(ts, i_start), jump_length, jump_n_sample)) - 1

    @torch.no_grad()
    def __call__(self, prompt: str | Sequence[str] | None = None, image: Any = None, mask_image: Any = None, *,
                 negative_prompt: str | None = None, num_inference_steps: int | None = None, guidance_scale: float = 7.0,
                 num_images_per_prompt: int = 3, jump_length: int = 1, jump_n_sample: int = 1, i_start: int = 0,
                 generator: torch.Generator | None = None, output_type: str = "pil", callback: Callback | None = None,
                 batch_size: int | None = None) -> PipelineOutput:
        """``mask_image``: a (1, 1, H, W) tensor of 0/1, or an image (white = generate); None: the study's rectangle."""
        prompts, ts, x0, mask = self.check_inputs(prompt, image, mask_image, negative_prompt, num_inference_steps,
                                                  guidance_scale, num_images_per_prompt, jump_length, jump_n_sample,
                                                  i_start, output_type, generator, callback)
        every = [p for p in prompts for _ in range(num_images_per_prompt)]
        outs, calls = [], 0
        for part in self.batches(len(every), batch_size):
            predict = Conditioned.from_prompts(self.denoiser, every[part], guidance_scale, negative_prompt)
            n = len(every[part])
            res = inpaint(self.denoiser, predict, x0.expand(n, -1, -1, -1), mask, ts, i_start=i_start,
                          jump_length=jump_length, jump_n_sample=jump_n_sample, generator=generator,
                          threshold=self.threshold, final_step=self.final_step, callback=callback)
            outs.append(res.image)
            calls = res.model_calls
        record = self.record(prompt=prompts[0] if len(prompts) == 1 else prompts, model_calls=calls,
                             **self.guidance_record(prompts, guidance_scale, negative_prompt),
                             jump_length=jump_length, jump_n_sample=jump_n_sample,
                             mask_fraction=float(mask.float().mean()))
        out = self.output(torch.cat(outs), output_type, record)
        out.extras.update(input=x0.detach().float().cpu(), mask=mask.detach().float().cpu())
        return out

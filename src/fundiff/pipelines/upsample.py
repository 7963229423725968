"""DeepFloyd IF stage II (64 px -> 256 px) as a pipeline, with illusions carried through.

Stage II denoises a 256 px image conditioned on the bilinearly upsampled 64 px input, noised to
``noise_level`` by its image-noising scheduler; the loop is fundiff's, the defaults
``IFSuperResolutionPipeline``'s (50 steps, guidance 4, noise level 250).  With ``views`` (anagrams) or
``kind`` (hybrids) the same composition as at 64 px is rebuilt over the stage II model.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch

from fundiff.engine.decompositions import get_decomposition
from fundiff.engine.illusions import anagram_predict, hybrid_predict
from fundiff.engine.views import get_view
from fundiff.errors import FundiffError
from fundiff.pipelines.base import (Callback, DiffusionPipeline, PipelineOutput, check_common, check_count,
                                    check_prompts, check_scale)


class UpsamplePipeline(DiffusionPipeline):
    """``UpsamplePipeline.from_pipe(stage1_pipe)(image=stage1_out, prompt=...)``."""

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike | None = None, *, threshold: str = "auto",
                        embeddings: str | os.PathLike | None = None, weights: str | os.PathLike | None = None,
                        text_encoder: bool = False, device: str | None = None, dtype: str | None = None,
                        cpu_offload: bool = False, download: bool = False,
                        max_batch: int | None = None) -> "UpsamplePipeline":
        """Stage II from ``name_or_path`` (a copy of DeepFloyd/IF-II-L-v1.0; None or "deepfloyd": the HF cache).

        Prompts come from ``embeddings`` (a .pth cache written by ``fundiff embed``) and, with
        ``text_encoder``, from T5 in the stage I folder ``weights``.  Only the stage II UNet is loaded.
        """
        from fundiff.backends import torch_dtype
        from fundiff.backends.deepfloyd import (STAGE_1_REPO, device_and_dtype, load_stage2, resolve_weights,
                                               text_encoder_from)
        from fundiff.backends.embeddings import PromptEmbeddings

        dev, dt = device_and_dtype(device, torch_dtype(dtype))
        encoder = None
        if text_encoder:   # T5 only, from the stage I folder: its UNet is neither downloaded nor loaded
            stage1 = resolve_weights(weights, STAGE_1_REPO, download, dtype=dt, unet=False, text_encoder=True)
            encoder = text_encoder_from(stage1, dev, dt)
        if embeddings is None and encoder is None:
            raise FundiffError("stage II needs prompt embeddings: give embeddings=FILE.pth (fundiff embed) "
                               "or text_encoder=True with the stage I weights")
        cache = PromptEmbeddings.load(embeddings, encoder) if embeddings else PromptEmbeddings({}, "T5", encoder)
        folder = None if name_or_path in (None, "deepfloyd") else name_or_path
        stage2 = load_stage2(folder, cache, device=dev, dtype=dt, cpu_offload=cpu_offload, download=download,
                             max_batch=max_batch)
        return cls(stage2, threshold=threshold)

    @classmethod
    def from_pipe(cls, pipe: DiffusionPipeline, *, stage2_weights: str | os.PathLike | None = None,
                  cpu_offload: bool = False, download: bool = False, **_: Any) -> "UpsamplePipeline":
        """Stage II sharing a stage I pipeline's prompt embeddings, device and dtype (or a stage II pipeline's model).

        Stage II keeps IF's own thresholding unless the stage I pipeline runs without any.
        """
        from fundiff.backends.deepfloyd import DeepFloydDenoiser, DeepFloydStageII, load_stage2

        den = pipe.denoiser
        if isinstance(den, DeepFloydStageII):
            return cls(den, threshold=pipe.threshold)
        if not isinstance(den, DeepFloydDenoiser):
            raise FundiffError("upsampling needs DeepFloyd IF (stage II is its 256 px model); this pipeline runs "
                               f"the {den.name} model")
        stage2 = load_stage2(stage2_weights, den.embeddings, device=den.device, dtype=den.dtype,
                             cpu_offload=cpu_offload, download=download, max_batch=den.max_unet_batch)
        return cls(stage2, threshold="auto" if pipe.threshold is not None else "none")

    def low_res(self, image: Any) -> torch.Tensor:
        """The 64 px input as (N, 3, h, w) in [-1, 1]: a stage I output (its raw samples), a (N, 3, h, w)
        tensor in [0, 1], or an image source / a list of them."""
        from fundiff.engine.inputs import load_image

        if isinstance(image, PipelineOutput):
            x = image.samples
        elif isinstance(image, torch.Tensor) and image.ndim == 4:
            x = image.float() * 2 - 1
        elif isinstance(image, (list, tuple)):
            x = torch.cat([load_image(i, 64, 3) for i in image])
        else:
            x = load_image(image, 64, 3)
        if x is None or x.shape[1] != 3:
            raise FundiffError("stage II upsamples RGB images (N, 3, H, W)")
        return x.to(self.denoiser.device, self.denoiser.dtype)

    def check_inputs(self, image: Any, prompt: Any, views: Any, kind: Any, num_inference_steps: int,
                     guidance_scale: float, noise_level: int, output_type: str, generator: Any, callback: Any):
        x = self.low_res(image)
        prompts = check_prompts(prompt, "")
        if views is not None and kind is not None:
            raise FundiffError("give views (an anagram) or kind (a hybrid), not both")
        if views is None and kind is None and len(prompts) not in (1, x.shape[0]):
            raise FundiffError(f"give one prompt, or one per image ({x.shape[0]}), got {len(prompts)}")
        check_count(num_inference_steps, "num_inference_steps", 1, self.denoiser.schedule.num_train_timesteps)
        check_count(noise_level, "noise_level", 0, 999)
        check_scale(guidance_scale)
        check_common(output_type, generator, callback)
        self.denoiser.embeddings(list(dict.fromkeys(prompts + [""])))   # every prompt (and CFG's '') has an embedding
        return x, prompts

    @torch.no_grad()
    def __call__(self, image: Any, prompt: str | Sequence[str] = "", *, views: Sequence[Any] | None = None,
                 kind: str | None = None, num_inference_steps: int = 50, guidance_scale: float = 4.0,
                 noise_level: int = 250, generator: torch.Generator | None = None, output_type: str = "pil",
                 callback: Callback | None = None) -> PipelineOutput:
        from fundiff.backends.deepfloyd import upsample

        x, prompts = self.check_inputs(image, prompt, views, kind, num_inference_steps, guidance_scale, noise_level,
                                       output_type, generator, callback)
        n, s2 = x.shape[0], self.denoiser
        predict = None
        if views is not None:
            objs = [get_view(v) for v in views]
            predict = lambda bound: anagram_predict(bound, prompts, objs, batch=n, guidance_scale=guidance_scale)  # noqa: E731
        elif kind is not None:
            dec = get_decomposition(kind, s2.image_size, s2.channels)
            predict = lambda bound: hybrid_predict(bound, prompts, dec, batch=n, guidance_scale=guidance_scale)  # noqa: E731
        per_image = prompts * n if len(prompts) == 1 and predict is None else prompts
        up = upsample(s2, x, per_image, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                      noise_level=noise_level, generator=generator, threshold=self.threshold, callback=callback,
                      predict=predict)
        record = self.record(prompts=prompts, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                             noise_level=noise_level, views=list(views) if views is not None else None, kind=kind)
        return self.output(up, output_type, record)

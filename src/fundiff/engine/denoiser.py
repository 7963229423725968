"""One denoiser interface for every backend, and classifier-free guidance as a wrapper over it.

A :class:`Denoiser` answers, for a batch x at timestep t of its :class:`Schedule` (x = a_t x0 + s_t eps)
and a batch of prompt conditionings, a :class:`Prediction`: x0-hat, eps-hat and, if the model has
them, its learned-variance channels.  x0 and eps always satisfy x = a_t x0 + s_t eps, so any linear
map applied to a prediction (guidance, averaging over views, frequency bands) keeps them consistent.

Guidance (reference A.4): eps = eps_u + gamma (eps_c - eps_u), and likewise for x0 (x0 is affine in
eps at fixed x, so guiding either gives the same pair); the variance comes from the conditional pass,
as in the study and in diffusers' IF pipelines.  Both passes run as one batched model call of 2N.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from fundiff.engine.schedule import Schedule, Threshold
from fundiff.guidance import guide, guided_call


@dataclass
class Prediction:
    """x0-hat, eps-hat (N, C, H, W) and the learned-variance channels (or None)."""

    x0: torch.Tensor
    eps: torch.Tensor
    variance: torch.Tensor | None = None

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor],
            variance_fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> "Prediction":
        """Apply a linear map to x0 and eps (and ``variance_fn``, default ``fn``, to the variance)."""
        vf = variance_fn or fn
        return Prediction(fn(self.x0), fn(self.eps), vf(self.variance) if self.variance is not None else None)

    @staticmethod
    def cat(preds: Sequence["Prediction"]) -> "Prediction":
        """The predictions of consecutive groups of images as one (the inverse of :meth:`chunk`)."""
        var = [p.variance for p in preds]
        return Prediction(torch.cat([p.x0 for p in preds]), torch.cat([p.eps for p in preds]),
                          torch.cat(var) if all(v is not None for v in var) else None)

    def chunk(self, n: int) -> list["Prediction"]:
        parts = [t.chunk(n) if t is not None else [None] * n for t in (self.x0, self.eps, self.variance)]
        return [Prediction(*p) for p in zip(*parts)]

    @staticmethod
    def guide(u: "Prediction", c: "Prediction", guidance_scale: float) -> "Prediction":
        """CFG of x0 and eps (the variance is the conditional pass's, as in diffusers' IF pipelines)."""
        return Prediction(guide(u.x0, c.x0, guidance_scale), guide(u.eps, c.eps, guidance_scale), c.variance)

    @staticmethod
    def mean(preds: Sequence["Prediction"]) -> "Prediction":
        """The average of predictions (a visual anagram's reduction)."""
        var = [p.variance for p in preds]
        return Prediction(
            torch.stack([p.x0 for p in preds]).mean(0), torch.stack([p.eps for p in preds]).mean(0),
            torch.stack(var).mean(0) if all(v is not None for v in var) else None,
        )

    @staticmethod
    def weighted(preds: Sequence["Prediction"], weights: torch.Tensor) -> "Prediction":
        """sum_i w_i pred_i with per-image weights ``weights`` (len(preds), B), each column summing to 1."""
        w = weights.view(len(preds), -1, *([1] * (preds[0].x0.dim() - 1)))

        def total(parts: Sequence[torch.Tensor]) -> torch.Tensor:
            return (torch.stack(list(parts)) * w.to(parts[0].dtype)).sum(0)

        var = [p.variance for p in preds]
        return Prediction(total([p.x0 for p in preds]), total([p.eps for p in preds]),
                          total(var) if all(v is not None for v in var) else None)


def concat_conditions(conds: Sequence[Any]) -> Any:
    """Batch conditionings along dim 0: tensors are concatenated, tuples element-wise, None stays None."""
    first = conds[0]
    if first is None:
        return None
    if isinstance(first, torch.Tensor):
        return torch.cat(list(conds))
    if isinstance(first, tuple):
        return tuple(concat_conditions([c[i] for c in conds]) for i in range(len(first)))
    raise TypeError(f"cannot batch conditionings of type {type(first).__name__}")


class Denoiser(ABC):
    """A pretrained model that denoises at the timesteps of ``schedule``.

    Subclasses set ``schedule``, ``channels``, ``image_size``, ``threshold`` (the thresholding of x0-hat
    their scheduler asks for: dynamic for DeepFloyd IF, static clipping for MNIST; or None),
    ``null_prompt`` (the prompt that means "no condition")
    and implement :meth:`encode` and :meth:`predict`.
    """

    name: str = "denoiser"
    schedule: Schedule
    channels: int
    image_size: int
    threshold: Threshold | None = Threshold()
    null_prompt: str = ""
    default_prompt: str = ""
    max_batch_images: int = 256   # pipelines split larger requests into batches of this many images

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @staticmethod
    def view_condition(cond: Any, view: Any) -> Any:
        """The conditioning of images seen through ``view`` (anagrams); most conditionings (text, labels) do
        not depend on the image, so they are returned as they are."""
        return cond

    @abstractmethod
    def encode(self, prompts: Sequence[str]) -> Any:
        """The conditioning for each prompt, batched along dim 0 ("" is the null prompt)."""

    @abstractmethod
    def predict(self, x: torch.Tensor, t: int, cond: Any) -> Prediction:
        """x0-hat and eps-hat (and variance) for x at timestep t under conditioning ``cond``."""

    def predict_guided(self, x: torch.Tensor, t: int, cond: Any, uncond: Any, guidance_scale: float) -> Prediction:
        """Classifier-free guidance with the two passes in one call of 2N (unconditional half first)."""
        return guided_call(lambda x2, c: self.predict(x2, t, c), x, cond, uncond, guidance_scale, concat_conditions,
                           Prediction.guide)


def guidance_applies(denoiser: Denoiser, prompts: Sequence[str], negative_prompt: str | None = None) -> bool:
    """Whether CFG changes anything: not when every prompt is the negative (null) prompt, where eps_c = eps_u and
    eps_u + gamma (eps_c - eps_u) = eps_u for any gamma; then one unguided pass gives it at half the cost."""
    neg = denoiser.null_prompt if negative_prompt is None else negative_prompt
    return any(p != neg for p in prompts)


@dataclass
class Conditioned:
    """A denoiser bound to prompts and a guidance scale: (x, t) -> Prediction.

    This is what the loops call; anagram and hybrid loops build one per prompt.
    """

    denoiser: Denoiser
    cond: Any
    uncond: Any
    guidance_scale: float = 1.0

    @classmethod
    def from_prompts(cls, denoiser: Denoiser, prompts: Sequence[str], guidance_scale: float = 1.0,
                     negative_prompt: str | None = None) -> "Conditioned":
        """CFG toward ``prompts`` away from ``negative_prompt`` (default the null prompt); see :func:`guidance_applies`."""
        neg = denoiser.null_prompt if negative_prompt is None else negative_prompt
        if not guidance_applies(denoiser, prompts, negative_prompt):
            guidance_scale = 1.0
        cond = denoiser.encode(list(prompts))
        uncond = denoiser.encode([neg] * len(prompts)) if guidance_scale != 1.0 else None
        return cls(denoiser, cond, uncond, guidance_scale)

    def __call__(self, x: torch.Tensor, t: int) -> Prediction:
        if self.guidance_scale == 1.0:
            return self.denoiser.predict(x, t, self.cond)
        return self.denoiser.predict_guided(x, t, self.cond, self.uncond, self.guidance_scale)

    @property
    def evaluations_per_step(self) -> int:
        return 1 if self.guidance_scale == 1.0 else 2

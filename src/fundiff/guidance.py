"""Classifier-free guidance as a wrapper around a class-conditioned prediction.

    pred = pred_uncond + gamma * (pred_cond - pred_uncond)

(reference A.4 / B.4; the study uses gamma = 5 for MNIST and 7 for DeepFloyd IF).  gamma = 1 is the
plain conditional model, gamma = 0 the unconditional one.  The conditional and the unconditional
passes run as one batched model call of 2N images, so guidance costs one call per step, not two
(each image still costs two evaluations, which is how fundiff counts NFE).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from fundiff.nn.conditioning import call_model

Prediction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, model_time) -> prediction


def guide(uncond: torch.Tensor, cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """uncond + gamma (cond - uncond)."""
    return uncond + guidance_scale * (cond - uncond)


def conditional_prediction(
    model: nn.Module, labels: torch.Tensor | None, guidance_scale: float = 1.0
) -> tuple[Prediction, int]:
    """A function (x, t) -> prediction for ``labels`` (None: unconditional), and its evaluations per image.

    For a class model with ``labels`` and ``guidance_scale != 1`` the prediction is guided, with both
    passes batched into one call.
    """
    is_class = getattr(model, "kind", None) == "class"
    if not is_class or labels is None:
        return (lambda x, t: call_model(model, x, t)), 1
    if guidance_scale == 1.0:
        return (lambda x, t: call_model(model, x, t, labels, torch.ones(len(labels), device=x.device))), 1

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(n) if torch.as_tensor(t).ndim == 0 else t
        keep = torch.cat([torch.ones(n, device=x.device), torch.zeros(n, device=x.device)])
        both = call_model(model, torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, labels]), keep)
        return guide(both[n:], both[:n], guidance_scale)

    return guided, 2

"""Classifier-free guidance, once for both stacks:

    pred = pred_uncond + gamma * (pred_cond - pred_uncond)

(reference A.4 / B.4; the study uses gamma = 5 for MNIST and 7 for DeepFloyd IF).  gamma = 1 is the
plain conditional model, gamma = 0 the unconditional one.  :func:`guided_call` runs the unconditional
and the conditional passes as one batched model call of 2N images (unconditional half first), so
guidance costs one call per step, not two (each image still costs two evaluations, which is how
fundiff counts NFE).  Part A's :class:`~fundiff.engine.denoiser.Conditioned` and Part B's
:func:`conditional_prediction` are that function over a denoiser and over a raw class UNet.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from fundiff.nn.conditioning import call_model

Prediction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, model_time) -> prediction


def guide(uncond: torch.Tensor, cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """uncond + gamma (cond - uncond)."""
    return uncond + guidance_scale * (cond - uncond)


def guided_call(call: Callable[[torch.Tensor, Any], Any], x: torch.Tensor, cond: Any, uncond: Any,
                guidance_scale: float, concat: Callable[[list], Any], combine: Callable[[Any, Any, float], Any] = guide):
    """``call(x, cond)`` guided by ``uncond`` at ``guidance_scale``: one call on ``cat[x, x]`` and ``concat([uncond,
    cond])``, split in halves (``.chunk(2)``) and combined as ``combine(u, c, gamma)`` (default u + gamma (c - u))."""
    if guidance_scale == 1.0:
        return call(x, cond)
    u, c = call(torch.cat([x, x]), concat([uncond, cond])).chunk(2)
    return combine(u, c, guidance_scale)


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
        keep, drop = torch.ones(n, device=x.device), torch.zeros(n, device=x.device)   # the class kept / dropped
        return guided_call(lambda x2, mask: call_model(model, x2, torch.cat([t, t]), torch.cat([labels, labels]), mask),
                           x, keep, drop, guidance_scale, torch.cat)

    return guided, 2


def distilled_prediction(model: nn.Module, labels: torch.Tensor | None, guidance_scale: float):
    """(x, t, d) -> s(x, c, t, gamma, d) of a guidance-distilled shortcut student: one pass per image whatever gamma
    (labels None: unconditional)."""
    def predict(x: torch.Tensor, t: torch.Tensor, d: float) -> torch.Tensor:
        n = x.shape[0]
        if labels is None:
            lab, keep = torch.zeros(n, dtype=torch.long, device=x.device), torch.zeros(n, device=x.device)
        else:
            lab, keep = labels, torch.ones(n, device=x.device)
        return model(x, lab, t, guidance_scale, d, keep)

    return predict

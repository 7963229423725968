"""Calling a time- or class-conditioned UNet the same way, and classifier-free-guidance dropout."""

from __future__ import annotations

import torch
from torch import nn


def call_model(
    model: nn.Module, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """model(x, t) for a time UNet; model(x, c, t, mask) for a class UNet (labels None: unconditional)."""
    if getattr(model, "kind", None) == "class":
        if labels is None:
            labels = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
            keep = torch.zeros(x.shape[0], device=x.device)
        return model(x, labels, t, keep)
    return model(x, t)


def condition_dropout(n: int, p_uncond: float, rand, device: torch.device) -> torch.Tensor:
    """Per-sample keep mask (1 keeps the class, 0 drops it to the all-zero vector) with P(drop) = p_uncond."""
    return (rand.rand(n, device) >= p_uncond).float()

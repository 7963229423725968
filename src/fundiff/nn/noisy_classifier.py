"""A noise-aware MNIST classifier p(y | x_t, t): what the balanced anagram reduction asks at every step.

Unlike :class:`fundiff.nn.classifier.MnistClassifier` (clean images in [0, 1]), it reads a noisy image in the
diffusion model's units (x_t in [-1, 1] scale, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps) at DDPM timestep t in
0..999.  Architecture: four 3x3 convolutions (28 -> 14 -> 7 px, widths w, 2w, 2w, 4w) with GroupNorm and SiLU;
t / 1000 goes through a small MLP to a FiLM scale and shift applied after the third; global average pool, linear
to 10 logits.  Width 48: about 306k parameters (1.2 MB of float32).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fundiff.nn.registry import register


@register
class NoisyMnistClassifier(nn.Module):
    """Logits of p(y | x_t, t) for x_t (N, 1, 28, 28) in the model's units and t (N,) in 0..999."""

    kind = "mnist-noisy-classifier"

    def __init__(self, width: int = 48):
        super().__init__()
        if width < 8 or width % 8:
            raise ValueError(f"NoisyMnistClassifier width must be a multiple of 8 (GroupNorm of 8), got {width}")
        self.width = w = width
        self.time = nn.Sequential(nn.Linear(1, 64), nn.SiLU(), nn.Linear(64, 4 * w))
        self.convs = nn.ModuleList([nn.Conv2d(1, w, 3, padding=1), nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
                                    nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1)])
        self.norms = nn.ModuleList([nn.GroupNorm(8, c) for c in (w, 2 * w, 2 * w, 4 * w)])
        self.head = nn.Linear(4 * w, 10)

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "width": self.width}

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"NoisyMnistClassifier expects (N, 1, 28, 28) images, got {tuple(x.shape)}")
        scale, shift = self.time((t.float() / 1000).view(-1, 1)).chunk(2, 1)
        h = x
        for k, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            h = norm(conv(h))
            if k == 2:
                h = h * (1 + scale[..., None, None]) + shift[..., None, None]
            h = F.silu(h)
        return self.head(h.mean((2, 3)))

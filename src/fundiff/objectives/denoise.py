"""The one-step denoiser objective of study part 1 (reference section 2.1).

    L = E || D(z) - x ||^2,   z = x + sigma * eps,   eps ~ N(0, I)

with fresh noise every batch.  ``sigma=None`` is the pure-noise variant (section 1.2.3): z = eps
carries no information about x, so the MSE-optimal D is the constant E[x], the training-set mean image.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from fundiff.errors import FundiffError
from fundiff.training.rng import BatchRandom


class DenoiseObjective:
    """MSE between D(z) and the clean x, for z = x + sigma * eps (sigma=None: z = eps)."""

    def __init__(self, sigma: float | None = 0.5):
        if sigma is not None and not (sigma >= 0 and math.isfinite(sigma)):
            raise FundiffError(f"--sigma must be a number >= 0 or 'noise', got {sigma}")
        self.sigma = sigma
        self.name = "pure-noise denoiser" if sigma is None else f"denoiser sigma={sigma:g}"

    def loss(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, rand: BatchRandom) -> torch.Tensor:
        eps = rand.randn(x.shape, x.device, x.dtype)
        z = eps if self.sigma is None else x + self.sigma * eps
        return F.mse_loss(model(z), x)

    def config(self) -> dict[str, Any]:
        return {"name": "denoise", "sigma": self.sigma}

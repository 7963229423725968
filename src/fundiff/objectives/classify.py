"""Cross-entropy classification with random-shift augmentation: the metrics' classifier and the noise-aware one.

    L = E CE(f(shift(x)), y),   shift = translate by (dy, dx), dy, dx uniform in {-s, ..., s}
    L_noisy = E_{t ~ U{0..T-1}, eps ~ N(0, I)} CE(f(x_t, t), y),   x_t = sqrt(abar_t) (2 shift(x) - 1) + sqrt(1 - abar_t) eps

Each image of a batch gets its own shift (zero padding at the borders), drawn from the step's
random stream, so the augmentation, like every draw of a run, is a pure function of (seed, epoch, step).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from fundiff.engine.schedule import Schedule
from fundiff.errors import FundiffError
from fundiff.training.rng import BatchRandom


def random_shift(x: torch.Tensor, max_shift: int, rand: BatchRandom | torch.Generator | None = None) -> torch.Tensor:
    """Translate every image of ``x`` (N, C, H, W) by its own random offset in [-max_shift, max_shift]^2.

    Done as zero-padding by ``max_shift`` followed by a per-image crop at a random corner, with
    tensor indexing only (no Python loop over images).  The offsets come from ``rand`` (the step's
    :class:`~fundiff.training.rng.BatchRandom`, or a plain torch.Generator): rows first, then columns.
    """
    if max_shift == 0:
        return x
    if not isinstance(rand, BatchRandom):
        rand = BatchRandom(rand if rand is not None else torch.default_generator)
    n, c, h, w = x.shape
    s = max_shift
    padded = F.pad(x, (s, s, s, s))
    dy = rand.randint(2 * s + 1, n, x.device)
    dx = rand.randint(2 * s + 1, n, x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]


class ClassifyObjective:
    """Cross-entropy of the model's logits on randomly shifted images (``max_shift`` pixels)."""

    def __init__(self, max_shift: int = 2):
        if not isinstance(max_shift, int) or max_shift < 0:
            raise FundiffError(f"max_shift must be a whole number >= 0, got {max_shift!r}")
        self.max_shift = max_shift
        self.name = "classifier"

    def augment(self, x: torch.Tensor, rand: BatchRandom | torch.Generator | None) -> torch.Tensor:
        return random_shift(x, self.max_shift, rand)

    def loss(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, rand: BatchRandom) -> torch.Tensor:
        return F.cross_entropy(model(self.augment(x, rand)), labels)

    def config(self) -> dict[str, Any]:
        return {"name": "classify", "max_shift": self.max_shift}


class NoisyClassifyObjective(ClassifyObjective):
    """Cross-entropy of p(y | x_t, t) on images noised to a uniform DDPM timestep of ``schedule`` (L_noisy above).

    x in [0, 1] becomes the diffusion model's x0 = 2 x - 1; t is uniform over the schedule's timesteps and
    x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, so the classifier learns to read every noise level a sampler
    visits.  The default schedule is the embedded MNIST model's (DeepFloyd IF's cosine one).
    """

    def __init__(self, schedule: Schedule | None = None, max_shift: int = 0):
        super().__init__(max_shift)
        self.schedule = schedule or Schedule.squaredcos()
        self.name = "noisy-classifier"

    def noised(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps for a batch of timesteps t (N,)."""
        a, s = (c.to(x0).view(-1, 1, 1, 1) for c in self.schedule.coefficients_at(t))
        return a * x0 + s * eps

    def loss(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, rand: BatchRandom) -> torch.Tensor:
        x0 = self.augment(x, rand) * 2 - 1
        t = rand.randint(len(self.schedule.alphas_cumprod), len(x), x.device)
        eps = rand.randn(x0.shape, x.device, x0.dtype)
        return F.cross_entropy(model(self.noised(x0, t, eps), t), labels)

    def config(self) -> dict[str, Any]:
        return {"name": "noisy-classify", "max_shift": self.max_shift, "schedule": self.schedule.config()}

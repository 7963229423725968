"""Cross-entropy classification with random-shift augmentation (trains the metrics' classifier).

    L = E CE(f(shift(x)), y),   shift = translate by (dy, dx), dy, dx uniform in {-s, ..., s}

Each image of a batch gets its own shift (zero padding at the borders), drawn from the step's
random stream, so the augmentation, like every draw of a run, is a pure function of (seed, epoch, step).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

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

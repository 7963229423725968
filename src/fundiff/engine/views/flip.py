"""Upside down: the vertical flip."""

from __future__ import annotations

import torch

from fundiff.engine import animation as anim
from fundiff.engine.views.base import PermutationView, _hw


class FlipView(PermutationView):
    """Upside down: row i <- row H - 1 - i."""

    name = "flip"

    def _perm(self, h: int, w: int) -> torch.Tensor:
        return torch.flip(torch.arange(h * w).view(h, w), dims=(0,)).flatten()

    def view(self, x: torch.Tensor) -> torch.Tensor:
        _hw(x, self.name)
        return torch.flip(x, dims=(-2,))

    def inverse_view(self, x: torch.Tensor, variance: bool = False) -> torch.Tensor:
        return self.view(x)

    def frame(self, image: torch.Tensor, t: float) -> torch.Tensor:
        return anim.squash_frame(image, t)

"""Upside down: the vertical flip (and the shared code of the two mirrors)."""

from __future__ import annotations

import torch

from fundiff.engine import animation as anim
from fundiff.engine.views.base import PermutationView, _hw


class _AxisMirror(PermutationView):
    """A mirror across one axis of the image: index i along ``dim`` <- size - 1 - i (its own inverse)."""

    dim = -2   # -2: rows (top to bottom), -1: columns (left to right)

    def _perm(self, h: int, w: int) -> torch.Tensor:
        return torch.flip(torch.arange(h * w).view(h, w), dims=(self.dim + 2,)).flatten()

    def view(self, x: torch.Tensor) -> torch.Tensor:
        _hw(x, self.name)
        return torch.flip(x, dims=(self.dim,))

    def inverse_view(self, x: torch.Tensor, variance: bool = False) -> torch.Tensor:
        return self.view(x)

    def frame(self, image: torch.Tensor, t: float) -> torch.Tensor:
        return anim.squash_frame(image, t, dim=self.dim)


class FlipView(_AxisMirror):
    """Upside down: row i <- row H - 1 - i."""

    name = "flip"
    dim = -2

"""Left to right: the horizontal mirror."""

from __future__ import annotations

import torch

from fundiff.engine import animation as anim
from fundiff.engine.views.base import PermutationView, _hw


class MirrorView(PermutationView):
    """Left to right, as in a looking-glass: column j <- column W - 1 - j (``flip`` is the other mirror, top to
    bottom)."""

    name = "mirror"

    def _perm(self, h: int, w: int) -> torch.Tensor:
        return torch.flip(torch.arange(h * w).view(h, w), dims=(1,)).flatten()

    def view(self, x: torch.Tensor) -> torch.Tensor:
        _hw(x, self.name)
        return torch.flip(x, dims=(-1,))

    def inverse_view(self, x: torch.Tensor, variance: bool = False) -> torch.Tensor:
        return self.view(x)

    def frame(self, image: torch.Tensor, t: float) -> torch.Tensor:
        return anim.squash_frame(image, t, dim=-1)

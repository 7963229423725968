"""The centred disk turned by 180 degrees, the rest unchanged."""

from __future__ import annotations

import torch

from fundiff.engine import animation as anim
from fundiff.engine.views.base import PermutationView, _hw, _require_square, _rot_perm, _upsample, reference_grid


class InnerCircleView(PermutationView):
    """The centred disk of radius 3/8 of the side turned by 180 degrees."""

    name = "inner_circle"
    radius_fraction = 3 / 8

    def mask(self, h: int, w: int) -> torch.Tensor:
        """(H, W) bool: the pixels inside the disk (whole cells of the reference grid)."""
        _require_square(self.name, h, w)
        b, g, _ = reference_grid(self.name, h, w)
        c = torch.arange(g, dtype=torch.float64) + 0.5 - g / 2
        r = self.radius_fraction * g
        return _upsample(c[:, None] ** 2 + c[None, :] ** 2 < r * r, b)

    def _perm(self, h: int, w: int) -> torch.Tensor:
        m = self.mask(h, w).flatten()
        return torch.where(m, _rot_perm(2, h), torch.arange(h * w))

    def frame(self, image: torch.Tensor, t: float) -> torch.Tensor:
        h, w = _hw(image, self.name)
        return torch.where(self.mask(h, w).to(image.device), anim.rotation_frame(image, 180.0 * t), image)

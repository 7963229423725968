"""Quarter and half turns of a square image."""

from __future__ import annotations

import torch

from fundiff.engine import animation as anim
from fundiff.engine.views.base import PermutationView, _hw, _require_square, _rot_perm


class _RotationView(PermutationView):
    k = 0  # quarter turns counter-clockwise, as torch.rot90

    def _perm(self, h: int, w: int) -> torch.Tensor:
        _require_square(self.name, h, w)
        return _rot_perm(self.k, h)

    def view(self, x: torch.Tensor) -> torch.Tensor:
        _require_square(self.name, *_hw(x, self.name))
        return torch.rot90(x, self.k, dims=(-2, -1))

    def inverse_view(self, x: torch.Tensor, variance: bool = False) -> torch.Tensor:
        _require_square(self.name, *_hw(x, self.name))
        return torch.rot90(x, -self.k, dims=(-2, -1))

    def frame(self, image: torch.Tensor, t: float) -> torch.Tensor:
        _require_square(self.name, *_hw(image, self.name))
        return anim.rotation_frame(image, 90.0 * self.k * t)


class RotateCWView(_RotationView):
    name = "rotate_cw"
    k = -1


class RotateCCWView(_RotationView):
    name = "rotate_ccw"
    k = 1


class Rotate180View(_RotationView):
    name = "rotate_180"
    k = 2

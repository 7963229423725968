"""v(x) = -x (the variance channels are left alone on the way back)."""

from __future__ import annotations

import torch

from fundiff.engine import animation as anim
from fundiff.engine.views.base import View


class NegateView(View):
    """v(x) = -x; the inverse negates noise / x0 estimates but not learned-variance channels."""

    name = "negate"

    def view(self, x: torch.Tensor) -> torch.Tensor:
        return -x

    def inverse_view(self, x: torch.Tensor, variance: bool = False) -> torch.Tensor:
        return x.clone() if variance else -x

    def frame(self, image: torch.Tensor, t: float) -> torch.Tensor:
        return anim.crossfade_frame(image, 1 - image, t)

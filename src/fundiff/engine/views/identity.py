"""The identity view (the first reading of an anagram)."""

from __future__ import annotations

import torch

from fundiff.engine.views.base import PermutationView


class IdentityView(PermutationView):
    name = "identity"

    def _perm(self, h: int, w: int) -> torch.Tensor:
        return torch.arange(h * w)

    def view(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    def inverse_view(self, x: torch.Tensor, variance: bool = False) -> torch.Tensor:
        return x.clone()

    def frame(self, image: torch.Tensor, t: float) -> torch.Tensor:
        return image.clone()

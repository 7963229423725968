"""The cells of the reference grid shuffled by a seeded permutation."""

from __future__ import annotations

import torch

from fundiff.engine.views.base import PermutationView, _generator, lift_permutation, reference_grid


class PixelPermuteView(PermutationView):
    """The cells of the reference grid (pixels up to 64 px) shuffled by a seeded random permutation."""

    name = "pixel_permute"
    params = (("seed", int),)

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = int(seed)

    def _perm(self, h: int, w: int) -> torch.Tensor:
        b, gh, gw = reference_grid(self.name, h, w)
        return lift_permutation(torch.randperm(gh * gw, generator=_generator(self.seed)), gh, gw, b, b)

"""A g x g grid of patches shuffled by a seeded permutation."""

from __future__ import annotations

import torch

from fundiff.engine.views.base import PermutationView, _generator, lift_permutation
from fundiff.errors import FundiffError


class PatchPermuteView(PermutationView):
    """A grid x grid arrangement of patches shuffled by a seeded random permutation."""

    name = "patch_permute"
    params = (("grid", int), ("seed", int))

    def __init__(self, grid: int = 8, seed: int = 0) -> None:
        super().__init__()
        if grid < 1:
            raise FundiffError(f"patch_permute grid must be a positive integer, got {grid}")
        self.grid = int(grid)
        self.seed = int(seed)

    def cell_permutation(self, n: int) -> torch.Tensor:
        return torch.randperm(n, generator=_generator(self.seed))

    def _perm(self, h: int, w: int) -> torch.Tensor:
        g = self.grid
        if h % g or w % g:
            raise FundiffError(f"view {self.spec} needs sides divisible by {g}, got {h}x{w}")
        return lift_permutation(self.cell_permutation(g * g), g, g, h // g, w // g)

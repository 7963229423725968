"""Columns of the cell grid rolled by an amount proportional to their offset from the centre."""

from __future__ import annotations

import math
import torch

from fundiff.engine import animation as anim
from fundiff.engine.views.base import PermutationView, _hw, lift_permutation, reference_grid
from fundiff.errors import FundiffError


class SkewView(PermutationView):
    """Column c of the cell grid rolled down by trunc(factor * (c - gw // 2)) cells."""

    name = "skew"
    params = (("factor", float),)

    def __init__(self, factor: float = 1.5) -> None:
        super().__init__()
        if not math.isfinite(factor):
            raise FundiffError(f"skew factor must be a finite number, got {factor}")
        self.factor = float(factor)

    def cell_shifts(self, gw: int) -> torch.Tensor:
        return torch.tensor([int(self.factor * (c - gw // 2)) for c in range(gw)], dtype=torch.long)

    def pixel_shifts(self, h: int, w: int) -> torch.Tensor:
        """Rows each pixel column moves down (a multiple of the cell size)."""
        b, gh, gw = reference_grid(self.name, h, w)
        return self.cell_shifts(gw).repeat_interleave(b) * b

    def _perm(self, h: int, w: int) -> torch.Tensor:
        b, gh, gw = reference_grid(self.name, h, w)
        d = self.cell_shifts(gw)
        rows = torch.arange(gh)[:, None]
        src_rows = (rows - d[None, :]).remainder(gh)
        cells = src_rows * gw + torch.arange(gw)[None, :]
        return lift_permutation(cells.flatten(), gh, gw, b, b)

    def frame(self, image: torch.Tensor, t: float) -> torch.Tensor:
        h, w = _hw(image, self.name)
        return anim.roll_columns_frame(image, self.pixel_shifts(h, w), t)

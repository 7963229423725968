"""Rectangular masks: (1, 1, size, size) float32 of 0.0 / 1.0, white (1) = generate, black (0) = keep.

The study's Campanile mask is rows 2:20 and columns 24:42 at 64 px (``rect_mask(64, (2, 20), (24, 42))``);
given in 64-px coordinates, a rectangle scales to any model size (``reference_size``).
"""

from __future__ import annotations

import re

import torch

from fundiff.engine.inputs import _check_size
from fundiff.errors import FundiffError

_RECT = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*$")


def rect_mask(
    size: int,
    rows: tuple[int, int],
    cols: tuple[int, int],
    reference_size: int | None = None,
) -> torch.Tensor:
    """(1, 1, size, size) float32: ones in rows [r0, r1) and cols [c0, c1), zeros elsewhere.

    With ``reference_size`` the coordinates are in that resolution and scale by
    ``size / reference_size``, r0 and c0 rounding down, r1 and c1 up: exact for integer factors
    (64 -> 256), and covering the whole scaled area otherwise (64 -> 28).
    The study's Campanile mask is ``rect_mask(64, (2, 20), (24, 42))``.
    """
    _check_size(size)
    ref = size if reference_size is None else reference_size
    if isinstance(ref, bool) or not isinstance(ref, int) or ref < 1:
        raise FundiffError(f"rectangle reference size must be a whole number >= 1, got {reference_size}")
    bounds = []
    for what, pair in (("rows", rows), ("cols", cols)):
        try:
            a, b = (int(v) for v in pair)
        except (TypeError, ValueError):
            raise FundiffError(f"rectangle {what} must be two whole numbers (start, stop), got {pair!r}") from None
        if a >= b:
            raise FundiffError(f"empty rectangle: {what} {a}:{b} (the start must be below the stop)")
        if a < 0 or b > ref:
            raise FundiffError(
                f"rectangle {what} {a}:{b} fall outside the {ref}x{ref} image (must be within 0:{ref})"
            )
        bounds.append((a * size // ref, -(-b * size // ref)))
    (r0, r1), (c0, c1) = bounds
    mask = torch.zeros(1, 1, size, size, dtype=torch.float32)
    mask[..., r0:r1, c0:c1] = 1.0
    return mask


def parse_rect(text: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """``"2:20,24:42"`` (rows r0:r1, then cols c0:c1) -> ``((2, 20), (24, 42))``."""
    match = _RECT.match(text) if isinstance(text, str) else None
    if match is None:
        raise FundiffError(f"bad rectangle {text!r}: expected ROW0:ROW1,COL0:COL1, e.g. 2:20,24:42")
    r0, r1, c0, c1 = (int(g) for g in match.groups())
    return (r0, r1), (c0, c1)

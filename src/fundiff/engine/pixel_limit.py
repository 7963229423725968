"""How large an input image may be: :data:`MAX_IMAGE_PIXELS`, checked from a file's header before decoding.

A decompression bomb (a few hundred KB of PNG that decodes to gigabytes) is refused from its header, so it
costs nothing; ``with pixel_limit(n):`` (the CLI's ``--max-image-pixels``) raises or lowers the cap.
"""

from __future__ import annotations

import contextlib
import contextvars

from PIL import Image

from fundiff.errors import FundiffError

#: The most pixels (width x height) an input image may have: 50 million, a 48-megapixel phone photo
#: fits.  Decoding one that large takes ~150 MB as RGB; PIL's own bomb check (89 M warns, 179 M fails)
#: stays behind it.
MAX_IMAGE_PIXELS = 50_000_000
_pixel_limit: contextvars.ContextVar[int] = contextvars.ContextVar("fundiff_max_image_pixels", default=MAX_IMAGE_PIXELS)


@contextlib.contextmanager
def pixel_limit(max_pixels: int):
    """Inputs may have up to ``max_pixels`` pixels inside the block (PIL's own bomb limit is raised to match)."""
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise FundiffError(f"the pixel limit must be a whole number >= 1, got {max_pixels!r}")
    token = _pixel_limit.set(max_pixels)
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels   # PIL fails at twice its limit; ours is checked first
    try:
        yield
    finally:
        _pixel_limit.reset(token)


def check_pixels(pixels: int, what: str, size: tuple[int, int] | None = None) -> None:
    """FundiffError if an image of ``pixels`` pixels (``size`` = (width, height), if known) is over the limit."""
    limit = _pixel_limit.get()
    if pixels > limit:
        dims = f" ({size[0]} x {size[1]})" if size else ""
        raise FundiffError(f"{what} has {pixels:,} pixels{dims}, over the limit of {limit:,} "
                           "(--max-image-pixels N raises it)")

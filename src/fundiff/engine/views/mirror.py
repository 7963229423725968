"""Left to right: the horizontal mirror."""

from __future__ import annotations

from fundiff.engine.views.flip import _AxisMirror


class MirrorView(_AxisMirror):
    """Left to right, as in a looking-glass: column j <- column W - 1 - j (``flip`` is the other mirror, top to
    bottom)."""

    name = "mirror"
    dim = -1

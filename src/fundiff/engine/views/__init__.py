"""Views for visual anagrams: orthogonal maps of the pixel grid (permutations) or of the sign.

A view v maps an image batch (N, C, H, W) (any C: DeepFloyd stage II passes 6 channels) to another
of the same shape.  Every view here is orthogonal, v^T v = I, so the view of Gaussian noise is
Gaussian noise and the anagram sampler can denoise v(x) with one prompt and map the estimate back
with v^-1 = v^T.  Permutation views are exact gathers: v(x).flatten(-2) = x.flatten(-2)[..., p]
with p = ``permutation(H, W)``; the negate view is v(x) = -x, whose inverse leaves learned-variance
channels alone (``inverse_view(x, variance=True)``): variance is not sign-symmetric.

Resolution consistency.  An illusion made at 64 px must survive DeepFloyd's 4x upsampling, so for
every permutation view v_256(up4(x)) = up4(v_64(x)) exactly (up4 = nearest upsampling).  Views that
are not plain rotations are therefore defined on a reference grid of cells: side min(H, W) up to 64
pixels, otherwise 64 cells of b = min(H, W) // 64 pixels each (H and W must be multiples of b):

* ``skew``          column c of the cell grid rolled down by trunc(f (c - G//2)) cells, f = 1.5 (as
                    visual_anagrams at 64 px); at 256 px whole 4x4 blocks move;
* ``patch_permute`` a g x g grid of patches (the *number* of patches is fixed, default 8) shuffled
                    by ``torch.randperm(g * g)`` seeded with ``seed``;
* ``pixel_permute`` the cells themselves shuffled (1-px cells at 64 px, 4x4 blocks at 256, 1 px at 28);
* ``inner_circle``  the cells whose centres lie in the centred disk of radius 3/8 of the side (24 px
                    at 64) turned by 180 degrees, the rest unchanged;
* ``jigsaw``        a 4x4 jigsaw on the cell grid (below);
* ``permute``       a user permutation for H0 x W0 pixels, applied at k H0 x k W0 by moving k x k blocks.

Jigsaw construction.  Each of the 24 interior edges of the 4x4 grid carries one tab: a neck and a
round knob (centre 0.22 s past the edge, radius 0.17 s, neck half-width 0.09 s, for cell side s)
belonging to one of the two cells and protruding into the other.  Quarter turns of the board act
freely on the edges (6 orbits of 4); tab directions are drawn per orbit (seeded) and copied around
it, so the cut is exactly symmetric under the quarter turn R and R maps pieces onto pieces.  The 16
pieces fall into 4 orbits {P, RP, R^2P, R^3P} (the corners, the centre, two sets of edge pieces);
within each orbit slot k receives piece a = pi(k) for a seeded permutation pi, moved by the whole-
board turn R^(k - a), so the map is a pixel permutation that moves and turns every piece (exact at
any size; at 256 px the pieces are the 64-px pieces made of 4x4 blocks).

Spec strings (``get_view``): ``name`` or ``name:args`` where args are comma-separated values in the
view's parameter order or ``key=value`` pairs, e.g. ``patch_permute:16``, ``patch_permute:grid=4,seed=2``,
``skew:2.0``, ``jigsaw:seed=3``, ``pixel_permute:seed=1``; ``permute:PATH`` takes the rest of the
string as the path of a .npy permutation.
"""


from __future__ import annotations

from typing import Any

from fundiff.engine.views.base import (REFERENCE_SIZE, PermutationView, View, from_display, is_involution,
                                        lift_permutation, reference_grid, to_display)
from fundiff.engine.views.identity import IdentityView
from fundiff.engine.views.flip import FlipView
from fundiff.engine.views.mirror import MirrorView
from fundiff.engine.views.rotate import RotateCWView, RotateCCWView, Rotate180View
from fundiff.engine.views.negate import NegateView
from fundiff.engine.views.skew import SkewView
from fundiff.engine.views.patch_permute import PatchPermuteView
from fundiff.engine.views.pixel_permute import PixelPermuteView
from fundiff.engine.views.inner_circle import InnerCircleView
from fundiff.engine.views.jigsaw import JigsawView
from fundiff.engine.views.permute import PermuteView
from fundiff.engine.registry import Registry
from fundiff.errors import FundiffError

__all__ = ["REFERENCE_SIZE", "VIEWS", "FlipView", "IdentityView", "InnerCircleView", "JigsawView", "MirrorView",
           "NegateView", "PatchPermuteView", "PermutationView", "PermuteView", "PixelPermuteView", "Rotate180View",
           "RotateCCWView", "RotateCWView", "SkewView", "View", "from_display", "get_view", "is_involution",
           "lift_permutation", "reference_grid", "to_display", "view_names"]

VIEWS: Registry[View] = Registry("view", IdentityView, FlipView, MirrorView, RotateCWView, RotateCCWView, Rotate180View,
                                 NegateView, SkewView, PatchPermuteView, PixelPermuteView, JigsawView, InnerCircleView,
                                 PermuteView)
view_names = VIEWS.names


def get_view(spec: str | View) -> View:
    """A view from its spec string (see the module docstring), e.g. ``"patch_permute:16,seed=2"``."""
    if isinstance(spec, View):
        return spec
    text = str(spec).strip()
    name, sep, rest = text.partition(":")
    name = name.strip()
    cls = VIEWS.lookup(name)
    if cls is PermuteView:
        if not rest.strip():
            raise FundiffError("view permute needs a file: permute:PATH.npy")
        return PermuteView.from_file(rest.strip())
    if not sep or not rest.strip():
        return cls()
    params = dict(cls.params)
    if not params:
        raise FundiffError(f"view {name} takes no arguments, got {rest!r}")
    kwargs: dict[str, Any] = {}
    order = list(params)
    for i, item in enumerate(a.strip() for a in rest.split(",")):
        key, eq, value = item.partition("=")
        if eq:
            key, value = key.strip(), value.strip()
        else:
            if i >= len(order):
                raise FundiffError(f"view {name} takes at most {len(order)} arguments ({', '.join(order)}), got {rest!r}")
            key, value = order[i], item
        if key not in params:
            raise FundiffError(f"view {name} has no argument {key!r}; it takes {', '.join(order)}")
        if key in kwargs:
            raise FundiffError(f"view {name}: argument {key} given twice")
        try:
            kwargs[key] = params[key](value)
        except ValueError:
            raise FundiffError(f"view {name}: {key} must be {'an integer' if params[key] is int else 'a number'}, got {value!r}") from None
    return cls(**kwargs)

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

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fundiff.engine import animation as anim
from fundiff.errors import FundiffError

REFERENCE_SIZE = 64  # the size DeepFloyd IF stage I samples at; views are defined on this grid


def _hw(x: torch.Tensor, name: str) -> tuple[int, int]:
    if not torch.is_tensor(x) or x.ndim < 2:
        raise FundiffError(f"view {name} needs an image tensor (..., H, W)")
    return int(x.shape[-2]), int(x.shape[-1])


def _require_square(name: str, h: int, w: int) -> None:
    if h != w:
        raise FundiffError(f"view {name} needs a square image, got {h}x{w}")


def reference_grid(name: str, h: int, w: int, reference: int = REFERENCE_SIZE) -> tuple[int, int, int]:
    """(b, gh, gw): pixels per cell side and the cell grid (cells are b x b pixels)."""
    b = max(1, min(h, w) // reference)
    if h % b or w % b:
        raise FundiffError(f"view {name} at {h}x{w} px needs sides divisible by {b}")
    return b, h // b, w // b


def lift_permutation(cell_perm: torch.Tensor, gh: int, gw: int, bh: int, bw: int) -> torch.Tensor:
    """A permutation of gh x gw cells as one of the (gh bh) x (gw bw) pixels, cells moving intact."""
    H, W = gh * bh, gw * bw
    Y = torch.arange(H)[:, None]
    X = torch.arange(W)[None, :]
    src = cell_perm[(Y // bh) * gw + X // bw]
    sy, sx = src // gw, src % gw
    return ((sy * bh + Y % bh) * W + sx * bw + X % bw).flatten()


def _rot_perm(k: int, n: int) -> torch.Tensor:
    """p with rot90(x, k).flatten() == x.flatten()[p] on an n x n grid."""
    return torch.rot90(torch.arange(n * n).view(n, n), k, dims=(0, 1)).flatten()


def _upsample(grid: torch.Tensor, b: int) -> torch.Tensor:
    return grid.repeat_interleave(b, 0).repeat_interleave(b, 1) if b > 1 else grid


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def to_display(x: torch.Tensor) -> torch.Tensor:
    return (x + 1) / 2


def from_display(u: torch.Tensor) -> torch.Tensor:
    return u * 2 - 1


class View:
    """An orthogonal map of images; see the module docstring."""

    name = "view"
    params: tuple[tuple[str, type], ...] = ()

    def view(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def inverse_view(self, x: torch.Tensor, variance: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def permutation(self, h: int, w: int) -> torch.Tensor | None:
        return None

    def frame(self, image: torch.Tensor, t: float) -> torch.Tensor:
        """Display image (C, H, W) in [0, 1] part way (t in [0, 1]) from itself to its view."""
        raise NotImplementedError

    def display_view(self, image: torch.Tensor) -> torch.Tensor:
        """The view of a display image in [0, 1] (what ``frame(image, 1)`` shows)."""
        return to_display(self.view(from_display(image)))

    @property
    def spec(self) -> str:
        args = ",".join(f"{k}={getattr(self, k)}" for k, _ in self.params)
        return f"{self.name}:{args}" if args else self.name

    def __repr__(self) -> str:
        return f"<view {self.spec}>"


class PermutationView(View):
    """A view that is a fixed permutation of the H*W pixel positions, the same for every channel."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def _perm(self, h: int, w: int) -> torch.Tensor:
        raise NotImplementedError

    def _perms(self, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        if (h, w) not in self._cache:
            p = self._perm(h, w).to(torch.long).cpu()
            inv = torch.empty_like(p)
            inv[p] = torch.arange(p.numel())
            self._cache[(h, w)] = (p, inv)
        return self._cache[(h, w)]

    def permutation(self, h: int, w: int) -> torch.Tensor:
        return self._perms(h, w)[0].clone()

    @staticmethod
    def _gather(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return x.flatten(-2).index_select(-1, p.to(x.device)).reshape(x.shape)

    def view(self, x: torch.Tensor) -> torch.Tensor:
        h, w = _hw(x, self.name)
        return self._gather(x, self._perms(h, w)[0])

    def inverse_view(self, x: torch.Tensor, variance: bool = False) -> torch.Tensor:
        h, w = _hw(x, self.name)
        return self._gather(x, self._perms(h, w)[1])

    def frame(self, image: torch.Tensor, t: float) -> torch.Tensor:
        h, w = _hw(image, self.name)
        return anim.permutation_frame(image, self._perms(h, w)[0], t)


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


class FlipView(PermutationView):
    """Upside down: row i <- row H - 1 - i."""

    name = "flip"

    def _perm(self, h: int, w: int) -> torch.Tensor:
        return torch.flip(torch.arange(h * w).view(h, w), dims=(0,)).flatten()

    def view(self, x: torch.Tensor) -> torch.Tensor:
        _hw(x, self.name)
        return torch.flip(x, dims=(-2,))

    def inverse_view(self, x: torch.Tensor, variance: bool = False) -> torch.Tensor:
        return self.view(x)

    def frame(self, image: torch.Tensor, t: float) -> torch.Tensor:
        return anim.squash_frame(image, t)


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


class NegateView(View):
    """v(x) = -x; the inverse negates noise / x0 estimates but not learned-variance channels."""

    name = "negate"

    def view(self, x: torch.Tensor) -> torch.Tensor:
        return -x

    def inverse_view(self, x: torch.Tensor, variance: bool = False) -> torch.Tensor:
        return x.clone() if variance else -x

    def frame(self, image: torch.Tensor, t: float) -> torch.Tensor:
        return anim.crossfade_frame(image, 1 - image, t)


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


class InnerCircleView(PermutationView):
    """The centred disk of radius 3/8 of the side turned by 180 degrees."""

    name = "inner_circle"
    radius_fraction = 3 / 8

    def mask(self, h: int, w: int) -> torch.Tensor:
        """(H, W) bool: the pixels inside the disk (whole cells of the reference grid)."""
        _require_square(self.name, h, w)
        b, g, _ = reference_grid(self.name, h, w)
        c = torch.arange(g, dtype=torch.float64) + 0.5 - g / 2
        r = self.radius_fraction * g
        return _upsample(c[:, None] ** 2 + c[None, :] ** 2 < r * r, b)

    def _perm(self, h: int, w: int) -> torch.Tensor:
        m = self.mask(h, w).flatten()
        return torch.where(m, _rot_perm(2, h), torch.arange(h * w))

    def frame(self, image: torch.Tensor, t: float) -> torch.Tensor:
        h, w = _hw(image, self.name)
        return torch.where(self.mask(h, w).to(image.device), anim.rotation_frame(image, 180.0 * t), image)


class JigsawView(PermutationView):
    """A 4x4 jigsaw puzzle: pieces with tabs moved and turned by a seeded permutation (see module doc)."""

    name = "jigsaw"
    params = (("seed", int),)
    pieces_per_side = 4
    tab_offset, tab_radius, neck_half_width = 0.22, 0.17, 0.09

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = int(seed)
        gen = _generator(self.seed)
        self._tab_bits = torch.randint(0, 2, (6,), generator=gen).tolist()
        while True:
            self._orbit_perms = [torch.randperm(4, generator=gen).tolist() for _ in range(4)]
            if any(p != [0, 1, 2, 3] for p in self._orbit_perms):
                break
        self._layout: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def labels(self, g: int) -> torch.Tensor:
        """(g, g) long: the piece (0..15, row-major cell of its body) of every cell of a g x g grid."""
        n = self.pieces_per_side
        if g % n:
            raise FundiffError(f"view jigsaw needs a grid divisible by {n}, got {g}")
        s = g // n
        i = np.arange(g)
        u = (i + 0.5 - g / 2)[None, :]  # x of pixel centres, board centre at 0
        v = (i + 0.5 - g / 2)[:, None]  # y
        lab = (i[:, None] // s) * n + (i[None, :] // s)
        lab = np.broadcast_to(lab, (g, g)).copy()
        for owner, (cx, cy), (x0, x1, y0, y1) in self._tabs(g):
            inside = ((u - cx) ** 2 + (v - cy) ** 2 <= (self.tab_radius * s) ** 2)
            inside |= (u >= x0) & (u <= x1) & (v >= y0) & (v <= y1)
            lab[inside] = owner
        return torch.from_numpy(lab).long()

    def _tabs(self, g: int):
        """(owner cell, knob centre, neck box) of every tab, built orbit by orbit under the quarter turn."""
        n = self.pieces_per_side
        s = g / n
        half = g / 2
        d, hw = self.tab_offset * s, self.neck_half_width * s

        def turn_cell(rc):  # the cell the quarter turn (x, y) -> (-y, x) takes rc to
            r, c = rc
            return (c, n - 1 - r)

        def turn_tab(tab):
            owner, (cx, cy), (x0, x1, y0, y1) = tab
            return turn_cell(owner), (-cy, cx), (-y1, -y0, x0, x1)

        edges = [((r, c), (r, c + 1)) for r in range(n) for c in range(n - 1)]
        edges += [((r, c), (r + 1, c)) for r in range(n - 1) for c in range(n)]
        done: set[frozenset] = set()
        tabs = []
        orbit = 0
        for a, b in edges:
            if frozenset((a, b)) in done:
                continue
            if self._tab_bits[orbit % len(self._tab_bits)]:
                a, b = b, a  # the tab belongs to a and protrudes into b
            orbit += 1
            ny, nx = b[0] - a[0], b[1] - a[1]
            mx = -half + (a[1] + 0.5) * s + nx * s / 2
            my = -half + (a[0] + 0.5) * s + ny * s / 2
            cx, cy = mx + nx * d, my + ny * d
            if nx:
                box = (min(mx, cx), max(mx, cx), my - hw, my + hw)
            else:
                box = (mx - hw, mx + hw, min(my, cy), max(my, cy))
            tab = (a, (cx, cy), box)
            for _ in range(4):
                owner, centre, box = tab
                done.add(frozenset((a, b)))
                tabs.append((owner[0] * n + owner[1], centre, box))
                a, b = turn_cell(a), turn_cell(b)
                tab = turn_tab(tab)
        return tabs

    def layout(self, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(perm, slot piece of each output pixel, quarter turns of each output pixel), flattened."""
        if (h, w) in self._layout:
            return self._layout[(h, w)]
        _require_square(self.name, h, w)
        b, g, _ = reference_grid(self.name, h, w)
        lab_g = self.labels(g)
        # rho[l]: the piece where piece l lands after one quarter turn rot90(., 1)
        rot_lab = torch.rot90(lab_g, 1, dims=(0, 1))
        rho = torch.full((16,), -1, dtype=torch.long)
        rho[rot_lab.flatten()] = lab_g.flatten()
        if not torch.equal(rho[rot_lab.flatten()], lab_g.flatten()) or (rho < 0).any():
            raise AssertionError("jigsaw cut is not symmetric under the quarter turn")
        turns_of_slot = torch.zeros(16, dtype=torch.long)
        seen: set[int] = set()
        orbit = 0
        for base in range(16):
            if base in seen:
                continue
            members = [base]
            for _ in range(3):
                members.append(int(rho[members[-1]]))
            seen.update(members)
            pi = self._orbit_perms[orbit]
            orbit += 1
            for k, slot in enumerate(members):
                turns_of_slot[slot] = (k - pi[k]) % 4
        slots = _upsample(lab_g, b).flatten()
        turns = turns_of_slot[slots]
        perms = torch.stack([_rot_perm(q, h) for q in range(4)])
        perm = perms[turns, torch.arange(h * w)]
        self._layout[(h, w)] = (perm, slots, turns)
        return self._layout[(h, w)]

    def _perm(self, h: int, w: int) -> torch.Tensor:
        return self.layout(h, w)[0]

    def frame(self, image: torch.Tensor, t: float) -> torch.Tensor:
        h, w = _hw(image, self.name)
        perm, slots, turns = self.layout(h, w)
        return anim.pieces_frame(image, perm, slots, turns, t)


class PermuteView(PermutationView):
    """A user permutation p of the H0*W0 pixels (view(x)[j] = x[p[j]]); at k H0 x k W0 it moves k x k blocks."""

    name = "permute"

    def __init__(self, perm: Any, size: int | tuple[int, int] | None = None, source: str | None = None) -> None:
        super().__init__()
        what = source or "permutation"
        arr = np.asarray(perm.cpu() if torch.is_tensor(perm) else perm)
        if arr.ndim != 1 or arr.size == 0 or not (np.issubdtype(arr.dtype, np.integer)
                                                  or (arr.dtype.kind == "f" and np.all(arr == np.round(arr)))):
            raise FundiffError(f"{what} must be a 1-D array of integer pixel indices, got shape {arr.shape} {arr.dtype}")
        arr = arr.astype(np.int64)
        n = arr.size
        if not np.array_equal(np.sort(arr), np.arange(n)):
            raise FundiffError(f"{what} is not a permutation of range({n})")
        if size is None:
            side = math.isqrt(n)
            if side * side != n:
                raise FundiffError(f"{what} has {n} entries, not a square image's H*W; give the size")
            size = (side, side)
        elif isinstance(size, int):
            size = (size, size)
        if size[0] * size[1] != n:
            raise FundiffError(f"{what} has {n} entries, but {size[0]}x{size[1]} has {size[0] * size[1]}")
        self.size = (int(size[0]), int(size[1]))
        self.source = source
        self.base = torch.from_numpy(arr)

    @classmethod
    def from_file(cls, path: str | os.PathLike, size: int | tuple[int, int] | None = None) -> "PermuteView":
        """Load a .npy permutation of range(H*W)."""
        path = Path(path)
        if not path.is_file():
            raise FundiffError(f"permutation file {path} does not exist")
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise FundiffError(f"cannot read permutation file {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
        return cls(arr, size=size, source=f"permutation file {path}")

    @property
    def spec(self) -> str:
        return f"permute:{self.source[len('permutation file '):]}" if self.source else "permute"

    def _perm(self, h: int, w: int) -> torch.Tensor:
        h0, w0 = self.size
        if h % h0 or w % w0 or h // h0 != w // w0:
            raise FundiffError(f"view permute is for {h0}x{w0} images (or whole multiples), got {h}x{w}")
        k = h // h0
        return self.base.clone() if k == 1 else lift_permutation(self.base, h0, w0, k, k)


VIEWS: dict[str, type[View]] = {
    "identity": IdentityView,
    "flip": FlipView,
    "rotate_cw": RotateCWView,
    "rotate_ccw": RotateCCWView,
    "rotate_180": Rotate180View,
    "negate": NegateView,
    "skew": SkewView,
    "patch_permute": PatchPermuteView,
    "pixel_permute": PixelPermuteView,
    "jigsaw": JigsawView,
    "inner_circle": InnerCircleView,
    "permute": PermuteView,
}


def view_names() -> list[str]:
    return list(VIEWS)


def get_view(spec: str | View) -> View:
    """A view from its spec string (see the module docstring), e.g. ``"patch_permute:16,seed=2"``."""
    if isinstance(spec, View):
        return spec
    text = str(spec).strip()
    name, sep, rest = text.partition(":")
    name = name.strip()
    if name not in VIEWS:
        raise FundiffError(f"unknown view {name!r}; known views: {', '.join(VIEWS)}")
    cls = VIEWS[name]
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

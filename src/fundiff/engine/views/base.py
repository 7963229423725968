"""The view interface and the grid helpers every view uses (see :mod:`fundiff.engine.views`)."""

from __future__ import annotations

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


MAX_SEED = 2**32 - 1   # fundiff's seed range everywhere (the CLI's --seed, the web form, a view's seed=): numpy's


def _generator(seed: int) -> torch.Generator:
    if not 0 <= int(seed) <= MAX_SEED:
        raise FundiffError(f"a view's seed must be in 0..{MAX_SEED}, got {seed}")
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


def is_involution(view: View, shape: tuple[int, ...] = (1, 1, 28, 28)) -> bool:
    """Whether v(v(x)) = x, i.e. v^-1 = v, on images of ``shape`` (False where the view does not apply to them).

    Under such a view a visual anagram is symmetric in its two prompts: with views (identity, v), the anagram
    sampler's prediction for prompts (B, A) at v(x) is v of its prediction for (A, B) at x (each view sees the same
    image with the same prompt, only the slots swap), and Gaussian noise is invariant under v.  So A/B and B/A are
    one illusion, the view of each other: they work equally often (docs/illusions.md, "A/B and B/A").  That needs
    settings chosen by prompt, not by slot: not the alternate reduction (its first step is slot 0's view), nor a
    guidance scale or negative prompt per slot that differs between the prompts."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    try:
        return bool(torch.equal(view.view(view.view(x)), x))
    except FundiffError:
        return False


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

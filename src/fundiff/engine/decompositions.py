"""Factorized Diffusion decompositions: x = sum_i f_i(x) with every f_i linear.

* ``Hybrid``        [G * x, x - G * x]                       (G a Gaussian: kernel 33, sigma 2 at 64 px)
* ``TripleHybrid``  m = G1 * x, l = G2 * m  ->  [l, m - l, x - m]  (sigma1 1, sigma2 2, kernel 25 at 64 px)
* ``ColorHybrid``   [g, x - g] with g the channel mean broadcast to every channel (needs C = 3)
* ``MotionHybrid``  [K * x, x - K * x] with K = I_k / k, a box blur along the 45-degree diagonal
                    (top-left to bottom-right), k = 7 at 64 px

Blurs use reflect padding (``fundiff.engine.blur``), so a constant image is its own low-pass and
its high-pass is zero.  Constants left as ``None`` are the study's 64-px values carried to the
image's size by ``scaled_blur`` (sigma * size / 64, kernel the odd integer nearest k * size / 64,
ties up: 33 -> 133, 25 -> 101, 7 -> 29 at 256 px; 33 -> 15, 25 -> 11, 7 -> 3 at 28 px);
constants given explicitly are used as they are at every size.
"""

from __future__ import annotations

import torch

from fundiff.engine.blur import filter2d, gaussian_blur, scale_kernel_size, scaled_blur
from fundiff.engine.registry import Registry
from fundiff.errors import FundiffError

REFERENCE_SIZE = 64


def _size(x: torch.Tensor, name: str) -> int:
    if not torch.is_tensor(x) or x.ndim < 3:
        raise FundiffError(f"{name} decomposition needs images (..., C, H, W)")
    return min(int(x.shape[-2]), int(x.shape[-1]))


def _given(value, default):
    return default if value is None else value


class Decomposition:
    """Linear components f_i with sum_i f_i(x) = x."""

    name = "decomposition"
    names: tuple[str, ...] = ()

    def components(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"<{self.name} decomposition {self.names}>"


class Hybrid(Decomposition):
    """Low and high spatial frequencies: [G * x, x - G * x]."""

    name = "hybrid"
    names = ("low", "high")
    study = (33, 2.0)

    def __init__(self, kernel_size: int | None = None, sigma: float | None = None) -> None:
        self.kernel_size, self.sigma = kernel_size, sigma

    def blur(self, size: int) -> tuple[int, float]:
        k, s = scaled_blur(size, *self.study, reference_size=REFERENCE_SIZE)
        return _given(self.kernel_size, k), _given(self.sigma, s)

    def components(self, x: torch.Tensor) -> list[torch.Tensor]:
        k, s = self.blur(_size(x, self.name))
        low = gaussian_blur(x, k, s)
        return [low, x - low]


class TripleHybrid(Decomposition):
    """Low, middle and high frequencies: m = G1 * x, l = G2 * m -> [l, m - l, x - m]."""

    name = "triple"
    names = ("low", "mid", "high")
    study = (1.0, 2.0, 25)

    def __init__(self, sigma1: float | None = None, sigma2: float | None = None,
                 kernel_size: int | None = None) -> None:
        self.sigma1, self.sigma2, self.kernel_size = sigma1, sigma2, kernel_size

    def blur(self, size: int) -> tuple[float, float, int]:
        s1, s2, k = self.study
        k_scaled, s1_scaled = scaled_blur(size, k, s1, REFERENCE_SIZE)
        s2_scaled = s2 * size / REFERENCE_SIZE
        return _given(self.sigma1, s1_scaled), _given(self.sigma2, s2_scaled), _given(self.kernel_size, k_scaled)

    def components(self, x: torch.Tensor) -> list[torch.Tensor]:
        s1, s2, k = self.blur(_size(x, self.name))
        mid = gaussian_blur(x, k, s1)
        high = x - mid
        low = gaussian_blur(mid, k, s2)
        return [low, mid - low, high]


class ColorHybrid(Decomposition):
    """Grey and colour: [g, x - g] with g = mean over the 3 channels, broadcast."""

    name = "color"
    names = ("grey", "colour")

    def components(self, x: torch.Tensor) -> list[torch.Tensor]:
        _size(x, self.name)
        if x.shape[-3] != 3:
            raise FundiffError(f"color decomposition needs 3 colour channels, got {x.shape[-3]}")
        grey = x.mean(dim=-3, keepdim=True).expand_as(x)
        return [grey, x - grey]


class MotionHybrid(Decomposition):
    """Motion blur and the rest: [K * x, x - K * x], K = I_k / k (45-degree diagonal box blur)."""

    name = "motion"
    names = ("motion", "residual")
    study = 7

    def __init__(self, kernel_size: int | None = None) -> None:
        if kernel_size is not None and (kernel_size < 1 or kernel_size % 2 == 0):
            raise FundiffError(f"motion blur kernel size must be a positive odd integer, got {kernel_size}")
        self.kernel_size = kernel_size

    def kernel(self, size: int) -> torch.Tensor:
        k = _given(self.kernel_size, None) or scale_kernel_size(self.study, size, REFERENCE_SIZE)
        return torch.eye(k) / k

    def components(self, x: torch.Tensor) -> list[torch.Tensor]:
        blurred = filter2d(x, self.kernel(_size(x, self.name)))
        return [blurred, x - blurred]


DECOMPOSITIONS: Registry[Decomposition] = Registry("decomposition", Hybrid, TripleHybrid, ColorHybrid, MotionHybrid)
decomposition_names = DECOMPOSITIONS.names


def get_decomposition(name: str, size: int, channels: int) -> Decomposition:
    """The named decomposition with the study's constants scaled to ``size`` px, checked for ``channels``."""
    DECOMPOSITIONS.lookup(name)
    if size < 1:
        raise FundiffError(f"image size must be positive, got {size}")
    if name == "color" and channels != 3:
        raise FundiffError(f"color decomposition needs 3 colour channels, got {channels}")
    if name == "hybrid":
        return Hybrid(*Hybrid().blur(size))
    if name == "triple":
        return TripleHybrid(*TripleHybrid().blur(size))
    if name == "motion":
        return MotionHybrid(scale_kernel_size(MotionHybrid.study, size, REFERENCE_SIZE))
    return ColorHybrid()

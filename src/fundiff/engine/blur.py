"""Gaussian blur, exactly as ``torchvision.transforms.functional.gaussian_blur`` (without torchvision).

Kernel: x_i = -(k-1)/2 + i for i = 0..k-1, w_i = exp(-x_i^2 / (2 sigma^2)) / sum_j exp(-x_j^2 / (2 sigma^2)).
Blur: pad every channel by k//2 on each side with *reflect* padding (mirror without repeating the
edge pixel: x[-1] = x[1]), then correlate separably, rows and then columns (the 2-D kernel is the
outer product w w^T, and it is symmetric, so correlation and convolution agree).

Reflect padding needs k//2 < side in torch; here it is done by indexing with the periodic reflection
i -> m = i mod 2(n-1), m if m < n else 2(n-1) - m (what ``numpy.pad(mode="reflect")`` does), which is
identical wherever torch accepts the padding and also defined for larger kernels.

``lowpass`` is the blur; ``highpass(x) = x - lowpass(x)``, so the two always add back to x.
``scaled_blur`` carries the study's 64-pixel constants (kernel 33, sigma 2) to other sizes:
sigma' = sigma * size / 64 and the kernel to the odd integer nearest k * size / 64 (ties upwards),
at least 3 and at most 2 * size - 1 (the largest kernel whose reflect padding fits torch's limit):
64 -> (33, 2.0), 256 -> (133, 8.0) (as visual_anagrams' 4k + 1), 28 -> (15, 0.875) (33 * 28/64 = 14.44).
"""

from __future__ import annotations

import math

import torch

from fundiff.errors import FundiffError


MAX_KERNEL = 1025   # over twice the largest image fundiff blurs (256 px); the padded image grows with the kernel


def _check_kernel(kernel_size: int, sigma: float | None = None) -> None:
    if (isinstance(kernel_size, bool) or int(kernel_size) != kernel_size or not 1 <= kernel_size <= MAX_KERNEL
            or kernel_size % 2 == 0):
        raise FundiffError(f"blur kernel size must be an odd whole number in 1..{MAX_KERNEL}, got {kernel_size}")
    if sigma is not None and not (math.isfinite(sigma) and sigma > 0):
        raise FundiffError(f"blur sigma must be positive, got {sigma}")


def gaussian_kernel1d(kernel_size: int, sigma: float, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> torch.Tensor:
    """The normalised 1-D Gaussian of ``kernel_size`` taps (torchvision's ``_get_gaussian_kernel1d``)."""
    _check_kernel(kernel_size, sigma)
    half = (kernel_size - 1) * 0.5
    x = torch.linspace(-half, half, steps=int(kernel_size), dtype=dtype, device=device)
    pdf = torch.exp(-0.5 * (x / sigma).pow(2))
    return pdf / pdf.sum()


def reflect_index(n: int, pad: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Indices into a length-``n`` axis for positions -pad .. n+pad-1 under (periodic) reflect padding."""
    i = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    m = i.remainder(period)
    return torch.where(m < n, m, period - m)


def _as_planes(x: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
    if not torch.is_tensor(x) or x.ndim < 2:
        raise FundiffError("blur needs an image tensor (..., H, W)")
    if not x.is_floating_point():
        raise FundiffError(f"blur needs a floating-point image, got {x.dtype}")
    shape = x.shape
    return x.reshape(-1, 1, shape[-2], shape[-1]), shape


def filter2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate every channel of ``x`` (..., H, W) with the odd-sized 2-D ``kernel``, reflect padding."""
    kh, kw = kernel.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise FundiffError(f"filter kernel must have odd sides, got {kh}x{kw}")
    planes, shape = _as_planes(x)
    h, w = shape[-2:]
    rows = reflect_index(h, kh // 2, planes.device)
    cols = reflect_index(w, kw // 2, planes.device)
    padded = planes.index_select(-2, rows).index_select(-1, cols)
    out = torch.nn.functional.conv2d(padded, kernel.to(planes)[None, None])
    return out.reshape(shape)


def gaussian_blur(x: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """Blur every channel of a float image (..., H, W) with a ``kernel_size`` Gaussian of std ``sigma``."""
    _check_kernel(kernel_size, sigma)
    planes, shape = _as_planes(x)
    h, w = shape[-2:]
    k = gaussian_kernel1d(int(kernel_size), float(sigma), dtype=planes.dtype, device=planes.device)
    pad = int(kernel_size) // 2
    rows = reflect_index(h, pad, planes.device)
    cols = reflect_index(w, pad, planes.device)
    out = torch.nn.functional.conv2d(planes.index_select(-1, cols), k.view(1, 1, 1, -1))
    out = torch.nn.functional.conv2d(out.index_select(-2, rows), k.view(1, 1, -1, 1))
    return out.reshape(shape)


def lowpass(x: torch.Tensor, kernel_size: int = 33, sigma: float = 2.0) -> torch.Tensor:
    """The Gaussian-blurred image G * x."""
    return gaussian_blur(x, kernel_size, sigma)


def highpass(x: torch.Tensor, kernel_size: int = 33, sigma: float = 2.0) -> torch.Tensor:
    """What the blur removes: x - G * x."""
    return x - lowpass(x, kernel_size, sigma)


def scale_kernel_size(kernel_size: int, size: int, reference_size: int = 64) -> int:
    """The odd integer nearest ``kernel_size * size / reference_size`` (ties up), in [3, 2 * size - 1]."""
    _check_kernel(kernel_size)
    if size < 1 or reference_size < 1:
        raise FundiffError(f"image size must be positive, got {size}")
    if size == reference_size:
        return int(kernel_size)
    target = kernel_size * size / reference_size
    k = 2 * math.floor((target - 1) / 2 + 0.5) + 1
    return max(1, min(max(k, 3), 2 * size - 1))


def scaled_blur(size: int, kernel_size: int = 33, sigma: float = 2.0,
                reference_size: int = 64) -> tuple[int, float]:
    """(kernel_size, sigma) for ``size`` pixels from constants tuned at ``reference_size`` pixels."""
    _check_kernel(kernel_size, sigma)
    return scale_kernel_size(kernel_size, size, reference_size), float(sigma) * size / reference_size

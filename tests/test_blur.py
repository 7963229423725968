import math

import numpy as np
import pytest
import torch

from fundiff.engine.blur import (filter2d, gaussian_blur, gaussian_kernel1d, highpass, lowpass,
                                 reflect_index, scale_kernel_size, scaled_blur)
from fundiff.errors import FundiffError


def test_kernel_values():
    k = gaussian_kernel1d(5, 1.0)
    x = np.arange(-2, 3, dtype=np.float64)
    ref = np.exp(-0.5 * x**2)
    ref /= ref.sum()
    np.testing.assert_allclose(k.numpy(), ref, rtol=1e-6)
    assert k.dtype == torch.float32 and abs(float(k.sum()) - 1) < 1e-6
    assert gaussian_kernel1d(1, 3.0).tolist() == [1.0]


def _slow_blur(img: np.ndarray, k: int, sigma: float) -> np.ndarray:
    """Independent reference: 2-D kernel, numpy reflect padding, explicit double loop."""
    x = np.arange(k) - (k - 1) / 2
    w1 = np.exp(-0.5 * (x / sigma) ** 2)
    w1 /= w1.sum()
    w2 = np.outer(w1, w1)
    p = k // 2
    padded = np.pad(img, p, mode="reflect")
    out = np.zeros_like(img)
    for i in range(img.shape[0]):
        for j in range(img.shape[1]):
            out[i, j] = (padded[i:i + k, j:j + k] * w2).sum()
    return out


@pytest.mark.parametrize("k,sigma,h,w", [(3, 0.7, 6, 7), (5, 1.3, 7, 5), (7, 2.0, 9, 9), (9, 2.5, 4, 6)])
def test_blur_matches_slow_reference(k, sigma, h, w):
    torch.manual_seed(0)
    x = torch.rand(2, 3, h, w, dtype=torch.float64)
    out = gaussian_blur(x, k, sigma)
    for n in range(2):
        for c in range(3):
            np.testing.assert_allclose(out[n, c].numpy(), _slow_blur(x[n, c].numpy(), k, sigma), atol=1e-12)


def test_blur_matches_torch_reflect_pad_where_it_applies():
    torch.manual_seed(1)
    x = torch.randn(1, 2, 12, 12)
    k, sigma = 9, 1.5
    w = gaussian_kernel1d(k, sigma)
    padded = torch.nn.functional.pad(x, [k // 2] * 4, mode="reflect")
    ref = torch.nn.functional.conv2d(padded, torch.outer(w, w).expand(2, 1, k, k).contiguous(), groups=2)
    torch.testing.assert_close(gaussian_blur(x, k, sigma), ref, atol=1e-6, rtol=0)


def test_reflect_index_extends_like_numpy():
    for n, pad in [(3, 7), (5, 2), (1, 3), (4, 9)]:
        ref = np.pad(np.arange(n), pad, mode="reflect")
        assert reflect_index(n, pad).tolist() == ref.tolist()


def test_constant_image_unchanged_and_bands_add_up():
    x = torch.full((1, 3, 10, 10), 0.37)
    torch.testing.assert_close(gaussian_blur(x, 33, 2.0), x)  # kernel larger than the image
    torch.testing.assert_close(highpass(x), torch.zeros_like(x), atol=1e-6, rtol=0)
    y = torch.randn(2, 3, 20, 20)
    torch.testing.assert_close(lowpass(y, 7, 1.0) + highpass(y, 7, 1.0), y, atol=1e-6, rtol=0)
    assert gaussian_blur(torch.randn(3, 8, 8), 3, 1.0).shape == (3, 8, 8)


def test_filter2d_identity_kernel():
    y = torch.randn(1, 2, 6, 6)
    k = torch.zeros(3, 3)
    k[1, 1] = 1
    torch.testing.assert_close(filter2d(y, k), y)


@pytest.mark.parametrize("k,sigma", [(4, 1.0), (0, 1.0), (-3, 1.0), (5, 0.0), (5, -1.0), (5, math.nan)])
def test_bad_parameters(k, sigma):
    with pytest.raises(FundiffError) as err:
        gaussian_blur(torch.zeros(1, 1, 8, 8), k, sigma)
    assert "\n" not in str(err.value)


def test_integer_image_rejected():
    with pytest.raises(FundiffError):
        gaussian_blur(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), 3, 1.0)


def test_scaled_blur():
    assert scaled_blur(64) == (33, 2.0)
    assert scaled_blur(256) == (133, 8.0)
    assert scaled_blur(28) == (15, 0.875)
    assert scaled_blur(128) == (67, 4.0)
    assert scaled_blur(2) == (3, 0.0625)  # minimum 3, and 3 <= 2 * 2 - 1
    assert scale_kernel_size(33, 1) == 1  # capped at 2 * size - 1
    assert scale_kernel_size(7, 256) == 29 and scale_kernel_size(25, 256) == 101

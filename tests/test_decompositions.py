import pytest
import torch

from fundiff.engine.blur import gaussian_blur
from fundiff.engine.decompositions import (ColorHybrid, Hybrid, MotionHybrid, TripleHybrid, decomposition_names,
                                           get_decomposition)
from fundiff.errors import FundiffError

CASES = [(name, size, c) for name in ("hybrid", "triple", "color", "motion") for size in (28, 64, 256)
         for c in ((3,) if name == "color" else (1, 3)) if not (size == 256 and c == 1)]


@pytest.mark.parametrize("name,size,c", CASES)
def test_components_add_up(name, size, c):
    torch.manual_seed(size)
    d = get_decomposition(name, size, c)
    x = torch.randn(2, c, size, size)
    parts = d.components(x)
    assert len(parts) == len(d.names) and all(p.shape == x.shape for p in parts)
    torch.testing.assert_close(sum(parts), x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["hybrid", "triple", "color", "motion"])
def test_linearity(name):
    torch.manual_seed(0)
    d = get_decomposition(name, 64, 3)
    x, y = torch.randn(2, 1, 3, 64, 64, dtype=torch.float64)
    a, b = 0.7, -1.9
    for lhs, fx, fy in zip(d.components(a * x + b * y), d.components(x), d.components(y)):
        torch.testing.assert_close(lhs, a * fx + b * fy, atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", ["hybrid", "triple", "motion"])
@pytest.mark.parametrize("size", [28, 64, 256])
def test_constant_image_is_all_low(name, size):
    x = torch.full((1, 3, size, size), -0.4)
    parts = get_decomposition(name, size, 3).components(x)
    torch.testing.assert_close(parts[0], x, atol=1e-6, rtol=0)
    for p in parts[1:]:
        torch.testing.assert_close(p, torch.zeros_like(x), atol=1e-6, rtol=0)


def test_scaled_constants():
    assert get_decomposition("hybrid", 64, 3).blur(64) == (33, 2.0)
    assert get_decomposition("hybrid", 256, 3).blur(256) == (133, 8.0)
    assert Hybrid().blur(28) == (15, 0.875)
    assert TripleHybrid().blur(64) == (1.0, 2.0, 25)
    assert TripleHybrid().blur(256) == (4.0, 8.0, 101)
    assert MotionHybrid().kernel(256).shape == (29, 29) and MotionHybrid().kernel(64).shape == (7, 7)
    assert Hybrid(5, 1.0).blur(256) == (5, 1.0)  # explicit constants are used as given


def test_hybrid_and_triple_formulas():
    x = torch.randn(1, 3, 64, 64)
    low, high = Hybrid().components(x)
    torch.testing.assert_close(low, gaussian_blur(x, 33, 2.0))
    lp, mp, hp = TripleHybrid().components(x)
    m = gaussian_blur(x, 25, 1.0)
    torch.testing.assert_close(lp, gaussian_blur(m, 25, 2.0))
    torch.testing.assert_close(hp, x - m)


def test_color_and_motion():
    x = torch.randn(2, 3, 16, 16)
    grey, colour = ColorHybrid().components(x)
    assert torch.allclose(grey[:, 0], grey[:, 2]) and torch.allclose(colour.sum(1), torch.zeros(2, 16, 16), atol=1e-6)
    # the motion blur averages along the main diagonal: a single dot becomes a diagonal streak
    dot = torch.zeros(1, 1, 15, 15)
    dot[..., 7, 7] = 1.0
    blurred, _ = MotionHybrid(5).components(dot)
    expected = torch.zeros(15, 15)
    for i in range(5, 10):
        expected[i, i] = 0.2
    torch.testing.assert_close(blurred[0, 0], expected)


def test_errors():
    assert decomposition_names() == ["hybrid", "triple", "color", "motion"]
    with pytest.raises(FundiffError, match="unknown decomposition 'blend'; known decompositions: hybrid, triple, color, motion"):
        get_decomposition("blend", 64, 3)
    with pytest.raises(FundiffError, match="needs 3 colour channels, got 1"):
        get_decomposition("color", 28, 1)
    with pytest.raises(FundiffError, match="needs 3 colour channels, got 1"):
        ColorHybrid().components(torch.zeros(1, 1, 8, 8))
    with pytest.raises(FundiffError, match="positive odd"):
        MotionHybrid(4)
    with pytest.raises(FundiffError, match="sigma must be positive"):
        Hybrid(5, -1.0).components(torch.zeros(1, 1, 8, 8))

"""Engine inputs: image and mask loading, bundled samples, rectangles, and their one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fundiff.engine import inputs
from fundiff.engine.inputs import (
    default_image,
    from_unit,
    load_image,
    load_mask,
    sample_names,
    sample_path,
    to_unit,
)
from fundiff.engine.masks import parse_rect, rect_mask
from fundiff.errors import DataError, FundiffError


def _pattern(width: int, height: int) -> np.ndarray:
    """A deterministic RGB uint8 (H, W, 3) pattern with distinct rows and columns."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 7) % 256, (y * 5) % 256, ((x + 2 * y) * 3) % 256], axis=-1).astype(np.uint8)


def _by_hand(im: Image.Image, new_size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    return np.asarray(im.resize(new_size, Image.BILINEAR, reducing_gap=None).crop(box), dtype=np.float32)


def _unit_hwc(x: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) in [-1, 1] -> (H, W, C) in 0..255."""
    return ((x[0] + 1) / 2 * 255).permute(1, 2, 0).numpy()


def _raises_one_line(exc_type, fn, *fragments):
    with pytest.raises(exc_type) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


# --------------------------------------------------------------------------------------------------
# Images


def test_rgb_and_grey_shapes_and_range():
    for channels in (3, 1):
        x = load_image("astronaut", 32, channels)
        assert x.shape == (1, channels, 32, 32) and x.dtype == torch.float32
        assert x.min() >= -1 and x.max() <= 1 and x.max() > x.min()


def test_non_square_resize_and_centre_crop_match_pil(tmp_path):
    # 200 x 100 -> shorter side 50 -> 100 x 50 -> crop columns 25..75.
    im = Image.fromarray(_pattern(200, 100))
    path = tmp_path / "wide.png"
    im.save(path)
    got = _unit_hwc(load_image(path, 50, 3))
    np.testing.assert_allclose(got, _by_hand(im, (100, 50), (25, 0, 75, 50)), atol=1e-3)
    # 150 wide: 75 x 50, crop left = round(12.5) = 12 (torchvision's rounding).
    im = Image.fromarray(_pattern(150, 100))
    got = _unit_hwc(load_image(im, 50, 3))
    np.testing.assert_allclose(got, _by_hand(im, (75, 50), (12, 0, 62, 50)), atol=1e-3)
    # tall: 60 x 130 -> 30 x int(65.0) = 65 -> crop top round(17.5) = 18.
    im = Image.fromarray(_pattern(60, 130))
    got = _unit_hwc(load_image(im, 30, 3))
    np.testing.assert_allclose(got, _by_hand(im, (30, 65), (0, 18, 30, 48)), atol=1e-3)
    # grey is PIL's "L" of the resized RGB
    grey = _unit_hwc(load_image(im, 30, 1))[..., 0]
    expected = np.asarray(im.resize((30, 65), Image.BILINEAR, reducing_gap=None).crop((0, 18, 30, 48)).convert("L"))
    np.testing.assert_allclose(grey, expected, atol=1e-3)


def test_thin_images_resample_only_the_kept_square():
    """Past MAX_ASPECT the crop's source box is resampled (bounded memory), within one level of resize-then-crop."""
    im = Image.fromarray(_pattern(700, 20))    # aspect 35: 28 -> 980 x 28, crop columns 476..504
    got = _unit_hwc(load_image(im, 28, 3))
    np.testing.assert_allclose(got, _by_hand(im, (980, 28), (476, 0, 504, 28)), atol=1.01)   # levels of 255


def test_a_million_pixel_line_loads_in_bounded_memory(tmp_path):
    """A 1 x 1,000,000 PNG (2 KB, 2% of the pixel limit) once resized to 28 x 28,000,000 before cropping: 2.3 GB.
    Under a 3 GB address-space limit (torch alone maps about 1 GB) it now loads in one small step."""
    import subprocess
    import sys

    Image.fromarray((np.arange(1_000_000) % 251).astype(np.uint8).reshape(1, -1)).save(tmp_path / "line.png")
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); "
            "from fundiff.engine.inputs import load_image; "
            f"x = load_image({str(tmp_path / 'line.png')!r}, 28, 3); print(tuple(x.shape))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "(1, 3, 28, 28)"


def test_rgba_composited_on_white_and_palette(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, 10:, 3] = 255  # left half transparent red, right half opaque red
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    x = to_unit(load_image(path, 20, 3))[0]
    assert torch.allclose(x[:, :, :10], torch.ones(3, 20, 10))
    assert torch.allclose(x[:, :, 10:], torch.tensor([1.0, 0, 0]).view(3, 1, 1).expand(3, 20, 10))
    # palette image (GIF) converted through its palette
    pal = Image.fromarray(_pattern(24, 24)).quantize(colors=16)
    gif = tmp_path / "pal.gif"
    pal.save(gif)
    got = _unit_hwc(load_image(gif, 24, 3))
    np.testing.assert_allclose(got, np.asarray(pal.convert("RGB"), np.float32), atol=1e-3)


def test_array_and_tensor_inputs():
    hwc = _pattern(16, 16)
    a = load_image(hwc, 16, 3)
    np.testing.assert_allclose(_unit_hwc(a), hwc.astype(np.float32), atol=1e-3)
    chw = torch.from_numpy(hwc).permute(2, 0, 1).float() / 255
    for source in (chw, chw[None], chw.numpy()):
        assert torch.allclose(load_image(source, 16, 3), a, atol=1e-5)
    # float at another size goes through the same geometry
    assert torch.allclose(load_image(chw, 8, 3), load_image(hwc, 8, 3), atol=2 / 255)
    grey = load_image(torch.rand(28, 28), 28, 1)
    assert grey.shape == (1, 1, 28, 28)
    assert load_image(np.zeros((9, 9), np.uint8), 9, 3).shape == (1, 3, 9, 9)
    rgba = np.full((8, 8, 4), 255, np.uint8)
    rgba[..., 3] = 0
    assert torch.allclose(load_image(rgba, 8, 3), torch.ones(1, 3, 8, 8))
    _raises_one_line(FundiffError, lambda: load_image(torch.rand(2, 10, 10), 8, 3), "got 2")
    _raises_one_line(FundiffError, lambda: load_image(np.zeros((10, 10, 2), np.uint8), 8, 3), "got 2")
    _raises_one_line(FundiffError, lambda: load_image(torch.rand(4, 10, 10), 8, 3), "got 4")
    _raises_one_line(FundiffError, lambda: load_image(torch.rand(3, 10, 10) * 2 - 1, 8, 3), "to_unit")


def test_npz_round_trip_and_index(tmp_path):
    from fundiff.images import save_npz

    images = torch.rand(3, 1, 28, 28)
    path = tmp_path / "gen.npz"
    save_npz(path, images, labels=[0, 1, 2])
    first = load_image(path, 28, 1)
    assert torch.allclose(to_unit(first)[0], images[0], atol=1e-6)
    assert torch.allclose(to_unit(load_image(f"{path}:2", 28, 1))[0], images[2], atol=1e-6)
    _raises_one_line(FundiffError, lambda: load_image(f"{path}:3", 28, 1), "index 3", "3 images", str(path))
    _raises_one_line(FundiffError, lambda: load_image(f"{path}:x", 28, 1), "PATH.npz:K")
    np.savez(tmp_path / "hw.npz", images=np.random.rand(2, 10, 12).astype(np.float32))
    assert load_image(f"{tmp_path / 'hw.npz'}:1", 10, 3).shape == (1, 3, 10, 10)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    _raises_one_line(FundiffError, lambda: load_image(tmp_path / "other.npz", 8, 3), "'images'")


def test_mnist_test_digit(mnist_or_skip):
    x = load_image("mnist-test:0", 28, 1)
    assert torch.allclose(to_unit(x)[0, 0] * 255, mnist_or_skip.test_images[0].float(), atol=1e-3)
    _raises_one_line(FundiffError, lambda: load_image("mnist-test:10000", 28, 1), "10000", "0..9999")


@pytest.fixture
def mnist_or_skip():
    from fundiff.data import load_mnist

    try:
        return load_mnist()
    except DataError as exc:
        pytest.skip(f"MNIST not available: {exc}")


# --------------------------------------------------------------------------------------------------
# Samples


def test_samples_load_and_are_sorted():
    names = sample_names()
    assert names == sorted(names)
    assert {"astronaut", "chelsea", "coffee", "rocket", "sketch-house"} <= set(names)
    assert {f"digit-{k}" for k in range(10)} <= set(names)
    assert "README" not in names
    total = 0
    for name in names:
        path = sample_path(name)
        assert path.is_file()
        total += path.stat().st_size
        assert load_image(name, 64, 3).shape == (1, 3, 64, 64)
        assert load_image(name, 28, 1).shape == (1, 1, 28, 28)
    assert total < 260_000
    for channels in (1, 3):
        assert default_image(channels) in names
        assert load_image(default_image(channels), 16, channels).shape == (1, channels, 16, 16)
    assert (sample_path("astronaut").parent / "README.md").is_file()


def test_digit_samples_are_the_first_mnist_test_digits(mnist_or_skip):
    for k in range(10):
        idx = int((mnist_or_skip.test_labels == k).nonzero()[0])
        png = np.asarray(Image.open(sample_path(f"digit-{k}")))
        assert png.shape == (28, 28) and png.dtype == np.uint8
        assert np.array_equal(png, mnist_or_skip.test_images[idx].numpy()), k


# --------------------------------------------------------------------------------------------------
# Masks


def test_load_mask_binary_invert_and_geometry(tmp_path):
    arr = np.zeros((60, 90), np.uint8)  # non-square, black
    arr[10:35, 50:75] = 255  # a white square right of centre
    path = tmp_path / "mask.png"
    Image.fromarray(arr).save(path)
    mask = load_mask(path, 32)
    assert mask.shape == (1, 1, 32, 32) and mask.dtype == torch.float32
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    image = to_unit(load_image(path, 32, 1))
    assert torch.equal(mask, (image >= 0.5).float())
    assert torch.equal(load_mask(path, 32, invert=True), 1 - mask)
    # transparency counts as black (keep); all-zero masks come back as they are
    clear = np.zeros((8, 8, 4), np.uint8)
    clear[..., :3] = 255
    assert load_mask(clear, 8).sum() == 0
    assert torch.equal(load_mask(torch.ones(3, 5, 5), 5), torch.ones(1, 1, 5, 5))


def test_rect_mask_campanile_and_scaling():
    m64 = rect_mask(64, (2, 20), (24, 42))
    expected = torch.zeros(1, 1, 64, 64)
    expected[:, :, 2:20, 24:42] = 1
    assert torch.equal(m64, expected)
    m256 = rect_mask(256, (2, 20), (24, 42), reference_size=64)
    assert torch.equal(m256, torch.nn.functional.interpolate(m64, size=256, mode="nearest"))
    m28 = rect_mask(28, (2, 20), (24, 42), reference_size=64)
    rows = m28[0, 0].any(1).nonzero().flatten()
    cols = m28[0, 0].any(0).nonzero().flatten()
    assert rows[0] <= 2 * 28 / 64 and rows[-1] + 1 >= 20 * 28 / 64
    assert cols[0] <= 24 * 28 / 64 and cols[-1] + 1 >= 42 * 28 / 64
    assert (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) == (0, 9, 10, 19)
    _raises_one_line(FundiffError, lambda: rect_mask(64, (20, 2), (24, 42)), "empty", "20:2")
    _raises_one_line(FundiffError, lambda: rect_mask(64, (2, 20), (24, 70)), "24:70", "64x64")
    _raises_one_line(FundiffError, lambda: rect_mask(64, (2, 20), (24, 24)), "empty")


def test_parse_rect():
    assert parse_rect("2:20,24:42") == ((2, 20), (24, 42))
    assert parse_rect(" 0 : 5 , 1:3 ") == ((0, 5), (1, 3))
    for bad in ("2:20", "2-20,24-42", "a:b,c:d", "2:20,24:42,1:2", "-1:3,0:4", ""):
        _raises_one_line(FundiffError, lambda bad=bad: parse_rect(bad), "ROW0:ROW1,COL0:COL1", "2:20,24:42")


def test_unit_helpers():
    x = torch.tensor([-1.5, -1.0, 0.0, 1.0, 1.5])
    assert torch.equal(to_unit(x), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    assert torch.equal(from_unit(torch.tensor([0.0, 0.5, 1.0])), torch.tensor([-1.0, 0.0, 1.0]))


# --------------------------------------------------------------------------------------------------
# Errors


def test_error_paths_are_one_line(tmp_path):
    missing = tmp_path / "nope.png"
    _raises_one_line(FundiffError, lambda: load_image(str(missing), 8, 3), "no such image file", str(missing), "astronaut")
    _raises_one_line(FundiffError, lambda: load_image(missing, 8, 3), str(missing))
    _raises_one_line(FundiffError, lambda: load_image("astronot", 8, 3), "astronot", "astronaut", "digit-0")
    _raises_one_line(FundiffError, lambda: load_image(tmp_path, 8, 3), str(tmp_path), "folder")
    text = tmp_path / "notes.png"
    text.write_text("not an image\n")
    _raises_one_line(FundiffError, lambda: load_image(text, 8, 3), str(text), "not an image PIL can read")
    truncated = tmp_path / "cut.png"
    Image.fromarray(_pattern(64, 64)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    _raises_one_line(FundiffError, lambda: load_image(truncated, 8, 3), str(truncated))
    _raises_one_line(FundiffError, lambda: load_image("astronaut", 0, 3), "size", "0")
    _raises_one_line(FundiffError, lambda: load_mask("astronaut", -4), "size", "-4")
    _raises_one_line(FundiffError, lambda: load_image("astronaut", 8, 2), "channels", "2")
    _raises_one_line(FundiffError, lambda: sample_path("nothing"), "nothing", "astronaut")
    _raises_one_line(FundiffError, lambda: load_image(12, 8, 3), "int")
    _raises_one_line(FundiffError, lambda: default_image(2), "2")
    bad_npz = tmp_path / "bad.npz"
    bad_npz.write_bytes(b"nonsense")
    _raises_one_line(FundiffError, lambda: load_image(bad_npz, 8, 3), str(bad_npz))
    assert inputs.DEFAULT_IMAGES[3] == default_image(3)


def test_hand_drawn_digits_read_as_their_digit():
    """The bundled hand-drawn digits (scripts/draw_hand_digits.py) are the digits they are named after: the
    shipped classifier reads each at 28 px, as Part A's SDEdit and inpainting rows feed them."""
    import torch

    from fundiff.metrics import classifier_predictions

    names = [n for n in sample_names() if n.startswith("hand-")]
    assert len(names) >= 2
    x = torch.cat([load_image(n, 28, 1) for n in names])
    labels, confidence = classifier_predictions(x)
    assert [int(v) for v in labels] == [int(n.split("-")[1]) for n in names]
    assert confidence.max(dim=1).values.min() > 0.9

import pytest
import torch
from PIL import Image

from fundiff.engine.animation import (ease_in_out, permutation_frame, rotation_frame, save_animation, splat,
                                      view_frames)
from fundiff.engine.views import PermuteView, get_view
from fundiff.errors import FundiffError

SPECS = ["identity", "flip", "rotate_cw", "rotate_ccw", "rotate_180", "negate", "skew", "patch_permute",
         "pixel_permute", "jigsaw", "inner_circle"]


def _image(c=3, n=32):
    torch.manual_seed(c + n)
    return torch.rand(c, n, n)


@pytest.mark.parametrize("spec", SPECS + ["permute8"])
def test_frames_start_at_image_and_end_at_view(spec):
    v = PermuteView(torch.randperm(64, generator=torch.Generator().manual_seed(1))) if spec == "permute8" \
        else get_view(spec)
    img = _image()
    frames = view_frames(img, v, num_frames=6)
    assert len(frames) == 6 and all(f.shape == img.shape for f in frames)
    target = v.display_view(img)
    assert torch.equal(frames[0], img)
    assert (frames[-1] - target).abs().max() <= 1 / 255
    # moving frames are continuous at the end: just before t = 1 the frame is nearly the view
    near = v.frame(img, 1 - 1e-6)
    assert (near - target).abs().max() < 1e-2
    assert all(float(f.min()) >= -1e-6 and float(f.max()) <= 1 + 1e-6 for f in frames)


def test_mnist_sized_frames():
    img = _image(1, 28)
    for spec in ["jigsaw", "skew", "pixel_permute", "rotate_cw"]:
        v = get_view(spec)
        frames = view_frames(img, v, num_frames=3)
        assert torch.equal(frames[0], img) and (frames[-1] - v.display_view(img)).abs().max() <= 1 / 255


def test_helpers():
    assert ease_in_out(0) == 0 and ease_in_out(1) == 1 and ease_in_out(0.5) == pytest.approx(0.5)
    img = _image(1, 16)
    assert torch.equal(rotation_frame(img, 90), torch.rot90(img, 1, dims=(-2, -1)))
    assert (rotation_frame(img, 89.999) - torch.rot90(img, 1, dims=(-2, -1))).abs().max() < 1e-3
    p = torch.randperm(256)
    assert torch.equal(permutation_frame(img, p, 1.0).flatten(-2), img.flatten(-2)[..., p])
    # splatting at the pixel grid is the identity; half-way between pixels spreads the value
    ys, xs = torch.arange(256) // 16, torch.arange(256) % 16
    torch.testing.assert_close(splat(img, ys.double(), xs.double()), img)
    with pytest.raises(FundiffError, match=r"2\.\.240 frames"):
        view_frames(img, get_view("flip"), num_frames=1)


@pytest.mark.parametrize("boomerang", [True, False])
def test_gif_written(tmp_path, boomerang):
    img = _image(1, 28)
    frames = view_frames(img, get_view("rotate_cw"), num_frames=5)
    path = save_animation(frames, tmp_path / "anim.gif", hold_frames=3, boomerang=boomerang, fps=20)
    assert path.exists() and not list(tmp_path.glob(".tmp-*"))
    with Image.open(path) as gif:
        assert gif.n_frames == (8 if boomerang else 5)
        assert gif.size == (280, 280)  # 28 px enlarged 10x to at least 256
        assert gif.info["duration"] == 200  # first frame held for 1 + 3 frame times of 50 ms


def test_gif_rgb_256(tmp_path):
    img = _image(3, 64)
    frames = view_frames(img, get_view("jigsaw"), num_frames=4)
    with Image.open(save_animation(frames, tmp_path / "j.gif")) as gif:
        assert gif.n_frames == 6 and gif.size == (256, 256)


def test_mp4_needs_imageio(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)     # as if the optional extra were not installed
    with pytest.raises(FundiffError, match=r"pip install 'fundiff\[video\]'"):
        save_animation([_image(1, 8)] * 2, tmp_path / "a.mp4")
    assert list(tmp_path.iterdir()) == []


def test_mp4_animation_has_every_frame(tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    frames = view_frames(_image(3, 64), get_view("flip"), num_frames=6)
    path = save_animation(frames, tmp_path / "a.mp4", hold_frames=2)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    assert meta["size"] == (256, 256) and meta["fps"] == 24
    assert sum(1 for _ in reader) == 6 + 2 * 2 + 4                 # 6 frames, each end held 2 more, then back (4)
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp4"]       # no temp file left

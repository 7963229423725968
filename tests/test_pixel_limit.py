"""fundiff.engine.pixel_limit and npz_source: images over the pixel cap are refused before decoding; .npz images
are read one at a time."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from fundiff.engine.inputs import load_image, load_mask
from fundiff.engine.npz_source import npz_image
from fundiff.engine.pixel_limit import MAX_IMAGE_PIXELS, pixel_limit
from fundiff.errors import FundiffError
from fundiff.images import streamed_npz
from helpers import assert_one_line_error, write_png_bomb


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """97 KB on disk, 100 megapixels decoded: over fundiff's cap, under PIL's own hard limit (179 M)."""
    return write_png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png", 10_000, 10_000)


def test_a_bomb_is_refused_from_its_header_within_a_second(bomb, monkeypatch):
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("the bomb was decoded"))
    for load in (lambda: load_image(bomb, 64), lambda: load_mask(bomb, 64)):
        start = time.monotonic()
        with pytest.raises(FundiffError, match=r"has 100,000,000 pixels \(10000 x 10000\), over the limit of 50,000,000"):
            load()
        assert time.monotonic() - start < 1.0
    assert MAX_IMAGE_PIXELS == 50_000_000


@pytest.mark.slow
def test_the_cli_refuses_a_bomb_in_one_line_with_bounded_memory(bomb, tmp_path):
    """Peak memory of the refused run equals that of a run refused for a missing file: nothing was decoded."""
    def peak_kb(*args):
        code = ("import resource, subprocess, sys; p = subprocess.run([sys.executable, '-m', 'fundiff', *sys.argv[1:]], "
                "capture_output=True, text=True); print(p.returncode); print(p.stderr.strip()); "
                "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                             timeout=120).stdout.splitlines()
        return int(out[0]), out[1:-1], int(out[-1])

    rc, err, bomb_kb = peak_kb("edit", "--image", bomb, "--out", tmp_path / "o")
    assert rc == 2 and len(err) == 1 and "over the limit of 50,000,000 (--max-image-pixels N raises it)" in err[0], err
    _, _, missing_kb = peak_kb("edit", "--image", tmp_path / "missing.png", "--out", tmp_path / "o")
    assert bomb_kb < missing_kb + 30_000                     # within 30 MB (decoding would add 100-400 MB)
    assert not (tmp_path / "o").exists()


def test_the_limit_can_be_raised_and_lowered(tmp_path):
    big = tmp_path / "big.png"
    Image.new("L", (2000, 1000), 255).save(big)
    with pixel_limit(1_000_000):
        with pytest.raises(FundiffError, match=r"2,000,000 pixels \(2000 x 1000\), over the limit of 1,000,000"):
            load_image(big, 28, 1)
        with pytest.raises(FundiffError, match="the array has 2,000,000 pixels"):
            load_image(np.zeros((1000, 2000), np.uint8), 28, 1)
        with pytest.raises(FundiffError, match="the image has 2,000,000 pixels"):
            load_image(Image.new("RGB", (2000, 1000)), 28)
    with pixel_limit(2_000_000):
        assert load_image(big, 28, 1).shape == (1, 1, 28, 28)
    with pytest.raises(FundiffError, match="whole number >= 1"):
        with pixel_limit(0):
            pass


def test_cli_flag_raises_the_limit(cli, tmp_path):
    big = tmp_path / "big.png"
    Image.new("L", (3000, 3000), 0).save(big)
    proc = cli("forward", "--image", big, "--max-image-pixels", "1000000", "--out", tmp_path / "f")
    assert_one_line_error(proc, "big.png has 9,000,000 pixels (3000 x 3000), over the limit of 1,000,000")
    assert not (tmp_path / "f").exists()


def test_npz_images_are_read_one_at_a_time(tmp_path, monkeypatch):
    path = tmp_path / "many.npz"
    with streamed_npz(path, (300, 1, 28, 28)) as npz:
        for k in range(3):
            npz.add(torch.full((100, 1, 28, 28), k / 4))
        npz.finish(labels=list(range(300)))
    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", lambda self, key: pytest.fail("loaded the archive"))
    assert npz_image(path, 250).shape == (1, 28, 28) and float(npz_image(path, 250).max()) == 0.5
    assert load_image(f"{path}:150", 28, 1).shape == (1, 1, 28, 28)
    with pytest.raises(FundiffError, match=r"image index 300 out of range .* it holds 300 images \(0..299\)"):
        npz_image(path, 300)


def test_npz_with_objects_or_a_huge_image_is_refused(tmp_path):
    objects = tmp_path / "objects.npz"
    np.savez(objects, images=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(FundiffError, match="holds Python objects"):
        npz_image(objects, 0)
    import zipfile

    huge = tmp_path / "huge.npz"   # the header claims one 10000 x 10000 image, the pixels are not there at all
    with zipfile.ZipFile(huge, "w") as zf:
        with zf.open("images.npy", "w") as fh:
            header = {"descr": "<f4", "fortran_order": False, "shape": (1, 1, 10_000, 10_000)}
            np.lib.format.write_array_header_2_0(fh, header)
    with pytest.raises(FundiffError, match="image 0 of .*huge.npz has 100,000,000 pixels"):
        npz_image(huge, 0)

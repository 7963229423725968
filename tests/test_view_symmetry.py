"""bench/view_symmetry.py on the real MNIST test set: the flip is a vertical mirror (5 reads 2, 3 reads 3), not the
180-degree turn (6 reads 9), which is why the hard flip pairs are the ones they are (docs/illusions.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def readings():
    sys.path.insert(0, str(ROOT / "bench"))
    from view_symmetry import read_under

    from fundiff.classifier import load_classifier
    from fundiff.data.mnist import load_mnist

    mnist = load_mnist()
    images = mnist.test_images.float().div(255).unsqueeze(1)
    return {view: read_under(view, images, mnist.test_labels, load_classifier()) for view in ("flip", "rotate_180")}


def test_the_flip_is_a_mirror(readings):
    flip = readings["flip"]
    assert sum(d["n"] for d in flip.values()) == 10_000
    for digit, image in [("0", "0"), ("1", "1"), ("3", "3"), ("8", "8"), ("5", "2")]:
        assert flip[digit]["image"] == image and flip[digit]["image_share"] > 0.9
    assert flip["2"]["image"] == "5" and flip["2"]["image_share"] > 0.6
    assert flip["6"]["reads_as"].get("9", 0) < 0.1   # upside down by a mirror, a 6 is not a 9
    for d in flip.values():
        assert abs(sum(d["reads_as"].values()) - 1) < 1e-3
        assert list(d["reads_as"].values()) == sorted(d["reads_as"].values(), reverse=True)


def test_the_turn_maps_6_and_9(readings):
    turn = readings["rotate_180"]
    assert turn["6"]["image"] == "9" and turn["9"]["image"] == "6"
    assert min(turn["6"]["image_share"], turn["9"]["image_share"]) > 0.8
    assert turn["3"]["image"] != "3" and turn["5"]["image"] != "2"

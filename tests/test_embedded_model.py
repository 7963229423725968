"""The embedded MNIST flow model: works offline from a fresh install, and is as good as its record says."""

import json
from importlib import resources

import numpy as np
import torch

from fundiff.generate import embedded_model_path, generate, load_generator
from fundiff.metrics import class_accuracy


def test_embedded_model_is_shipped_small_and_recorded():
    path = embedded_model_path()
    assert path.is_file()
    assert path.stat().st_size < 5 * 1024 * 1024
    record = json.loads((resources.files("fundiff") / "assets" / "mnist_flow.json").read_text())
    assert record["command"].startswith("fundiff train flow")
    assert record["quality"]["accuracy_at_gamma5"] >= 0.995
    assert record["quality"]["best_fid"]["fid_over_floor"] <= 3.0


def test_embedded_model_draws_the_digit_it_is_asked_for():
    gen = load_generator("mnist")
    assert gen.is_flow and gen.is_class_conditional
    labels = torch.arange(10).repeat_interleave(5)
    images, _ = generate(gen, labels, generator=torch.Generator().manual_seed(0))
    assert images.shape == (50, 1, 28, 28)
    assert class_accuracy(images, labels) >= 0.96


def test_sample_mnist_seven_from_the_cli(cli, tmp_path):
    proc = cli("sample", "--model", "mnist", "--prompt", "7", "--num-images", "3", "--out", tmp_path / "s.png",
               "--save-array", tmp_path / "s.npz", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    d = np.load(tmp_path / "s.npz")
    assert d["labels"].tolist() == [7, 7, 7]
    from fundiff.metrics import classifier_predictions

    preds, _ = classifier_predictions(torch.from_numpy(d["images"]))
    assert preds.tolist() == [7, 7, 7]

"""The metrics' MNIST classifier (shipped weights, training) and the metrics built on it."""

import json

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from fundiff.classifier import SHIPPED_CLASSIFIER, load_classifier
from fundiff.classifier_training import CLASSIFIER_DEFAULTS, train_classifier
from fundiff.data import to_float
from fundiff.metrics import (
    class_accuracy,
    classifier_features,
    classifier_fid,
    classifier_predictions,
    frechet_distance,
    real_data_floor,
)
from fundiff.nn import MODEL_KINDS, MnistClassifier
from fundiff.objectives import ClassifyObjective
from fundiff.training import rng, save_model
from fundiff.training.rng import BatchRandom
from fundiff.errors import CheckpointError


# --------------------------------------------------------------------------------------------------
# Frechet distance against independent computations


def _features_with_exact_moments(mu, var, n, seed):
    """n samples whose sample mean is exactly mu and sample covariance exactly diag(var)."""
    g = np.random.default_rng(seed)
    f = len(mu)
    a = g.standard_normal((n, f))
    a = np.column_stack([np.ones(n), a])
    q, _ = np.linalg.qr(a)  # orthonormal columns; columns 1.. are orthogonal to the ones vector
    q = q[:, 1:]
    return mu + q * np.sqrt((n - 1) * var)


def test_frechet_distance_matches_diagonal_closed_form():
    g = np.random.default_rng(0)
    f = 6
    mu_a, mu_b = g.normal(size=f), g.normal(size=f)
    var_a, var_b = g.uniform(0.1, 3, size=f), g.uniform(0.1, 3, size=f)
    feats_a = _features_with_exact_moments(mu_a, var_a, 50, 1)
    feats_b = _features_with_exact_moments(mu_b, var_b, 80, 2)
    np.testing.assert_allclose(np.cov(feats_a, rowvar=False), np.diag(var_a), atol=1e-10)
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    assert frechet_distance(feats_a, feats_b) == pytest.approx(expected, rel=1e-9)
    # torch input gives the same number
    assert frechet_distance(torch.from_numpy(feats_a), torch.from_numpy(feats_b)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_matches_brute_force_full_covariance():
    g = np.random.default_rng(3)
    f = 10
    mix_a, mix_b = g.normal(size=(f, f)), g.normal(size=(f, f))
    feats_a = g.normal(size=(400, f)) @ mix_a + g.normal(size=f)
    feats_b = g.normal(size=(300, f)) @ mix_b + 0.5 * g.normal(size=f)
    mu_a, mu_b = feats_a.mean(0), feats_b.mean(0)
    s_a, s_b = np.cov(feats_a, rowvar=False), np.cov(feats_b, rowvar=False)
    # Tr((S_a S_b)^{1/2}) from the (real, non-negative) eigenvalues of the non-symmetric product
    eig = np.linalg.eigvals(s_a @ s_b)
    tr_covmean = np.sqrt(np.clip(eig.real, 0, None)).sum()
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * tr_covmean
    got = frechet_distance(feats_a, feats_b)
    assert got == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(feats_b, feats_a) == pytest.approx(got, rel=1e-10)  # symmetric


def test_frechet_distance_of_a_set_with_itself_is_zero_also_when_rank_deficient():
    g = np.random.default_rng(4)
    feats = g.normal(size=(300, 8)) @ g.normal(size=(8, 8)) * 3
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-8)
    # rank-deficient covariance (fewer samples than features, dead units): still ~0 and finite
    few = np.column_stack([g.normal(size=(20, 30)), np.zeros((20, 5))])
    assert frechet_distance(few, few) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        frechet_distance(feats[:1], feats)
    with pytest.raises(ValueError):
        frechet_distance(feats, feats[:, :4])


# --------------------------------------------------------------------------------------------------
# The shipped classifier and the metrics on real data


def test_shipped_classifier_loads_and_is_accurate(mnist):
    assert SHIPPED_CLASSIFIER.is_file()
    model = load_classifier()
    assert load_classifier() is model  # cached
    assert isinstance(model, MnistClassifier)
    assert model.config()["kind"] == "mnist-classifier" and MODEL_KINDS["mnist-classifier"] is MnistClassifier
    assert not model.training
    n_weights = sum(p.numel() for p in model.parameters())
    assert n_weights * 4 < 1_000_000
    images, labels = to_float(mnist.test_images[:2000]), mnist.test_labels[:2000]
    preds, probs = classifier_predictions(images)
    assert preds.dtype == torch.int64 and preds.shape == (2000,) and probs.shape == (2000, 10)
    torch.testing.assert_close(probs.sum(1), torch.ones(2000))
    assert class_accuracy(images, labels) >= 0.99
    # uint8 input is accepted and gives the same predictions
    assert torch.equal(classifier_predictions(mnist.test_images[:200])[0], preds[:200])
    feats = classifier_features(images[:100])
    assert feats.dtype == torch.float64 and feats.shape == (100, 128)


def test_shuffled_labels_give_chance_accuracy(mnist):
    images, labels = mnist.test_images[:2000], mnist.test_labels[:2000]
    shuffled = labels[torch.randperm(2000, generator=torch.Generator().manual_seed(0))]
    assert 0.07 < class_accuracy(images, shuffled) < 0.13
    assert class_accuracy(images[:100][labels[:100] == 7], 7) > 0.9  # one int label for all


def _shift(images: torch.Tensor, pixels: int) -> torch.Tensor:
    """Move the digits right and down by ``pixels`` (zero fill)."""
    return F.pad(images, (pixels, 0, pixels, 0))[:, :, :28, :28]


@pytest.mark.slow
def test_real_data_floor_is_below_clearly_wrong_images(mnist):
    n = 500
    floor = real_data_floor(mnist, n)
    assert floor > 0
    assert real_data_floor(mnist, n) == pytest.approx(floor, rel=1e-9)  # seeded
    test = to_float(mnist.test_images[:n])
    shifted = classifier_fid(_shift(test, 6), mnist)
    blurred = classifier_fid(F.avg_pool2d(test, 5, stride=1, padding=2), mnist)
    noise = classifier_fid(torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)), mnist)
    assert 3 * floor < min(shifted, blurred, noise), (floor, shifted, blurred, noise)


# --------------------------------------------------------------------------------------------------
# Training


def test_train_classifier_tiny_run_writes_record_and_loadable_model(mnist, tmp_path):
    import dataclasses

    config = dataclasses.replace(CLASSIFIER_DEFAULTS, num_train=256, epochs=1, progress=False, checkpoint_interval=0)
    record = train_classifier(tmp_path, config, mnist)
    saved = json.loads((tmp_path / "classifier.json").read_text())
    assert saved["test_accuracy"] == record["test_accuracy"]
    assert saved["test_images"] == 10000
    assert saved["command"] == f"fundiff train classifier --out {tmp_path} --epochs 1 --num-train 256"
    assert saved["train_seconds"] > 0 and saved["torch"] == torch.__version__
    model = load_classifier(tmp_path / "model.safetensors")
    assert isinstance(model, MnistClassifier)
    # the record's accuracy is the loaded model's, counted by hand on all 10 000 test images
    with torch.no_grad():
        x = mnist.test_images.unsqueeze(1).float() / 255
        by_hand = float((torch.cat([model(x[k:k + 1000]).argmax(1) for k in range(0, 10000, 1000)])
                         == mnist.test_labels).double().mean())
    assert record["test_accuracy"] == pytest.approx(by_hand, abs=1e-4)
    assert class_accuracy(mnist.test_images, mnist.test_labels, classifier=model) == pytest.approx(by_hand, abs=1e-4)


def test_load_classifier_refuses_other_model_kinds(tmp_path):
    from fundiff.nn import UnconditionalUNet

    path = save_model(tmp_path / "unet.safetensors", UnconditionalUNet(1, 4))
    with pytest.raises(CheckpointError, match="mnist-classifier"):
        load_classifier(path)


def test_classify_objective_augmentation_is_deterministic(mnist):
    objective = ClassifyObjective()
    x = to_float(mnist.train_images[:64])
    a = objective.augment(x, BatchRandom(rng.generator(0, 1, 2)))
    b = objective.augment(x, BatchRandom(rng.generator(0, 1, 2)))
    c = objective.augment(x, BatchRandom(rng.generator(0, 1, 3)))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, x)
    # every image is an exact translate (zero fill) of its original by at most 2 px, and the shifts vary
    def translate(img, dy, dx):
        out = torch.roll(img, (dy, dx), dims=(1, 2))
        if dy > 0:
            out[:, :dy] = 0
        elif dy < 0:
            out[:, dy:] = 0
        if dx > 0:
            out[:, :, :dx] = 0
        elif dx < 0:
            out[:, :, dx:] = 0
        return out

    found = set()
    for k in range(16):
        offsets = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if torch.equal(a[k], translate(x[k], dy, dx))]
        assert offsets, k
        found.add(offsets[0])
    assert len(found) > 3
    assert torch.equal(ClassifyObjective(max_shift=0).augment(x, None), x)
    model = MnistClassifier()
    loss = objective.loss(model, x, mnist.train_labels[:64], BatchRandom(rng.generator(0, 0, 0)))
    assert loss.shape == () and torch.isfinite(loss)

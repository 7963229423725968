"""fundiff.classifier and classifier_training: the shipped MNIST classifier, its training and loading."""

from __future__ import annotations

import json

import pytest
import torch

from fundiff.classifier import SHIPPED_CLASSIFIER, load_classifier
from fundiff.classifier_training import CLASSIFIER_DEFAULTS, train_classifier
from fundiff.data import to_float
from fundiff.errors import CheckpointError
from fundiff.metrics import (
    class_accuracy,
    classifier_features,
    classifier_predictions,
)
from fundiff.nn import MODEL_KINDS, MnistClassifier
from fundiff.training import save_model


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_train_noisy_classifier_tiny_run_records_accuracy_by_t_and_loads(mnist, tmp_path):
    """``fundiff train noisy-classifier``'s function: the shared trainer, a record with accuracy at each t."""
    import dataclasses

    from fundiff.classifier_training import NOISY_ACCURACY_TIMESTEPS, NOISY_CLASSIFIER_DEFAULTS, train_noisy_classifier
    from fundiff.nn import NoisyMnistClassifier
    from fundiff.training import load_model

    config = dataclasses.replace(NOISY_CLASSIFIER_DEFAULTS, num_train=1024, epochs=2, warmup_steps=0, progress=False,
                                 checkpoint_interval=0)
    small = dataclasses.replace(mnist, test_images=mnist.test_images[:2000], test_labels=mnist.test_labels[:2000])
    record = train_noisy_classifier(tmp_path, config, small)   # accuracy by t on 2000 test images, to keep it quick
    saved = json.loads((tmp_path / "classifier.json").read_text())
    assert saved["command"] == (f"fundiff train noisy-classifier --out {tmp_path} --epochs 2 --num-train 1024"
                                "  # plus TrainConfig(warmup_steps=0), not a CLI flag")
    assert list(saved["test_accuracy_at_t"]) == [str(t) for t in NOISY_ACCURACY_TIMESTEPS] and saved["test_images"] == 2000
    assert saved["objective"]["name"] == "noisy-classify" and saved["train"]["optimizer"] == "adamw"
    model = load_model(tmp_path / "model.safetensors", expect_kind=NoisyMnistClassifier.kind)
    assert isinstance(model, NoisyMnistClassifier)
    acc = record["test_accuracy_at_t"]
    assert acc["0"] > 0.15 and acc["990"] < 0.2   # 8 steps learn something at t 0 (chance: 10%), nothing at t 990

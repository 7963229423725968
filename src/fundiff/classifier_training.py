"""Training fundiff's two MNIST classifiers: ``fundiff train classifier`` and ``fundiff train noisy-classifier``.

:func:`train_classifier` with :data:`CLASSIFIER_DEFAULTS` trains :class:`fundiff.nn.MnistClassifier` with the
shared trainer on the 60,000 training images (cross-entropy, random shifts of up to 2 pixels), measures its
accuracy on all 10,000 test images and writes ``DIR/classifier.json``; the shipped weights were made this way.

:func:`train_noisy_classifier` with :data:`NOISY_CLASSIFIER_DEFAULTS` trains the balanced anagram reduction's
reader, :class:`fundiff.nn.NoisyMnistClassifier` p(y | x_t, t), on the training images noised to uniform timesteps
of the embedded model's schedule (:class:`fundiff.objectives.NoisyClassifyObjective`), and records its test
accuracy at t = 0, 300, 600, 800, 900 and 990 (each test image noised once, from seed 0).  The shipped
``fundiff/assets/mnist_noisy_classifier.safetensors`` was made with the same recipe by the hand loop of
``bench/classifier_guidance.py`` (its record is in the file's metadata) before this command existed; a reader this
command trained (6 min here, the same accuracy by t) measured a few points lower in the anagram bench, within
the spread of readers (docs/illusions.md), so the shipped one stayed.
"""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import time
from pathlib import Path
from typing import Any

import torch

from fundiff.data import MNIST
from fundiff.io import write_json
from fundiff.metrics import classifier_predictions
from fundiff.data.mnist import to_float
from fundiff.nn.classifier import MnistClassifier
from fundiff.nn.noisy_classifier import NoisyMnistClassifier
from fundiff.objectives.classify import ClassifyObjective, NoisyClassifyObjective
from fundiff.training import TrainConfig, train

#: The defaults of ``fundiff train classifier``: 3 epochs of Adam at 1e-3 with a per-step cosine
#: decay to 1e-5, batch 128, seed 0 (see the shipped record for its accuracy and time).
CLASSIFIER_DEFAULTS = TrainConfig(
    epochs=3, batch_size=128, lr=1e-3, lr_schedule="cosine", lr_final_factor=0.01, seed=0,
)

#: The defaults of ``fundiff train noisy-classifier``: 4 epochs of AdamW at 2e-3 (weight decay 1e-4), 280 warm-up
#: steps (30% of the run, as a one-cycle schedule has) then a per-step cosine decay to 2e-5, batch 256, seed 0.
NOISY_CLASSIFIER_DEFAULTS = TrainConfig(
    epochs=4, batch_size=256, lr=2e-3, optimizer="adamw", weight_decay=1e-4, warmup_steps=280,
    lr_schedule="cosine", lr_final_factor=0.01, seed=0,
)
#: The timesteps at which the noise-aware classifier's record gives its test accuracy.
NOISY_ACCURACY_TIMESTEPS = (0, 300, 600, 800, 900, 990)


def _command(out_dir: Path, config: TrainConfig, what: str = "classifier",
             defaults: TrainConfig = CLASSIFIER_DEFAULTS) -> str:
    """The CLI command equivalent to ``train_classifier(out_dir, config)`` (or the noisy one's, ``what``)."""
    parts = ["fundiff", "train", what, "--out", str(out_dir)]
    flags = {"batch_size": "--batch-size", "lr": "--lr", "epochs": "--epochs", "num_train": "--num-train", "seed": "--seed"}
    for name, flag in flags.items():
        value = getattr(config, name)
        if value != getattr(defaults, name):
            parts += [flag, str(value)]
    if config.device != "auto":
        parts += ["--device", config.device]
    extra = [
        f"{name}={getattr(config, name)!r}"
        for name in ("lr_schedule", "lr_final_factor", "optimizer", "weight_decay", "warmup_steps")
        if getattr(config, name) != getattr(defaults, name)
    ]
    command = shlex.join(parts)
    return command + (f"  # plus TrainConfig({', '.join(extra)}), not a CLI flag" if extra else "")


def train_classifier(out_dir: str | os.PathLike, config: TrainConfig, mnist: MNIST, resume: bool = False) -> dict[str, Any]:
    """Train the metrics' classifier into ``out_dir``; return (and write to ``classifier.json``) its record.

    ``out_dir`` gets the trainer's usual run files (``model.safetensors``, checkpoints, metrics) plus
    ``classifier.json`` with ``test_accuracy`` on all 10,000 test images, the training seconds and
    the equivalent CLI command.
    """
    out_dir = Path(out_dir)
    started = time.monotonic()
    objective = ClassifyObjective(max_shift=2)
    result = train(
        MnistClassifier(), objective, mnist.train_images, mnist.train_labels, config, out_dir,
        resume=resume, data_source=mnist.source, desc="classifier",
    )
    model = result.model.eval()
    preds, _ = classifier_predictions(mnist.test_images, classifier=model)
    correct = int((preds == mnist.test_labels).sum())
    accuracy = correct / len(mnist.test_labels)
    measured = {"test_accuracy": accuracy, "test_errors": len(mnist.test_labels) - correct}
    return _write_record(out_dir, result, objective, config, mnist, started, measured, _command(out_dir, config))


def train_noisy_classifier(out_dir: str | os.PathLike, config: TrainConfig, mnist: MNIST,
                           resume: bool = False) -> dict[str, Any]:
    """Train the noise-aware classifier into ``out_dir``; its record (``classifier.json``) has accuracy by t."""
    out_dir = Path(out_dir)
    started = time.monotonic()
    objective = NoisyClassifyObjective()
    result = train(
        NoisyMnistClassifier(), objective, mnist.train_images, mnist.train_labels, config, out_dir,
        resume=resume, data_source=mnist.source, desc="noisy classifier",
    )
    measured = {"test_accuracy_at_t": noisy_accuracy(result.model.eval(), objective, mnist)}
    command = _command(out_dir, config, "noisy-classifier", NOISY_CLASSIFIER_DEFAULTS)
    return _write_record(out_dir, result, objective, config, mnist, started, measured, command)


@torch.no_grad()
def noisy_accuracy(model: torch.nn.Module, objective: NoisyClassifyObjective, mnist: MNIST,
                   timesteps: tuple[int, ...] = NOISY_ACCURACY_TIMESTEPS) -> dict[str, float]:
    """Test accuracy of p(y | x_t, t) at each timestep: all test images, each noised once from seed 0 per t."""
    device = next(model.parameters()).device
    out = {}
    for t_value in timesteps:
        gen, correct = torch.Generator().manual_seed(0), 0
        for k in range(0, len(mnist.test_images), 1000):
            x0 = to_float(mnist.test_images[k:k + 1000]).to(device) * 2 - 1
            t = torch.full((len(x0),), t_value, device=device)
            x_t = objective.noised(x0, t, torch.randn(x0.shape, generator=gen).to(device))
            correct += int((model(x_t, t).argmax(1).cpu() == mnist.test_labels[k:k + 1000]).sum())
        out[str(t_value)] = round(correct / len(mnist.test_images), 4)
    return out


def _write_record(out_dir: Path, result: Any, objective: Any, config: TrainConfig, mnist: MNIST, started: float,
                  measured: dict[str, Any], command: str) -> dict[str, Any]:
    """``out_dir/classifier.json``: what was measured, then how the run was made (command, time, versions)."""
    model = result.model
    record = {
        **measured,
        "test_images": len(mnist.test_labels),
        "train_seconds": round(result.wall_seconds, 1),
        "total_seconds": round(time.monotonic() - started, 1),
        "command": command,
        "seed": config.seed,
        "train": config.to_dict(),
        "objective": objective.config(),
        "model": model.config(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": len(result.losses),
        "final_epoch_loss": result.epoch_losses[-1],
        "data": mnist.source,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(next(model.parameters()).device),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(out_dir / "classifier.json", record)
    return record

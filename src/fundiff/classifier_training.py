"""Training the metrics' classifier: ``fundiff train classifier --out DIR``.

:func:`train_classifier` with :data:`CLASSIFIER_DEFAULTS` trains :class:`fundiff.nn.MnistClassifier` with the
shared trainer on the 60,000 training images (cross-entropy, random shifts of up to 2 pixels), measures its
accuracy on all 10,000 test images and writes ``DIR/classifier.json``; the shipped weights were made this way.
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
from fundiff.nn.classifier import MnistClassifier
from fundiff.objectives.classify import ClassifyObjective
from fundiff.training import TrainConfig, train

#: The defaults of ``fundiff train classifier``: 3 epochs of Adam at 1e-3 with a per-step cosine
#: decay to 1e-5, batch 128, seed 0 (see the shipped record for its accuracy and time).
CLASSIFIER_DEFAULTS = TrainConfig(
    epochs=3, batch_size=128, lr=1e-3, lr_schedule="cosine", lr_final_factor=0.01, seed=0,
)


def _command(out_dir: Path, config: TrainConfig) -> str:
    """The CLI command equivalent to ``train_classifier(out_dir, config)``."""
    parts = ["fundiff", "train", "classifier", "--out", str(out_dir)]
    flags = {"batch_size": "--batch-size", "lr": "--lr", "epochs": "--epochs", "num_train": "--num-train", "seed": "--seed"}
    for name, flag in flags.items():
        value = getattr(config, name)
        if value != getattr(CLASSIFIER_DEFAULTS, name):
            parts += [flag, str(value)]
    if config.device != "auto":
        parts += ["--device", config.device]
    extra = [
        f"{name}={getattr(config, name)!r}" for name in ("lr_schedule", "lr_final_factor")
        if getattr(config, name) != getattr(CLASSIFIER_DEFAULTS, name)
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
    model = MnistClassifier()
    objective = ClassifyObjective(max_shift=2)
    result = train(
        model, objective, mnist.train_images, mnist.train_labels, config, out_dir,
        resume=resume, data_source=mnist.source, desc="classifier",
    )
    model = result.model.eval()
    preds, _ = classifier_predictions(mnist.test_images, classifier=model)
    correct = int((preds == mnist.test_labels).sum())
    accuracy = correct / len(mnist.test_labels)
    record = {
        "test_accuracy": accuracy,
        "test_errors": len(mnist.test_labels) - correct,
        "test_images": len(mnist.test_labels),
        "train_seconds": round(result.wall_seconds, 1),
        "total_seconds": round(time.monotonic() - started, 1),
        "command": _command(out_dir, config),
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

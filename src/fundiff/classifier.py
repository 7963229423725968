"""The MNIST classifier behind fundiff's sample-quality metrics: training it and loading the shipped one.

``fundiff train classifier --out DIR`` (= :func:`train_classifier` with :data:`CLASSIFIER_DEFAULTS`)
trains :class:`fundiff.nn.MnistClassifier` with the shared trainer on the 60,000 training images
(cross-entropy, random shifts of up to 2 pixels), measures its accuracy on all 10,000 test images
and writes ``DIR/classifier.json``.  The weights in ``fundiff/assets/mnist_classifier.safetensors``
were made with exactly that command and its defaults; ``fundiff/assets/mnist_classifier.json`` is
their record (command, seed, test accuracy, training time, torch version, date).
:func:`load_classifier` loads them (or another classifier weights file), cached per process.
"""

from __future__ import annotations

import datetime
import importlib.resources
import os
import platform
import shlex
import threading
import time
from pathlib import Path
from typing import Any

import torch

from fundiff.data import MNIST
from fundiff.errors import CheckpointError
from fundiff.io import write_json
from fundiff.nn.classifier import MnistClassifier
from fundiff.objectives.classify import ClassifyObjective
from fundiff.training import TrainConfig, load_model, train

KIND = MnistClassifier.kind

#: The defaults of ``fundiff train classifier``: 3 epochs of Adam at 1e-3 with a per-step cosine
#: decay to 1e-5, batch 128, seed 0 (see the shipped record for its accuracy and time).
CLASSIFIER_DEFAULTS = TrainConfig(
    epochs=3, batch_size=128, lr=1e-3, lr_schedule="cosine", lr_final_factor=0.01, seed=0,
)

#: The weights fundiff ships (made with ``fundiff train classifier --out runs/classifier``).
SHIPPED_CLASSIFIER = importlib.resources.files("fundiff") / "assets" / "mnist_classifier.safetensors"
#: Their record: command, seed, test accuracy, training seconds, torch version, date.
SHIPPED_RECORD = importlib.resources.files("fundiff") / "assets" / "mnist_classifier.json"

_CACHE: dict[tuple[Any, ...], torch.nn.Module] = {}
_CACHE_LOCK = threading.Lock()


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
    from fundiff.metrics import classifier_predictions

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


def load_classifier(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The metrics' classifier in eval mode: the shipped weights, or the ``mnist-classifier`` file ``path``.

    Cached per (file, device): repeated calls return the same frozen module (its parameters have
    ``requires_grad=False``; gradients with respect to the input still work).  Do not train it.
    """
    device = torch.device(device)
    if path is None:
        with importlib.resources.as_file(SHIPPED_CLASSIFIER) as shipped:
            if not Path(shipped).is_file():
                raise CheckpointError(
                    f"the shipped classifier weights are missing from this installation ({shipped}); train one with "
                    "`fundiff train classifier --out DIR` and pass DIR/model.safetensors"
                )
            return _load_cached(Path(shipped), device)
    return _load_cached(Path(path), device)


def _load_cached(path: Path, device: torch.device) -> torch.nn.Module:
    try:
        stat = path.stat()
        key: tuple[Any, ...] = (str(path.resolve()), str(device), stat.st_mtime_ns, stat.st_size)
    except OSError:
        raise CheckpointError(f"classifier weights not found: {path}") from None
    with _CACHE_LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = load_model(path, device=device, expect_kind=KIND)
            model.requires_grad_(False)
            _CACHE[key] = model
    return model


def clear_cache() -> None:
    """Forget the loaded classifiers (tests use this)."""
    with _CACHE_LOCK:
        _CACHE.clear()


__all__ = ["CLASSIFIER_DEFAULTS", "SHIPPED_CLASSIFIER", "SHIPPED_RECORD", "train_classifier", "load_classifier", "clear_cache"]

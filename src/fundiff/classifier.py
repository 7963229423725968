"""The MNIST classifier behind fundiff's sample-quality metrics: loading the shipped one (or another).

``fundiff train classifier --out DIR`` (:func:`fundiff.classifier_training.train_classifier`) trains :class:`fundiff.nn.MnistClassifier` with the shared trainer on the 60,000 training images
(cross-entropy, random shifts of up to 2 pixels), measures its accuracy on all 10,000 test images
and writes ``DIR/classifier.json``.  The weights in ``fundiff/assets/mnist_classifier.safetensors``
were made with exactly that command and its defaults; ``fundiff/assets/mnist_classifier.json`` is
their record (command, seed, test accuracy, training time, torch version, date).
:func:`load_classifier` loads them (or another classifier weights file), cached per process.
"""

from __future__ import annotations

import importlib.resources
import os
import threading
from pathlib import Path
from typing import Any

import torch

from fundiff.errors import CheckpointError
from fundiff.nn.classifier import MnistClassifier
from fundiff.nn.noisy_classifier import NoisyMnistClassifier
from fundiff.training import load_model

KIND = MnistClassifier.kind

#: The weights fundiff ships (made with ``fundiff train classifier --out runs/classifier``).
SHIPPED_CLASSIFIER = importlib.resources.files("fundiff") / "assets" / "mnist_classifier.safetensors"
#: Their record: command, seed, test accuracy, training seconds, torch version, date.
SHIPPED_RECORD = importlib.resources.files("fundiff") / "assets" / "mnist_classifier.json"

#: The noise-aware classifier p(y | x_t, t) the balanced anagram reduction asks (:mod:`fundiff.nn.noisy_classifier`),
#: trained on the embedded model's noise levels; its record (command, accuracy by t) is in the file's metadata.
SHIPPED_NOISY_CLASSIFIER = importlib.resources.files("fundiff") / "assets" / "mnist_noisy_classifier.safetensors"

#: The hybrid reader: the clean classifier's architecture trained on the two readings of real hybrids, low(A) + high(B)
#: (``fundiff.pipelines.readings.hybrid_readings``), made by ``bench/hybrid_reader.py --save-reader``; its record
#: (command, how it reads real hybrids and clean digits) is in the file's metadata.
SHIPPED_HYBRID_READER = importlib.resources.files("fundiff") / "assets" / "mnist_hybrid_reader.safetensors"

_CACHE: dict[tuple[Any, ...], torch.nn.Module] = {}
_CACHE_LOCK = threading.Lock()


def load_classifier(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The metrics' classifier in eval mode: the shipped weights, or the ``mnist-classifier`` file ``path``.

    Cached per (file, device): repeated calls return the same frozen module (its parameters have
    ``requires_grad=False``; gradients with respect to the input still work).  Do not train it.
    """
    if path is None:
        return _load_shipped(SHIPPED_CLASSIFIER, device, KIND, "the shipped classifier weights are missing from this "
                             "installation ({}); train one with `fundiff train classifier --out DIR` and pass "
                             "DIR/model.safetensors")
    return _load_cached(Path(path), torch.device(device))


def load_noisy_classifier(device: str | torch.device = "cpu") -> torch.nn.Module:
    """The shipped noise-aware classifier (eval mode, frozen, cached): logits of p(y | x_t, t), t in 0..999."""
    return _load_shipped(SHIPPED_NOISY_CLASSIFIER, device, NoisyMnistClassifier.kind,
                         "the shipped noise-aware classifier is missing from this installation ({})")


def load_hybrid_reader(device: str | torch.device = "cpu") -> torch.nn.Module:
    """The shipped hybrid reader (eval mode, frozen, cached): reads a hybrid's far and close readings, which the clean
    classifier, never shown a blurred digit or a stretched high band, misreads (docs/illusions.md)."""
    return _load_shipped(SHIPPED_HYBRID_READER, device, KIND,
                         "the shipped hybrid reader is missing from this installation ({}); make one with "
                         "`python bench/hybrid_reader.py --save-reader PATH`")


def _load_shipped(resource: Any, device: str | torch.device, kind: str, missing: str) -> torch.nn.Module:
    """A weights file shipped in fundiff/assets, cached; CheckpointError ``missing`` (formatted with its path) if absent."""
    with importlib.resources.as_file(resource) as shipped:
        if not Path(shipped).is_file():
            raise CheckpointError(missing.format(shipped))
        return _load_cached(Path(shipped), torch.device(device), kind)


def _load_cached(path: Path, device: torch.device, kind: str = KIND) -> torch.nn.Module:
    try:
        stat = path.stat()
        key: tuple[Any, ...] = (str(path.resolve()), str(device), stat.st_mtime_ns, stat.st_size, kind)
    except OSError:
        raise CheckpointError(f"classifier weights not found: {path}") from None
    with _CACHE_LOCK:
        model = _CACHE.get(key)
        if model is None:
            model = load_model(path, device=device, expect_kind=kind)
            model.requires_grad_(False)
            _CACHE[key] = model
    return model


def clear_cache() -> None:
    """Forget the loaded classifiers (tests use this)."""
    with _CACHE_LOCK:
        _CACHE.clear()


__all__ = ["SHIPPED_CLASSIFIER", "SHIPPED_RECORD", "SHIPPED_NOISY_CLASSIFIER", "SHIPPED_HYBRID_READER", "load_classifier",
           "load_noisy_classifier", "load_hybrid_reader", "clear_cache"]

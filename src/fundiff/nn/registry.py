"""Model kinds by name, so a weights file's stored ``config()`` rebuilds its model.

Every model class has a class attribute ``kind`` and a ``config()`` method returning
``{"kind": kind, **constructor kwargs}``; ``@register`` adds it here and ``build_model(config)``
rebuilds it.  A config may come from an untrusted file, so it is checked before anything is allocated:
see :func:`model_skeleton`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fundiff.errors import FundiffError

MODEL_KINDS: dict[str, type[nn.Module]] = {}

# Bounds on the size arguments of every registered model: the repo's own models have 1 channel, width D <= 128,
# 10 classes, classifier width <= 48 and 128 features, so these are far above them and far below a memory blow-up.
SIZE_LIMITS: dict[str, tuple[int, int]] = {
    "in_channels": (1, 16), "num_hiddens": (1, 512), "num_classes": (1, 1000), "width": (1, 512),
    "feature_dim": (1, 4096),
}
MAX_PARAMETERS = 2**27   # numbers in a model's state_dict: 512 MiB in float32 (the largest real model has 8 M)


def register(cls: type[nn.Module]) -> type[nn.Module]:
    """Class decorator: make ``cls`` buildable from its ``config()``."""
    MODEL_KINDS[cls.kind] = cls
    return cls


def _checked(config: Any) -> tuple[type[nn.Module], dict[str, Any]]:
    """The class and constructor kwargs of ``config``: a dict with a known ``kind`` whose size arguments are whole
    numbers within SIZE_LIMITS."""
    if not isinstance(config, dict):
        raise FundiffError(f"model config must be a JSON object, got {type(config).__name__}")
    kwargs = dict(config)
    kind = kwargs.pop("kind", None)
    if not isinstance(kind, str) or kind not in MODEL_KINDS:
        raise FundiffError(f"unknown model kind {kind!r}; expected one of {sorted(MODEL_KINDS)}")
    for key, (low, high) in SIZE_LIMITS.items():
        value = kwargs.get(key, low)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise FundiffError(f"bad {kind} model config: {key} must be a whole number in {low}..{high}, got {value!r}")
    return MODEL_KINDS[kind], kwargs


def model_skeleton(config: Any) -> nn.Module:
    """The model ``config`` describes, built on the meta device (no memory), after checking that the config is an
    object of a known kind with sizes within SIZE_LIMITS, that the constructor accepts it, and that the model has
    at most MAX_PARAMETERS numbers; FundiffError otherwise."""
    cls, kwargs = _checked(config)
    try:
        with torch.device("meta"):
            skeleton = cls(**kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise FundiffError(f"bad {cls.kind} model config {kwargs!r}: {exc}") from None
    count = sum(t.numel() for t in skeleton.state_dict().values())
    if count > MAX_PARAMETERS:
        raise FundiffError(f"{cls.kind} model config {kwargs!r} has {count:,} parameters, more than {MAX_PARAMETERS:,}")
    return skeleton


def build_model(config: Any) -> nn.Module:
    """Rebuild a model from the ``config()`` dict stored next to its weights (checked first by model_skeleton)."""
    cls = type(model_skeleton(config))
    return cls(**{k: v for k, v in config.items() if k != "kind"})

"""Model kinds by name, so a weights file's stored ``config()`` rebuilds its model.

Every model class has a class attribute ``kind`` and a ``config()`` method returning
``{"kind": kind, **constructor kwargs}``; ``@register`` adds it here and ``build_model(config)``
rebuilds it.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from fundiff.errors import FundiffError

MODEL_KINDS: dict[str, type[nn.Module]] = {}


def register(cls: type[nn.Module]) -> type[nn.Module]:
    """Class decorator: make ``cls`` buildable from its ``config()``."""
    MODEL_KINDS[cls.kind] = cls
    return cls


def build_model(config: dict[str, Any]) -> nn.Module:
    """Rebuild a model from the ``config()`` dict stored next to its weights."""
    config = dict(config)
    kind = config.pop("kind", None)
    if kind not in MODEL_KINDS:
        raise FundiffError(f"unknown model kind {kind!r}; expected one of {sorted(MODEL_KINDS)}")
    try:
        return MODEL_KINDS[kind](**config)
    except TypeError as exc:
        raise FundiffError(f"bad {kind} model config {config!r}: {exc}") from None

"""``--device auto|cpu|cuda|mps`` resolved to a torch.device, with a clear error when absent."""

from __future__ import annotations

import torch

from fundiff.errors import FundiffError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; naming an absent accelerator is a FundiffError."""
    name = (name or "auto").lower()
    if name.startswith("cuda:"):
        base = "cuda"
    else:
        base = name
    if base not in DEVICE_CHOICES:
        raise FundiffError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise FundiffError("--device cuda was asked for, but this torch build sees no CUDA GPU; use --device cpu or auto")
    if base == "mps" and not _mps_available():
        raise FundiffError("--device mps was asked for, but MPS is not available here; use --device cpu or auto")
    return torch.device(name)

"""``--precision auto|fp32|bf16``: where fundiff's own UNets compute in bfloat16.

bf16 runs the UNet's forward (and so its backward) under ``torch.autocast`` and hands its output back
in fp32: master weights, optimizer state, EMA, the loss and every sampler's state stay fp32, and
checkpoints stay fp32 safetensors.  ``auto`` picks bf16 only where the hardware has native bf16
arithmetic: a CUDA GPU that reports bf16 support, or a CPU with AVX512-BF16 or AMX-BF16 (read from
``/proc/cpuinfo``); everywhere else fp32.  Without those instructions oneDNN emulates bf16, which was
measured 2-4x *slower* than fp32 on an AVX-512 Xeon without them (see docs/training.md).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import nn

from fundiff.errors import FundiffError

PRECISIONS = ("auto", "fp32", "bf16")
NATIVE_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo is absent."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool(cpu_flags() & NATIVE_CPU_FLAGS)
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """'fp32' or 'bf16' for ``--precision name`` on ``device``."""
    if name not in PRECISIONS:
        raise FundiffError(f"--precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if name == "bf16" and device.type not in ("cpu", "cuda"):
        raise FundiffError(f"--precision bf16 runs on the CPU or a CUDA GPU, not on {device.type}; use fp32")
    return name


class Autocast(nn.Module):
    """``model``'s forward under bf16 autocast, its output returned in fp32; shares ``model``'s parameters."""

    def __init__(self, model: nn.Module, device_type: str):
        super().__init__()
        self.inner = model
        self.device_type = device_type
        self.kind = getattr(model, "kind", None)

    def forward(self, *args, **kwargs) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            out = self.inner(*args, **kwargs)
        return out.float()


def with_precision(model: nn.Module, precision: str, device: torch.device) -> nn.Module:
    """``model`` itself for fp32; a bf16 :class:`Autocast` view of it for bf16."""
    return Autocast(model, device.type) if precision == "bf16" else model

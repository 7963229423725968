"""Speed-ups of training and sampling that keep the math (measured by ``bench/throughput.py``).

Profiled on the 2-core CPU (spec class UNet, D=64, batch 64): in plain eager PyTorch the step
spends its time in oneDNN convolutions, in first-touch page faults (glibc hands every freed
multi-MB activation back to the kernel, so the next step faults it in again: ~50,000 faults a
step) and in NCHW forward convolutions that run at about half the speed of the same convolution
on channels-last (NHWC) tensors. So:

* :func:`keep_freed_memory` raises glibc's mmap and trim thresholds, so freed activations are
  reused instead of returned to the kernel (page faults per step drop to ~0);
* :func:`prefer_channels_last` stores the 4-D weights channels-last; PyTorch then runs every
  convolution of the UNet in NHWC (the 1-channel input is both layouts at once);
* :func:`make_adam` uses the fused (single-kernel) Adam/AdamW update where PyTorch has one.

All three change only float rounding order, never the function computed: the same weights,
the same loss, the same update rule. ``torch.compile`` (``--compile``) is separate. Sampling
(``Generator.for_sampling``) uses the first two, and the UNet runs no-grad CPU batches in slices
small enough for the kept heap (``UnetBody.in_slices``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Iterable

import torch
from torch import nn

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's upper limit for M_MMAP_THRESHOLD on 64-bit
_tuned: bool | None = None


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse (mallopt); True if applied. Idempotent, Linux/glibc only.

    Allocations under 32 MB come from the heap, the heap is never trimmed back to the kernel and
    grows in 256 MB steps. Memory use stays at the peak of one training step.
    """
    global _tuned
    if _tuned is not None:
        return _tuned
    _tuned = False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX), (_M_TRIM_THRESHOLD, 2**31 - 1), (_M_TOP_PAD, 256 * 1024 * 1024)))
    _tuned = ok
    return ok


def prefer_channels_last(model: nn.Module) -> nn.Module:
    """Store the model's 4-D parameters channels-last (in place), so convolutions run in NHWC."""
    return model.to(memory_format=torch.channels_last)


def make_adam(params: Iterable[nn.Parameter], *, decoupled: bool, **kwargs) -> torch.optim.Optimizer:
    """Adam (or AdamW with ``decoupled``), fused into one kernel per step where PyTorch supports it."""
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    params = list(params)
    try:
        return cls(params, fused=True, **kwargs)
    except (RuntimeError, ValueError, TypeError):  # a device or dtype without a fused kernel
        return cls(params, **kwargs)

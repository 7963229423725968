"""Data-parallel training on the processes ``torchrun`` starts (torch.distributed + DDP).

The same command scales out unchanged::

    torchrun --nproc_per_node=2 -m fundiff train flow --out RUN ...

The scheme :func:`fundiff.training.train` follows when ``WORLD_SIZE`` > 1:

* torchrun starts W processes and sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; :func:`setup`
  joins the process group (``nccl`` with each rank on ``cuda:LOCAL_RANK``, else ``gloo`` on the CPU)
  and :func:`shutdown` leaves it at the end or on error.
* ``--batch-size`` stays the *global* batch B and must be divisible by W.  Every rank walks the same
  seeded permutation and takes the contiguous shard ``[rank*B/W, (rank+1)*B/W)`` of each global
  batch; its noise is the same rows of the global batch's noise (``rng.BatchRandom``), so every
  sample gets exactly the draws it gets in one process.
* DistributedDataParallel averages the gradients: with equal shards, the gradient of the
  global-batch mean loss, so every rank applies the same update.  The logged loss is the all-reduced
  mean of the shard losses.
* BatchNorm: on CUDA ``SyncBatchNorm`` normalises with the global batch's statistics.  On the CPU
  torch's SyncBatchNorm refuses CPU tensors (its kernels have no CPU implementation), so there each
  rank normalises its shard with the shard's statistics, and the running statistics kept are rank 0's.
* Rank 0 alone writes files; the others wait at :func:`barrier`, so a checkpoint is complete before
  anyone goes on.  Clock- and signal-driven decisions (time budget, mid-epoch checkpoints, Ctrl-C)
  are all-reduced once per step, so every rank stops or checkpoints at the same step.
* CPU threads per rank: ``OMP_NUM_THREADS`` if set (torchrun sets it to 1 when it starts several
  processes), else the machine's CPUs divided by the processes on this node.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from fundiff.errors import FundiffError

_owned = False  # whether setup() initialised the process group (then shutdown() destroys it)


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise FundiffError(f"environment variable {name}={os.environ[name]!r} is not a whole number") from None


def requested_world_size() -> int:
    """W from torchrun's ``WORLD_SIZE`` (1 when not launched by torchrun)."""
    return max(1, _env_int("WORLD_SIZE", 1))


def enabled() -> bool:
    """Whether this process is one of several torchrun started."""
    return requested_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else requested_world_size()


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else _env_int("RANK", 0)


def is_main() -> bool:
    """Rank 0, the one process that writes files and shows progress."""
    return rank() == 0


def shard_size(batch_size: int, world: int) -> int:
    """Images per rank of a global batch; FundiffError (one line) unless ``world`` divides it."""
    if batch_size % world:
        lower = batch_size - batch_size % world
        hint = f"use {lower} or {lower + world}" if lower else f"use {world} or a multiple of it"
        raise FundiffError(
            f"--batch-size {batch_size} is the global batch and must be divisible by the {world} processes "
            f"torchrun started; {hint}"
        )
    return batch_size // world


def setup(device: torch.device) -> torch.device:
    """Join the process group when launched by torchrun; return this rank's device (no-op otherwise)."""
    global _owned
    if not enabled():
        return device
    if not dist.is_available():
        raise FundiffError("this torch build has no torch.distributed; run without torchrun")
    local_rank = _env_int("LOCAL_RANK", 0)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise FundiffError(
                f"torchrun started local rank {local_rank}, but this machine has {torch.cuda.device_count()} CUDA GPU(s); "
                "use --nproc_per_node <= the number of GPUs"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
        if "OMP_NUM_THREADS" not in os.environ:  # torchrun sets it to 1 itself when nproc_per_node > 1
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, _env_int("LOCAL_WORLD_SIZE", 1))))
    else:
        raise FundiffError(f"multi-process training runs on cpu or cuda, not {device.type}; pass --device cpu or cuda")
    if not dist.is_initialized():
        dist.init_process_group(backend)
        _owned = True
    return device


def shutdown() -> None:
    """Leave the process group if :func:`setup` joined it."""
    global _owned
    if _owned and dist.is_initialized():
        dist.destroy_process_group()
    _owned = False


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if _active():
        dist.barrier()


def _reduce_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sum over the ranks of a few floats (one collective, float64)."""
    if not _active():
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_reduce_device())
    dist.all_reduce(t)
    return t.tolist()


def all_reduce_mean(value: float) -> float:
    """The mean of ``value`` over the ranks."""
    return all_reduce_sum([value])[0] / world_size()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` as rank ``src`` has it, on every rank (picklable objects)."""
    if not _active():
        return obj
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src=src, device=_reduce_device())
    return box[0]


class _DDP(DistributedDataParallel):
    """DDP that forwards other attributes (``kind``, ``config``) to the wrapped model: objectives read them."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":
                raise
            return getattr(self.module, name)


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The model to run forward/backward through: DDP around ``model`` (BatchNorm synced on CUDA)."""
    if not _active():
        return model
    if device.type == "cuda":
        nn.SyncBatchNorm.convert_sync_batchnorm(model)  # replaces model's BatchNorm children in place
        return _DDP(model, device_ids=[device.index])
    return _DDP(model)


__all__ = [
    "enabled", "world_size", "rank", "is_main", "shard_size", "setup", "shutdown", "barrier",
    "all_reduce_sum", "all_reduce_mean", "broadcast_object", "wrap",
]

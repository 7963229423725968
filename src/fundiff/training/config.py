"""What a training run is told (:class:`TrainConfig`), what it minimises (:class:`Objective`) and what it returns."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from fundiff.errors import FundiffError
from fundiff.training import distributed, rng

LR_SCHEDULES = ("none", "exponential", "cosine")
OPTIMIZERS = ("adam", "adamw")


class Objective(Protocol):
    """What a trainer minimises: ``loss(model, x, labels, rand)`` on a batch x in [0, 1]."""

    name: str

    def loss(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, rand: rng.BatchRandom) -> torch.Tensor: ...

    def config(self) -> dict[str, Any]: ...


@dataclass
class TrainConfig:
    """Hyperparameters of one training run (every one is a CLI flag)."""

    epochs: int = 5
    batch_size: int = 256
    lr: float = 1e-4
    lr_schedule: str = "none"  # "exponential": lr * f**(epoch/epochs), the study's ExponentialLR; "cosine": to lr*f per step
    lr_final_factor: float = 0.1  # f
    warmup_steps: int = 0
    optimizer: str = "adam"
    weight_decay: float = 0.0
    adam_beta2: float = 0.999
    grad_clip: float = 0.0  # max gradient norm; 0: off
    ema_decay: float = 0.0  # 0: off
    seed: int = 0
    num_train: int | None = None  # train on a seeded subset of this many images (None: all)
    max_train_seconds: float = 0.0  # stop (and finish normally) after this much training time; 0: off
    checkpoint_interval: float = 300.0  # seconds between mid-epoch checkpoints; 0: epoch ends only
    device: str = "auto"
    compile: bool = False  # torch.compile the training forward/backward (same math, fused kernels)
    channels_last: bool = True  # NHWC convolutions (same math; see fundiff.training.speed)
    precision: str = "fp32"  # "auto", "fp32" or "bf16" (the UNet's forward/backward; see fundiff.training.precision)
    progress: bool = True
    init: str | None = None  # the weights the run started from (fine-tuning; set by the command); None: fresh from seed

    # Fields that may differ between a run and its resumption.
    # ``precision`` as asked ("auto") may differ; the precision it resolved to (config.json's top-level
    # "precision") may not.
    RESUMABLE_CHANGES = ("checkpoint_interval", "device", "progress", "compile", "channels_last", "precision")

    def validate(self) -> None:
        if self.epochs < 1:
            raise FundiffError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise FundiffError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise FundiffError(f"--lr must be a positive number, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise FundiffError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.optimizer not in OPTIMIZERS:
            raise FundiffError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not (0 < self.lr_final_factor <= 1):
            raise FundiffError(f"--lr-final-factor must be in (0, 1], got {self.lr_final_factor}")
        if self.warmup_steps < 0:
            raise FundiffError(f"--warmup-steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.weight_decay < 1:
            raise FundiffError(f"--weight-decay must be in [0, 1), got {self.weight_decay}")
        if not 0 < self.adam_beta2 < 1:
            raise FundiffError(f"--adam-beta2 must be in (0, 1), got {self.adam_beta2}")
        if self.grad_clip < 0:
            raise FundiffError(f"--grad-clip must be >= 0, got {self.grad_clip}")
        if not 0 <= self.ema_decay < 1:
            raise FundiffError(f"--ema-decay must be in [0, 1), got {self.ema_decay}")
        if self.num_train is not None and self.num_train < 1:
            raise FundiffError(f"--num-train must be at least 1, got {self.num_train}")
        if self.max_train_seconds < 0:
            raise FundiffError(f"--max-train-minutes must be >= 0, got {self.max_train_seconds / 60:g}")
        if self.checkpoint_interval < 0:
            raise FundiffError(f"--checkpoint-interval must be >= 0 seconds, got {self.checkpoint_interval}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise FundiffError(f"--precision must be one of auto, fp32, bf16, got {self.precision!r}")
        distributed.shard_size(self.batch_size, distributed.requested_world_size())  # global batch over torchrun's ranks

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def lr_at(self, step: int, steps_per_epoch: int) -> float:
        """The learning rate of (0-based) ``step``: warm-up times the schedule's factor."""
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        if self.lr_schedule == "exponential":  # ExponentialLR(gamma = f**(1/epochs)) stepped per epoch
            factor = self.lr_final_factor ** ((step // steps_per_epoch) / self.epochs)
        elif self.lr_schedule == "cosine":
            progress = min(1.0, step / max(1, steps_per_epoch * self.epochs - 1))
            f = self.lr_final_factor
            factor = f + (1 - f) * 0.5 * (1 + math.cos(math.pi * progress))
        else:
            factor = 1.0
        return self.lr * warm * factor


@dataclass
class TrainResult:
    model: nn.Module  # the evaluation weights (EMA when on)
    run_dir: Path
    losses: list[float]  # one per step
    epoch_losses: list[float]  # mean per epoch
    steps_per_epoch: int
    images_per_second: float
    wall_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

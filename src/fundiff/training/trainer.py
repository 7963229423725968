"""The training loop every fundiff trainer uses.

``train(model, objective, images, labels, config, run_dir)`` minimises ``objective.loss`` with Adam
over shuffled mini-batches of an in-memory uint8 image tensor, and

* is deterministic: all randomness comes from counter-based streams keyed by (seed, epoch, step),
  see :mod:`fundiff.training.rng`;
* checkpoints atomically at every epoch end, every ``checkpoint_interval`` seconds, at the end and on
  Ctrl-C; ``resume=True`` continues from the latest checkpoint and ends with the same weights as an
  uninterrupted run;
* keeps a snapshot of the weights after every epoch in ``<run>/weights/epoch-NNN.safetensors``
  (the study shows samples after chosen epochs) and the final weights in ``<run>/model.safetensors``;
* shows a tqdm bar with the loss and images/s.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from fundiff.data import to_float
from fundiff.errors import FundiffError
from fundiff.io import ensure_writable_dir, write_json
from fundiff.training import rng
from fundiff.training.checkpoint import CheckpointStore, save_model
from fundiff.training.device import resolve_device

LR_SCHEDULES = ("none", "exponential")


class Objective(Protocol):
    """What a trainer minimises: ``loss(model, x, labels, generator)`` on a batch x in [0, 1]."""

    name: str

    def loss(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor: ...

    def config(self) -> dict[str, Any]: ...


@dataclass
class TrainConfig:
    """Hyperparameters of one training run (every one is a CLI flag)."""

    epochs: int = 5
    batch_size: int = 256
    lr: float = 1e-4
    lr_schedule: str = "none"  # "exponential": lr * gamma**epoch with gamma = lr_final_factor**(1/epochs)
    lr_final_factor: float = 0.1
    seed: int = 0
    num_train: int | None = None  # train on a seeded subset of this many images (None: all)
    checkpoint_interval: float = 300.0  # seconds between mid-epoch checkpoints; 0: epoch ends only
    device: str = "auto"
    progress: bool = True

    # Fields that may differ between a run and its resumption.
    RESUMABLE_CHANGES = ("checkpoint_interval", "device", "progress")

    def validate(self) -> None:
        if self.epochs < 1:
            raise FundiffError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise FundiffError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise FundiffError(f"--lr must be a positive number, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise FundiffError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if not (0 < self.lr_final_factor <= 1):
            raise FundiffError(f"--lr-final-factor must be in (0, 1], got {self.lr_final_factor}")
        if self.num_train is not None and self.num_train < 1:
            raise FundiffError(f"--num-train must be at least 1, got {self.num_train}")
        if self.checkpoint_interval < 0:
            raise FundiffError(f"--checkpoint-interval must be >= 0 seconds, got {self.checkpoint_interval}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    model: nn.Module
    run_dir: Path
    losses: list[float]  # one per step
    epoch_losses: list[float]  # mean per epoch
    steps_per_epoch: int
    images_per_second: float
    wall_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def select_subset(num_items: int, num_train: int | None, seed: int) -> torch.Tensor:
    """Indices of the training subset: all items, or the first ``num_train`` of a seeded permutation."""
    if num_train is None or num_train >= num_items:
        return torch.arange(num_items)
    perm = torch.randperm(num_items, generator=rng.generator(seed, -1, rng.PERMUTATION))
    return perm[:num_train].sort().values


def _make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    if config.lr_schedule == "exponential":
        gamma = config.lr_final_factor ** (1.0 / config.epochs)
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    return None


def train(
    model: nn.Module,
    objective: Objective,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    data_source: str = "",
    desc: str | None = None,
    on_epoch_end: Callable[[int, nn.Module], None] | None = None,
    reinitialize: bool = True,
) -> TrainResult:
    """Train ``model`` on uint8 ``images`` (N, 28, 28) to minimise ``objective``; see the module doc.

    With ``reinitialize`` (the default) the weights are first drawn afresh from ``config.seed``, so
    the run depends on the seed alone, not on what else drew random numbers before the call.
    """
    config.validate()
    device = resolve_device(config.device)
    run_dir = ensure_writable_dir(run_dir)
    store = CheckpointStore(run_dir / "checkpoints")
    run_config = {
        "objective": objective.config(),
        "model": model.config(),
        "train": config.to_dict(),
        "data": data_source,
    }
    _check_resume(run_dir, store, run_config, resume)

    rng.seed_everything(config.seed)
    if reinitialize:
        rng.initialize_weights(model, config.seed)
    subset = select_subset(len(images), config.num_train, config.seed)
    data_x = images[subset].to(device)
    data_y = labels[subset].to(device)
    n = len(subset)
    steps_per_epoch = n // config.batch_size if n >= config.batch_size else 1
    total_steps = steps_per_epoch * config.epochs

    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = _make_scheduler(optimizer, config)
    step, losses, epoch_losses, train_seconds = 0, [], [], 0.0
    if resume and store.exists():
        state, _ = store.load(model)
        model.to(device)
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        step, losses = int(state["step"]), list(state["losses"])
        epoch_losses, train_seconds = list(state["epoch_losses"]), float(state["train_seconds"])
    write_json(run_dir / "config.json", run_config)

    def checkpoint() -> None:
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "step": step,
            "losses": losses,
            "epoch_losses": epoch_losses,
            "train_seconds": train_seconds,
        }
        store.save(step, model, state, {"epoch": step // steps_per_epoch, "total_steps": total_steps})

    bar = tqdm(
        total=total_steps, initial=step, desc=desc or objective.name, unit="step",
        disable=not config.progress, dynamic_ncols=True, leave=True,
    )
    last_checkpoint = time.monotonic()
    images_seen_now, started = 0, time.monotonic()
    interrupt = _InterruptAfterStep()
    try:
        while step < total_steps:
            epoch, start_in_epoch = divmod(step, steps_per_epoch)
            perm = torch.randperm(n, generator=rng.generator(config.seed, epoch, rng.PERMUTATION))
            for i in range(start_in_epoch, steps_per_epoch):
                idx = perm[i * config.batch_size : (i + 1) * config.batch_size].to(device)
                t0 = time.monotonic()
                gen = rng.generator(config.seed, epoch, i, device=device)
                loss = objective.loss(model, to_float(data_x[idx]), data_y[idx], gen)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise FundiffError(
                        f"training diverged at step {step} (loss {value}); lower --lr and start a new run"
                    )
                losses.append(value)
                step += 1
                train_seconds += time.monotonic() - t0
                images_seen_now += len(idx)
                bar.update(1)
                bar.set_postfix(
                    epoch=f"{epoch + 1}/{config.epochs}", loss=f"{value:.4f}",
                    img_s=f"{images_seen_now / max(time.monotonic() - started, 1e-9):.0f}",
                )
                interrupt.check()
                if i + 1 == steps_per_epoch:
                    break
                if config.checkpoint_interval and time.monotonic() - last_checkpoint >= config.checkpoint_interval:
                    checkpoint()
                    last_checkpoint = time.monotonic()
            # end of epoch
            epoch_losses.append(sum(losses[-steps_per_epoch:]) / steps_per_epoch)
            if scheduler is not None:
                scheduler.step()
            save_model(run_dir / "weights" / f"epoch-{epoch + 1:03d}.safetensors", model, {"epoch": epoch + 1})
            checkpoint()
            last_checkpoint = time.monotonic()
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, model)
    except KeyboardInterrupt:
        if step % steps_per_epoch:
            checkpoint()
        bar.close()
        raise
    finally:
        interrupt.restore()
    bar.close()

    save_model(run_dir / "model.safetensors", model, {"steps": step, "epochs": config.epochs})
    throughput = step * config.batch_size / train_seconds if train_seconds > 0 else float("nan")
    metrics = {
        "steps": step,
        "steps_per_epoch": steps_per_epoch,
        "train_images": n,
        "train_seconds": round(train_seconds, 3),
        "images_per_second": round(throughput, 2),
        "epoch_loss": epoch_losses,
        "loss": losses,
    }
    write_json(run_dir / "metrics.json", metrics)
    model.eval()
    return TrainResult(model, run_dir, losses, epoch_losses, steps_per_epoch, throughput, train_seconds)


class _InterruptAfterStep:
    """Ctrl-C (SIGINT) takes effect between steps, so the checkpoint it triggers is a consistent one.

    A step interrupted half-way would leave BatchNorm statistics updated by a forward pass whose
    optimizer step never happened; instead the signal sets a flag that ``check()`` turns into
    KeyboardInterrupt after the step.  Only installed in the main thread (signal handlers live there).
    """

    def __init__(self) -> None:
        self.pending = False
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:  # noqa: ANN001
        self.pending = True

    def check(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None


def _check_resume(run_dir: Path, store: CheckpointStore, run_config: dict[str, Any], resume: bool) -> None:
    if not store.exists():
        return
    if not resume:
        raise FundiffError(
            f"{run_dir} already holds a training checkpoint; pass --resume to continue it, or choose another --out"
        )
    saved_path = run_dir / "config.json"
    try:
        saved = json.loads(saved_path.read_text())
    except (OSError, ValueError):
        raise FundiffError(f"{saved_path} is missing or unreadable; cannot check that --resume continues the same run") from None

    def comparable(cfg: dict[str, Any]) -> dict[str, Any]:
        out = json.loads(json.dumps(cfg))
        for key in TrainConfig.RESUMABLE_CHANGES:
            out.get("train", {}).pop(key, None)
        return out

    old, new = comparable(saved), comparable(run_config)
    if old != new:
        diffs = _diff_keys(old, new)
        raise FundiffError(f"--resume with different settings than the saved run ({', '.join(diffs)}); use the same flags")


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: {a!r} -> {b!r}"]

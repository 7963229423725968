"""The training loop every fundiff trainer uses.

``train(model, objective, images, labels, config, run_dir)`` minimises ``objective.loss`` over
shuffled mini-batches of an in-memory uint8 image tensor, and

* is deterministic: all randomness comes from counter-based streams keyed by (seed, epoch, step),
  see :mod:`fundiff.training.rng`, and the initial weights are drawn from the seed;
* sets the learning rate as a pure function of the step (linear warm-up, then constant,
  per-epoch exponential decay as in the study, or cosine), so resuming needs no scheduler object;
* checkpoints atomically at every epoch end, every ``checkpoint_interval`` seconds, at the end and on
  Ctrl-C; ``resume=True`` continues from the latest checkpoint and ends with the same weights as an
  uninterrupted run;
* keeps the evaluation weights (the EMA when ``ema_decay`` > 0, else the raw weights) after every
  epoch in ``<run>/weights/epoch-NNN.safetensors`` and at the end in ``<run>/model.safetensors``,
  with the objective's config in the file's metadata;
* shows its progress: a tqdm bar on a terminal, a plain line a minute in a log (:mod:`fundiff.training.progress`);
* runs data-parallel when launched by ``torchrun`` (``batch_size`` stays the global batch; each rank
  trains on its shard, rank 0 writes the files), see :mod:`fundiff.training.distributed`.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from fundiff.data import to_float
from fundiff.errors import FundiffError
from fundiff.io import ensure_writable_dir, write_json
from fundiff.training import distributed, precision, rng, speed
from fundiff.training.checkpoint import CheckpointStore, save_model
from fundiff.training.config import Objective, TrainConfig, TrainResult
from fundiff.training.device import resolve_device
from fundiff.training.ema import EMA
from fundiff.training.progress import TrainingProgress

def compile_for_training(net: nn.Module) -> nn.Module:
    """``torch.compile`` (inductor): fuses BatchNorm/GELU/elementwise work around the convolutions.

    The compiled module shares its parameters with ``net`` and still answers ``kind``; the first
    steps pay the compilation (about 30 s on the 2-core CPU).
    """
    compiled = torch.compile(net, dynamic=False)
    return compiled


def select_subset(num_items: int, num_train: int | None, seed: int) -> torch.Tensor:
    """Indices of the training subset: all items, or the first ``num_train`` of a seeded permutation."""
    if num_train is None or num_train >= num_items:
        return torch.arange(num_items)
    perm = torch.randperm(num_items, generator=rng.generator(seed, -1, rng.PERMUTATION))
    return perm[:num_train].sort().values


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    return speed.make_adam(model.parameters(), decoupled=config.optimizer == "adamw", lr=config.lr,
                           betas=(0.9, config.adam_beta2), weight_decay=config.weight_decay)


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
    ``on_epoch_end(epoch, eval_model)`` is called after each epoch's checkpoint (under torchrun on
    rank 0 only, while the other ranks wait).
    """
    config.validate()
    device = distributed.setup(resolve_device(config.device))  # joins torchrun's process group, if any
    try:
        return _train(model, objective, images, labels, config, run_dir, device, resume, data_source, desc, on_epoch_end,
                      reinitialize)
    finally:
        distributed.shutdown()


def _train(model, objective, images, labels, config, run_dir, device, resume, data_source, desc, on_epoch_end,
           reinitialize) -> TrainResult:
    """The body of :func:`train` (its arguments, checked there), inside torchrun's process group."""
    world, rank, main = distributed.world_size(), distributed.rank(), distributed.is_main()
    run_dir = ensure_writable_dir(run_dir)
    store = CheckpointStore(run_dir / "checkpoints")
    prec = precision.resolve_precision(config.precision, device)
    run_config = {
        "objective": objective.config(),
        "model": model.config(),
        "train": config.to_dict(),
        "data": data_source,
        "precision": prec,
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
    global_batch = min(config.batch_size, n)
    shard = distributed.shard_size(global_batch, world)  # this rank's images per step: [rank*shard, (rank+1)*shard)

    speed.keep_freed_memory()
    model.to(device).train()
    if config.channels_last:
        speed.prefer_channels_last(model)
    optimizer = _make_optimizer(model, config)
    ema = EMA(model, config.ema_decay) if config.ema_decay else None
    step, losses, epoch_losses, train_seconds, stopped_early = 0, [], [], 0.0, False
    if resume and store.exists():
        state, _ = store.load(model, ema.model if ema else None)
        model.to(device)
        if ema:
            ema.model.to(device)
        optimizer.load_state_dict(state["optimizer"])
        step, losses = int(state["step"]), list(state["losses"])
        epoch_losses, train_seconds = list(state["epoch_losses"]), float(state["train_seconds"])
        stopped_early = bool(state.get("stopped_early", False))
    if main:
        write_json(run_dir / "config.json", run_config)
    net = distributed.wrap(model, device)  # DistributedDataParallel under torchrun, else model itself
    if config.compile:
        net = compile_for_training(net)
    net = precision.with_precision(net, prec, device)   # bf16: the UNet's forward/backward; loss and weights fp32
    eval_model = ema.model if ema else model
    weights_meta = {"objective": objective.config(), "weights": "ema" if ema else "raw"}

    def checkpoint() -> None:
        state = {
            "optimizer": optimizer.state_dict(),
            "step": step,
            "losses": losses,
            "epoch_losses": epoch_losses,
            "train_seconds": train_seconds,
            "stopped_early": stopped_early,
        }
        if main:
            store.save(step, model, state, {"epoch": step // steps_per_epoch, "total_steps": total_steps},
                       ema=ema.model if ema else None)
        distributed.barrier()  # nobody goes on before the checkpoint is complete

    def out_of_time(seconds: float | None = None) -> bool:
        seconds = train_seconds if seconds is None else seconds
        return bool(config.max_train_seconds) and seconds >= config.max_train_seconds

    def checkpoint_due() -> bool:
        return bool(config.checkpoint_interval) and time.monotonic() - last_checkpoint >= config.checkpoint_interval

    bar = TrainingProgress(total_steps, step, desc or objective.name, enabled=config.progress and main)
    last_checkpoint = time.monotonic()
    images_seen_now, started = 0, time.monotonic()
    interrupt = _InterruptAfterStep()
    try:
        while step < total_steps and not stopped_early:
            epoch, start_in_epoch = divmod(step, steps_per_epoch)
            perm = torch.randperm(n, generator=rng.generator(config.seed, epoch, rng.PERMUTATION))
            for i in range(start_in_epoch, steps_per_epoch):
                first = i * global_batch + rank * shard
                idx = perm[first : first + shard].to(device)
                t0 = time.monotonic()
                lr = config.lr_at(step, steps_per_epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                rand = rng.BatchRandom(rng.generator(config.seed, epoch, i, device=device), rank, world)
                loss = objective.loss(net, to_float(data_x[idx]), data_y[idx], rand)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                if ema:
                    ema.update(model, step)
                value = float(loss.detach())
                if world > 1:  # one collective: the mean loss, and decisions every rank must share
                    total = distributed.all_reduce_sum([
                        value, interrupt.take(),
                        main and out_of_time(train_seconds + time.monotonic() - t0), main and checkpoint_due(),
                    ])
                    value, interrupted, time_up, due = total[0] / world, total[1] > 0, total[2] > 0, total[3] > 0
                if not math.isfinite(value):
                    raise FundiffError(
                        f"training diverged at step {step} (loss {value}); lower --lr and start a new run"
                    )
                losses.append(value)
                step += 1
                train_seconds += time.monotonic() - t0
                images_seen_now += len(idx) * world
                bar.update(step, epoch + 1, config.epochs, value, images_seen_now / max(time.monotonic() - started, 1e-9),
                           epoch_end=i + 1 == steps_per_epoch)
                if world == 1:
                    interrupted, time_up, due = interrupt.take(), out_of_time(), checkpoint_due()
                if interrupted:
                    raise KeyboardInterrupt
                if time_up:
                    stopped_early = True
                    break
                if i + 1 == steps_per_epoch:
                    break
                if due:
                    checkpoint()
                    last_checkpoint = time.monotonic()
            if stopped_early and step % steps_per_epoch:
                checkpoint()
                break
            # end of epoch
            epoch_losses.append(sum(losses[-steps_per_epoch:]) / steps_per_epoch)
            if main:
                save_model(run_dir / "weights" / f"epoch-{epoch + 1:03d}.safetensors", eval_model,
                           {**weights_meta, "epoch": epoch + 1})
            checkpoint()
            last_checkpoint = time.monotonic()
            if on_epoch_end is not None:
                if main:
                    on_epoch_end(epoch + 1, eval_model)
                distributed.barrier()
    except KeyboardInterrupt:
        if step % steps_per_epoch:
            checkpoint()
        bar.close()
        raise
    finally:
        interrupt.restore()
    bar.close()

    throughput = step * config.batch_size / train_seconds if train_seconds > 0 else float("nan")
    metrics = {
        "steps": step,
        "steps_per_epoch": steps_per_epoch,
        "train_images": n,
        "train_seconds": round(train_seconds, 3),
        "images_per_second": round(throughput, 2),
        "stopped_by_time_budget": stopped_early,
        "epoch_loss": epoch_losses,
        "loss": losses,
        "precision": prec,
    }
    if main:
        save_model(run_dir / "model.safetensors", eval_model,
                   {**weights_meta, "steps": step, "epochs": step / steps_per_epoch})
        write_json(run_dir / "metrics.json", metrics)
    distributed.barrier()
    eval_model.eval()
    return TrainResult(eval_model, run_dir, losses, epoch_losses, steps_per_epoch, throughput, train_seconds,
                       {"stopped_by_time_budget": stopped_early})


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

    def take(self) -> bool:
        """Whether Ctrl-C came since the last call (and forget it)."""
        pending, self.pending = self.pending, False
        return pending

    def check(self) -> None:
        if self.take():
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
    if not isinstance(saved, dict):
        raise FundiffError(f"{saved_path} is not a run's config (a JSON object); cannot check that --resume continues "
                           "the same run")

    def comparable(cfg: dict[str, Any]) -> dict[str, Any]:
        out = json.loads(json.dumps(cfg))
        out.setdefault("precision", "fp32")   # a run saved before --precision existed ran in fp32
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

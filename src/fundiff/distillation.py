"""``fundiff distill``: a guided class-conditional flow teacher into a few-step student.

:func:`distill` starts a :class:`~fundiff.nn.shortcut.ShortcutUNet` from the teacher's weights (its FiLM on
(gamma, d) at zero, so the student begins as the teacher's conditional model) and trains it with the shared
trainer on :class:`~fundiff.objectives.distill.ShortcutDistillation`: checkpoints, ``--resume`` after a
kill, EMA, progress lines and DDP under torchrun are the trainer's.  The result is an ordinary fundiff model
file: ``fundiff sample --model DIR`` and ``fundiff evaluate --model DIR`` take it, with the sampler
``shortcut`` (one UNet pass per step, steps 1, 2, 4, ...).  See ``docs/distillation.md`` for the method and
what it measured.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from fundiff.data import MNIST
from fundiff.errors import FundiffError
from fundiff.generate import EMBEDDED, EMBEDDED_FILES, embedded_model_path, load_generator
from fundiff.nn.shortcut import ShortcutUNet
from fundiff.objectives.distill import ShortcutDistillation
from fundiff.training import TrainConfig, TrainResult, train
from fundiff.training.checkpoint import load_model

#: ``fundiff distill``'s training defaults: batch 128, AdamW 5e-4 after 100 warm-up steps, EMA 0.999,
#: gradient clipping at 1; 2 epochs of the 60,000 training images (one epoch is 468 steps).
DISTILL_DEFAULTS = TrainConfig(epochs=2, batch_size=128, lr=5e-4, warmup_steps=100, optimizer="adamw", adam_beta2=0.99,
                               grad_clip=1.0, ema_decay=0.999, seed=0)


@dataclass
class DistillOptions:
    """What the student learns (see :class:`~fundiff.objectives.distill.ShortcutDistillation`)."""

    levels: int = 6                      # step sizes 1, 1/2, ..., 2^-(levels - 1): 1 to 32 steps
    consistency_fraction: float = 0.25   # share of each batch on the self-consistency targets
    guidance_min: float = 1.0
    guidance_max: float = 5.0
    p_uncond: float = 0.1
    default_steps: int = 4
    default_guidance_scale: float = 2.0


def teacher_path(teacher: str | os.PathLike) -> Path:
    name = str(teacher)
    if name in EMBEDDED_FILES:
        if name != EMBEDDED:
            raise FundiffError(f"--teacher {name!r} is itself distilled; distil a flow model such as 'mnist'")
        return embedded_model_path(name)
    path = Path(teacher)
    return path / "model.safetensors" if path.is_dir() else path


def distill(out_dir: str | os.PathLike, mnist: MNIST, *, teacher: str | os.PathLike = EMBEDDED,
            config: TrainConfig = DISTILL_DEFAULTS, options: DistillOptions = DistillOptions(),
            resume: bool = False) -> TrainResult:
    """Distil ``teacher`` ("mnist" or a class-conditional flow model file / run folder) into ``out_dir``."""
    config.validate()
    path = teacher_path(teacher)
    if not path.is_file():
        raise FundiffError(f"--teacher {str(teacher)!r}: no such model file")
    gen = load_generator(path, "cpu")   # raises a one-line error for a DDPM, time-only or non-model file
    if gen.is_shortcut or not gen.is_flow or not gen.is_class_conditional:
        raise FundiffError(f"--teacher {str(teacher)!r} must be a class-conditional flow model (fundiff train flow "
                           "--conditioning class), not a distilled, DDPM or time-only one")
    objective = ShortcutDistillation(gen.model, str(teacher), **dataclasses.asdict(options))
    student = ShortcutUNet.from_teacher(load_model(path, "cpu"), seed=config.seed)
    return train(student, objective, mnist.train_images, mnist.train_labels, config, out_dir, resume=resume,
                 data_source=mnist.source, desc="distill", reinitialize=False)

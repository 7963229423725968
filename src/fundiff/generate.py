"""Generation from a trained MNIST flow or DDPM model: prompts in, images in [0, 1] out.

``load_generator("mnist")`` is the embedded class-conditional flow model shipped with fundiff,
``load_generator("mnist-fast")`` its distilled few-step student (``fundiff distill``); any other value is
a path to a ``model.safetensors`` written by ``fundiff train flow|ddpm`` or ``fundiff distill``.
``generate(...)`` takes diffusers-style arguments (``num_inference_steps``, ``guidance_scale``,
``generator``) and picks the sampler family from the model's objective.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from fundiff.errors import CheckpointError, FundiffError
from fundiff.guidance import conditional_prediction, distilled_prediction
from fundiff.nn.fuse import fold_batchnorm
from fundiff.training import speed
from fundiff.training.precision import resolve_precision, with_precision
from fundiff.engine.schedule import Schedule
from fundiff.samplers import (DDPM_SAMPLERS, EVALS_PER_STEP, FLOW_SAMPLERS, SHORTCUT_SAMPLERS, sample_ddpm, sample_flow,
                              sample_shortcut)
from fundiff.training.checkpoint import load_model, read_metadata

EMBEDDED = "mnist"
EMBEDDED_FAST = "mnist-fast"
EMBEDDED_FILES = {EMBEDDED: "mnist_flow.safetensors", EMBEDDED_FAST: "mnist_fast.safetensors"}
MAX_STEPS = 1000
MAX_GUIDANCE = 50.0
STUDY_GUIDANCE = 5.0   # the study's gamma for MNIST: the default of a guided teacher


def embedded_model_path(name: str = EMBEDDED) -> Path:
    return Path(str(resources.files("fundiff") / "assets" / EMBEDDED_FILES[name]))


@dataclass
class Generator:
    """A loaded generative model and what it needs to sample."""

    model: nn.Module
    objective: dict[str, Any]
    source: str
    precision: str = "fp32"   # "fp32" or "bf16": the UNet's forward (fundiff.training.precision); samplers stay fp32

    @classmethod
    def for_sampling(cls, model: nn.Module, objective: dict[str, Any], source: str, precision: str = "fp32") -> "Generator":
        """Wrap a trained UNet for sampling: BatchNorm folded into its convolutions, weights channels-last and
        freed memory kept for reuse (the same function, faster; see fundiff.training.speed). ``precision``
        may be "auto" (bf16 where the hardware has it natively)."""
        speed.keep_freed_memory()
        model = speed.prefer_channels_last(fold_batchnorm(model))
        return cls(model, objective, source, resolve_precision(precision, next(model.parameters()).device))

    @property
    def is_flow(self) -> bool:
        return self.objective.get("name") == "flow"

    @property
    def is_shortcut(self) -> bool:
        """A distilled few-step student (fundiff.nn.shortcut): gamma and the step size are its inputs."""
        return getattr(self.model, "kind", None) == "shortcut"

    @property
    def is_class_conditional(self) -> bool:
        return getattr(self.model, "kind", None) in ("class", "shortcut")

    @property
    def default_sampler(self) -> str:
        return "shortcut" if self.is_shortcut else "midpoint" if self.is_flow else "ddim"

    @property
    def guidance_range(self) -> tuple[float, float]:
        """The guidance scales the model takes: a student only those it was distilled for."""
        return tuple(self.objective.get("guidance_range", (0.0, MAX_GUIDANCE)))

    @property
    def default_guidance_scale(self) -> float:
        """The study's 5 for a teacher; a student's own, chosen by measurement when it was distilled."""
        return float(self.objective.get("default_guidance_scale", STUDY_GUIDANCE))

    @property
    def default_steps(self) -> int:
        """Midpoint with 7 steps: 14 evaluations per image, 28 with guidance (the study spends 600).

        Measured on the embedded model (1000 images, gamma 2): classifier-FID 0.91 for midpoint x 7,
        2.05 for Heun x 7 (Heun's last evaluation sits at t = 1, where the field bends most).
        """
        if self.is_shortcut:
            return int(self.objective.get("default_steps", 4))
        return 7 if self.is_flow else 50

    @property
    def shortcut_steps(self) -> list[int]:
        """The step counts a student was trained for: 1, 2, 4, ..., 2^(levels - 1)."""
        return [2**m for m in range(int(self.objective.get("levels", 1)))]

    @property
    def samplers(self) -> tuple[str, ...]:
        if self.is_shortcut:
            return SHORTCUT_SAMPLERS
        return FLOW_SAMPLERS if self.is_flow else DDPM_SAMPLERS

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def load_generator(name_or_path: str | Path = EMBEDDED, device: str | torch.device = "cpu",
                   precision: str = "fp32") -> Generator:
    """An embedded model ("mnist", "mnist-fast") or a flow / DDPM / distilled model file."""
    name = str(name_or_path)
    path = embedded_model_path(name) if name in EMBEDDED_FILES else Path(name_or_path)
    if name in EMBEDDED_FILES and not path.is_file():
        raise FundiffError(f"the embedded model {name!r} is not in this installation (fundiff/assets/{path.name})")
    if path.is_dir():
        path = path / "model.safetensors"
    meta = read_metadata(path)
    try:
        objective = json.loads(meta.get("fundiff.objective", "{}"))
    except ValueError:
        objective = {}
    if objective.get("name") not in ("flow", "ddpm"):
        raise CheckpointError(f"{path} is not a flow or DDPM model (objective {objective.get('name')!r}); "
                              "train one with fundiff train flow|ddpm")
    model = load_model(path, device)
    if getattr(model, "kind", None) not in ("time", "class", "shortcut"):
        raise CheckpointError(f"{path} holds a {model.kind!r} model; generation needs a time- or class-conditioned UNet")
    return Generator.for_sampling(model, objective, str(path), precision)


def load_initial_weights(model: nn.Module, name_or_path: str | Path, objective: str) -> str:
    """Copy the weights of ``name_or_path`` (an embedded model name, a model file or run folder) into ``model``, which
    must be the same UNet (kind and size) trained for the same ``objective``; returns the file they came from.
    This is how fine-tuning starts."""
    gen = load_generator(name_or_path)
    if gen.objective.get("name") != objective or gen.is_shortcut:
        what = "a distilled" if gen.is_shortcut else f"a {gen.objective.get('name')}"
        raise FundiffError(f"--init {str(name_or_path)!r} is {what} model; fine-tuning {objective} needs a {objective} model")
    weights = load_model(gen.source, "cpu")   # as trained (the sampling copy has its norms folded into the convs)
    source = getattr(weights, "config", lambda: {})()
    if source != model.config():
        raise FundiffError(f"--init {str(name_or_path)!r} is a {source.get('kind')} UNet with D = {source.get('num_hiddens')}, "
                           f"but this run trains a {model.config()['kind']} UNet with D = {model.config()['num_hiddens']}")
    model.load_state_dict(weights.state_dict())
    return gen.source


def validate_sampling(gen: Generator, sampler: str, steps: int, guidance_scale: float) -> None:
    if sampler not in gen.samplers:
        kind = "distilled few-step" if gen.is_shortcut else gen.objective["name"]
        raise FundiffError(f"--sampler {sampler!r} does not fit a {kind} model; choose one of {', '.join(gen.samplers)}")
    limit = gen.objective.get("num_steps", MAX_STEPS) if not gen.is_flow else MAX_STEPS
    if gen.is_shortcut and steps not in gen.shortcut_steps:
        raise FundiffError(f"--steps must be one of {', '.join(map(str, gen.shortcut_steps))} for the distilled model "
                           f"{gen.source} (the step sizes it was trained for), got {steps}")
    if not 1 <= steps <= limit:
        raise FundiffError(f"--steps must be in 1..{limit}, got {steps}")
    low, high = gen.guidance_range
    if not (low <= guidance_scale <= high) or math.isnan(guidance_scale):
        trained = " (the scales this distilled model was trained for)" if gen.is_shortcut else ""
        raise FundiffError(f"--guidance-scale must be in [{low:g}, {high:g}]{trained}, got {guidance_scale}")


def evaluations_per_image(gen: Generator, sampler: str, steps: int, guidance_scale: float, conditional: bool) -> int:
    """UNet evaluations each image costs (a guided step counts its two passes)."""
    guided = gen.is_class_conditional and conditional and guidance_scale != 1.0 and not gen.is_shortcut
    return steps * EVALS_PER_STEP[sampler] * (2 if guided else 1)


@torch.no_grad()
def generate_batches(
    gen: Generator,
    labels: torch.Tensor | None,
    num_images: int | None = None,
    *,
    num_inference_steps: int | None = None,
    sampler: str | None = None,
    guidance_scale: float | None = None,
    generator: torch.Generator | None = None,
    keep_trajectory: bool = False,
    batch_size: int = 500,
    callback: Callable[[int, float, torch.Tensor], None] | None = None,
) -> Iterator[tuple[torch.Tensor, list[torch.Tensor]]]:
    """Images (B, 1, 28, 28) in [0, 1] for class ``labels`` (N,) (None: ``num_images`` unconditional), ``batch_size``
    at a time, with each batch's trajectory: any N runs in the memory of one batch.

    Each batch's initial noise is drawn on the CPU from ``generator`` when the batch starts (the same numbers as
    one draw of all N, since every image is a whole number of torch's 16-value blocks), so results do not depend
    on the device.  A DDPM batch then draws the seed of its step noise.
    """
    sampler = sampler or gen.default_sampler
    steps = num_inference_steps or gen.default_steps
    guidance_scale = gen.default_guidance_scale if guidance_scale is None else guidance_scale
    validate_sampling(gen, sampler, steps, guidance_scale)
    if labels is not None:
        labels = torch.as_tensor(labels, dtype=torch.long)
        num_images = len(labels)
    if not num_images or num_images < 1:
        raise FundiffError("--num-images must be at least 1")
    if labels is not None and not gen.is_class_conditional:
        raise FundiffError("this model is not class-conditional: use the empty prompt ''")
    device = gen.device
    for start in range(0, num_images, batch_size):
        n = min(batch_size, num_images - start)
        x = torch.randn((n, 1, 28, 28), generator=generator).to(device)
        lab = labels[start : start + n].to(device) if labels is not None else None
        model = with_precision(gen.model, gen.precision, device)
        if gen.is_shortcut:   # guidance is an input of the student: one pass per step
            x, traj = sample_shortcut(distilled_prediction(model, lab, guidance_scale), x, steps, keep_trajectory, callback)
        elif gen.is_flow:
            predict, _ = conditional_prediction(model, lab, guidance_scale)
            x, traj = sample_flow(predict, x, steps, sampler, keep_trajectory, callback)
        else:
            predict, _ = conditional_prediction(model, lab, guidance_scale)
            schedule = Schedule.linear(gen.objective["num_steps"], gen.objective["beta1"], gen.objective["beta2"])
            step_gen = torch.Generator(device=device).manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
            x, traj = sample_ddpm(predict, x, steps, schedule, sampler, step_gen, keep_trajectory, callback)
        images = x.clamp(0, 1).cpu()
        if not torch.isfinite(images).all():  # clamp keeps NaN: an untrained or diverged model
            raise FundiffError(f"the samples of {gen.source} (guidance scale {guidance_scale:g}) hold NaN or infinite "
                               "values: the model has not learned a stable field; train it longer or with a lower --lr")
        yield images, traj


def generate(gen: Generator, labels: torch.Tensor | None, num_images: int | None = None, *,
             keep_trajectory: bool = False, **options: Any) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """All of :func:`generate_batches` at once: images (N, 1, 28, 28) in [0, 1] and, if asked, the trajectory."""
    outs, trajs = [], []
    for images, traj in generate_batches(gen, labels, num_images, keep_trajectory=keep_trajectory, **options):
        outs.append(images)
        trajs.append(traj)
    trajectory = [torch.cat([t[i] for t in trajs]).clamp(0, 1) for i in range(len(trajs[0]))] if keep_trajectory else []
    return torch.cat(outs), trajectory

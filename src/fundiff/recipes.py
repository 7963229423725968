"""Training recipes for the generative MNIST models: the study's, and fundiff's own.

A recipe is a model width, a :class:`~fundiff.training.TrainConfig` and objective options.
``study`` is exactly the reference's (section 2.2 / 2.3):

* flow (2025): D=64, batch 64, Adam lr 1e-2, ExponentialLR gamma = 0.1**(1/epochs), 10 epochs,
  t ~ U[0, 1], p_uncond 0.1; the time-only UNet is multiplicative in t;
* DDPM (2024): D=64, batch 128, Adam lr 1e-3, the same ExponentialLR, 20 epochs, T=300, p_uncond 0.1;
  the time-only UNet is additive in t.

``fundiff`` is the recipe chosen by measurement for quality per CPU-minute (see bench/ and the
issue notes). ``noschedule`` answers reference 2.3 ("get rid of the learning rate scheduler" and
describe the compensation) with three changes at once: no scheduler, a constant lr 10x lower (1e-3)
and an EMA of the weights (0.999). It is not "the study's recipe minus the scheduler"; the report's
``ablation`` section (fundiff.studies.ablation) changes one factor at a time to say which earns what.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from fundiff.errors import FundiffError
from fundiff.nn import ClassConditionalUNet, TimeConditionalUNet
from fundiff.objectives import DDPMObjective, FlowMatchingObjective
from fundiff.engine.schedule import Schedule
from fundiff.training import TrainConfig


@dataclass
class Recipe:
    num_hiddens: int
    train: TrainConfig
    objective: dict[str, Any] = field(default_factory=dict)


RECIPES: dict[str, dict[str, Recipe]] = {
    "flow": {
        "study": Recipe(64, TrainConfig(epochs=10, batch_size=64, lr=1e-2, lr_schedule="exponential", lr_final_factor=0.1)),
        "noschedule": Recipe(64, TrainConfig(epochs=10, batch_size=64, lr=1e-3, lr_schedule="none", ema_decay=0.999)),
        "fundiff": Recipe(
            32,
            TrainConfig(epochs=10, batch_size=128, lr=2e-3, optimizer="adamw", adam_beta2=0.99, warmup_steps=200,
                        grad_clip=1.0, ema_decay=0.999),
            {"time_sampling": "logit-normal"},
        ),
    },
    "ddpm": {
        "study": Recipe(64, TrainConfig(epochs=20, batch_size=128, lr=1e-3, lr_schedule="exponential", lr_final_factor=0.1)),
    },
}


def get_recipe(objective: str, name: str) -> Recipe:
    recipes = RECIPES[objective]
    if name not in recipes:
        raise FundiffError(f"unknown --recipe {name!r} for {objective}; choose one of {', '.join(recipes)}")
    r = recipes[name]
    return Recipe(r.num_hiddens, dataclasses.replace(r.train), dict(r.objective))


def build_objective(objective: str, options: dict[str, Any]):
    if objective == "flow":
        return FlowMatchingObjective(**options)
    schedule_keys = {"num_steps", "beta1", "beta2"}
    schedule = Schedule.linear(**{k: v for k, v in options.items() if k in schedule_keys})
    return DDPMObjective(schedule, **{k: v for k, v in options.items() if k not in schedule_keys})


def build_generative_unet(objective: str, conditioning: str, num_hiddens: int):
    if conditioning == "class":
        return ClassConditionalUNet(1, 10, num_hiddens)
    if conditioning == "time":
        return TimeConditionalUNet(1, num_hiddens, "multiplicative" if objective == "flow" else "additive")
    raise FundiffError(f"--conditioning must be 'time' or 'class', got {conditioning!r}")

"""fundiff's MNIST flow model as a Part A denoiser (28 x 28 grey, prompts "0".."9", "" unconditional).

The flow model was trained on digits y in [0, 1] along y_tau = tau y + (1 - tau) eps and predicts the
velocity u = y - eps.  The engine works in [-1, 1] (x0 = 2 y - 1) on the VP schedule x = a x0 + s eps.
Since x + a = 2 (a y + (s/2) eps), the same image in the flow's coordinates is

    c = a + s/2,   tau = a / c,   y_tau = (x + a) / (2 c),

and the model's answer gives y-hat = y_tau + (1 - tau) u, eps-hat = y_tau - tau u, x0-hat = 2 y-hat - 1
(exactly x = a x0-hat + s eps-hat).  The schedule is DeepFloyd IF's cosine one, so timesteps mean the
same noise level (in [-1, 1]) on both backends.  x0-hat is clipped to [-1, 1] (static thresholding):
MNIST's pixels sit at the ends of the range, where IF's dynamic thresholding greys the background.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from fundiff.engine.denoiser import Denoiser, Prediction
from fundiff.engine.schedule import Schedule, Threshold
from fundiff.errors import FundiffError
from fundiff.generate import EMBEDDED, Generator, load_generator
from fundiff.nn.conditioning import call_model
from fundiff.training.precision import with_precision
from fundiff.paths import FLOW_PATH
from fundiff.prompts import parse_digit_prompt

UNCONDITIONAL = -1


class MnistDenoiser(Denoiser):
    """A fundiff flow model (the embedded one by default) behind the denoiser interface."""

    name = "mnist"
    channels = 1
    image_size = 28
    null_prompt = ""
    default_prompt = ""

    def __init__(self, generator: Generator, schedule: Schedule | None = None,
                 threshold: Threshold | None = Threshold.static()):
        if not generator.is_flow:
            raise FundiffError(f"{generator.source} is a {generator.objective.get('name')} model; "
                               "the Part A engine takes fundiff flow models (fundiff train flow)")
        if generator.is_shortcut:
            raise FundiffError(f"{generator.source} is a distilled few-step model; Part A's algorithms need a denoiser "
                               "at every noise level: use --model mnist (its teacher)")
        self.generator = generator
        self.model = with_precision(generator.model, generator.precision, generator.device)   # bf16: autocast view
        self.schedule = schedule or Schedule.squaredcos()
        self.threshold = threshold
        self.class_conditional = generator.is_class_conditional

    @classmethod
    def load(cls, name_or_path: str | Path = EMBEDDED, device: str | torch.device = "cpu",
             precision: str = "fp32") -> "MnistDenoiser":
        return cls(load_generator(name_or_path, device, precision))

    @property
    def device(self) -> torch.device:
        return self.generator.device

    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        """Class labels (N,), -1 for the unconditional prompt ""."""
        labels = []
        for p in prompts:
            c = parse_digit_prompt(p)
            if c is not None and not self.class_conditional:
                raise FundiffError(f"prompt {p!r}: this MNIST model is not class-conditional; use the empty prompt ''")
            labels.append(UNCONDITIONAL if c is None else c)
        return torch.tensor(labels, dtype=torch.long, device=self.device)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, t: int, cond: torch.Tensor | None) -> Prediction:
        a, s = self.schedule.coefficients(t)
        c = a + s / 2
        tau = a / c
        y = (x + a) / (2 * c)
        n = x.shape[0]
        tau_col = torch.full((n,), tau, dtype=x.dtype, device=x.device)
        if cond is None or not self.class_conditional:
            u = call_model(self.model, y, tau_col)
        else:
            keep = (cond >= 0).to(x.dtype)
            u = call_model(self.model, y, tau_col, cond.clamp(min=0), keep)
        y0, eps = FLOW_PATH.x0_eps_from_velocity(y, tau, u)
        return Prediction(x0=2 * y0 - 1, eps=eps)

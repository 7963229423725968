"""Shortcut distillation of a guided flow teacher into a few-step student (``fundiff distill``).

The teacher v(x, t, c) is a class-conditional flow model; its guided field is

    v_gamma(x, t, c) = v(x, t, 0) + gamma (v(x, t, c) - v(x, t, 0)).

The student s(x, c, t, gamma, d) (:class:`~fundiff.nn.shortcut.ShortcutUNet`) learns two things on each
batch, from x_t = (1 - t) eps + t x1 on the straight path (x1 a training image, eps ~ N(0, I)):

* **guidance distillation** (Meng et al. 2023), on a share 1 - q of the batch: t ~ U[0, 1), d = 0,
  target v_gamma(x_t, t, c) from the teacher (both of its passes, batched);
* **self-consistency** (Frans et al. 2024, "shortcut models"), on a share q: a step size D = 2^-m,
  m uniform in 0..M-1 (M = ``levels``), t uniform on the grid {0, D, ..., 1 - D}, and the target is two half steps of the
  student itself, without gradient:

      s1 = s(x_t, c, t, gamma, D/2),   s2 = s(x_t + D/2 s1, c, t + D/2, gamma, D/2),   target (s1 + s2) / 2

  where the half step of the finest level (D/2 = 2^-M) is d = 0, the distilled guided velocity.

    L = mean over the batch of || s(x_t, c, t, gamma, d) - target ||^2

gamma ~ U[gamma_min, gamma_max] per image; with probability ``p_uncond`` the class is dropped (the target
is then the teacher's unconditional velocity, whatever gamma).  ``default_steps`` and ``default_guidance_scale``
are not part of the loss: they are the student's sampling defaults, stored with its weights.  The bootstrap passes run with the
student in eval mode (BatchNorm's running statistics), so they neither see nor move the batch statistics.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from fundiff.errors import FundiffError
from fundiff.guidance import guide
from fundiff.nn.conditioning import call_model, condition_dropout
from fundiff.paths import FLOW_PATH
from fundiff.training.rng import BatchRandom


def teacher_guided_velocity(teacher: nn.Module, x: torch.Tensor, labels: torch.Tensor, t: torch.Tensor,
                            gamma: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """v(x, t, 0) + gamma (v(x, t, c) - v(x, t, 0)) per image (gamma, keep: (N,)); one batched call of 2N."""
    uncond, cond = call_model(teacher, torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, labels]),
                              torch.cat([torch.zeros_like(keep), keep])).chunk(2)
    return guide(uncond, cond, gamma.reshape(-1, 1, 1, 1))


class ShortcutDistillation:
    """The loss of the module docstring; ``teacher`` is a class-conditional flow UNet (eval mode, frozen)."""

    def __init__(self, teacher: nn.Module, teacher_source: str, *, levels: int = 6, consistency_fraction: float = 0.25,
                 guidance_min: float = 1.0, guidance_max: float = 5.0, p_uncond: float = 0.1,
                 default_steps: int = 4, default_guidance_scale: float = 2.0):
        if getattr(teacher, "kind", None) != "class":
            raise FundiffError(f"distillation needs a class-conditional flow teacher; {teacher_source} is not one")
        if not 1 <= levels <= 8:
            raise FundiffError(f"--levels must be in 1..8, got {levels}")
        if not 0 < consistency_fraction < 1:
            raise FundiffError(f"--consistency-fraction must be in (0, 1), got {consistency_fraction}")
        if not (0 <= guidance_min <= guidance_max <= 50 and math.isfinite(guidance_max)):
            raise FundiffError(f"--guidance-min and --guidance-max must satisfy 0 <= min <= max <= 50, got {guidance_min}..{guidance_max}")
        if not 0 <= p_uncond < 1:
            raise FundiffError(f"--p-uncond must be in [0, 1), got {p_uncond}")
        if default_steps not in [2**m for m in range(levels)]:
            raise FundiffError(f"--default-steps must be a power of two up to 2^(levels - 1) = {2 ** (levels - 1)}, "
                               f"got {default_steps}")
        if not guidance_min <= default_guidance_scale <= guidance_max:
            raise FundiffError(f"--default-guidance-scale must be in the distilled range {guidance_min:g}..{guidance_max:g}")
        self.default_steps, self.default_guidance_scale = default_steps, default_guidance_scale
        self.teacher = teacher.eval().requires_grad_(False)
        self.teacher_source = teacher_source
        self.levels, self.consistency_fraction = levels, consistency_fraction
        self.guidance_min, self.guidance_max, self.p_uncond = guidance_min, guidance_max, p_uncond
        self.name = "shortcut distillation"

    def loss(self, model: nn.Module, x1: torch.Tensor, labels: torch.Tensor, rand: BatchRandom) -> torch.Tensor:
        n, device = x1.shape[0], x1.device
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        n_cons = max(1, round(n * self.consistency_fraction)) if n > 1 else 0
        n_flow = n - n_cons
        eps = rand.randn(x1.shape, device, x1.dtype)
        gamma = self.guidance_min + (self.guidance_max - self.guidance_min) * rand.rand(n, device)
        keep = condition_dropout(n, self.p_uncond, rand, device)
        level = (rand.rand(n, device) * self.levels).floor().clamp(max=self.levels - 1)   # m in 0..M-1
        size = torch.exp2(-level)                                                          # D = 2^-m
        grid = (rand.rand(n, device) * torch.exp2(level)).floor()                          # k in 0..2^m - 1
        t = torch.cat([rand.rand(n, device)[:n_flow], (grid * size)[n_flow:]])
        step = torch.cat([torch.zeros(n_flow, device=device), size[n_flow:]])
        xt, _ = FLOW_PATH.sample(x1, eps, t)
        with torch.no_grad():
            f, c = slice(0, n_flow), slice(n_flow, n)
            target_flow = teacher_guided_velocity(self.teacher, xt[f], labels[f], t[f], gamma[f], keep[f])
            target_cons = self.two_half_steps(model, xt[c], labels[c], t[c], gamma[c], size[c], keep[c])
        pred = model(xt, labels, t, gamma, step, keep)
        return F.mse_loss(pred, torch.cat([target_flow, target_cons]))

    def two_half_steps(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor, t: torch.Tensor,
                       gamma: torch.Tensor, size: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """(s1 + s2) / 2 for two steps of D/2 by the student itself (d = 0 below the finest level)."""
        if x.shape[0] == 0:
            return x
        half = size / 2
        d = torch.where(half <= 2.0 ** -self.levels, torch.zeros_like(half), half)
        was_training = model.training
        model.eval()
        try:
            s1 = model(x, labels, t, gamma, d, keep)
            s2 = model(x + half.reshape(-1, 1, 1, 1) * s1, labels, t + half, gamma, d, keep)
        finally:
            model.train(was_training)
        return (s1 + s2) / 2

    def config(self) -> dict[str, Any]:
        return {"name": "flow", "distilled": "shortcut", "teacher": self.teacher_source, "levels": self.levels,
                "consistency_fraction": self.consistency_fraction, "guidance_range": [self.guidance_min, self.guidance_max],
                "p_uncond": self.p_uncond, "default_steps": self.default_steps,
                "default_guidance_scale": self.default_guidance_scale}

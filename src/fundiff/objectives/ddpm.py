"""DDPM (2024 study, reference section 2.2).

    x0 ~ data, eps ~ N(0, I), t ~ U{0, ..., T-1}
    x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps
    L = E || eps_theta(x_t, t / T [, c]) - eps ||^2

with T = 300 and betas linear from 1e-4 to 0.02 (:meth:`fundiff.engine.schedule.Schedule.linear`); the UNet sees
t / T in [0, 1).  Classes are dropped with probability ``p_uncond`` as for flows.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from fundiff.errors import FundiffError
from fundiff.nn.conditioning import call_model, condition_dropout
from fundiff.engine.schedule import Schedule
from fundiff.training.rng import BatchRandom


class DDPMObjective:
    """MSE between the predicted and the true noise at a uniformly drawn step t."""

    def __init__(self, schedule: Schedule | None = None, p_uncond: float = 0.1):
        if not 0 <= p_uncond < 1:
            raise FundiffError(f"--p-uncond must be in [0, 1), got {p_uncond}")
        self.schedule = schedule or Schedule.linear()
        self.p_uncond = p_uncond
        self.name = "DDPM"

    def loss(self, model: nn.Module, x0: torch.Tensor, labels: torch.Tensor, rand: BatchRandom) -> torch.Tensor:
        n, device = x0.shape[0], x0.device
        eps = rand.randn(x0.shape, device, x0.dtype)
        t = rand.randint(self.schedule.num_steps, n, device)
        keep = condition_dropout(n, self.p_uncond, rand, device)
        a, s = self.schedule.coefficients_at(t)
        xt = a.view(-1, 1, 1, 1) * x0 + s.view(-1, 1, 1, 1) * eps
        return F.mse_loss(call_model(model, xt, t.float() / self.schedule.num_steps, labels, keep), eps)

    def config(self) -> dict[str, Any]:
        return {"name": "ddpm", "p_uncond": self.p_uncond, **self.schedule.config()}

"""Flow matching (2025 study, reference section 2.3).

    x1 ~ data, eps ~ N(0, I), t ~ p(t) on [0, 1]
    x_t = (1 - t) eps + t x1,    target u = x1 - eps
    L = E || u_theta(x_t, t [, c]) - (x1 - eps) ||^2

The study samples t ~ U[0, 1]; ``time_sampling="logit-normal"`` draws logit(t) ~ N(mean, std)
instead (Esser et al. 2024), which spends more training on the middle of the path.  For class
models each sample's class is dropped to "no class" with probability ``p_uncond`` (0.1), which
trains the unconditional model classifier-free guidance needs.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from fundiff.errors import FundiffError
from fundiff.nn.conditioning import call_model, condition_dropout
from fundiff.paths import FLOW_PATH
from fundiff.training.rng import BatchRandom

TIME_SAMPLING = ("uniform", "logit-normal")


def sample_time(n: int, rand: BatchRandom, device, how: str = "uniform", mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """t in [0, 1]: uniform, or sigmoid of N(mean, std)."""
    if how == "uniform":
        return rand.rand(n, device)
    return torch.sigmoid(mean + std * rand.randn((n,), device))


class FlowMatchingObjective:
    """MSE between the predicted and the true velocity x1 - eps on the straight path."""

    def __init__(self, p_uncond: float = 0.1, time_sampling: str = "uniform", logit_mean: float = 0.0, logit_std: float = 1.0):
        if not 0 <= p_uncond < 1:
            raise FundiffError(f"--p-uncond must be in [0, 1), got {p_uncond}")
        if time_sampling not in TIME_SAMPLING:
            raise FundiffError(f"--time-sampling must be one of {', '.join(TIME_SAMPLING)}, got {time_sampling!r}")
        if not (logit_std > 0 and math.isfinite(logit_mean)):
            raise FundiffError("--logit-std must be positive")
        self.p_uncond, self.time_sampling = p_uncond, time_sampling
        self.logit_mean, self.logit_std = logit_mean, logit_std
        self.name = "flow matching"

    def loss(self, model: nn.Module, x1: torch.Tensor, labels: torch.Tensor, rand: BatchRandom) -> torch.Tensor:
        n, device = x1.shape[0], x1.device
        eps = rand.randn(x1.shape, device, x1.dtype)
        t = sample_time(n, rand, device, self.time_sampling, self.logit_mean, self.logit_std)
        keep = condition_dropout(n, self.p_uncond, rand, device)
        xt, target = FLOW_PATH.sample(x1, eps, t)
        return F.mse_loss(call_model(model, xt, t, labels, keep), target)

    def config(self) -> dict[str, Any]:
        cfg = {"name": "flow", "p_uncond": self.p_uncond, "time_sampling": self.time_sampling}
        if self.time_sampling == "logit-normal":
            cfg.update(logit_mean=self.logit_mean, logit_std=self.logit_std)
        return cfg

"""Noise paths: where a noisy image sits between data and noise.

Every path here writes a noisy image as

    x = a * x0 + s * eps,     x0 the clean image, eps ~ N(0, I),

and differs only in how (a, s) depend on its time variable:

* :class:`FlowPath`, the 2025 study's flow matching: x_t = (1 - t) eps + t x1 with t in [0, 1]
  (t = 0 pure noise, t = 1 data), so a = t, s = 1 - t; the model predicts the velocity
  u = x1 - eps = dx_t/dt.
* :class:`DDPMSchedule`, the 2024 study's DDPM: T = 300 steps, betas linear from 1e-4 to 0.02,
  alpha_bar_t = prod_{i<=t} (1 - beta_i), a = sqrt(alpha_bar_t), s = sqrt(1 - alpha_bar_t) for the
  integer t in [0, T-1]; the model predicts eps and sees t / T.

Given a model prediction at (a, s), :func:`x0_eps_from_velocity` and :func:`x0_from_eps` give the
clean-image and noise estimates every sampler needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class FlowPath:
    """x_t = (1 - t) eps + t x1: a = t, s = 1 - t; target u = x1 - eps."""

    name: str = "flow"

    def coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return t, 1 - t

    def config(self) -> dict[str, Any]:
        return {"path": self.name}


def x0_eps_from_velocity(x: torch.Tensor, t: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """On the flow path, from x_t and u = x1 - eps: x1 = x_t + (1 - t) u and eps = x_t - t u."""
    t = _column(t, x)
    return x + (1 - t) * u, x - t * u


def x0_from_eps(x: torch.Tensor, a: torch.Tensor, s: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x0 = (x - s eps) / a."""
    return (x - _column(s, x) * eps) / _column(a, x)


@dataclass(frozen=True)
class DDPMSchedule:
    """The discrete DDPM schedule: betas linear in [beta1, beta2] over num_steps, alpha_bar = cumprod(1 - beta)."""

    num_steps: int = 300
    beta1: float = 1e-4
    beta2: float = 0.02

    @property
    def betas(self) -> torch.Tensor:
        return torch.linspace(self.beta1, self.beta2, self.num_steps, dtype=torch.float64)

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return torch.cumprod(1 - self.betas, dim=0)

    def coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)) for integer t in [0, num_steps - 1]."""
        ab = self.alphas_cumprod.to(t.device)[t.long()]
        return ab.sqrt().float(), (1 - ab).sqrt().float()

    def config(self) -> dict[str, Any]:
        return {"path": "ddpm", "num_steps": self.num_steps, "beta1": self.beta1, "beta2": self.beta2}


def _column(v: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    v = torch.as_tensor(v, dtype=like.dtype, device=like.device)
    return v.reshape(-1, *([1] * (like.ndim - 1))) if v.ndim else v

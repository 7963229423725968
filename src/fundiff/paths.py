"""The affine noise path and its converters: where a noisy image sits between data and noise.

Every noisy image here is

    x = a * x0 + s * eps,     x0 the clean image, eps ~ N(0, I),

and the paths differ only in how (a, s) depend on time:

* :class:`FlowPath`, the 2025 study's flow matching: x_t = (1 - t) eps + t x1 with t in [0, 1]
  (t = 0 pure noise, t = 1 data), so a = t, s = 1 - t; the model predicts the velocity
  u = dx_t/dt = x1 - eps.  Given u, x1 = x_t + (1 - t) u and eps = x_t - t u
  (:meth:`FlowPath.x0_eps_from_velocity`): the flow objective, the flow samplers and the MNIST
  backend (which maps the flow onto IF's schedule) all use these.
* the discrete variance-preserving schedules (DeepFloyd IF's cosine one, the 2024 study's linear
  T = 300 one), a = sqrt(alpha_bar_t), s = sqrt(1 - alpha_bar_t): :class:`fundiff.engine.schedule.Schedule`.
  Given eps-hat, :func:`x0_from_eps` gives x0-hat = (x - s eps) / a.
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

    def sample(self, x1: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_t, the velocity target x1 - eps) for data x1, noise eps and times t (N,)."""
        tc = _column(t, x1)
        return (1 - tc) * eps + tc * x1, x1 - eps

    def x0_eps_from_velocity(self, x: torch.Tensor, t: torch.Tensor | float,
                             u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """From x_t and u = x1 - eps: x1 = x_t + (1 - t) u and eps = x_t - t u (t a float or one per image)."""
        t = _column(t, x) if isinstance(t, torch.Tensor) else t
        return x + (1 - t) * u, x - t * u

    def config(self) -> dict[str, Any]:
        return {"path": self.name}


FLOW_PATH = FlowPath()


def x0_eps_from_velocity(x: torch.Tensor, t: torch.Tensor | float, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:meth:`FlowPath.x0_eps_from_velocity` on the flow path."""
    return FLOW_PATH.x0_eps_from_velocity(x, t, u)


def x0_from_eps(x: torch.Tensor, a: torch.Tensor | float, s: torch.Tensor | float, eps: torch.Tensor) -> torch.Tensor:
    """x0 = (x - s eps) / a (a, s floats, 0-d tensors or one per image)."""
    a = _column(a, x) if isinstance(a, torch.Tensor) else a
    s = _column(s, x) if isinstance(s, torch.Tensor) else s
    return (x - s * eps) / a


def _column(v: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    v = torch.as_tensor(v, dtype=like.dtype, device=like.device)
    return v.reshape(-1, *([1] * (like.ndim - 1))) if v.ndim else v

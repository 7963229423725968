"""Samplers: plain functions that turn noise into images with a model prediction.

Flow models predict the velocity u(x, t) of the ODE dx/dt = u from t = 0 (noise) to t = 1 (data):

* ``euler``     x <- x + h u(x, t)                                  (the study, h = 1/T)   1 NFE/step
* ``midpoint``  x <- x + h u(x + h/2 u(x, t), t + h/2)                                   2 NFE/step
* ``heun``      k1 = u(x, t), k2 = u(x + h k1, t + h), x <- x + h/2 (k1 + k2)            2 NFE/step

A distilled few-step student (:mod:`fundiff.nn.shortcut`) predicts the average velocity over a step of size d:

* ``shortcut``  x <- x + h s(x, t, h)                  (h = 1/steps, steps a power of two)     1 NFE/step

DDPM models predict eps at step t of T (the UNet sees t / T); with x0 = (x - s eps) / a:

* ``ddpm``      ancestral: x_t' = sqrt(ab_t') b/(1 - ab_t) x0 + sqrt(al)(1 - ab_t')/(1 - ab_t) x_t + sqrt(b) z
                with al = ab_t / ab_t', b = 1 - al, z ~ N(0, I) except on the last step (the study's
                sampler with sigma^2 = beta_t; strided when fewer than T steps)                  1 NFE/step
* ``ddim``      deterministic: x_t' = sqrt(ab_t') x0 + sqrt(1 - ab_t') eps                      1 NFE/step

Each returns the final x and, if asked, the list of intermediate x (for animations).
"""

from __future__ import annotations

from typing import Callable

import torch

from fundiff.errors import FundiffError
from fundiff.engine.schedule import Schedule
from fundiff.paths import x0_from_eps

FLOW_SAMPLERS = ("euler", "midpoint", "heun")
DDPM_SAMPLERS = ("ddpm", "ddim")
SHORTCUT_SAMPLERS = ("shortcut",)
EVALS_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2, "ddpm": 1, "ddim": 1, "shortcut": 1}

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _const_t(value: float, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), float(value), dtype=x.dtype, device=x.device)


@torch.no_grad()
def sample_flow(
    velocity: Velocity, x: torch.Tensor, steps: int, method: str = "euler", keep_trajectory: bool = False,
    callback: Callable[[int, float, torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Integrate dx/dt = velocity(x, t) from t = 0 to 1 in ``steps`` equal steps; ``callback(i, t, x)`` after each."""
    if method not in FLOW_SAMPLERS:
        raise FundiffError(f"unknown flow sampler {method!r}; choose one of {', '.join(FLOW_SAMPLERS)}")
    h = 1.0 / steps
    trajectory = [x.cpu()] if keep_trajectory else []
    for i in range(steps):
        t = i * h
        if method == "euler":
            x = x + h * velocity(x, _const_t(t, x))
        elif method == "midpoint":
            k1 = velocity(x, _const_t(t, x))
            x = x + h * velocity(x + 0.5 * h * k1, _const_t(t + 0.5 * h, x))
        else:  # heun
            k1 = velocity(x, _const_t(t, x))
            k2 = velocity(x + h * k1, _const_t(t + h, x))
            x = x + 0.5 * h * (k1 + k2)
        if keep_trajectory:
            trajectory.append(x.cpu())
        if callback:
            callback(i, t, x)
    return x, trajectory


@torch.no_grad()
def sample_shortcut(
    step_velocity: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor], x: torch.Tensor, steps: int,
    keep_trajectory: bool = False, callback: Callable[[int, float, torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """x <- x + h s(x, t, h) for t = 0, h, ..., 1 - h with h = 1/steps; ``callback(i, t, x)`` after each."""
    h = 1.0 / steps
    trajectory = [x.cpu()] if keep_trajectory else []
    for i in range(steps):
        t = i * h
        x = x + h * step_velocity(x, _const_t(t, x), h)
        if keep_trajectory:
            trajectory.append(x.cpu())
        if callback:
            callback(i, t, x)
    return x, trajectory


def ddpm_timesteps(num_steps: int, schedule: Schedule) -> list[int]:
    """Strided steps from T-1 down to 0 (all T when num_steps == T)."""
    T = schedule.num_steps
    if not 1 <= num_steps <= T:
        raise FundiffError(f"--steps must be in 1..{T} for this DDPM model, got {num_steps}")
    ts = torch.linspace(T - 1, 0, num_steps).round().long().tolist()
    return sorted(set(ts), reverse=True)


@torch.no_grad()
def sample_ddpm(
    eps_model: Velocity, x: torch.Tensor, steps: int, schedule: Schedule, method: str = "ddpm",
    generator: torch.Generator | None = None, keep_trajectory: bool = False,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Reverse the DDPM chain over strided steps T-1 > ... > 0, ending at x0; ``callback(i, t, x)`` after each."""
    if method not in DDPM_SAMPLERS:
        raise FundiffError(f"unknown DDPM sampler {method!r}; choose one of {', '.join(DDPM_SAMPLERS)}")
    ts = ddpm_timesteps(steps, schedule)
    trajectory = [x.cpu()] if keep_trajectory else []
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        ab_t = schedule.alpha_bar(t).to(x.device)
        eps = eps_model(x, _const_t(t / schedule.num_steps, x))
        x0 = x0_from_eps(x, ab_t.sqrt(), (1 - ab_t).sqrt(), eps)
        if method == "ddim":
            x = schedule.add_noise(x0, t_prev, eps)          # the same eps, at the next level
        else:                                                  # Part A's posterior step, sigma^2 = beta
            x = schedule.posterior_mean(x0, x, t, t_prev)
            if t_prev >= 0:
                z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                x = x + schedule.beta(t, t_prev).sqrt().to(x) * z
        if keep_trajectory:
            trajectory.append(x.cpu())
        if callback:
            callback(i, t, x)
    return x, trajectory

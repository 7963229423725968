"""fundiff.samplers: the flow ODE solvers and the DDPM / DDIM samplers against closed forms."""

from __future__ import annotations

import pytest
import torch

from fundiff.engine.schedule import Schedule
from fundiff.errors import FundiffError
from fundiff.samplers import ddpm_timesteps, sample_ddpm, sample_flow

M, S = 0.3, 0.2  # 1-D Gaussian "data" N(M, S^2) with closed-form velocity and noise predictions


def gaussian_velocity(x, t):
    """E[x1 - eps | x_t] for x1 ~ N(M, S^2) on x_t = (1 - t) eps + t x1."""
    t = t.view(-1, *([1] * (x.ndim - 1)))
    var = (1 - t) ** 2 + t**2 * S**2
    return M + (x - t * M) * (t * S**2 - (1 - t)) / var


def gaussian_eps(schedule):
    ab = schedule.alphas_cumprod

    def eps(x, t_over_T):
        t = (t_over_T * schedule.num_steps).round().long()
        a, s = ab[t].sqrt().view(-1, 1, 1, 1), (1 - ab[t]).sqrt().view(-1, 1, 1, 1)
        return s * (x - a * M) / (a**2 * S**2 + s**2)

    return eps


def test_flow_samplers_follow_the_exact_ode():
    """The flow map of Gaussian data is x(1) = M + S x(0); second-order solvers get there faster."""
    x0 = torch.randn(512, 1, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    exact = M + S * x0

    def error(method, steps):
        return (sample_flow(gaussian_velocity, x0.clone(), steps, method)[0] - exact).abs().max().item()

    # convergence order from 16 to 32 steps: Euler first order, midpoint and Heun second order
    assert 1.7 < error("euler", 16) / error("euler", 32) < 2.3
    assert error("heun", 16) / error("heun", 32) > 3.3
    assert error("midpoint", 16) / error("midpoint", 32) > 3.3
    assert error("midpoint", 16) < 1e-3 and error("heun", 32) < 3e-3 and error("euler", 400) < 5e-3
    _, traj = sample_flow(gaussian_velocity, x0.clone(), 8, "heun", keep_trajectory=True)
    assert len(traj) == 9


def test_ddim_is_the_exact_probability_flow_and_ddpm_has_the_data_statistics():
    sched = Schedule.linear()
    ab_T = sched.alphas_cumprod[-1]
    xT = torch.randn(4000, 1, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out, _ = sample_ddpm(gaussian_eps(sched), xT.clone(), 300, sched, "ddim")
    expected = M + S * (xT - ab_T.sqrt() * M) / (ab_T * S**2 + 1 - ab_T).sqrt()
    assert (out - expected).abs().max().item() < 0.02
    g = torch.Generator().manual_seed(0)
    out, _ = sample_ddpm(gaussian_eps(sched), xT.clone(), 300, sched, "ddpm", generator=g)
    assert out.mean().item() == pytest.approx(M, abs=0.02)
    assert out.std().item() == pytest.approx(S, abs=0.02)
    # strided ancestral sampling keeps the statistics too
    out, _ = sample_ddpm(gaussian_eps(sched), xT.clone(), 30, sched, "ddpm", generator=g)
    assert out.std().item() == pytest.approx(S, abs=0.03)


def test_ddpm_timesteps_and_range():
    sched = Schedule.linear()
    assert ddpm_timesteps(300, sched) == list(range(299, -1, -1))
    ts = ddpm_timesteps(10, sched)
    assert ts[0] == 299 and ts[-1] == 0 and len(ts) == 10
    with pytest.raises(FundiffError, match="1..300"):
        ddpm_timesteps(301, sched)

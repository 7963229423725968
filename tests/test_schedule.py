"""fundiff.engine.schedule: IF's cosine schedule, the 2024 study's linear one, strided timesteps."""

from __future__ import annotations

import pytest
import torch

from fundiff.engine.schedule import Schedule
from fundiff.errors import FundiffError


def test_strided_timesteps_and_i_start():
    s = Schedule.squaredcos()
    ts = s.strided_timesteps()
    assert ts[:3] == [990, 960, 930] and ts[-1] == 0 and len(ts) == 34 and ts[10] == 690
    with pytest.raises(FundiffError, match="i_start=34"):
        Schedule.check_i_start(ts, 34)
    assert Schedule.i_start_for_strength(50, 1.0) == 0 and Schedule.i_start_for_strength(50, 0.3) == 35


def test_schedule_matches_the_study():
    sched = Schedule.linear()
    betas = sched.betas
    assert len(betas) == 300 and betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    torch.testing.assert_close(sched.alphas_cumprod_f64, torch.cumprod(1 - torch.linspace(1e-4, 0.02, 300, dtype=torch.float64), 0))

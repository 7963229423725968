"""fundiff.engine.editing: SDEdit, replacement inpainting and RePaint."""

from __future__ import annotations

import pytest
import torch

from fundiff.engine.denoiser import Conditioned
from fundiff.engine.editing import check_mask, inpaint, repaint_schedule, sdedit
from fundiff.engine.loops import iterative_denoise, randn
from fundiff.errors import FundiffError
from fundiff.images import psnr


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist.test_images[:4].float().div(255).unsqueeze(1) * 2 - 1


def test_sdedit_keeps_more_of_the_input_the_later_it_starts(den, digits):
    ts = den.schedule.strided_timesteps()
    predict = Conditioned.from_prompts(den, [""] * 4, 1.0)

    def q(i):
        out = sdedit(den, predict, digits, ts, i, generator=torch.Generator().manual_seed(0)).image
        return float(psnr(((out + 1) / 2).clamp(0, 1), (digits + 1) / 2).mean())

    assert q(25) > q(10) > q(1)


def test_replacement_inpainting_is_the_studys_formula(den, digits):
    """inpaint with no resampling == the loop with x <- m x + (1 - m) forward(x_orig, t') after every step."""
    ts = den.schedule.inference_timesteps(10)
    mask = torch.zeros(1, 1, 28, 28)
    mask[..., 5:20, 8:22] = 1
    predict = Conditioned.from_prompts(den, ["3"] * 4, 5.0)
    ours = inpaint(den, predict, digits, mask, ts, generator=torch.Generator().manual_seed(4)).image

    g = torch.Generator().manual_seed(4)

    def keep(x, t):
        known = den.schedule.add_noise(digits, t, randn(digits.shape, g, digits)) if t >= 0 else digits
        return mask * x + (1 - mask) * known

    x = keep(randn(digits.shape, g, digits), ts[0])
    ref = iterative_denoise(den.schedule, predict, x, ts, threshold=den.threshold, generator=g, after_step=keep).image
    assert torch.equal(ours, ref)
    assert torch.equal(ours[..., mask[0, 0] == 0], digits[..., mask[0, 0] == 0])  # the kept region, exactly


def test_repaint_schedule():
    assert repaint_schedule(6) == list(range(7))
    path = repaint_schedule(20, jump_length=5, jump_n_sample=3)
    downs = sum(b == a + 1 for a, b in zip(path, path[1:]))
    ups = sum(b < a for a, b in zip(path, path[1:]))
    assert path[0] == 0 and path[-1] == 20 and downs == 20 + 3 * 2 * 5 and ups == 3 * 2 * 5
    assert all(abs(b - a) == 1 for a, b in zip(path, path[1:]))
    with pytest.raises(FundiffError):
        repaint_schedule(5, 0, 2)


def test_repaint_resampling_runs_more_steps_and_keeps_the_known_region(den, digits):
    ts = den.schedule.inference_timesteps(12)
    mask = torch.zeros(1, 1, 28, 28)
    mask[..., :, 14:] = 1
    predict = Conditioned.from_prompts(den, [""] * 4, 1.0)
    res = inpaint(den, predict, digits, mask, ts, jump_length=3, jump_n_sample=3, generator=torch.Generator().manual_seed(0))
    assert res.model_calls == len(repaint_schedule(12, 3, 3)) - 1 - sum(
        b < a for a, b in zip(repaint_schedule(12, 3, 3), repaint_schedule(12, 3, 3)[1:]))
    assert res.model_calls > 12
    assert torch.equal(res.image[..., :, :14], digits[..., :, :14])


def test_mask_checks(digits):
    with pytest.raises(FundiffError, match="1 x 28 x 28"):
        check_mask(torch.ones(1, 1, 64, 64), digits)
    with pytest.raises(FundiffError, match="empty"):
        check_mask(torch.zeros(1, 1, 28, 28), digits)

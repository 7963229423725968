"""fundiff.engine.loops: the forward process, one-step and iterative denoising."""

from __future__ import annotations

import pytest
import torch

from fundiff.engine.denoiser import Conditioned
from fundiff.engine.loops import forward, iterative_denoise, one_step_denoise
from fundiff.errors import FundiffError


def test_forward_process_formula_and_seed(den):
    x0 = torch.rand(1, 1, 28, 28) * 2 - 1
    a = forward(den.schedule, x0, 500, generator=torch.Generator().manual_seed(3))
    b = forward(den.schedule, x0, 500, generator=torch.Generator().manual_seed(3))
    eps = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    ab = den.schedule.alphas_cumprod[500]
    assert torch.equal(a, b)
    assert torch.allclose(a, ab.sqrt() * x0 + (1 - ab).sqrt() * eps)
    with pytest.raises(FundiffError, match="t=1000"):
        forward(den.schedule, x0, 1000)


def test_loop_counts_and_study_semantics(den):
    """From i_start the loop takes len - i_start model calls (one more than the study's, the step to clean)."""
    ts = den.schedule.strided_timesteps()
    predict = Conditioned.from_prompts(den, ["5"], 1.0)
    x = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    full = iterative_denoise(den.schedule, predict, x, ts, 10, generator=torch.Generator().manual_seed(1),
                             keep_trajectory=True)
    study = iterative_denoise(den.schedule, predict, x, ts, 10, generator=torch.Generator().manual_seed(1),
                              final_step=False, keep_trajectory=True)
    assert full.model_calls == len(ts) - 10 and study.model_calls == len(ts) - 11
    assert [t for t, _ in full.trajectory][-2:] == [0, -1] and study.trajectory[-1][0] == 0
    assert torch.equal(full.trajectory[-2][1], study.image)  # same noise stream up to t = 0


def test_denoising_gets_closer_to_a_real_digit(den, mnist):
    """Iterative beats one-step beats the noisy input at t = 690 on real test digits (PSNR, unconditional)."""
    from fundiff.images import psnr

    x0 = mnist.test_images[:16].float().div(255).unsqueeze(1) * 2 - 1
    g = torch.Generator().manual_seed(0)
    ts = den.schedule.strided_timesteps()
    x = forward(den.schedule, x0, ts[10], generator=g)
    predict = Conditioned.from_prompts(den, [""] * 16, 1.0)
    it = iterative_denoise(den.schedule, predict, x, ts, 10, threshold=den.threshold, generator=g).image
    one = one_step_denoise(predict, x, ts[10]).clamp(-1, 1)

    def q(img):
        return float(psnr(((img + 1) / 2).clamp(0, 1), (x0 + 1) / 2).mean())

    assert q(x) < q(one)
    assert q(it) > q(x) + 3


def test_resampling_renoises_and_counts_calls(den):
    """The first k steps run r times each (RePaint's jumps of length 1): k (r - 1) more model calls; k = 0 or r = 1
    is the plain loop bit for bit; renoise is q(x_u | x_t) = N(sqrt(ab_u / ab_t) x_t, (1 - ab_u / ab_t) I)."""
    sched = den.schedule
    x_t, z = torch.randn(2, 1, 28, 28), torch.randn(2, 1, 28, 28)
    ratio = sched.alpha_bar(900) / sched.alpha_bar(600)
    assert torch.allclose(sched.renoise(x_t, 600, 900, z), ratio.sqrt() * x_t + (1 - ratio).sqrt() * z)
    predict = Conditioned.from_prompts(den, ["3", "3"], 5.0)
    ts = sched.strided_timesteps()[:6]
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))

    def run(**kw):
        return iterative_denoise(sched, predict, x, ts, generator=torch.Generator().manual_seed(1), **kw)

    plain = run()
    assert torch.equal(run(resample_steps=0, resample_times=3).image, plain.image)
    assert torch.equal(run(resample_steps=4, resample_times=1).image, plain.image)
    more = run(resample_steps=2, resample_times=3)
    assert more.model_calls == plain.model_calls + 2 * 2 and not torch.equal(more.image, plain.image)
    with pytest.raises(FundiffError, match="resample_times >= 1"):
        run(resample_steps=2, resample_times=0)

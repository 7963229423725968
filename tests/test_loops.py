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


def _gaussian_predict(mean: float, var0: float, sched):
    """The exact prediction for data x0 ~ N(mean, var0 I): p_t = N(a mean, (a^2 var0 + s^2) I), so
    eps(x, t) = s (x - a mean) / (a^2 var0 + s^2) and x0 = (x - s eps) / a."""
    from fundiff.engine.denoiser import Prediction

    def predict(x, t):
        a, s = sched.coefficients(t)
        eps = s * (x - a * mean) / (a * a * var0 + s * s)
        return Prediction((x - s * eps) / a, eps, None)

    return predict


def test_langevin_corrector_samples_p_t_of_a_gaussian(den):
    """Langevin steps at a fixed t move samples drawn far off (3x the spread, shifted) onto p_t: mean a*mu and
    variance a^2 var0 + s^2, up to unadjusted Langevin's bias in the variance: with delta = 2 snr^2 v (the step the
    snr rule gives at p_t, v its variance), x' = x - delta (x - m) / v + sqrt(2 delta) z settles at v / (1 - snr^2)."""
    from fundiff.engine.correctors import Langevin

    sched, t, mu, var0 = den.schedule, 600, 0.4, 0.25
    a, s = sched.coefficients(t)
    target_var = a * a * var0 + s * s
    g = torch.Generator().manual_seed(0)
    x = 2.0 + 3 * target_var ** 0.5 * torch.randn(512, 1, 28, 28, generator=g)
    corrector = Langevin(steps=16, snr=0.2, t_min=0)
    predict = _gaussian_predict(mu, var0, sched)
    for _ in range(20):
        x = corrector(predict, x, t, s, g)
    assert abs(float(x.mean()) - a * mu) < 0.02
    ratio = float(x.var()) / target_var
    assert abs(ratio - 1 / (1 - 0.2 ** 2)) < 0.015, ratio   # 1.0417; measured 1.048 at 1024 images
    # one step's size: delta = 2 (snr ||z|| / ||grad||)^2, per image
    x1 = torch.randn(3, 1, 8, 8)
    one = Langevin(steps=1, snr=0.5, t_min=0)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    z = torch.randn(3, 1, 8, 8, generator=g2)
    grad = -predict(x1, t).eps / s
    delta = 2 * (0.5 * z.flatten(1).norm(dim=1) / grad.flatten(1).norm(dim=1)) ** 2
    want = x1 + delta.view(-1, 1, 1, 1) * grad + (2 * delta).sqrt().view(-1, 1, 1, 1) * z
    torch.testing.assert_close(one(predict, x1, t, s, g1), want)


def test_corrector_runs_from_t_min_up_and_counts_calls(den):
    """The loop runs the corrector's steps before each prediction at t >= t_min: steps more calls at each such t;
    a corrector of 0 steps is the plain loop bit for bit; bad settings are one-line errors."""
    from fundiff.engine.correctors import Langevin

    sched = den.schedule
    predict = Conditioned.from_prompts(den, ["3", "3"], 5.0)
    ts = sched.strided_timesteps()[:6]   # 990 ... 840
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))

    def run(**kw):
        return iterative_denoise(sched, predict, x, ts, generator=torch.Generator().manual_seed(1), **kw)

    plain = run()
    assert torch.equal(run(corrector=Langevin(steps=0)).image, plain.image)
    assert torch.equal(run(corrector=Langevin(steps=3, t_min=991)).image, plain.image)
    more = run(corrector=Langevin(steps=3, t_min=900))   # 990, 960, 930, 900: four timesteps
    assert more.model_calls == plain.model_calls + 4 * 3 and not torch.equal(more.image, plain.image)
    for bad, match in [(dict(steps=-1), "steps must be"), (dict(steps=17), "steps must be"), (dict(steps=2.5), "steps"),
                       (dict(snr=0.0), "snr must be"), (dict(snr=3.0), "snr must be"), (dict(t_min=-1), "t_min")]:
        with pytest.raises(FundiffError, match=match):
            Langevin(**bad)

"""fundiff's Part A loops against diffusers' IF pipelines, with tiny random IF-like components.

Same components, same seed, same timesteps: fundiff's strided CFG loop must give diffusers'
IFPipeline output to float tolerance (thresholding on, the final step to t = 0 included); one step
must equal DDPMScheduler.step; SDEdit must equal IFImg2ImgPipeline; stage II upsampling must equal
IFSuperResolutionPipeline.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from deepfloyd_tiny import (image_noising_scheduler, random_embeds, stage1_scheduler, stage1_unet,  # noqa: E402
                            stage2_unet)

from fundiff.backends.deepfloyd import (DeepFloydDenoiser, DeepFloydStageII, threshold_from_config,  # noqa: E402
                                      upsample)
from fundiff.engine.denoiser import Conditioned, Prediction  # noqa: E402
from fundiff.backends.embeddings import PromptEmbeddings  # noqa: E402
from fundiff.engine.loops import denoise_step, forward, iterative_denoise  # noqa: E402
from fundiff.engine.schedule import Schedule  # noqa: E402

PROMPT, OTHER = "a rocket ship", "an oil painting of a man"
TOL = 1e-4


@pytest.fixture(scope="module")
def parts():
    unet = stage1_unet()
    embeds = PromptEmbeddings(random_embeds(["", PROMPT, OTHER]))
    return unet, embeds


def _pipe(cls, unet, scheduler, **extra):
    pipe = cls(unet=unet, scheduler=scheduler, tokenizer=None, text_encoder=None, safety_checker=None,
               feature_extractor=None, watermarker=None, requires_safety_checker=False, **extra)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _fundiff_sample(unet, embeds, prompts, timesteps, scale, seed, n=None):
    den = DeepFloydDenoiser(unet, stage1_scheduler(), embeds)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(prompts), 3, den.image_size, den.image_size, generator=g)
    predict = Conditioned.from_prompts(den, prompts, scale)
    return iterative_denoise(den.schedule, predict, x, timesteps, threshold=den.threshold, generator=g).image


@pytest.mark.parametrize("seed,timesteps,scale", [
    (0, list(range(990, -1, -30)), 7.0),       # the study's strided list and gamma
    (3, [999, 800, 650, 420, 100, 10, 0], 4.0),
    (11, [500, 250, 1], 7.0),                    # ends above 0: the final step is t = 1 -> clean
    (5, list(range(990, -1, -90)), 1.0),        # no guidance: one pass per step
])
def test_strided_cfg_loop_matches_ifpipeline(parts, seed, timesteps, scale):
    from diffusers import IFPipeline

    unet, embeds = parts
    prompts = [PROMPT, OTHER]
    ours = _fundiff_sample(unet, embeds, prompts, timesteps, scale, seed)
    pipe = _pipe(IFPipeline, unet, stage1_scheduler())
    ref = pipe(prompt_embeds=embeds(prompts), negative_prompt_embeds=embeds(["", ""]), timesteps=timesteps,
               guidance_scale=scale, generator=torch.Generator().manual_seed(seed), output_type="pt").images
    assert ours.shape == ref.shape == (2, 3, 16, 16)
    assert (ours - ref).abs().max() < TOL
    assert ref.abs().max() <= 1.5 + 1e-6  # thresholding was on


def test_thresholding_changes_the_result(parts):
    unet, embeds = parts
    den = DeepFloydDenoiser(unet, stage1_scheduler(), embeds)
    predict = Conditioned.from_prompts(den, [PROMPT], 7.0)
    ts = den.schedule.strided_timesteps()
    outs = []
    for thr in (den.threshold, None):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1, 3, 16, 16, generator=g)
        outs.append(iterative_denoise(den.schedule, predict, x, ts, threshold=thr, generator=g).image)
    assert (outs[0] - outs[1]).abs().max() > 1e-3


@pytest.mark.parametrize("t,timesteps", [(690, list(range(990, -1, -30))), (30, list(range(990, -1, -30))),
                                         (0, [999, 500, 0]), (999, [999, 500, 0])])
@pytest.mark.parametrize("thresholding", [True, False])
def test_one_step_matches_ddpmscheduler_step(t, timesteps, thresholding):
    sched = stage1_scheduler()
    sched.register_to_config(thresholding=thresholding, clip_sample=False)
    sched.set_timesteps(timesteps=timesteps)
    schedule = Schedule(sched.alphas_cumprod)
    g = torch.Generator().manual_seed(t)
    x = torch.randn(2, 3, 8, 8, generator=g)
    out = torch.randn(2, 6, 8, 8, generator=g)
    out[:, 3:] = out[:, 3:].tanh()  # learned-range values live in [-1, 1]
    eps, var = out[:, :3], out[:, 3:]
    ab = sched.alphas_cumprod[t]
    pred = Prediction((x - (1 - ab).sqrt() * eps) / ab.sqrt(), eps, var)
    i = timesteps.index(t)
    t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
    ours, _ = denoise_step(schedule, pred, x, t, t_prev, threshold_from_config(sched.config),
                           generator=torch.Generator().manual_seed(7))
    ref = sched.step(out, t, x, generator=torch.Generator().manual_seed(7)).prev_sample
    assert (ours - ref).abs().max() < 1e-5


@pytest.mark.parametrize("strength,steps", [(0.6, 10), (1.0, 8), (0.25, 12)])
def test_sdedit_start_and_result_match_img2img_pipeline(parts, strength, steps):
    """SDEdit = forward(image, ts[i_start]) then the strided loop from i_start; diffusers' strength picks i_start."""
    from diffusers import IFImg2ImgPipeline

    unet, embeds = parts
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    pipe = _pipe(IFImg2ImgPipeline, unet, stage1_scheduler())
    ref = pipe(image=image, prompt_embeds=embeds([PROMPT]), negative_prompt_embeds=embeds([""]), strength=strength,
               num_inference_steps=steps, guidance_scale=7.0, generator=torch.Generator().manual_seed(1),
               output_type="pt").images

    den = DeepFloydDenoiser(unet, stage1_scheduler(), embeds)
    ts = den.schedule.inference_timesteps(steps)
    pipe.scheduler.set_timesteps(steps)
    assert ts == pipe.scheduler.timesteps.tolist()
    i_start = Schedule.i_start_for_strength(len(ts), strength)
    ref_ts, _ = pipe.get_timesteps(steps, strength)
    assert ts[i_start:] == ref_ts.tolist()
    g = torch.Generator().manual_seed(1)
    x = forward(den.schedule, image, ts[i_start], generator=g)
    ours = iterative_denoise(den.schedule, Conditioned.from_prompts(den, [PROMPT], 7.0), x, ts, i_start,
                             threshold=den.threshold, generator=g).image
    assert (ours - ref).abs().max() < TOL


def test_inpainting_pipeline_start_matches_i_start():
    """IFInpaintingPipeline's first timestep for a strength is fundiff's ts[i_start]."""
    from diffusers import IFInpaintingPipeline

    pipe = _pipe(IFInpaintingPipeline, stage1_unet(), stage1_scheduler())
    for steps, strength in [(50, 1.0), (20, 0.5), (7, 0.3)]:
        pipe.scheduler.set_timesteps(steps)
        ref_ts, _ = pipe.get_timesteps(steps, strength)
        ts = Schedule(pipe.scheduler.alphas_cumprod).inference_timesteps(steps)
        assert ts[Schedule.i_start_for_strength(steps, strength):] == ref_ts.tolist()


def test_stage2_upsampling_matches_superresolution_pipeline(parts):
    from diffusers import IFSuperResolutionPipeline

    _, embeds = parts
    unet = stage2_unet()
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    stage2 = DeepFloydStageII(unet, stage1_scheduler(1.0), image_noising_scheduler(), embeds)
    ours = upsample(stage2, image, [PROMPT], num_inference_steps=6, guidance_scale=4.0, noise_level=250,
                    generator=torch.Generator().manual_seed(2))
    pipe = _pipe(IFSuperResolutionPipeline, unet, stage1_scheduler(1.0), image_noising_scheduler=image_noising_scheduler())
    ref = pipe(image=image, prompt_embeds=embeds([PROMPT]), negative_prompt_embeds=embeds([""]),
               num_inference_steps=6, guidance_scale=4.0, noise_level=250,
               generator=torch.Generator().manual_seed(2), output_type="pt").images
    assert ours.shape == ref.shape == (1, 3, 32, 32)
    assert (ours - ref).abs().max() < TOL


def test_schedule_matches_diffusers():
    from diffusers import DDPMScheduler

    ref = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    assert torch.equal(Schedule.squaredcos().alphas_cumprod, ref.alphas_cumprod)
    for n in (1, 7, 30, 50, 100, 1000):
        ref.set_timesteps(n)
        assert Schedule.squaredcos().inference_timesteps(n) == ref.timesteps.tolist()


def test_stage2_anagram_with_identity_views_is_plain_upsampling_and_views_reach_the_low_res_input(parts):
    """At 256 px the views act on the whole 6-channel input: with identity views the anagram is plain stage II."""
    from fundiff.engine.illusions import anagram_predict
    from fundiff.engine.views import get_view

    _, embeds = parts
    stage2 = DeepFloydStageII(stage2_unet(), stage1_scheduler(1.0), image_noising_scheduler(), embeds)
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    plain = upsample(stage2, image, [PROMPT], num_inference_steps=4, guidance_scale=4.0,
                     generator=torch.Generator().manual_seed(5))
    ident = get_view("identity")
    same = upsample(stage2, image, [], num_inference_steps=4, generator=torch.Generator().manual_seed(5),
                    predict=lambda bound: anagram_predict(bound, [PROMPT, PROMPT], [ident, ident], batch=1,
                                                          guidance_scale=4.0))
    assert (plain - same).abs().max() < TOL  # batch 2 vs 4 changes float rounding only
    flip = get_view("flip")
    low_res = stage2.low_res_condition(image, 250, torch.Generator().manual_seed(0))
    bound = stage2.bind(low_res, 250)
    assert stage2.bound is None   # binding makes a new denoiser; the loaded one is not changed
    predict = anagram_predict(bound, [PROMPT, OTHER], [ident, flip], batch=1, guidance_scale=1.0)
    seen = []
    hook = stage2.unet.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    try:
        predict(torch.zeros(1, 3, 32, 32), 500)
    finally:
        hook.remove()
    low = seen[0][:, 3:]
    assert torch.equal(low[0], low_res[0]) and torch.equal(low[1], flip.view(low_res)[0])

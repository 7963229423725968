"""fundiff.engine.denoiser: Prediction (x = a x0 + s eps, linear maps) and Conditioned (batched CFG)."""

from __future__ import annotations

import pytest
import torch

from fundiff.engine.denoiser import Conditioned, Prediction


@pytest.mark.parametrize("t", [0, 30, 250, 500, 750, 990, 999])
def test_prediction_satisfies_x_equals_a_x0_plus_s_eps(den, t):
    g = torch.Generator().manual_seed(t)
    x = torch.randn(4, 1, 28, 28, generator=g)
    pred = den.predict(x, t, den.encode(["3", "seven", "", "a 1"]))
    a, s = den.schedule.coefficients(t)
    assert torch.allclose(a * pred.x0 + s * pred.eps, x, atol=1e-4)


def test_guidance_is_one_batched_call_and_the_cfg_formula(den):
    calls = []
    hook = den.model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
        guided = Conditioned.from_prompts(den, ["4", "9"], 7.0)(x, 600)
        assert calls == [4]
        cond, uncond = den.predict(x, 600, den.encode(["4", "9"])), den.predict(x, 600, den.encode(["", ""]))
    finally:
        hook.remove()
    assert torch.allclose(guided.eps, uncond.eps + 7 * (cond.eps - uncond.eps), atol=1e-4)
    assert torch.allclose(guided.x0, uncond.x0 + 7 * (cond.x0 - uncond.x0), atol=1e-4)


def test_prediction_linear_maps():
    p = Prediction(torch.ones(2, 3, 4, 4), torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5))
    q = p.map(lambda v: -v, variance_fn=lambda v: v)
    assert torch.equal(q.x0, -p.x0) and torch.equal(q.variance, p.variance)
    m = Prediction.mean([p, q])
    assert torch.equal(m.x0, torch.zeros(2, 3, 4, 4)) and torch.equal(m.variance, p.variance)


def test_guidance_with_the_null_prompt_is_one_unguided_pass(den):
    """prompt == negative prompt: eps_u + gamma (eps_c - eps_u) = eps_u, so from_prompts runs one pass of N, not 2N."""
    import fundiff
    from fundiff.engine.denoiser import guidance_applies

    assert not guidance_applies(den, ["", ""]) and guidance_applies(den, ["", "7"]) and not guidance_applies(den, ["7"], "7")
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    skipped = Conditioned.from_prompts(den, [""] * 3, 7.0)
    assert skipped.guidance_scale == 1.0 and skipped.evaluations_per_step == 1
    both = Conditioned(den, den.encode([""] * 3), den.encode([""] * 3), 7.0)   # the two-pass CFG it replaces
    for t in (990, 500, 30):
        torch.testing.assert_close(skipped(x, t).eps, both(x, t).eps, atol=1e-5, rtol=0)
    pipe = fundiff.SDEditPipeline.from_pretrained("mnist")
    out = pipe("", "digit-3", i_start=10, guidance_scale=7.0, generator=torch.Generator().manual_seed(0))
    assert out.record["passes_per_step"] == 1 and "null prompt" in out.record["guidance"]
    assert pipe("8", "digit-3", i_start=10, generator=torch.Generator().manual_seed(0)).record["passes_per_step"] == 2

"""SDEdit, inpainting (replacement and RePaint), anagrams and hybrids on the embedded MNIST model."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import assert_one_line_error
from fundiff.engine.decompositions import get_decomposition
from fundiff.engine.denoiser import Conditioned, Prediction
from fundiff.engine.editing import check_mask, inpaint, repaint_schedule, sdedit
from fundiff.engine.illusions import anagram_predict, hybrid_predict
from fundiff.engine.loops import iterative_denoise, randn
from fundiff.backends.mnist import MnistDenoiser
from fundiff.engine.views import get_view
from fundiff.errors import FundiffError
from fundiff.images import psnr


@pytest.fixture(scope="module")
def den():
    return MnistDenoiser.load("mnist")


@pytest.fixture(scope="module")
def digits(mnist):
    return mnist.test_images[:4].float().div(255).unsqueeze(1) * 2 - 1


def _x(n=2, seed=0):
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


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


def test_anagram_with_identity_views_is_plain_guidance(den):
    x = _x()
    plain = Conditioned.from_prompts(den, ["4", "4"], 5.0)(x, 500)
    both = anagram_predict(den, ["4", "4"], [get_view("identity"), get_view("identity")], batch=2, guidance_scale=5.0)(x, 500)
    assert torch.allclose(plain.eps, both.eps, atol=1e-5) and torch.allclose(plain.x0, both.x0, atol=1e-4)


def test_anagram_averages_view_mapped_predictions(den):
    x = _x()
    flip = get_view("flip")
    ana = anagram_predict(den, ["6", "9"], [get_view("identity"), flip], batch=2, guidance_scale=5.0)(x, 700)
    p6 = Conditioned.from_prompts(den, ["6", "6"], 5.0)(x, 700)
    p9 = Conditioned.from_prompts(den, ["9", "9"], 5.0)(flip.view(x), 700)
    assert torch.allclose(ana.eps, (p6.eps + flip.inverse_view(p9.eps)) / 2, atol=1e-5)
    a, s = den.schedule.coefficients(700)
    assert torch.allclose(a * ana.x0 + s * ana.eps, x, atol=1e-4)


def test_hybrid_of_one_prompt_is_that_prompt_and_keeps_x_consistent(den):
    x = _x()
    dec = get_decomposition("hybrid", 28, 1)
    same = hybrid_predict(den, ["2", "2"], dec, batch=2, guidance_scale=5.0)(x, 400)
    plain = Conditioned.from_prompts(den, ["2", "2"], 5.0)(x, 400)
    assert torch.allclose(same.eps, plain.eps, atol=1e-5)
    mixed = hybrid_predict(den, ["1", "7"], dec, batch=2, guidance_scale=5.0)(x, 400)
    a, s = den.schedule.coefficients(400)
    assert torch.allclose(a * mixed.x0 + s * mixed.eps, x, atol=1e-4)


def test_negate_view_leaves_variance_in_anagram_reduction():
    neg = get_view("negate")
    p = Prediction(torch.ones(1, 3, 8, 8), torch.ones(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.3))
    q = p.map(neg.inverse_view, lambda v: neg.inverse_view(v, variance=True))
    assert torch.equal(q.eps, -p.eps) and torch.equal(q.variance, p.variance)


def test_illusion_errors(den):
    with pytest.raises(FundiffError, match="one view per prompt"):
        anagram_predict(den, ["1", "2", "3"], [get_view("identity"), get_view("flip")])
    with pytest.raises(FundiffError, match="2 components"):
        hybrid_predict(den, ["1", "2", "3"], get_decomposition("hybrid", 28, 1))
    with pytest.raises(FundiffError, match="square"):
        get_view("rotate_cw").view(torch.zeros(1, 3, 16, 32))


# -- CLI -------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_edit_inpaint_anagram_hybrid_commands(cli, tmp_path):
    runs = {
        "edit": ["edit", "--image", "mnist-test:3", "--prompt", "8", "--i-start", "2", "6", "--steps", "10"],
        "inpaint": ["inpaint", "--image", "mnist-test:1", "--rect", "0:32,32:64", "--prompt", "4", "--steps", "8",
                    "--jump-length", "2", "--jump-n-sample", "2", "--num-images", "2"],
        "anagram": ["anagram", "--prompt", "6", "--prompt", "9", "--steps", "8", "--num-images", "2", "--frames", "4"],
        "hybrid": ["hybrid", "--prompt", "1", "--prompt", "7", "--steps", "8", "--num-images", "2"],
    }
    files = {"edit": ["sdedit.png", "edit.json"], "inpaint": ["inpaint.png", "inpaint.json"],
             "anagram": ["anagram.png", "anagram.gif", "anagram.json"], "hybrid": ["hybrid.png", "hybrid.json"]}
    for name, args in runs.items():
        proc = cli(*args, "--out", tmp_path / name)
        assert proc.returncode == 0, (name, proc.stderr)
        for f in files[name]:
            assert (tmp_path / name / f).is_file(), (name, f)
    assert json.loads((tmp_path / "edit" / "edit.json").read_text())["t_start"] == [700, 300]


@pytest.mark.parametrize("args,fragments", [
    (["anagram", "--prompt", "6", "--prompt", "9", "--view", "identity"], ["one view per prompt"]),
    (["anagram", "--prompt", "6", "--prompt", "9", "--view", "identity", "--view", "spin"], ["unknown view", "spin"]),
    (["anagram", "--prompt", "6", "--prompt", "9", "--view", "identity", "--view", "patch_permute"], ["patch"]),
    (["hybrid", "--prompt", "1", "--kind", "zoom"], ["invalid choice", "zoom"]),
    (["hybrid", "--prompt", "1", "--prompt", "2", "--kind", "color"], ["3 colour channels"]),
    (["inpaint", "--rect", "70:80,0:5"], ["70"]),
    (["inpaint", "--rect", "nonsense"], ["nonsense"]),
    (["edit", "--i-start", "50"], ["i_start=50"]),
    (["edit", "--strength", "1.5"], ["strength"]),
])
def test_editing_bad_input_is_one_line(cli, tmp_path, args, fragments):
    proc = cli(*args, "--out", tmp_path / "o")
    assert_one_line_error(proc, *fragments)
    for f in fragments:
        assert f in proc.stderr, proc.stderr

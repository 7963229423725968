"""fundiff.engine.illusions: visual anagrams and hybrid (factorized) images."""

from __future__ import annotations

import pytest
import torch

from fundiff.engine.decompositions import get_decomposition
from fundiff.engine.denoiser import Conditioned, Prediction
from fundiff.engine.illusions import anagram_predict, apart_predict, fork_index, forked_denoise, hybrid_predict
from fundiff.engine.views import get_view
from fundiff.errors import FundiffError


def _x(n=2, seed=0):
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


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


def test_per_prompt_guidance_and_negatives(den):
    """A list with the same entry for every prompt is that setting; a gamma per group is u_i + gamma_i (c_i - u_i);
    a negative prompt per group replaces that group's unconditional pass."""
    x = _x()
    views = [get_view("identity"), get_view("flip")]
    one = anagram_predict(den, ["1", "7"], views, batch=2, guidance_scale=5.0)(x, 600)
    listed = anagram_predict(den, ["1", "7"], views, batch=2, guidance_scale=[5.0, 5.0], negative_prompt=[None, None])(x, 600)
    assert torch.allclose(one.eps, listed.eps, atol=1e-5)
    flip = views[1]
    mixed = anagram_predict(den, ["1", "7"], views, batch=2, guidance_scale=[3.0, 9.0], negative_prompt=["7", "1"])(x, 600)
    p1 = Conditioned.from_prompts(den, ["1", "1"], 3.0, negative_prompt="7")(x, 600)
    p7 = Conditioned.from_prompts(den, ["7", "7"], 9.0, negative_prompt="1")(flip.view(x), 600)
    assert torch.allclose(mixed.eps, (p1.eps + flip.inverse_view(p7.eps)) / 2, atol=1e-5)
    dec = get_decomposition("hybrid", 28, 1)
    hyb = hybrid_predict(den, ["1", "7"], dec, batch=2, guidance_scale=[3.0, 9.0])(x, 600)
    q1, q7 = Conditioned.from_prompts(den, ["1", "1"], 3.0)(x, 600), Conditioned.from_prompts(den, ["7", "7"], 9.0)(x, 600)
    assert torch.allclose(hyb.eps, dec.components(q1.eps)[0] + dec.components(q7.eps)[1], atol=1e-5)
    with pytest.raises(FundiffError, match="list of 2"):
        anagram_predict(den, ["1", "7"], views, guidance_scale=[3.0, 4.0, 5.0])


def test_alternate_reduction_uses_one_view_per_step(den, monkeypatch):
    """visual_anagrams' alternate: step k is view k mod N alone, mapped back; at half the model evaluations.  Calls
    repeated at one timestep (a corrector's) keep that step's view."""
    x = _x()
    flip = get_view("flip")
    calls, real = [], den.predict
    monkeypatch.setattr(den, "predict", lambda xs, t, cond: calls.append(xs.shape[0]) or real(xs, t, cond))
    alt = anagram_predict(den, ["6", "9"], [get_view("identity"), flip], batch=2, guidance_scale=5.0,
                          reduction="alternate")
    first, again, second, third = alt(x, 700), alt(x, 700), alt(x, 670), alt(x, 640)
    monkeypatch.undo()
    assert calls == [4, 4, 4, 4]   # one view's guided pair of 2 images per call (the mean: 8)
    assert torch.equal(again.eps, first.eps)   # a second call at t 700 is still view 0
    p6 = Conditioned.from_prompts(den, ["6", "6"], 5.0)(x, 700)
    p9 = Conditioned.from_prompts(den, ["9", "9"], 5.0)(flip.view(x), 670)
    assert torch.allclose(first.eps, p6.eps, atol=1e-5)
    assert torch.allclose(third.eps, Conditioned.from_prompts(den, ["6", "6"], 5.0)(x, 640).eps, atol=1e-5)
    assert torch.allclose(second.eps, flip.inverse_view(p9.eps), atol=1e-5)
    with pytest.raises(FundiffError, match="reduction must be one of mean, alternate"):
        anagram_predict(den, ["6", "9"], [get_view("identity"), flip], reduction="median")


def test_balanced_reduction_weights_the_view_that_reads_worst(den):
    """w_i = softmax_i(-beta log p(y_i | v_i(x), t)): beta 0 is the mean; a reader sure of view 1 and unsure of
    view 2 gives view 2 the larger weight; the weights sum to 1 per image, so x = a x0 + s eps still holds."""
    x = _x()
    views = [get_view("identity"), get_view("flip")]
    calls = []

    def reader(seen: torch.Tensor, t: torch.Tensor) -> torch.Tensor:   # logits of p(y | x_t, t), by call order
        calls.append((seen.shape, t.tolist()))
        logits = torch.zeros(len(seen), 10)
        logits[:, 6 if len(calls) % 2 else 9] = 8.0 if len(calls) % 2 else 0.0   # sure of "6" upright, unsure of "9"
        return logits

    mean = anagram_predict(den, ["6", "9"], views, batch=2, guidance_scale=5.0)(x, 700)
    flat = anagram_predict(den, ["6", "9"], views, batch=2, guidance_scale=5.0, reduction="balanced", reader=reader,
                           labels=[6, 9], balance=0.0)(x, 700)
    assert torch.allclose(flat.eps, mean.eps, atol=1e-6) and torch.allclose(flat.x0, mean.x0, atol=1e-5)
    assert calls[0] == (torch.Size([2, 1, 28, 28]), [700, 700])
    bal = anagram_predict(den, ["6", "9"], views, batch=2, guidance_scale=5.0, reduction="balanced", reader=reader,
                          labels=[6, 9], balance=1.0)(x, 700)
    p6 = Conditioned.from_prompts(den, ["6", "6"], 5.0)(x, 700)
    p9 = Conditioned.from_prompts(den, ["9", "9"], 5.0)(views[1].view(x), 700)
    log_p6 = torch.log_softmax(torch.tensor([8.0] + [0.0] * 9), 0)[0]
    log_p9 = torch.log_softmax(torch.zeros(10), 0)[0]
    w = torch.softmax(-torch.stack([log_p6, log_p9]), 0)
    assert w[1] > 0.9   # log p 0 vs log(1/10): view 2 gets about 10 times the weight
    assert torch.allclose(bal.eps, w[0] * p6.eps + w[1] * views[1].inverse_view(p9.eps), atol=1e-5)
    a, s = den.schedule.coefficients(700)
    assert torch.allclose(a * bal.x0 + s * bal.eps, x, atol=1e-4)
    with pytest.raises(FundiffError, match="balanced reduction needs a noise-aware classifier"):
        anagram_predict(den, ["6", "9"], views, reduction="balanced")


def test_rival_guidance_is_cfg_away_from_the_digit_each_view_is_most_likely_misread_as(den):
    """rival=True: view i's negative prompt is argmax_{c != y_i} p(c | v_i(x), t), image by image, step by step; with a
    reader whose runner-up is fixed, that is plain CFG with those digits as the negative prompts."""
    from fundiff.engine.illusions import rivals

    x = _x()
    views = [get_view("identity"), get_view("flip")]

    def reader(seen: torch.Tensor, t: torch.Tensor) -> torch.Tensor:   # ranks 6, then 8, then 3 first in every view
        logits = torch.zeros(len(seen), 10)
        logits[:, 6], logits[:, 8], logits[:, 3] = 5.0, 4.0, 3.0
        return logits

    assert rivals(torch.log_softmax(reader(x, None), 1), 6).tolist() == [8, 8]   # its own digit is never its rival
    assert rivals(torch.log_softmax(reader(x, None), 1), 9).tolist() == [6, 6]
    rival = anagram_predict(den, ["6", "9"], views, batch=2, guidance_scale=5.0, reader=reader, labels=[6, 9],
                            rival=True)(x, 700)
    negs = anagram_predict(den, ["6", "9"], views, batch=2, guidance_scale=5.0, negative_prompt=["8", "6"])(x, 700)
    plain = anagram_predict(den, ["6", "9"], views, batch=2, guidance_scale=5.0)(x, 700)
    assert torch.allclose(rival.eps, negs.eps, atol=1e-5) and torch.allclose(rival.x0, negs.x0, atol=1e-4)
    assert not torch.allclose(rival.eps, plain.eps, atol=1e-3)
    # per image: a reader whose runner-up differs between the two images gives each image its own negative
    def reader2(seen: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(seen), 10)
        logits[0, 2], logits[1, 5] = 4.0, 4.0
        return logits

    mixed = anagram_predict(den, ["6", "9"], views, batch=2, guidance_scale=5.0, reader=reader2, labels=[6, 9],
                            rival=True)(x, 700)
    to2 = anagram_predict(den, ["6", "9"], views, batch=2, guidance_scale=5.0, negative_prompt="2")(x, 700)
    to5 = anagram_predict(den, ["6", "9"], views, batch=2, guidance_scale=5.0, negative_prompt="5")(x, 700)
    assert torch.allclose(mixed.eps[0], to2.eps[0], atol=1e-5) and torch.allclose(mixed.eps[1], to5.eps[1], atol=1e-5)
    with pytest.raises(FundiffError, match="rival guidance needs a noise-aware classifier"):
        anagram_predict(den, ["6", "9"], views, rival=True)
    with pytest.raises(FundiffError, match="not alternate"):
        anagram_predict(den, ["6", "9"], views, reduction="alternate", reader=reader, labels=[6, 9], rival=True)
    with pytest.raises(FundiffError, match="give no negative_prompt"):
        anagram_predict(den, ["6", "9"], views, negative_prompt="1", reader=reader, labels=[6, 9], rival=True)


def test_weighted_prediction_is_a_per_image_weighted_sum():
    p = Prediction(torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4), torch.full((2, 1, 4, 4), 2.0))
    q = Prediction(torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4), None)
    w = torch.tensor([[0.25, 1.0], [0.75, 0.0]])
    out = Prediction.weighted([p, q], w)
    assert torch.allclose(out.x0[:, 0, 0, 0], torch.tensor([0.75, 0.0]))
    assert torch.allclose(out.eps[:, 0, 0, 0], torch.tensor([0.25, 1.0])) and out.variance is None


def test_fork_index_is_the_first_timestep_at_or_below_fork_t():
    ts = [990, 960, 750, 720, 0]
    assert [fork_index(ts, t) for t in (999, 990, 989, 750, 749, 0)] == [0, 0, 1, 2, 3, 4]
    assert fork_index([990, 960], 0) == 2   # never apart


def test_apart_predict_gives_each_prompt_its_own_copy(den):
    x = torch.cat([_x(2, 1), _x(2, 2)])
    apart = apart_predict(den, ["3", "8"], batch=2, guidance_scale=5.0)(x, 600)
    p3 = Conditioned.from_prompts(den, ["3", "3"], 5.0)(x[:2], 600)
    p8 = Conditioned.from_prompts(den, ["8", "8"], 5.0)(x[2:], 600)
    assert torch.allclose(apart.eps, torch.cat([p3.eps, p8.eps]), atol=1e-5)
    assert torch.allclose(apart.x0, torch.cat([p3.x0, p8.x0]), atol=1e-4)


def test_forked_loop_composes_each_prompts_own_finish(den):
    """Composed predictions before the fork, one per prompt after it (on copies that are equal at the fork); the image
    is low(copy 1) + high(copy 2).  A prompt that predicts x0 = its own image ends at that image, so the result is
    exactly low(A) + high(B).  Never forking is the composed loop itself."""
    from fundiff.engine.loops import iterative_denoise

    sched, dec, ts = den.schedule, get_decomposition("hybrid", 28, 1), [900, 600, 300, 0]
    a_img, b_img = _x(2, 3).clamp(-1, 1), _x(2, 4).clamp(-1, 1)
    seen = {"joint": [], "apart": []}

    def fixed(x0, x, t):
        a, s = sched.coefficients(t)
        return Prediction(x0, (x - a * x0) / s)

    def joint(x, t):
        seen["joint"].append(t)
        return fixed(torch.zeros_like(x), x, t)

    def apart(x, t):
        seen["apart"].append((t, torch.equal(*x.chunk(2)) if t == 300 else None))
        return fixed(torch.cat([a_img, b_img]), x, t)

    shown = []
    out = forked_denoise(sched, joint, apart, _x(2, 5), ts, 2, dec, generator=torch.Generator().manual_seed(0),
                         callback=lambda i, t, img: shown.append((i, t, img.shape[0])))
    assert seen["joint"] == [900, 600] and seen["apart"] == [(300, True), (0, None)]
    assert shown == [(0, 900, 2), (1, 600, 2), (2, 300, 2), (3, 0, 2)]   # the composed image, every step
    low, high = dec.components(a_img)[0], dec.components(b_img)[1]
    assert torch.allclose(out.image, low + high, atol=1e-5) and out.model_calls == 4
    comp = hybrid_predict(den, ["1", "7"], dec, batch=2, guidance_scale=5.0)
    never = forked_denoise(sched, comp, apart, _x(2, 5), ts, len(ts), dec, generator=torch.Generator().manual_seed(1))
    plain = iterative_denoise(sched, comp, _x(2, 5), ts, generator=torch.Generator().manual_seed(1))
    assert torch.equal(never.image, plain.image)


def test_a_fork_is_parsed_one_way_everywhere():
    from fundiff.engine.illusions import parse_fork

    assert [parse_fork(t) for t in ("auto", "off", "0", "690", "999")] == ["auto", None, 0, 690, 999]
    for text in ("AUTO", " 5", "+5", "5_0", "1e3", "-1", "1000", "٥٠٠", "", "9" * 5000):   # no traceback, even huge
        with pytest.raises(FundiffError, match=r"fork_t must be 'auto', 'off' or a timestep in 0\.\.999"):
            parse_fork(text)
    with pytest.raises(FundiffError, match="fork at t must be .* in 0..99, got '100'"):
        parse_fork("100", 99, "fork at t")


def test_fork_text_names_the_step_it_forked_at():
    from fundiff.studies.illusions import fork_text

    assert fork_text({"fork_t": 690, "composed_steps": 2, "forked_at_t": 660}) == (
        "Forked at t 660 (the first step at or below t 690), after 2 composed steps: from there each prompt finishes "
        "its own band.")
    assert fork_text({"fork_t": 999, "composed_steps": 0, "forked_at_t": 990}).startswith(
        "Forked at t 990, the first step (at or below t 999): nothing composed")
    assert "every step composed" in fork_text({"fork_t": 0, "composed_steps": 34, "forked_at_t": None})
    assert fork_text({"fork_t": None}) == ""   # not forked: nothing to say (the CLI prints no line)


@pytest.mark.parametrize("view_name", ["flip", "mirror", "rotate_180", "negate", "rotate_cw"])
def test_an_anagram_under_a_view_that_is_its_own_inverse_is_symmetric_in_its_prompts(den, view_name):
    """With views (identity, v) and v(v(x)) = x, the prediction for prompts (B, A) at v(x) is v of the prediction for
    (A, B) at x, at the defaults (the balanced reduction and rival guidance, read by the shipped noisy classifier):
    each view sees the same image with the same prompt, in the other slot.  The sampler's noise is Gaussian, which v
    leaves invariant, so A/B and B/A are one illusion (docs/illusions.md).  rotate_cw, a quarter turn, is not its own
    inverse, and the two orders are two illusions."""
    from fundiff.classifier import load_noisy_classifier
    from fundiff.engine.views import is_involution

    view = get_view(view_name)
    reader = load_noisy_classifier()
    x = _x(3, seed=4)

    def predict(a: str, b: str):
        return anagram_predict(den, [a, b], [get_view("identity"), view], batch=3, guidance_scale=7.0,
                               reduction="balanced", reader=reader, labels=[int(a), int(b)], balance=0.5, rival=True)

    for t in (990, 600, 90):
        ab, ba = predict("2", "6")(x, t), predict("6", "2")(view.view(x), t)
        same = torch.allclose(ba.eps, view.view(ab.eps), atol=1e-4) and torch.allclose(ba.x0, view.view(ab.x0), atol=1e-3)
        assert same == is_involution(view) == (view_name != "rotate_cw"), t


@pytest.mark.parametrize("view_name", ["flip", "negate", "rotate_cw"])
def test_the_whole_sampler_gives_b_a_as_the_view_of_a_b_on_the_viewed_noise(monkeypatch, view_name):
    """End to end, at the defaults (balanced reduction, rival guidance, Langevin corrector, static thresholding):
    B/A started from v(z) and fed v of A/B's step noise, draw for draw, ends at v of A/B's image.  So under a view
    that is its own inverse the two orders are one illusion (the images of one are the views of the other's, on
    noise that is just as likely); under a quarter turn they are not."""
    import fundiff
    from fundiff.engine import correctors, loops

    view = get_view(view_name)
    pipe = fundiff.AnagramPipeline.from_pretrained("mnist")
    draws, replay = [], []
    real = loops.randn

    def noise(shape, generator, like):
        if replay:
            return view.view(replay.pop(0))
        draws.append(real(shape, generator, like))
        return draws[-1]

    monkeypatch.setattr(loops, "randn", noise)
    monkeypatch.setattr(correctors, "randn", noise)
    z = _x(2, seed=7)

    def run(prompts, latents):
        return pipe(prompt=prompts, views=["identity", view_name], latents=latents, num_images_per_prompt=2,
                    num_inference_steps=4, generator=torch.Generator().manual_seed(3), output_type="pt").samples

    ab = run(["2", "6"], z)
    assert len(draws) > 4   # the steps' noise and the corrector's (4 steps at t >= 500)
    replay.extend(draws)
    ba = run(["6", "2"], view.view(z))
    assert not replay
    assert torch.allclose(ba, view.view(ab), atol=1e-3) == (view_name != "rotate_cw")

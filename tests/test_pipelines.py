"""The Python API: every pipeline gives exactly the images of its command, validates its inputs up front
with one-line errors, shares loaded models, converts outputs, and runs any number of images in batches."""

import json

import numpy as np
import pytest
import torch

import fundiff
from fundiff.cli import main
from fundiff.errors import FundiffError


@pytest.fixture(scope="module")
def t2i():
    return fundiff.Text2ImagePipeline.from_pretrained("mnist")


def cli_array(tmp_path, *argv, name):
    """Run a fundiff command in-process with --save-array and return its images (float32 in [0, 1])."""
    assert main([*argv, "--out", str(tmp_path / "o"), "--save-array"]) == 0
    return np.load(tmp_path / "o" / name)["images"]


def test_readme_anagram_example_equals_the_command(t2i, tmp_path):
    pipe = fundiff.AnagramPipeline.from_pretrained("mnist")
    out = pipe(prompt=["6", "9"], views=["identity", "flip"], num_images_per_prompt=4,
               generator=torch.Generator().manual_seed(0))
    out.images[0].save(tmp_path / "anagram.png")
    cli = cli_array(tmp_path, "anagram", "--prompt", "6", "--prompt", "9", "--view", "identity", "--view", "flip",
                    "--num-images", "4", "--seed", "0", "--steps", "10", name="anagram.npz")
    # the README's call uses the study's 34 strided steps; the same call at 10 steps against the command at 10:
    short = pipe(prompt=["6", "9"], views=["identity", "flip"], num_images_per_prompt=4, num_inference_steps=10,
                 generator=torch.Generator().manual_seed(0), output_type="pt")
    np.testing.assert_array_equal(short.images.numpy(), cli)
    assert len(out.images) == 4 and out.images[0].size == (28, 28) and out.images[0].mode == "L"
    assert out.record["views"] == ["identity", "flip"] and out.record["thresholding"] == "static"


def test_readme_example_at_its_defaults_equals_the_command(tmp_path):
    pipe = fundiff.AnagramPipeline.from_pretrained("mnist")
    out = pipe(prompt=["6", "9"], views=["identity", "flip"], num_images_per_prompt=4,
               generator=torch.Generator().manual_seed(0))
    cli = cli_array(tmp_path, "anagram", "--prompt", "6", "--prompt", "9", "--view", "identity", "--view", "flip",
                    "--num-images", "4", "--seed", "0", name="anagram.npz")
    pil = np.stack([np.asarray(im) for im in out.images])
    np.testing.assert_array_equal(pil, (cli[:, 0] * 255).round().astype(np.uint8))


def test_text2image_equals_generate(t2i, tmp_path):
    out = t2i(["3", "seven"], num_images_per_prompt=2, num_inference_steps=6, guidance_scale=7.0,
              generator=torch.Generator().manual_seed(4), output_type="np")
    cli = cli_array(tmp_path, "generate", "--prompt", "3", "--prompt", "seven", "--num-images", "2", "--steps", "6",
                    "--seed", "4", name="generate.npz")
    assert out.images.shape == (4, 28, 28, 1)
    np.testing.assert_array_equal(out.images.transpose(0, 3, 1, 2), cli)
    assert out.record["model_evaluations_per_image"] == 12 and out.record["num_inference_steps"] == 6


def test_sdedit_equals_edit(t2i, tmp_path):
    pipe = fundiff.SDEditPipeline.from_pipe(t2i)
    assert pipe.denoiser is t2i.denoiser
    out = pipe("8", "digit-3", i_start=[3, 10], num_inference_steps=20, num_images_per_prompt=2,
               generator=torch.Generator().manual_seed(1), output_type="pt")
    cli = cli_array(tmp_path, "edit", "--image", "digit-3", "--prompt", "8", "--i-start", "3", "10", "--steps", "20",
                    "--num-images", "2", "--seed", "1", name="sdedit.npz")
    np.testing.assert_array_equal(out.images.numpy(), cli)
    assert out.record["i_start"] == [3, 10] and out.record["t_start"] == [800, 450]
    strength = pipe("8", "digit-3", strength=0.5, num_inference_steps=20, generator=torch.Generator().manual_seed(1))
    assert strength.record["i_start"] == [10]


def test_inpaint_equals_inpaint(t2i, tmp_path):
    pipe = fundiff.InpaintPipeline.from_pipe(t2i)
    mask = pipe.rect_mask("30:64,0:64")
    out = pipe("", "digit-7", mask, num_inference_steps=8, jump_length=2, jump_n_sample=2,
               generator=torch.Generator().manual_seed(2), output_type="pt")
    cli = cli_array(tmp_path, "inpaint", "--image", "digit-7", "--prompt", "", "--rect", "30:64,0:64", "--steps", "8",
                    "--jump-length", "2", "--jump-n-sample", "2", "--seed", "2", name="inpaint.npz")
    np.testing.assert_array_equal(out.images.numpy(), cli)
    kept = out.extras["mask"][0, 0] == 0
    np.testing.assert_allclose(out.images[:, 0][:, kept], fundiff.pipelines.base.to_unit(out.extras["input"])[0, 0][kept]
                               .expand(3, -1), atol=1e-6)   # the kept region is the input exactly


def test_hybrid_equals_hybrid(t2i, tmp_path):
    pipe = fundiff.HybridPipeline.from_pipe(t2i)
    out = pipe(["1", "7"], "hybrid", num_inference_steps=8, num_images_per_prompt=2,
               generator=torch.Generator().manual_seed(3), output_type="pt")
    cli = cli_array(tmp_path, "hybrid", "--prompt", "1", "--prompt", "7", "--steps", "8", "--num-images", "2",
                    "--seed", "3", name="hybrid.npz")
    np.testing.assert_array_equal(out.images.numpy(), cli)
    low, high = out.extras["components"]
    torch.testing.assert_close(low + high, out.samples, atol=1e-5, rtol=0)


def test_mnist_hybrid_forks_by_default(t2i):
    """fork_t "auto" is FORK_T on the MNIST low/high hybrid (the record says so) and off with a reference or another
    decomposition; fork_t=None is the study's composed loop, the same images as ``hybrid_predict`` run by hand; a
    fork above the first timestep is each prompt's own image, composed (the same noise, apart from the start)."""
    from fundiff.engine.illusions import FORK_T, hybrid_predict
    from fundiff.engine.loops import iterative_denoise

    pipe = fundiff.HybridPipeline.from_pipe(t2i)
    common = dict(num_inference_steps=6, num_images_per_prompt=2, output_type="pt")
    seed = lambda: torch.Generator().manual_seed(4)   # noqa: E731
    forked = pipe(["1", "7"], generator=seed(), **common)
    assert forked.record["fork_t"] == FORK_T == 690
    steps = list(pipe.check_steps(6))
    assert forked.record["composed_steps"] == sum(t > 690 for t in steps) > 0
    assert forked.record["forked_at_t"] == max(t for t in steps if t <= 690)   # the first step taken apart
    last = pipe(["1", "7"], generator=seed(), fork_t=0, **common).record
    assert (last["forked_at_t"], last["composed_steps"]) == (0, len(steps) - 1)   # the schedule ends at t 0
    assert pipe(["1", "7"], reference="digit-3", generator=seed(), **common).record["fork_t"] is None
    assert pipe(["1", "7"], "motion", generator=seed(), **common).record["fork_t"] is None
    composed = pipe(["1", "7"], generator=seed(), fork_t=None, **common)
    assert composed.record["fork_t"] is None and not torch.allclose(forked.samples, composed.samples, atol=1e-3)
    dec, ts, g = pipe.decomposition(), pipe.check_steps(6), seed()
    x = torch.randn(2, 1, 28, 28, generator=g)
    by_hand = iterative_denoise(pipe.denoiser.schedule, hybrid_predict(pipe.denoiser, ["1", "7"], dec, batch=2), x, ts,
                                threshold=pipe.threshold, generator=g, final_step=pipe.final_step).image
    torch.testing.assert_close(composed.samples, by_hand, atol=1e-5, rtol=0)
    apart = pipe(["1", "7"], generator=seed(), fork_t=999, **common)
    low, high = apart.extras["components"]
    torch.testing.assert_close(low + high, apart.samples, atol=1e-5, rtol=0)
    assert apart.record["fork_t"] == 999


def test_sample_pipeline_equals_sample_and_streams(tmp_path):
    pipe = fundiff.SamplePipeline.from_pretrained("mnist", device="cpu")
    out = pipe(["3", "7"], num_images_per_prompt=3, generator=torch.Generator().manual_seed(5), output_type="pt")
    assert main(["sample", "--prompt", "3", "--prompt", "7", "--num-images", "3", "--seed", "5", "--device", "cpu",
                 "--out", str(tmp_path / "s.png"), "--save-array", str(tmp_path / "s.npz")]) == 0
    data = np.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(out.images.numpy(), data["images"])
    assert data["labels"].tolist() == [3, 3, 3, 7, 7, 7]
    # batch by batch: the same images, whatever the batch size
    parts = [x for x, _ in pipe.batches(["3", "7"], num_images_per_prompt=3, batch_size=4,
                                        generator=torch.Generator().manual_seed(5))]
    assert [len(p) for p in parts] == [4, 2]
    np.testing.assert_array_equal(torch.cat(parts).numpy(), out.images.numpy())
    assert out.record["model_evaluations_per_image"] == 28


def test_from_pipe_shares_the_model_both_ways(t2i):
    sample = fundiff.SamplePipeline.from_pipe(t2i)
    assert sample.model is t2i.denoiser.generator
    back = fundiff.AnagramPipeline.from_pipe(sample)
    assert back.denoiser.generator is t2i.denoiser.generator
    assert fundiff.HybridPipeline.from_pipe(t2i, threshold="none").threshold is None
    assert t2i.threshold is not None


def test_defaults_equal_the_commands(t2i):
    """Defaults that differ from the CLI would make notebook results differ silently."""
    import inspect

    def default(cls, name):
        return inspect.signature(cls.__call__).parameters[name].default

    assert default(fundiff.Text2ImagePipeline, "num_images_per_prompt") == 5
    assert default(fundiff.Text2ImagePipeline, "guidance_scale") == 7.0
    assert default(fundiff.AnagramPipeline, "num_images_per_prompt") == 4
    assert default(fundiff.InpaintPipeline, "num_images_per_prompt") == 3
    assert default(fundiff.SamplePipeline, "guidance_scale") is None       # the model's: 5 for a teacher, as the CLI
    assert fundiff.SamplePipeline(t2i.denoiser.generator).model.default_guidance_scale == 5.0
    from fundiff.cli import build_parser

    assert build_parser().parse_args(["sample"]).guidance_scale is None
    assert t2i.threshold == t2i.denoiser.threshold   # "auto": the backend's own (static for MNIST)


@pytest.mark.parametrize("call,fragment", [
    (lambda p: p("7", output_type="jpeg"), "output_type"),
    (lambda p: p(7), "prompt must be a string"),
    (lambda p: p([]), "empty list"),
    (lambda p: p("a cat"), "cat"),
    (lambda p: p("7", num_images_per_prompt=0), "num_images_per_prompt"),
    (lambda p: p("7", num_images_per_prompt=10**6), "split the request"),
    (lambda p: p("7", guidance_scale=float("nan")), "guidance_scale"),
    (lambda p: p("7", num_inference_steps=5000), "num_inference_steps"),
    (lambda p: p("7", generator=0), "torch.Generator"),
    (lambda p: p("7", negative_prompt=3), "negative_prompt"),
    (lambda p: fundiff.AnagramPipeline.from_pipe(p)(["6", "9", "1"]), "one view per prompt"),
    (lambda p: fundiff.AnagramPipeline.from_pipe(p)("6"), "list of prompts"),
    (lambda p: fundiff.AnagramPipeline.from_pipe(p)(["6", "9"], ["identity", "spin"]), "spin"),
    (lambda p: fundiff.HybridPipeline.from_pipe(p)(["1", "7"], "triple"), "3 components"),
    (lambda p: fundiff.HybridPipeline.from_pipe(p)(["1", "7"], "color"), "3 colour channels"),
    (lambda p: fundiff.AnagramPipeline.from_pipe(p)(["6", "9"], guidance_scale=[7, 7, 7]), "list of 2"),
    (lambda p: fundiff.AnagramPipeline.from_pipe(p)(["6", "9"], guidance_scale=[7, -1]), "guidance_scale"),
    (lambda p: fundiff.AnagramPipeline.from_pipe(p)(["6", "9"], negative_prompt=["9"]), "list of 2"),
    (lambda p: fundiff.AnagramPipeline.from_pipe(p)(["6", "9"], negative_prompt=["9", "a cat"]), "cat"),
    (lambda p: fundiff.AnagramPipeline.from_pipe(p)(["6", "9"], reduction="sum"), "reduction"),
    (lambda p: fundiff.HybridPipeline.from_pipe(p)(["1", "7"], resample_steps=3, resample_times=0), "resample_times"),
    (lambda p: fundiff.HybridPipeline.from_pipe(p)(["1", "7"], resample_steps=99), "resample_steps"),
    (lambda p: fundiff.HybridPipeline.from_pipe(p)(["1", "7"], fork_t="750"), "fork_t must be"),
    (lambda p: fundiff.HybridPipeline.from_pipe(p)(["1", "7"], fork_t=True), "fork_t must be"),
    (lambda p: fundiff.HybridPipeline.from_pipe(p)(["1", "7"], fork_t=1000), "timestep in 0..999, got 1000"),
    (lambda p: fundiff.HybridPipeline.from_pipe(p)(["1", "7"], fork_t=500, reference="digit-3"), "fork off"),
    (lambda p: fundiff.SDEditPipeline.from_pipe(p)("7", "digit-3", i_start=99), "i_start=99"),
    (lambda p: fundiff.SDEditPipeline.from_pipe(p)("7", "digit-3", i_start=1, strength=0.5), "not both"),
    (lambda p: fundiff.SDEditPipeline.from_pipe(p)("7", "no-such-sample"), "no-such-sample"),
    (lambda p: fundiff.InpaintPipeline.from_pipe(p)("7", "digit-3", torch.zeros(1, 1, 28, 28)), "empty"),
    (lambda p: fundiff.SamplePipeline.from_pipe(p)("7", sampler="ddim"), "--sampler"),
    (lambda p: fundiff.SamplePipeline.from_pipe(p)("7", num_images_per_prompt=10**6), "pipe.batches"),
    (lambda p: fundiff.Text2ImagePipeline.from_pretrained("/no/such/model"), "/no/such/model"),
    (lambda p: fundiff.Text2ImagePipeline.from_pretrained("mnist", weigths="x"), "unknown load option"),
    (lambda p: fundiff.Text2ImagePipeline.from_pretrained("mnist", threshold="maybe"), "threshold"),
])
def test_bad_input_is_one_line_before_any_work(t2i, call, fragment, monkeypatch):
    from fundiff.backends.mnist import MnistDenoiser

    monkeypatch.setattr(MnistDenoiser, "predict", lambda *a, **k: pytest.fail("the model ran"))
    with pytest.raises(FundiffError) as info:
        call(t2i)
    message = str(info.value)
    assert fragment in message and "\n" not in message, message


def test_output_types_and_callback(t2i):
    steps = []
    pil = t2i("2", num_images_per_prompt=2, num_inference_steps=3, generator=torch.Generator().manual_seed(0),
              callback=lambda i, t, x: steps.append((i, t, tuple(x.shape))))
    pt = t2i("2", num_images_per_prompt=2, num_inference_steps=3, generator=torch.Generator().manual_seed(0),
             output_type="pt")
    assert steps == [(0, 666, (2, 1, 28, 28)), (1, 333, (2, 1, 28, 28)), (2, 0, (2, 1, 28, 28))]
    assert pt.images.shape == (2, 1, 28, 28) and 0 <= pt.images.min() and pt.images.max() <= 1
    np.testing.assert_array_equal(np.asarray(pil.images[1]), (pt.images[1, 0].numpy() * 255).round().astype(np.uint8))
    assert pt.samples.shape == (2, 1, 28, 28)


def test_batches_keep_shapes_and_seeds(t2i):
    a = t2i("5", num_images_per_prompt=5, num_inference_steps=4, generator=torch.Generator().manual_seed(9),
            output_type="pt", batch_size=2)
    b = t2i("5", num_images_per_prompt=5, num_inference_steps=4, generator=torch.Generator().manual_seed(9),
            output_type="pt", batch_size=2)
    assert a.images.shape == (5, 1, 28, 28)
    torch.testing.assert_close(a.images, b.images, rtol=0, atol=0)
    # the first batch is the first two images of an unbatched call of two
    c = t2i("5", num_images_per_prompt=2, num_inference_steps=4, generator=torch.Generator().manual_seed(9),
            output_type="pt")
    torch.testing.assert_close(a.images[:2], c.images, rtol=0, atol=0)


def test_latents_are_the_starting_noise(t2i):
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 1, 28, 28, generator=g)
    given = t2i("4", num_images_per_prompt=2, num_inference_steps=4, latents=x, generator=g, output_type="pt")
    drawn = t2i("4", num_images_per_prompt=2, num_inference_steps=4, generator=torch.Generator().manual_seed(11),
                output_type="pt")
    torch.testing.assert_close(given.images, drawn.images, rtol=0, atol=0)
    with pytest.raises(FundiffError, match=r"latents must be a float tensor of shape \(2, 1, 28, 28\)"):
        t2i("4", num_images_per_prompt=2, latents=torch.zeros(3, 1, 28, 28))


def test_an_interrupted_streamed_npz_leaves_no_file_and_keeps_the_interrupt(tmp_path):
    from fundiff.images import streamed_npz

    with pytest.raises(KeyboardInterrupt):
        with streamed_npz(tmp_path / "x.npz", (4, 1, 28, 28)) as npz:
            npz.add(torch.zeros(2, 1, 28, 28))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with streamed_npz(tmp_path / "y.npz", (2, 1, 2, 2)) as npz:   # and a finished one reads back
        npz.add(torch.ones(2, 1, 2, 2))
        npz.finish(labels=[3, 7])
    data = np.load(tmp_path / "y.npz")
    assert data["images"].shape == (2, 1, 2, 2) and data["labels"].tolist() == [3, 7]


def test_final_step_none_is_the_studys_33_call_loop(t2i, tmp_path, cli):
    """final_step="none" stops at t = 0: 33 model calls on the strided list (34 with diffusers' last step to clean)."""
    study = fundiff.Text2ImagePipeline.from_pipe(t2i, final_step="none")
    calls = []
    hook = t2i.denoiser.model.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    try:
        out = study("7", num_images_per_prompt=1, guidance_scale=1.0, generator=torch.Generator().manual_seed(0),
                    output_type="pt")
        assert len(calls) == 33 and out.record["model_evaluations_per_image"] == 33
        assert out.record["final_step"].startswith("none")
        calls.clear()
        full = t2i("7", num_images_per_prompt=1, guidance_scale=1.0, generator=torch.Generator().manual_seed(0),
                   output_type="pt")
        assert len(calls) == 34 and full.record["final_step"] == "t = 0 to the clean image"
    finally:
        hook.remove()
    assert not torch.equal(out.images, full.images)
    proc = cli("generate", "--prompt", "7", "--num-images", "1", "--final-step", "none", "--out", tmp_path / "g")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "g" / "generate.json").read_text())
    assert record["runs"][0]["model_evaluations_per_image"] == 66     # 33 steps, both CFG passes
    with pytest.raises(fundiff.FundiffError, match="final_step must be one of clean, none"):
        fundiff.Text2ImagePipeline.from_pipe(t2i, final_step="maybe")


def test_illusion_settings_per_prompt_and_resampling_are_recorded(t2i):
    """Per-prompt gamma and negative prompts, the reduction and resampling reach the record; resampling the first
    2 of 4 steps twice costs 2 more steps, and the same settings as one value or as a list give the same images."""
    ana = fundiff.AnagramPipeline.from_pipe(t2i)
    common = dict(num_images_per_prompt=2, num_inference_steps=4, output_type="pt")
    seed = lambda: torch.Generator().manual_seed(3)   # noqa: E731
    one = ana(["1", "7"], guidance_scale=5.0, generator=seed(), **common)
    listed = ana(["1", "7"], guidance_scale=[5.0, 5.0], negative_prompt=[None, None], generator=seed(), **common)
    assert torch.allclose(one.samples, listed.samples, atol=1e-5)
    calls = []
    out = ana(["1", "7"], guidance_scale=[5.0, 9.0], negative_prompt=["7", "1"], reduction="alternate",
              resample_steps=2, resample_times=2, generator=seed(), callback=lambda *a: calls.append(a[0]), **common)
    assert out.record["guidance_scale"] == [5.0, 9.0] and out.record["negative_prompt"] == ["7", "1"]
    assert out.record["reduction"] == "alternate" and out.record["resample"] == {"steps": 2, "times": 2}
    assert len(calls) == 4 and not torch.allclose(out.samples, one.samples)
    hyb = fundiff.HybridPipeline.from_pipe(t2i)(["1", "7"], resample_steps=1, resample_times=3, generator=seed(), **common)
    assert hyb.record["resample"] == {"steps": 1, "times": 3} and hyb.record["corrector"] is None   # off by default
    # the corrector runs in the composed steps only (before the fork), so these two compare the composed loop
    corrected = fundiff.HybridPipeline.from_pipe(t2i)(["1", "7"], corrector_steps=2, generator=seed(), fork_t=None,
                                                      **common)
    assert corrected.record["corrector"]["steps"] == 2
    plain = fundiff.HybridPipeline.from_pipe(t2i)(["1", "7"], generator=seed(), fork_t=None, **common)
    assert not torch.allclose(corrected.samples, plain.samples, atol=1e-3)


def test_anagrams_on_mnist_default_to_the_balanced_reduction(t2i):
    """reduction "auto" is "balanced" on MNIST (the record says so, with its strength); balance 0 is the mean."""
    ana = fundiff.AnagramPipeline.from_pipe(t2i)
    common = dict(num_images_per_prompt=2, num_inference_steps=4, output_type="pt")
    seed = lambda: torch.Generator().manual_seed(5)   # noqa: E731
    auto = ana(["3", "8"], generator=seed(), **common)
    assert auto.record["reduction"] == "balanced" and auto.record["balance"] == 0.5 and auto.record["rival"] is True
    mean = ana(["3", "8"], reduction="mean", generator=seed(), **common)
    assert mean.record["reduction"] == "mean" and "balance" not in mean.record and mean.record["rival"] is False
    flat = ana(["3", "8"], reduction="balanced", balance=0.0, rival=False, corrector_steps=0, generator=seed(), **common)
    torch.testing.assert_close(flat.samples, mean.samples, atol=1e-5, rtol=0)
    assert not torch.allclose(auto.samples, mean.samples, atol=1e-3)
    no_rival = ana(["3", "8"], rival=False, generator=seed(), **common)
    assert not torch.allclose(auto.samples, no_rival.samples, atol=1e-3)
    # a negative prompt switches auto's rival guidance off; asked for with one, or where nothing reads the prompts, it is
    # a one-line error
    assert ana(["3", "8"], negative_prompt="5", **common).record["rival"] is False
    assert ana(["3", "8"], reduction="mean", rival=True, **common).record["rival"] is True
    for bad, match in [(dict(rival=True, negative_prompt="5"), "give no negative_prompt"),
                       (dict(rival=True, reduction="alternate"), "not alternate"), (dict(rival="yes"), "rival must be")]:
        with pytest.raises(fundiff.FundiffError, match=match):
            ana(["3", "8"], **bad, **common)
    with pytest.raises(fundiff.FundiffError, match="rival guidance reads each view"):
        ana(["3", ""], rival=True, **common)
    # the Langevin corrector: on by default with the balanced reduction (4 steps at t >= 500), off with the mean
    assert auto.record["corrector"] == {"kind": "langevin", "steps": 4, "snr": 0.3, "t_min": 500}
    assert mean.record["corrector"] is None and flat.record["corrector"] is None
    no_corrector = ana(["3", "8"], corrector_steps=0, generator=seed(), **common)
    assert not torch.allclose(auto.samples, no_corrector.samples, atol=1e-3)
    on_mean = ana(["3", "8"], reduction="mean", corrector_steps=2, corrector_snr=0.5, corrector_t_min=500, **common)
    assert on_mean.record["corrector"] == {"kind": "langevin", "steps": 2, "snr": 0.5, "t_min": 500}
    for bad, match in [(dict(corrector_steps=17), "corrector steps must be"), (dict(corrector_snr=0), "snr must be"),
                       (dict(corrector_t_min=-3), "t_min must be")]:
        with pytest.raises(fundiff.FundiffError, match=match):
            ana(["3", "8"], **bad, **common)
    with pytest.raises(fundiff.FundiffError, match=r"balance must be in \[0, 20\]"):
        ana(["3", "8"], balance=-1, **common)
    with pytest.raises(fundiff.FundiffError, match="every prompt must name a digit"):
        ana(["3", ""], reduction="balanced", **common)
    assert ana(["3", ""], **common).record["reduction"] == "mean"   # auto: no digit to read in "", so the mean

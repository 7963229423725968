"""Flow matching and DDPM: objectives, samplers against closed forms, batched CFG, prompts, generation."""

import json

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from fundiff.errors import FundiffError
from fundiff.guidance import conditional_prediction
from fundiff.nn import ClassConditionalUNet, TimeConditionalUNet
from fundiff.objectives import DDPMObjective, FlowMatchingObjective
from fundiff.engine.schedule import Schedule
from fundiff.paths import x0_eps_from_velocity, x0_from_eps
from fundiff.prompts import parse_digit_prompt
from fundiff.samplers import ddpm_timesteps, sample_ddpm, sample_flow
from fundiff.training.rng import BatchRandom, generator

from helpers import assert_one_line_error

M, S = 0.3, 0.2  # 1-D Gaussian "data" N(M, S^2) with closed-form velocity and noise predictions


def gaussian_velocity(x, t):
    """E[x1 - eps | x_t] for x1 ~ N(M, S^2) on x_t = (1 - t) eps + t x1."""
    t = t.view(-1, *([1] * (x.ndim - 1)))
    var = (1 - t) ** 2 + t**2 * S**2
    return M + (x - t * M) * (t * S**2 - (1 - t)) / var


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


def gaussian_eps(schedule):
    ab = schedule.alphas_cumprod

    def eps(x, t_over_T):
        t = (t_over_T * schedule.num_steps).round().long()
        a, s = ab[t].sqrt().view(-1, 1, 1, 1), (1 - ab[t]).sqrt().view(-1, 1, 1, 1)
        return s * (x - a * M) / (a**2 * S**2 + s**2)

    return eps


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


def test_schedule_matches_the_study():
    sched = Schedule.linear()
    betas = sched.betas
    assert len(betas) == 300 and betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    torch.testing.assert_close(sched.alphas_cumprod_f64, torch.cumprod(1 - torch.linspace(1e-4, 0.02, 300, dtype=torch.float64), 0))


def test_path_estimates_invert_the_path():
    x1, eps, t = torch.rand(5, 1, 4, 4), torch.randn(5, 1, 4, 4), torch.rand(5)
    tc = t.view(-1, 1, 1, 1)
    xt = (1 - tc) * eps + tc * x1
    x1_hat, eps_hat = x0_eps_from_velocity(xt, t, x1 - eps)
    torch.testing.assert_close(x1_hat, x1)
    torch.testing.assert_close(eps_hat, eps)
    a, s = torch.tensor([0.8] * 5), torch.tensor([0.6] * 5)
    torch.testing.assert_close(x0_from_eps(a.view(-1, 1, 1, 1) * x1 + s.view(-1, 1, 1, 1) * eps, a, s, eps), x1)


def test_batch_random_shards_equal_the_global_draw():
    full = BatchRandom(generator(1, 2, 3)).randn((8, 3), "cpu")
    parts = [BatchRandom(generator(1, 2, 3), rank=r, world=2).randn((4, 3), "cpu") for r in range(2)]
    torch.testing.assert_close(torch.cat(parts), full)


def test_flow_objective_is_the_study_loss():
    torch.manual_seed(0)
    model = ClassConditionalUNet(1, 10, 4)
    x1, y = torch.rand(6, 1, 28, 28), torch.arange(6)
    loss = FlowMatchingObjective(p_uncond=0.5).loss(model, x1, y, BatchRandom(generator(0, 0, 0)))
    r = BatchRandom(generator(0, 0, 0))
    eps = r.randn(x1.shape, "cpu")
    t = r.rand(6, "cpu")
    keep = (r.rand(6, "cpu") >= 0.5).float()
    xt = (1 - t.view(-1, 1, 1, 1)) * eps + t.view(-1, 1, 1, 1) * x1
    torch.testing.assert_close(loss, F.mse_loss(model(xt, y, t, keep), x1 - eps))


def test_ddpm_objective_is_the_study_loss():
    torch.manual_seed(0)
    model = TimeConditionalUNet(1, 4, "additive")
    x0 = torch.rand(6, 1, 28, 28)
    obj = DDPMObjective()
    loss = obj.loss(model, x0, torch.zeros(6, dtype=torch.long), BatchRandom(generator(0, 0, 0)))
    r = BatchRandom(generator(0, 0, 0))
    eps = r.randn(x0.shape, "cpu")
    t = r.randint(300, 6, "cpu")
    ab = obj.schedule.alphas_cumprod[t].float().view(-1, 1, 1, 1)
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    torch.testing.assert_close(loss, F.mse_loss(model(xt, t.float() / 300), eps))


def test_cfg_is_one_batched_call_matching_two_passes():
    torch.manual_seed(0)
    model = ClassConditionalUNet(1, 10, 4).eval()
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    x, t, y = torch.randn(3, 1, 28, 28), torch.rand(3), torch.tensor([1, 2, 3])
    guided, nfe = conditional_prediction(model, y, 5.0)
    out = guided(x, t)
    assert calls == [6] and nfe == 2
    cond = model(x, y, t, torch.ones(3))
    uncond = model(x, y, t, torch.zeros(3))
    torch.testing.assert_close(out, uncond + 5.0 * (cond - uncond), rtol=1e-4, atol=1e-5)
    plain, nfe1 = conditional_prediction(model, y, 1.0)
    torch.testing.assert_close(plain(x, t), cond)
    assert nfe1 == 1


@pytest.mark.parametrize("prompt,expected", [("7", 7), ("seven", 7), ("a 7", 7), ("the digit Seven", 7), ("0", 0),
                                             ("", None), ("  ", None), ("nine", 9)])
def test_prompts(prompt, expected):
    assert parse_digit_prompt(prompt) == expected


@pytest.mark.parametrize("prompt", ["cat", "17", "7 8", "a photo of a dog"])
def test_unknown_prompts(prompt):
    with pytest.raises(FundiffError, match="unknown class prompt"):
        parse_digit_prompt(prompt)


# ------------------------------------------------------------------------------------------------
# A tiny trained model, through the CLI.


@pytest.fixture(scope="module")
def tiny_flow(tmp_path_factory):
    from helpers import run_cli

    out = tmp_path_factory.mktemp("flow") / "run"
    proc = run_cli("train", "flow", "--out", out, "--num-hiddens", "4", "--num-train", "256", "--batch-size", "32",
                   "--epochs", "1", "--device", "cpu", "--no-progress", "--ema-decay", "0.9")
    assert proc.returncode == 0, proc.stderr
    return out


def test_sample_command_writes_png_npz_gif_reproducibly(tiny_flow, tmp_path, cli):
    args = ["sample", "--model", tiny_flow, "--prompt", "3", "--prompt", "seven", "--num-images", "2", "--steps", "3",
            "--seed", "5", "--device", "cpu"]
    p1 = cli(*args, "--out", tmp_path / "a.png", "--save-array", tmp_path / "a.npz", "--gif", tmp_path / "a.gif")
    assert p1.returncode == 0, p1.stderr
    assert "midpoint, 3 steps, 12 UNet evaluations per image" in p1.stdout
    p2 = cli(*args, "--out", tmp_path / "b.png", "--save-array", tmp_path / "b.npz")
    assert p2.returncode == 0, p2.stderr
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert a["images"].shape == (4, 1, 28, 28) and a["images"].dtype == np.float32
    assert 0 <= a["images"].min() and a["images"].max() <= 1
    assert a["labels"].tolist() == [3, 3, 7, 7]
    np.testing.assert_array_equal(a["images"], b["images"])
    from PIL import Image

    gif = Image.open(tmp_path / "a.gif")
    assert gif.n_frames == 4  # the noise and 3 steps
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


@pytest.mark.parametrize(
    "extra,fragment",
    [
        (["--prompt", "cat"], "unknown class prompt"),
        (["--guidance-scale", "-1"], "--guidance-scale"),
        (["--guidance-scale", "nan"], "--guidance-scale"),
        (["--steps", "5000"], "--steps"),
        (["--sampler", "ddim"], "--sampler"),
        (["--out", "x.jpg"], ".png"),
    ],
)
def test_sample_bad_input(tiny_flow, tmp_path, cli, extra, fragment):
    proc = cli("sample", "--model", tiny_flow, "--device", "cpu", *extra, cwd=tmp_path)
    assert_one_line_error(proc, fragment)
    assert not list(tmp_path.iterdir())


def test_sample_refuses_other_architectures(tmp_path, cli):
    from fundiff.nn import UnconditionalUNet
    from fundiff.training import save_model

    save_model(tmp_path / "den.safetensors", UnconditionalUNet(1, 4))
    assert_one_line_error(cli("sample", "--model", tmp_path / "den.safetensors", "--out", tmp_path / "x.png"),
                          "not a flow or DDPM model")
    (tmp_path / "junk.safetensors").write_text("junk")
    assert_one_line_error(cli("sample", "--model", tmp_path / "junk.safetensors"), "not a readable safetensors")


@pytest.mark.slow
def test_evaluate_command(tiny_flow, tmp_path, cli):
    proc = cli("evaluate", "--model", tiny_flow, "--num-per-class", "3", "--steps", "2", "--guidance-scale", "1",
               "--guidance-scale", "5", "--device", "cpu", "--json", tmp_path / "e.json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "e.json").read_text())
    assert [r["guidance_scale"] for r in res["per_guidance_scale"]] == [1.0, 5.0]
    assert [r["nfe_per_image"] for r in res["per_guidance_scale"]] == [4, 8]
    assert res["num_images"] == 30 and res["fid_floor"] > 0
    per = {r["guidance_scale"]: r for r in res["per_guidance_scale"]}
    assert res["accuracy_at_gamma5"] == per[5.0]["accuracy"]
    assert per[5.0]["accuracy"] * 30 == pytest.approx(round(per[5.0]["accuracy"] * 30))   # a count out of 30 images
    assert all(r["fid"] > res["fid_floor"] for r in per.values())   # a 4-wide, 1-epoch model is far from real digits


@pytest.mark.slow
def test_ddpm_training_and_sampling(tmp_path, cli):
    out = tmp_path / "ddpm"
    proc = cli("train", "ddpm", "--out", out, "--conditioning", "time", "--num-hiddens", "4", "--num-train", "128",
               "--batch-size", "32", "--epochs", "1", "--device", "cpu", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["time_mode"] == "additive" and cfg["objective"]["num_steps"] == 300
    assert cfg["train"]["lr"] == 1e-3 and cfg["train"]["batch_size"] == 32
    for sampler in ("ddpm", "ddim"):
        proc = cli("sample", "--model", out, "--prompt", "", "--num-images", "2", "--steps", "5", "--sampler", sampler,
                   "--out", tmp_path / f"{sampler}.png", "--device", "cpu")
        assert proc.returncode == 0, proc.stderr
    assert_one_line_error(cli("sample", "--model", out, "--prompt", "3", "--device", "cpu"), "not class-conditional")


def blown_up_model(run_dir, dest):
    """A copy of a trained flow model whose output bias overflows float32: its samples become inf/NaN."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    src = run_dir / "model.safetensors"
    with safe_open(str(src), "pt") as fh:
        meta = fh.metadata()
    tensors = load_file(str(src))
    tensors["out.bias"] = torch.full_like(tensors["out.bias"], 3e38)
    save_file(tensors, str(dest), metadata=meta)


@pytest.mark.slow
@pytest.mark.parametrize("command,output", [
    (["evaluate", "--num-per-class", "2", "--guidance-scale", "1", "--json"], "e.json"),
    (["sample", "--prompt", "3", "--num-images", "2", "--out"], "s.png"),
], ids=["evaluate", "sample"])
def test_a_model_whose_samples_blow_up_is_a_one_line_error_and_writes_nothing(tiny_flow, tmp_path, cli, command, output):
    blown_up_model(tiny_flow, tmp_path / "model.safetensors")
    proc = cli(command[0], "--model", tmp_path / "model.safetensors", "--steps", "2", "--device", "cpu",
               *command[1:], tmp_path / output)
    assert_one_line_error(proc, "NaN or infinite")
    assert not (tmp_path / output).exists()

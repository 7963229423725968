"""fundiff.commands.part_b: sample, evaluate and train ddpm on the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import assert_one_line_error


@pytest.fixture(scope="module")
def tiny_flow(tmp_path_factory):
    from helpers import run_cli

    out = tmp_path_factory.mktemp("flow") / "run"
    proc = run_cli("train", "flow", "--out", out, "--num-hiddens", "4", "--num-train", "256", "--batch-size", "32",
                   "--epochs", "1", "--device", "cpu", "--no-progress", "--ema-decay", "0.9")
    assert proc.returncode == 0, proc.stderr
    return out


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


@pytest.mark.slow
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


def test_train_flow_init_fine_tunes_from_the_given_weights(tiny_flow, tmp_path, cli):
    """--init starts from a model's weights, not the seed's: at a vanishing lr the run gives its weights back; the run's
    config records where it started; a different UNet is a one-line error."""
    from safetensors.torch import load_file

    out = tmp_path / "tuned"
    proc = cli("train", "flow", "--out", out, "--num-hiddens", "4", "--num-train", "32", "--batch-size", "32",
               "--epochs", "1", "--device", "cpu", "--no-progress", "--lr", "1e-12", "--warmup-steps", "0",
               "--init", tiny_flow)
    assert proc.returncode == 0, proc.stderr
    start, tuned = load_file(str(tiny_flow / "model.safetensors")), load_file(str(out / "model.safetensors"))
    learned = [k for k in start if "running_" not in k and "num_batches" not in k]   # batch-norm statistics do move
    assert learned and all(torch.allclose(start[k], tuned[k], atol=1e-6) for k in learned)
    assert json.loads((out / "config.json").read_text())["train"]["init"] == str(tiny_flow)
    assert_one_line_error(cli("train", "flow", "--out", tmp_path / "bad", "--num-hiddens", "8", "--init", tiny_flow),
                          "D = 4", "D = 8")
    assert not (tmp_path / "bad").exists()

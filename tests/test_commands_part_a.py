"""fundiff.commands.part_a: forward, denoise and generate on the command line."""

from __future__ import annotations

import json

import pytest

from helpers import assert_one_line_error


@pytest.mark.slow
def test_generate_cli_on_mnist_reads_back_as_the_prompt(cli, tmp_path):
    proc = cli("generate", "--prompt", "2", "--prompt", "seven", "--num-images", "4", "--steps", "12",
               "--guidance-scale", "5", "--out", tmp_path / "g", "--save-array")
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "g" / "generate.json").read_text())
    assert res["runs"][0]["accuracy"] >= 0.75
    assert res["runs"][0]["model_evaluations_per_image"] == 24
    import numpy as np

    arr = np.load(tmp_path / "g" / "generate.npz")
    assert arr["images"].shape == (8, 1, 28, 28) and 0 <= arr["images"].min() and arr["images"].max() <= 1
    again = cli("generate", "--prompt", "2", "--prompt", "seven", "--num-images", "4", "--steps", "12",
                "--guidance-scale", "5", "--out", tmp_path / "g2", "--save-array")
    assert again.returncode == 0
    assert (np.load(tmp_path / "g2" / "generate.npz")["images"] == arr["images"]).all()


@pytest.mark.slow
def test_generate_figure_is_a_column_per_prompt(cli, tmp_path):
    from PIL import Image

    prompts = [a for d in "0123456789" for a in ("--prompt", d)]
    proc = cli("generate", *prompts, "--num-images", "2", "--steps", "3", "--out", tmp_path / "one")
    assert proc.returncode == 0, proc.stderr
    w, h = Image.open(tmp_path / "one" / "generate.png").size
    assert 2 < w / h < 6  # 10 columns x 2 rows (in one row the 20 digits were 25:1)
    proc = cli("generate", *prompts, "--num-images", "2", "--steps", "2", "3", "--out", tmp_path / "two")
    assert proc.returncode == 0, proc.stderr
    w2, h2 = Image.open(tmp_path / "two" / "generate.png").size
    assert 2 < w2 / h2 < 6  # one row per step count, the first sample of each prompt (not 20 in a row)
    assert len(list((tmp_path / "two").glob("samples_*steps.png"))) == 2  # every sample is there


@pytest.mark.slow
def test_threshold_choice_on_the_command_line(cli, tmp_path):
    import numpy as np

    def images(*extra):
        out = tmp_path / "_".join(extra or ("default",))
        proc = cli("generate", "--prompt", "7", "--num-images", "3", "--steps", "20", "--out", out, "--save-array", *extra)
        assert proc.returncode == 0, proc.stderr
        recorded.append(json.loads((out / "generate.json").read_text())["thresholding"])
        return np.load(out / "generate.npz")["images"]

    recorded = []

    auto, static, dynamic = images(), images("--threshold", "static"), images("--threshold", "dynamic")
    plain, plain_alias = images("--threshold", "none"), images("--no-threshold")
    assert recorded == ["static", "static", "dynamic (ratio 0.95, max 1.5)", "none", "none"]
    assert (auto == static).all() and (plain == plain_alias).all()
    assert not (static == dynamic).all() and not (static == plain).all()
    assert dynamic[dynamic < 0.3].mean() > 2 * static[static < 0.3].mean()  # dynamic thresholding greys the background
    assert_one_line_error(cli("generate", "--threshold", "sometimes", "--out", tmp_path / "x"), "--threshold")


@pytest.mark.slow   # as real subprocesses; tests/test_bad_input.py's in-process sweep covers these in the fast lane
@pytest.mark.parametrize("args,fragments", [
    (["generate", "--prompt", "a cat"], ["unknown class prompt", "a cat"]),
    (["denoise", "--i-start", "40"], ["i_start=40"]),
    (["forward", "--t", "1000"], ["t=1000"]),
    (["generate", "--model", "deepfloyd", "--weights", "/nonexistent/if"], ["/nonexistent/if", "does not exist"]),
    (["generate", "--model", "no/such/model.safetensors"], ["--model"]),
    (["generate", "--upsample"], ["--upsample needs --model deepfloyd"]),
    (["denoise", "--image", "/nonexistent.png"], ["/nonexistent.png"]),
])
def test_part_a_bad_input_is_one_line(cli, tmp_path, args, fragments):
    proc = cli(*args, "--out", tmp_path / "o")
    assert_one_line_error(proc, *fragments)
    for f in fragments:
        assert f in proc.stderr


@pytest.mark.slow
def test_forward_and_denoise_cli_write_the_figures(cli, tmp_path):
    proc = cli("forward", "--out", tmp_path / "f", "--save-array")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "f" / "forward.png").is_file() and (tmp_path / "f" / "forward.npz").is_file()
    proc = cli("denoise", "--image", "mnist-test:0", "--out", tmp_path / "d")
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "d" / "denoise.json").read_text())
    for name in ("blur.png", "one_step.png", "iterative.png", "comparison.png"):
        assert (tmp_path / "d" / name).is_file()
    p = res["psnr_db"]
    assert p["250"]["noisy"] > p["500"]["noisy"] > p["750"]["noisy"]
    assert res["iterative"]["t_start"] == 690 and res["iterative"]["steps"] == 24

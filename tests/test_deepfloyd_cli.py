"""The DeepFloyd backend end to end on tiny random pipeline folders saved with diffusers' own classes:
``fundiff embed`` (T5 -> .pth cache), ``generate --model deepfloyd``, ``upsample``, and their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow   # each test starts the CLI with diffusers and tiny IF models

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from helpers import assert_one_line_error  # noqa: E402
from deepfloyd_tiny import save_pipeline  # noqa: E402

PROMPT = "a rocket ship"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("if")
    return save_pipeline(root / "IF-I-XL-v1.0", stage=1), save_pipeline(root / "IF-II-L-v1.0", stage=2), root


@pytest.fixture(scope="module")
def embeds(folders, tmp_path_factory):
    from fundiff.cli import main

    out = tmp_path_factory.mktemp("emb") / "prompts.pth"
    assert main(["embed", "--weights", str(folders[0]), "--prompt", PROMPT, "--out", str(out)]) == 0
    return out


def test_embed_writes_the_studys_format_matching_encode_prompt(folders, embeds):
    from diffusers import IFPipeline

    table = torch.load(embeds, weights_only=True)
    assert set(table) == {"", PROMPT}
    assert table[PROMPT].shape == (1, 77, 32) and table[PROMPT].dtype == torch.float16
    pipe = IFPipeline.from_pretrained(folders[0], unet=None, safety_checker=None, watermarker=None,
                                      feature_extractor=None, requires_safety_checker=False)
    ref, _ = pipe.encode_prompt(PROMPT, do_classifier_free_guidance=False, clean_caption=False)
    assert torch.allclose(table[PROMPT].float(), ref.half().float())


def test_embed_adds_to_an_existing_cache(folders, embeds, tmp_path):
    from fundiff.cli import main

    copy = tmp_path / "p.pth"
    copy.write_bytes(embeds.read_bytes())
    assert main(["embed", "--weights", str(folders[0]), "--prompt", "a photo of a dog", "--out", str(copy)]) == 0
    assert set(torch.load(copy, weights_only=True)) == {"", PROMPT, "a photo of a dog"}


def test_generate_with_deepfloyd_from_a_local_folder(cli, folders, embeds, tmp_path):
    proc = cli("generate", "--model", "deepfloyd", "--weights", folders[2], "--embeddings", embeds, "--prompt", PROMPT,
               "--num-images", "2", "--steps", "3", "5", "--out", tmp_path / "g", "--save-array", "--upsample",
               "--stage2-weights", folders[1])
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "g" / "generate.json").read_text())
    assert [r["num_inference_steps"] for r in res["runs"]] == [3, 5]
    assert res["backend"] == "deepfloyd" and res["runs"][0]["model_evaluations_per_image"] == 6
    import numpy as np

    assert np.load(tmp_path / "g" / "generate.npz")["images"].shape == (4, 3, 16, 16)
    from PIL import Image

    assert Image.open(tmp_path / "g" / "upsampled.png").size[0] >= 32 * 2


def test_upsample_command(cli, folders, embeds, tmp_path):
    from PIL import Image

    Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / "small.png")
    proc = cli("upsample", "--weights", folders[0], "--stage2-weights", folders[1], "--embeddings", embeds,
               "--image", tmp_path / "small.png", "--prompt", PROMPT, "--steps", "3", "--out", tmp_path / "up.png")
    assert proc.returncode == 0, proc.stderr
    assert Image.open(tmp_path / "up.png").size == (32, 32)


def test_anagram_and_hybrid_upsampled_with_stage2(cli, folders, embeds, tmp_path):
    common = ["--model", "deepfloyd", "--weights", folders[0], "--embeddings", embeds, "--prompt", PROMPT,
              "--prompt", "", "--steps", "3", "--num-images", "1", "--upsample", "--stage2-weights", folders[1],
              "--stage2-steps", "2"]
    runs = {"anagram": ["--view", "identity", "--view", "rotate_cw", "--frames", "3"], "hybrid": ["--kind", "color"]}
    for cmd, extra in runs.items():
        proc = cli(cmd, *common, *extra, "--out", tmp_path / cmd)
        assert proc.returncode == 0, (cmd, proc.stderr)
        assert (tmp_path / cmd / f"{cmd}_256.png").is_file()


@pytest.mark.parametrize("case", ["missing_prompt", "not_a_pipeline", "stage1_as_stage2", "bad_cache"])
def test_deepfloyd_errors_are_one_line(cli, folders, embeds, tmp_path, case):
    if case == "missing_prompt":
        proc = cli("generate", "--model", "deepfloyd", "--weights", folders[0], "--embeddings", embeds,
                   "--prompt", "a lithograph of a skull", "--out", tmp_path / "o")
        assert_one_line_error(proc, "a lithograph of a skull", "fundiff embed")
    elif case == "not_a_pipeline":
        proc = cli("generate", "--model", "deepfloyd", "--weights", tmp_path, "--out", tmp_path / "o")
        assert_one_line_error(proc, "no DeepFloyd IF pipeline")
    elif case == "stage1_as_stage2":
        proc = cli("generate", "--model", "deepfloyd", "--weights", folders[0], "--embeddings", embeds, "--prompt", PROMPT,
                   "--steps", "2", "--upsample", "--stage2-weights", folders[0], "--out", tmp_path / "o")
        assert_one_line_error(proc, "not an IF stage II model")
    else:
        (tmp_path / "bad.pth").write_text("not a torch file")
        proc = cli("generate", "--model", "deepfloyd", "--weights", folders[0], "--embeddings", tmp_path / "bad.pth",
                   "--out", tmp_path / "o")
        assert_one_line_error(proc, "bad.pth")


def test_home_relative_names_load(folders, embeds, monkeypatch):
    """"~/IF-I-XL-v1.0" as the pipeline's name and "~/..." as the embeddings file are paths, as --weights takes them."""
    import os

    import fundiff

    home = os.path.commonpath([folders[0], embeds])
    monkeypatch.setenv("HOME", home)
    t2i = fundiff.Text2ImagePipeline.from_pretrained("~/" + os.path.relpath(folders[0], home),
                                                     embeddings="~/" + os.path.relpath(embeds, home), device="cpu")
    assert t2i.denoiser.name == "deepfloyd" and PROMPT in t2i.denoiser.embeddings


def test_pipelines_over_deepfloyd_stage1_then_stage2(folders, embeds, tmp_path):
    """The Python API on IF: a folder name loads stage I; UpsamplePipeline.from_pipe loads only stage II and takes
    a stage I output; the upsample command gives the same pixels as the pipeline."""
    import fundiff
    from fundiff.cli import main

    t2i = fundiff.Text2ImagePipeline.from_pretrained(str(folders[0]), embeddings=str(embeds), device="cpu")
    assert t2i.denoiser.name == "deepfloyd" and t2i.threshold is not None   # IF's dynamic thresholding
    small = t2i(PROMPT, num_images_per_prompt=2, num_inference_steps=3, generator=torch.Generator().manual_seed(0))
    assert len(small.images) == 2 and small.images[0].size == (16, 16) and small.images[0].mode == "RGB"
    up = fundiff.UpsamplePipeline.from_pipe(t2i, stage2_weights=folders[1])
    big = up(small, PROMPT, num_inference_steps=3, generator=torch.Generator().manual_seed(1), output_type="pt")
    assert big.images.shape == (2, 3, 32, 32) and up.denoiser.bound is None   # the low-res input is not kept
    small.images[0].save(tmp_path / "small.png")
    alone = fundiff.UpsamplePipeline.from_pretrained(str(folders[1]), embeddings=str(embeds), device="cpu")
    ref = alone(str(tmp_path / "small.png"), PROMPT, num_inference_steps=3, generator=torch.Generator().manual_seed(1),
                output_type="np")
    assert main(["upsample", "--stage2-weights", str(folders[1]), "--embeddings", str(embeds), "--image",
                 str(tmp_path / "small.png"), "--prompt", PROMPT, "--steps", "3", "--seed", "1", "--device", "cpu",
                 "--out", str(tmp_path / "up.png")]) == 0
    from PIL import Image

    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "up.png")), (ref.images[0] * 255).round().astype(np.uint8))

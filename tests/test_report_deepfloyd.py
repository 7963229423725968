"""``fundiff report --model deepfloyd`` end to end on tiny random IF components saved as real pipeline folders
(model_index.json, unet/, scheduler/, stage II's image_noising_scheduler/) with a tiny embeddings file."""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.slow

pytest.importorskip("diffusers")

from deepfloyd_tiny import EMBED_DIM, TOKENS, save_pipeline  # noqa: E402
from helpers import assert_one_line_error  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from fundiff.backends.embeddings import PromptEmbeddings
    from fundiff.report.prompts import deepfloyd_prompts

    root = tmp_path_factory.mktemp("if-report")
    s1 = save_pipeline(root / "IF-I-XL-v1.0", stage=1, with_text_encoder=False)
    s2 = save_pipeline(root / "IF-II-L-v1.0", stage=2, with_text_encoder=False)
    g = torch.Generator().manual_seed(0)
    prompts = deepfloyd_prompts()
    PromptEmbeddings({p: torch.randn(1, TOKENS, EMBED_DIM, generator=g) for p in prompts}).save(root / "e.pth")
    PromptEmbeddings({p: torch.randn(1, TOKENS, EMBED_DIM, generator=g) for p in prompts[:3]}).save(root / "few.pth")
    return root, s1, s2


def test_deepfloyd_report_makes_the_studys_deepfloyd_deliverables(setup, cli):
    root, s1, s2 = setup
    out = root / "report"
    proc = cli("report", "--model", "deepfloyd", "--weights", s1, "--stage2-weights", s2, "--embeddings",
               root / "e.pth", "--quick", "--part", "a", "--out", out, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "report.json").read_text())
    sec = {s["key"]: s for s in data["sections"]}
    assert list(sec) == ["forward", "denoise", "sampling", "steps", "stage2", "sdedit", "inpaint", "anagrams",
                         "hybrids"]   # --part a: Part B (the MNIST trainings, as in tests/test_report.py) is skipped
    for s in data["sections"]:
        assert s["figures"] and all((out / f).is_file() for f in s["figures"]), s["key"]
    assert any("sampling-photo-cfg7" in f for f in sec["sampling"]["figures"])          # 5 x "a high quality photo"
    assert sec["sampling"]["numbers"] and "cfg7" in sec["sampling"]["numbers"]
    assert {"stage2/generate.png", "stage2/upsampled.png"} <= set(sec["stage2"]["figures"])
    assert sec["stage2"]["numbers"]["stage2"]["num_inference_steps"] == 20
    assert len(sec["sdedit"]["figures"]) == 8       # test photo + 2 web photos + 2 sketches, 3 text-conditional
    assert {"replacement", "repaint", "text", "inpaint", "inpaint-1", "inpaint-2"} <= set(sec["inpaint"]["numbers"])
    assert len(sec["inpaint"]["figures"]) == 5      # 3 inputs with their masks, RePaint, text-conditional
    assert len(sec["anagrams"]["commands"]) == 3 and len(sec["hybrids"]["commands"]) == 3
    assert [r["num_inference_steps"] for r in sec["steps"]["numbers"]["runs"]] == [3, 5, 10, 20, 34]
    assert all("--model deepfloyd --weights" in c for c in sec["anagrams"]["commands"])    # each rerunnable as printed


def test_missing_report_prompts_is_one_line(setup, cli, tmp_path):
    root, s1, _ = setup
    proc = cli("report", "--model", "deepfloyd", "--weights", s1, "--embeddings", root / "few.pth", "--quick",
               "--out", tmp_path / "r")
    assert_one_line_error(proc, "lacks", "of the report's prompts", "fundiff embed --report-prompts")
    assert not (tmp_path / "r").exists()

"""``fundiff report --quick``: every section runs, every figure it names exists, and its claims are its numbers."""

from __future__ import annotations

import json
import re
import shlex
from html.parser import HTMLParser

import pytest

from helpers import core_share

pytestmark = pytest.mark.slow   # the whole report, --quick (about a minute)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    import torch

    from fundiff.cli import main

    out = tmp_path_factory.mktemp("report")
    threads = torch.get_num_threads()
    torch.set_num_threads(core_share())   # its share of the cores for the one long run (conftest keeps the others at 1)
    try:
        assert main(["report", "--quick", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return out, json.loads((out / "report.json").read_text())


def test_every_section_and_figure(report):
    out, data = report
    keys = [s["key"] for s in data["sections"]]
    assert keys == ["forward", "denoise", "sampling", "steps", "cfg_scale", "sdedit", "inpaint", "anagrams", "hybrids",
                    "one_step", "flow_time", "flow", "ablation", "ddpm", "shipped", "distilled"]
    for s in data["sections"]:
        assert s["figures"], s["key"]
        assert s["commands"], s["key"]
        for f in s["figures"]:
            assert (out / f).is_file() and (out / f).stat().st_size > 0, f


def test_html_links_only_existing_files(report):
    out, data = report

    class Srcs(HTMLParser):
        def __init__(self):
            super().__init__()
            self.srcs = []

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                self.srcs.append(dict(attrs)["src"])

    p = Srcs()
    p.feed((out / "report.html").read_text())
    assert len(p.srcs) == sum(len(s["figures"]) for s in data["sections"])
    assert all((out / src).is_file() for src in p.srcs)


def test_claims_quote_the_measured_numbers(report):
    _, data = report
    sec = {s["key"]: s for s in data["sections"]}
    d = sec["denoise"]["numbers"]["thresholded"]["psnr_db"]["250"]
    assert f"one-step {d['one_step']:.1f} dB" in sec["denoise"]["claims"][0]
    cfg = sec["sampling"]["numbers"]["cfg7"]["runs"][0]["accuracy"]
    assert f"{cfg:.0%}" in sec["sampling"]["claims"][0]
    steps = [r["num_inference_steps"] for r in sec["steps"]["numbers"]["runs"]]
    assert steps == [3, 5, 10, 20, 34]
    pn = sec["one_step"]["numbers"]["pure_noise"]
    assert f"{pn['loss_floor_mean_predictor']:.4f}" in sec["one_step"]["claims"][-1]
    flow = sec["flow"]["numbers"]   # the study's sampler and fundiff's on the same noise, each measured
    assert (flow["sampler"], flow["compare"][0]["sampler"]) == ("euler", "midpoint")
    for run in (flow, flow["compare"][0]):
        e = run["per_epoch"][-1]
        assert f"accuracy {e['accuracy']:.0%}, classifier-FID {e['classifier_fid']:.2f}" in " ".join(sec["flow"]["claims"])
    assert flow["per_epoch"][-1]["model_evaluations_per_image"] == 2 * flow["steps"]
    assert sec["flow_time"]["numbers"]["guidance_scale"] is None and sec["flow_time"]["numbers"]["sampler"] == "euler"
    assert set(sec["ddpm"]["numbers"]) == {"time", "class"}
    assert all(r["sampler"] == "ddpm" and r["compare"][0]["sampler"] == "ddim" for r in sec["ddpm"]["numbers"].values())
    rows = sec["ablation"]["numbers"]["rows"]
    assert [r["name"] for r in rows] == ["study", "no-scheduler", "lr-1e-3", "ema", "logit-normal", "noschedule"]
    assert len(sec["ablation"]["commands"]) == len(rows) == len(sec["ablation"]["full_size_commands"])
    for key in ("one_step", "flow_time", "flow", "ablation", "ddpm"):   # each CPU-sized section: the study's size too
        assert data_full_size(sec[key]), key
    assert re.search(r"accuracy [\d.]+% at γ = 5", sec["shipped"]["claims"][-1])
    few = sec["distilled"]["numbers"]["rows"]   # teacher and student at counted evaluations per image
    assert [(r["model"], r["evaluations_per_image"]) for r in few] == [
        ("teacher", 1), ("teacher", 2), ("teacher", 4), ("teacher", 8), ("teacher", 28),
        ("student", 1), ("student", 2), ("student", 4), ("student", 8)]
    assert all(r["evaluations_per_image"] == r["expected_evaluations"] for r in few)
    assert all(f"classifier-FID {r['fid']:.2f}" in " ".join(sec["distilled"]["claims"]) for r in few)
    sweep = sec["cfg_scale"]["numbers"]["per_guidance_scale"]
    assert [r["guidance_scale"] for r in sweep] == [1.0, 5.0]                       # --quick: two of the six
    assert all(f"{r['accuracy']:.0%} / {r['classifier_fid']:.2f}" in sec["cfg_scale"]["claims"][0] for r in sweep)
    assert "one unguided pass" in " ".join(sec["sdedit"]["claims"])              # prompt '' with CFG 7
    views = [c.split("--view")[-1].split()[0] for c in sec["anagrams"]["commands"]]
    assert views.count("flip") >= 3 and "negate" in views and "mirror" in views
    natural = sec["anagrams"]["numbers"]["natural_anagrams"]   # each shown pair's count, from its own record
    assert natural["6/9 flip"] == 208 and natural["2/6 mirror"] == 5740 and "8/3 negate" not in natural
    claim = next(c for c in sec["anagrams"]["claims"] if c.startswith("How many of the 60,000 MNIST training digits"))
    assert "6/9 flip 208; 2/5 flip" in claim and "flip 47% against 83%" in claim
    assert claim.endswith("2/6 read 22.5% flipped (N 75) and 97.5% under mirror (N 5,740), so it is shown so.")   # 2/6 and 6/2 pooled
    assert {"replacement", "repaint", "text", "inpaint-1", "inpaint-2"} <= set(sec["inpaint"]["numbers"])
    sdedit_inputs = [c.split("--image ")[1].split()[0] for c in sec["sdedit"]["commands"]]
    assert {"digit-7", "chelsea", "hand-2", "hand-4", "hand-5"} <= set(sdedit_inputs)   # test image, web photo, drawings


def data_full_size(section):
    return section["full_size_commands"] and all(c.startswith("fundiff study") for c in section["full_size_commands"])


def test_a_failing_step_is_one_line(cli, tmp_path):
    from helpers import assert_one_line_error

    proc = cli("report", "--model", "deepfloyd", "--weights", tmp_path / "nope", "--out", tmp_path / "r")
    assert_one_line_error(proc, "does not exist")


def test_illusion_sections_state_the_rates_they_measured(report):
    """Each shown illusion is measured on --measure N new images; the claim quotes those counts, each record's own."""
    out, data = report
    sec = {s["key"]: s for s in data["sections"]}
    for key, name in (("anagrams", "anagram.json"), ("hybrids", "hybrid.json")):
        measured = sec[key]["numbers"]["measured"]
        commands = [shlex.split(c) for c in sec[key]["commands"]]
        assert len(measured) == len(commands) and all(c[c.index("--measure") + 1] == "8" for c in commands)
        records = [json.loads((out / c[c.index("--out") + 1] / name).read_text())["measured"] for c in commands]
        assert list(measured.values()) == records
        claim = next(c for c in sec[key]["claims"] if c.startswith("Measured:"))
        for label, m in measured.items():
            assert m["n"] == 8 and f"{label} {m['both_right']} of 8 (" in claim
        k = sum(m["both_right"] for m in measured.values())
        assert f"all {len(measured)} pairs {k} of {8 * len(measured)} (" in claim

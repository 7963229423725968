"""``fundiff report --quick``: every section runs, every figure it names exists, and its claims are its numbers."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

pytestmark = pytest.mark.slow   # the whole report, --quick (about a minute)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from fundiff.cli import main

    out = tmp_path_factory.mktemp("report")
    assert main(["report", "--quick", "--out", str(out)]) == 0
    return out, json.loads((out / "report.json").read_text())


def test_every_section_and_figure(report):
    out, data = report
    keys = [s["key"] for s in data["sections"]]
    assert keys == ["forward", "denoise", "sampling", "steps", "cfg_scale", "sdedit", "inpaint", "anagrams", "hybrids",
                    "one_step", "flow", "shipped"]
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
    assert set(sec["flow"]["numbers"]) == {"study", "noschedule"}
    assert re.search(r"accuracy [\d.]+% at γ = 5", sec["shipped"]["claims"][-1])
    sweep = sec["cfg_scale"]["numbers"]["per_guidance_scale"]
    assert [r["guidance_scale"] for r in sweep] == [1.0, 5.0]                       # --quick: two of the six
    assert all(f"{r['accuracy']:.0%} / {r['classifier_fid']:.2f}" in sec["cfg_scale"]["claims"][0] for r in sweep)
    assert "one unguided pass" in " ".join(sec["sdedit"]["claims"])              # prompt '' with CFG 7
    views = [c.split("--view")[-1].split()[0] for c in sec["anagrams"]["commands"]]
    assert views.count("flip") >= 3 and "negate" in views
    assert set(sec["inpaint"]["numbers"]) == {"replacement", "repaint", "text"}


def test_a_failing_step_is_one_line(cli, tmp_path):
    from helpers import assert_one_line_error

    proc = cli("report", "--model", "deepfloyd", "--weights", tmp_path / "nope", "--out", tmp_path / "r")
    assert_one_line_error(proc, "does not exist")

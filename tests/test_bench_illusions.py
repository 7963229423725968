"""bench/illusions.py as its users run it: the hybrids alone (``--views`` with no view), read by another classifier
(``--hybrid-reader``), and a missing reader file as one line and exit 2 with nothing written."""

from __future__ import annotations

import importlib.resources
import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import assert_one_line_error

ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "illusions.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_hybrids_alone_and_read_by_a_given_classifier(tmp_path):
    from fundiff.classifier import SHIPPED_CLASSIFIER

    common = ["--pairs", "targets", "--seeds", "2", "--views"]
    plain, given = tmp_path / "plain.json", tmp_path / "given.json"
    assert bench(*common, "--out", str(plain)).returncode == 0
    with importlib.resources.as_file(SHIPPED_CLASSIFIER) as weights:
        proc = bench(*common, "--hybrid-reader", str(weights), "--out", str(given))
    assert proc.returncode == 0, proc.stderr[-2000:]
    a, b = json.loads(plain.read_text()), json.loads(given.read_text())
    assert [(r["kind"], r["A"], r["B"]) for r in a["rows"]] == [("hybrid", "1", "7"), ("hybrid", "0", "1"),
                                                                 ("hybrid", "3", "8")]
    assert "--views" in a["command"] and f"--hybrid-reader {weights}" in b["command"]
    # the shipped weights given as the reader read exactly as the default reader does; an untrained one does not
    rates = lambda result: [(r["A_rate"], r["B_rate"]) for r in result["rows"]]   # noqa: E731
    assert rates(a) == rates(b)
    import torch

    from fundiff.nn.classifier import MnistClassifier
    from fundiff.training.checkpoint import save_model

    torch.manual_seed(0)
    untrained = save_model(tmp_path / "untrained.safetensors", MnistClassifier().eval())
    other = tmp_path / "other.json"
    assert bench(*common, "--hybrid-reader", str(untrained), "--out", str(other)).returncode == 0
    assert rates(json.loads(other.read_text())) != rates(a)
    missing = tmp_path / "none.json"
    err = assert_one_line_error(bench(*common, "--hybrid-reader", str(tmp_path / "nope.safetensors"), "--out",
                                      str(missing)), "classifier weights not found")
    assert err.startswith("illusions.py: error:") and not missing.exists()


def test_chosen_pairs_record_what_the_wrong_readings_were(tmp_path):
    out = tmp_path / "pairs.json"
    proc = bench("--pair", "2/5", "--pair", "6/3", "--pair", "2/5", "--seeds", "3", "--corrector-steps", "0",
                 "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [(r["kind"], r["view"], r["A"], r["B"]) for r in result["rows"]] == [("anagram", "flip", "2", "5"),
                                                                               ("anagram", "flip", "6", "3")]
    assert "--pair 2/5 --pair 6/3" in result["command"] and "--pairs" not in result["command"]
    for row in result["rows"]:
        for side in "AB":
            wrong = row[f"{side}_read_as"]
            assert row[side] not in wrong and all(count > 0 for count in wrong.values())
            assert sum(wrong.values()) == round((1 - row[f"{side}_rate"]) * row["n"])
    assert "hybrid" not in result["pooled"]
    refused = tmp_path / "refused.json"
    for args, fragment in [(["--pair", "3/3"], "two different digits as A/B, got '3/3'"),
                           (["--pair", "²/3"], "two different digits"),
                           (["--pair", "2/5", "--pairs", "all"], "--pair chooses the anagram pairs itself"),
                           (["--pair", "2/5", "--hybrid-pairs", "all"], "no --hybrid-pairs"),
                           (["--pair", "2/5", "--views"], "a view with --views")]:
        err = assert_one_line_error(bench(*args, "--out", str(refused)), fragment)
        assert err.startswith("illusions.py: error:") and not refused.exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for where, fragment in [(["--out", str(blocker / "x.json")], "exists and is not a folder"),
                            (["--out", str(refused), "--figure", str(blocker / "f.png")], "exists and is not a folder"),
                            (["--out", str(tmp_path)], "is a folder: give a file name"),
                            (["--out", str(refused), "--figure", str(tmp_path)], "is a folder: give a file name")]:
        assert_one_line_error(bench("--pair", "2/5", "--seeds", "1", *where), fragment)   # before any work
    assert not refused.exists()


def test_the_turn_is_a_view_when_named(tmp_path):
    out = tmp_path / "turn.json"
    proc = bench("--pair", "6/9", "--views", "rotate_180", "flip", "--seeds", "2", "--corrector-steps", "0",
                 "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [(r["view"], r["A"], r["B"]) for r in result["rows"]] == [("rotate_180", "6", "9"), ("flip", "6", "9")]
    assert set(result["pooled"]) >= {"anagram rotate_180", "anagram flip"}
    assert "anagram flip, A/B and B/A pooled" not in result["pooled"]   # one order only: nothing to pool
    out = tmp_path / "orders.json"
    proc = bench("--pair", "2/5", "--pair", "5/2", "--pair", "3/8", "--views", "flip", "rotate_cw", "--seeds", "2",
                 "--first-seed", "3", "--corrector-steps", "0", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["step_seed"] == 10_003   # another first seed draws other step noise too: held out in its steps
    assert result["setting_values"]["corrector_steps"] == 0 and result["setting_values"]["reduction"] == "auto"
    both = result["pooled"]["anagram flip, A/B and B/A pooled"]   # 2/5 and 5/2 are one illusion under the flip
    rates = {r["A"]: r["both_rate"] for r in result["rows"] if r["view"] == "flip" and r["B"] != "8"}
    assert both["illusions"] == 1 and both["at_50"] == int((rates["2"] + rates["5"]) / 2 >= 0.5)
    assert "anagram rotate_cw, A/B and B/A pooled" not in result["pooled"]   # a quarter turn: two illusions


def test_misreadings_counts_the_wrong_readings_most_first():
    sys.path.insert(0, str(ROOT / "bench"))
    import torch
    from illusions import misreadings

    assert list(misreadings(torch.tensor([3, 8, 5, 5, 3, 8, 5]), 3).items()) == [("5", 3), ("8", 2)]
    assert list(misreadings(torch.tensor([1, 9, 9, 2]), 2).items()) == [("9", 2), ("1", 1)]
    assert misreadings(torch.tensor([4, 4]), 4) == {}


def test_mirror_levers_refuses_what_it_cannot_use(tmp_path):
    def mirror(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "bench" / "mirror_levers.py"), *args], capture_output=True,
                              text=True, cwd=ROOT, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})

    (tmp_path / "empty.json").write_text('{"views": {}}')
    (tmp_path / "text.json").write_text("not json")
    out = tmp_path / "out.json"
    for args, fragment in [(["--symmetry", str(tmp_path / "none.json")], "FileNotFoundError"),
                           (["--symmetry", str(tmp_path / "empty.json")], "KeyError: 'flip'"),
                           (["--symmetry", str(tmp_path / "text.json")], "JSONDecodeError"),
                           (["--pair", "4/4"], "two different digits")]:
        err = assert_one_line_error(mirror("--variant", "negative", *args, "--out", str(out)), fragment)
        assert err.startswith("mirror_levers.py: error:") and not out.exists()
    assert_one_line_error(mirror("--variant", "no-rival", "--out", str(tmp_path)), "is a folder")


def test_mirror_levers_no_rival_reaches_the_sampler_or_says_so(monkeypatch):
    """The no-rival variant swaps fundiff.engine.illusions.rivals for the run: it must be called, or the row would
    silently be the defaults' (a refactor that bound the function earlier, simulated here by rival guidance off)."""
    import pytest

    sys.path.insert(0, str(ROOT / "bench"))
    import mirror_levers

    from fundiff.engine import illusions as engine_illusions

    plain = engine_illusions.rivals
    mirror = mirror_levers.mirror_images(mirror_levers.SYMMETRY)
    row, = mirror_levers.measure("no-rival", [("2", "6")], 1, mirror)
    assert row["shows_through"] == {"2": "8", "6": "5"} and engine_illusions.rivals is plain   # restored
    load = mirror_levers.AnagramPipeline.from_pretrained

    class NoRival:
        def __init__(self, pipe):
            self.pipe = pipe

        def __call__(self, *args, **kwargs):
            return self.pipe(*args, **{**kwargs, "rival": False})

    monkeypatch.setattr(mirror_levers.AnagramPipeline, "from_pretrained", lambda name: NoRival(load(name)))
    with pytest.raises(RuntimeError, match="never called fundiff.engine.illusions.rivals"):
        mirror_levers.measure("no-rival", [("2", "6")], 1, mirror)
    assert engine_illusions.rivals is plain

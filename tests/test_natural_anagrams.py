"""bench/natural_anagrams.py: the count of real digits that already are an anagram of a pair, its symmetry for views
that are their own inverse, the rank correlation, and the join to bench/illusions.py's measured rates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import assert_one_line_error

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from natural_anagrams import counts, is_involution, join, read, spearman  # noqa: E402


class ReadsSum(torch.nn.Module):
    """A stand-in reader whose reading is known: digit = (ink in the top half > ink in the bottom half) +
    2 (ink in the left half > ink in the right half), as logits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x + 1) / 2   # ink, from a sample's [-1, 1]
        top, left = x[..., :14, :].sum((1, 2, 3)), x[..., :, :14].sum((1, 2, 3))
        bottom, right = x[..., 14:, :].sum((1, 2, 3)), x[..., :, 14:].sum((1, 2, 3))
        digit = (top > bottom).long() + 2 * (left > right).long()
        return torch.nn.functional.one_hot(digit, 10).float() * 20


def test_involutions_are_the_views_that_undo_themselves():
    assert all(is_involution(v) for v in ("flip", "mirror", "rotate_180", "negate"))
    assert not is_involution("rotate_cw")


def test_counts_follow_the_definition_and_are_symmetric_for_a_mirror(monkeypatch):
    import natural_anagrams

    def ink(where: str) -> torch.Tensor:
        x = -torch.ones(1, 1, 28, 28)
        rows = slice(0, 14) if "top" in where else slice(14, 28)
        cols = slice(0, 14) if "left" in where else slice(14, 28)
        x[..., rows, cols] = 1
        return x

    monkeypatch.setattr(natural_anagrams, "reading_probabilities", lambda x, clf: clf(x).softmax(1))
    images = torch.cat([ink("top left"), ink("top left"), ink("top right"), ink("bottom left")])
    reader = ReadsSum()
    upright = natural_anagrams.read(images, reader)
    assert upright.tolist() == [3, 3, 1, 2]
    flip = counts("flip", images, upright, reader)   # top <-> bottom: 3 -> 2, 1 -> 0, 2 -> 3
    assert flip["3/2"] == 2 + 1 and flip["2/3"] == 3 and flip["1/0"] == 1 and flip["0/1"] == 1
    assert sum(flip.values()) == 2 * 4
    cw = counts("rotate_cw", images, upright, reader)   # not an involution: each digit counted once
    assert sum(cw.values()) == 4


def test_spearman_ranks_with_ties():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    assert spearman([1, 1, 2, 2], [1, 1, 2, 2]) == pytest.approx(1)
    assert abs(spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) - 0.8) < 1e-9


def test_join_bands_thresholds_and_misses(tmp_path):
    natural = {f"{a}/{b}": 0 for a in range(10) for b in range(10) if a != b}
    natural.update({"2/5": 900, "5/2": 900, "2/6": 75, "6/2": 75, "0/1": 0})
    rows = [{"view": "flip", "A": "2", "B": "5", "both_rate": 1.0}, {"view": "flip", "A": "5", "B": "2", "both_rate": 0.95},
            {"view": "flip", "A": "2", "B": "6", "both_rate": 0.2}, {"view": "flip", "A": "6", "B": "2", "both_rate": 0.55},
            {"view": "flip", "A": "0", "B": "1", "both_rate": 0.05}, {"kind": "hybrid", "A": "0", "B": "1", "both_rate": 1},
            {"view": "rotate_cw", "A": "1", "B": "7", "both_rate": 0.1}]
    f = tmp_path / "rates.json"
    f.write_text(json.dumps({"rows": rows}))
    j = join("flip", natural, f)
    assert j["pairs"] == 5 and j["spearman"] > 0.8
    assert [(b["natural"], b["pairs"], b["at_50"]) for b in j["bands"]] == [("0-9", 1, 0), ("50-199", 2, 1),
                                                                          ("200+", 2, 2)]
    at60 = next(t for t in j["thresholds"] if t["natural_at_least"] == 60)
    assert at60 == {"natural_at_least": 60, "pairs": 4, "at_50": 3, "misses": ["2/6"]}
    assert join("mirror", natural, f) == {}
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(Exception, match="is not a bench/illusions.py result"):
        join("flip", natural, tmp_path / "bad.json")


def test_bad_flags_are_one_line(tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "bench" / "natural_anagrams.py"), *args],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)

    assert_one_line_error(run("--views", "spin", "--out", str(tmp_path / "o.json")), "unknown view 'spin'")
    assert_one_line_error(run("--rates", str(tmp_path / "none.json"), "--out", str(tmp_path / "o.json")), "no such file")
    assert_one_line_error(run("--out", str(tmp_path)), "is a folder")
    assert not (tmp_path / "o.json").exists()


def test_the_shipped_table_is_the_benchs_and_reads_as_its_definition(mnist):
    """The counts fundiff ships: made by this bench over the 60 000 training digits, symmetric for the views that
    are their own inverse, and (recounted on the first 3000 training digits) a superset of a slice's counts, which
    catches an A/B convention turned around (rotate_cw's N(a/b) and N(b/a) differ)."""
    from fundiff.classifier import load_classifier
    from fundiff.data.mnist import to_float
    from fundiff.pipelines.natural_anagrams import _table, natural_count, natural_record, rare_pair_note

    table = _table()
    assert table["images"] == 60_000 and "bench/natural_anagrams.py" in table["command"]
    assert set(table["views"]) == {"flip", "mirror", "rotate_cw", "rotate_ccw", "rotate_180"}
    for view, pairs in table["views"].items():
        assert len(pairs) == 90
        if view != "rotate_cw" and view != "rotate_ccw":
            assert all(pairs[f"{a}/{b}"] == pairs[f"{b}/{a}"] for a in range(10) for b in range(10) if a != b)
    assert natural_count("flip", 2, 5) > 5000 and natural_count("flip", 2, 6) == 75 and natural_count("negate", 2, 6) is None
    assert table["views"]["rotate_cw"]["1/2"] != table["views"]["rotate_cw"]["2/1"]
    images = to_float(mnist.train_images[:3000]) * 2 - 1
    reader = load_classifier()
    upright = read(images, reader)
    for view in ("rotate_cw", "flip"):
        part = counts(view, images, upright, reader)
        assert all(part[p] <= table["views"][view][p] for p in part), view
        assert sum(part.values()) > 0.03 * sum(table["views"][view].values())   # 5% of the digits, give or take
    assert natural_record([6, 9], ["identity", "flip"]) == {"natural_anagrams": 208}
    assert natural_record(None, ["identity", "flip"]) == {}                 # not MNIST digits: nothing to say
    assert natural_record([6, 9], ["identity", "negate"]) == {}             # a view the table does not have
    assert rare_pair_note([6, 9], ["identity", "flip"]) == ""
    assert rare_pair_note([0, 1], ["identity", "flip"]).startswith("A rare pair: 0 of the 60,000")
    assert "Under" not in rare_pair_note([0, 1], ["identity", "flip"])     # rare under every view in the table

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

from natural_anagrams import counts, join, read, spearman  # noqa: E402


class ReadsSum(torch.nn.Module):
    """A stand-in reader whose reading is known: digit = (ink in the top half > ink in the bottom half) +
    2 (ink in the left half > ink in the right half), as logits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x + 1) / 2   # ink, from a sample's [-1, 1]
        top, left = x[..., :14, :].sum((1, 2, 3)), x[..., :, :14].sum((1, 2, 3))
        bottom, right = x[..., 14:, :].sum((1, 2, 3)), x[..., :, 14:].sum((1, 2, 3))
        digit = (top > bottom).long() + 2 * (left > right).long()
        return torch.nn.functional.one_hot(digit, 10).float() * 20


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
    cw = counts("rotate_cw", images, upright, reader)   # each digit once turned clockwise, once counter-clockwise
    assert cw["3/1"] == 2 + 1 and cw["2/3"] == 1 + 2 and cw["1/0"] == 1 and cw["0/2"] == 1 and sum(cw.values()) == 8


def test_spearman_ranks_with_ties():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    assert spearman([1, 1, 2, 2], [1, 1, 2, 2]) == pytest.approx(1)
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(0.8660254)   # mean ranks; ordinal ranks would give 1
    assert abs(spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) - 0.8) < 1e-9


def test_join_bands_thresholds_and_misses(tmp_path):
    natural = {f"{a}/{b}": 0 for a in range(10) for b in range(10) if a != b}
    natural.update({"2/5": 900, "5/2": 900, "2/6": 75, "6/2": 75, "0/1": 0})
    def row(a: str, b: str, rate: float, **more) -> dict:
        return {"view": "flip", "A": a, "B": b, "both_rate": rate, "n": 20, **more}

    rows = [row("2", "5", 1.0), row("5", "2", 0.95), row("2", "6", 0.2), row("6", "2", 0.55), row("0", "1", 0.05),
            row("0", "1", 1.0, kind="hybrid"), row("3", "3", 1.0), row("1", "7", 0.1, view="rotate_cw")]
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
    import time

    (tmp_path / "bad.json").write_text('{"rows": 3}')
    (tmp_path / "flip.json").write_text('{"rows": [{"view": "flip", "A": "2", "B": "5", "both_rate": 1, "n": 20}]}')
    start = time.monotonic()   # before the 60 000 readings (40 s and more here), not after
    assert_one_line_error(run("--rates", str(tmp_path / "bad.json"), "--out", str(tmp_path / "o.json")),
                          "is not a bench/illusions.py result")
    assert_one_line_error(run("--rates", str(tmp_path / "flip.json"), str(tmp_path / "flip.json"), "--out",
                              str(tmp_path / "o.json")), "both measure flip: give one")
    assert time.monotonic() - start < 30
    assert not (tmp_path / "o.json").exists()


def test_the_shipped_table_is_the_benchs_and_reads_as_its_definition(mnist):
    """The counts fundiff ships: made by this bench over the 60 000 training digits, symmetric for the views that
    are their own inverse, and (recounted on the first 3000 training digits) a superset of a slice's counts, which
    catches an A/B convention turned around; the measured rates are the all-pairs runs', and the rare / common means
    are theirs."""
    from fundiff.classifier import load_classifier
    from fundiff.data.mnist import to_float
    from fundiff.pipelines.natural_anagrams import RARE, natural_count, natural_table

    table = natural_table()
    assert table["images"] == 60_000 and "bench/natural_anagrams.py" in table["command"] and table["rare_below"] == RARE
    assert set(table["views"]) == {"flip", "mirror", "rotate_cw", "rotate_180"}
    for view, entry in table["views"].items():
        pairs, measured = entry["natural"], entry["measured"]
        assert len(pairs) == len(measured) == 90 and all(m["n"] == 20 for m in measured.values())
        assert all(pairs[f"{a}/{b}"] == pairs[f"{b}/{a}"] for a in range(10) for b in range(10) if a != b) \
            == entry["involution"] == (view != "rotate_cw")
        for side, keep in (("rare", lambda p: pairs[p] < RARE), ("common", lambda p: pairs[p] >= RARE)):
            rates = [m["both_rate"] for p, m in measured.items() if keep(p)]
            assert entry[f"{side}_mean_rate"] == pytest.approx(sum(rates) / len(rates), abs=1e-4)
        assert entry["rare_mean_rate"] < 0.5 < 0.75 < entry["common_mean_rate"]
    name = {"flip": "flip-read-as", "mirror": "mirror", "rotate_cw": "rotate-negate-langevin-t500", "rotate_180": "rotate180"}
    for view, entry in table["views"].items():
        rows = json.loads((ROOT / "bench" / "results" / f"illusions-all-{name[view]}.json").read_text())["rows"]
        assert {f"{r['A']}/{r['B']}": round(r["both_rate"], 4) for r in rows if r.get("view") == view} == \
            {p: m["both_rate"] for p, m in entry["measured"].items()}
    assert natural_count("flip", 2, 5) > 5000 and natural_count("flip", 2, 6) == 75 and natural_count("negate", 2, 6) is None
    images = to_float(mnist.train_images[:3000]) * 2 - 1
    reader = load_classifier()
    upright = read(images, reader)
    for view in ("rotate_cw", "flip"):
        part = counts(view, images, upright, reader)
        assert all(part[p] <= table["views"][view]["natural"][p] for p in part), view
        assert sum(part.values()) > 0.03 * sum(table["views"][view]["natural"].values())   # 5% of the digits


def test_the_note_quotes_the_measured_rate_and_a_view_that_did_better():
    from fundiff.pipelines.natural_anagrams import natural_entry, natural_note

    entry = natural_entry([2, 6], ["identity", "flip"])   # 2/6 4 of 20 and 6/2 5 of 20: one illusion, pooled
    assert entry == {"pair": "2/6", "view": "flip", "count": 75,
                     "measured": {"both_right": 9, "n": 40, "both_rate": 0.225, "orders": ["2/6", "6/2"]}}
    assert natural_note(entry) == (
        "Measured at the defaults, 2/6 under flip read right both ways in 9 of 40 images, 22.5% (6/2's images, flipped, "
        "are 2/6's, so both orders count): only 75 of the 60,000 MNIST training digits (as they are, or under flip) "
        "read 2 upright and 6 under flip, a rare pair (docs/illusions.md). Under mirror it read 97.5%.")
    assert natural_note(natural_entry([6, 9], ["identity", "flip"])) == ""        # measured 92.5%: nothing to say
    assert natural_note(natural_entry([3, 8], ["identity", "flip"])) == ""        # rare (66), but measured 65%
    four_one = natural_note(natural_entry([4, 1], ["identity", "flip"]))         # common (125), 4/1 35%, 1/4 55%
    assert four_one == ("Measured at the defaults, 4/1 under flip read right both ways in 18 of 40 images, 45% (1/4's "
                        "images, flipped, are 4/1's, so both orders count; docs/illusions.md).")
    assert natural_note(natural_entry([1, 4], ["identity", "flip"])) == (   # the same illusion, the same note
        "Measured at the defaults, 1/4 under flip read right both ways in 18 of 40 images, 45% (4/1's images, flipped, "
        "are 1/4's, so both orders count; docs/illusions.md).")
    assert natural_entry([1, 9], ["identity", "rotate_cw"])["measured"] == {"both_right": 0, "n": 20,
                                                                            "both_rate": 0.0}   # one order
    rotated = natural_note(natural_entry([1, 9], ["identity", "rotate_cw"]))
    assert rotated.startswith("Measured at the defaults, 1/9 under rotate_cw read right both ways in 0 of 20 images, "
                              "0%: only 1 of") and rotated.endswith(" Under flip it read 67.5%.")
    assert "Under" not in natural_note(natural_entry([0, 1], ["identity", "flip"]))   # under 50% under every view
    assert natural_entry(None, ["identity", "flip"]) is None                     # not MNIST digits
    assert natural_entry([6, 9], ["identity", "negate"]) is None                 # a view the table does not have
    assert natural_entry([6, 9], ["identity", "flip:"])["count"] == 208          # a spec, as get_view reads it
    assert "only 1 of the 60,000 MNIST training digits (as they are, or under rotate_cw's inverse) reads 1" in rotated
    assert "none of the 60,000" in natural_note(natural_entry([0, 1], ["identity", "flip"]))
    assert natural_entry([6, 9], ["flip", "identity"]) is None
    assert natural_note(None) == ""


def test_percent_keeps_the_half_percent_and_drops_a_zero():
    from fundiff.pipelines.natural_anagrams import percent

    assert [percent(x) for x in (0.225, 0.075, 0.475, 0.45, 0.0, 1.0, 0.975)] == \
        ["22.5%", "7.5%", "47.5%", "45%", "0%", "100%", "97.5%"]

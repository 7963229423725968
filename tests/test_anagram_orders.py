"""bench/anagram_orders.py: A/B and B/A under a view that is its own inverse, tested for one rate and pooled."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import assert_one_line_error

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from anagram_orders import chi2_sf, gather, orders, seed_range  # noqa: E402


def _result(path: Path, rows: list[tuple[str, str, str, int, int]], seeds: int = 20, first: int = 0) -> Path:
    """A bench/illusions.py result: rows (view, A, B, both right, n)."""
    command = f"python bench/illusions.py --seeds {seeds}" + (f" --first-seed {first}" if first else "")
    path.write_text(json.dumps({"command": command, "rows": [
        {"kind": "anagram", "view": v, "A": a, "B": b, "both_rate": k / n, "n": n} for v, a, b, k, n in rows]}))
    return path


def test_seed_ranges_come_from_the_recorded_command():
    assert seed_range("python bench/illusions.py --pairs all --seeds 20 --views flip") == range(0, 20)
    assert seed_range("python bench/illusions.py --seeds 20 --first-seed 1000 --pair 4/1") == range(1000, 1020)
    assert seed_range("python bench/illusions.py --pairs targets") == range(0, 50)   # its default


def test_chi2_tail_matches_known_quantiles():
    assert abs(chi2_sf(3.841, 1) - 0.05) < 1e-3
    assert abs(chi2_sf(55.758, 40) - 0.05) < 1e-3
    assert abs(chi2_sf(40, 40) - 0.47026) < 1e-4   # by numerical integration of the density


def test_orders_pool_both_orders_and_test_that_they_agree():
    same = orders({("2", "6"): [(range(20), 4, 20, "f")], ("6", "2"): [(range(20), 5, 20, "f")]})
    assert same["illusions"]["2/6"]["n"] == 40 and same["illusions"]["2/6"]["both_rate"] == 0.225
    assert same["illusions"]["2/6"]["orders"] == {"2/6": [4, 20], "6/2": [5, 20]}
    assert same["orders_agree"]["df"] == 1 and same["orders_agree"]["p_value"] > 0.5
    assert same["illusions_at_50"] == 0
    apart = orders({("1", "7"): [(range(20), 19, 20, "f")], ("7", "1"): [(range(20), 2, 20, "f")]})
    assert apart["orders_agree"]["p_value"] < 1e-4   # 95% against 10%: two illusions


def test_rows_whose_seeds_another_row_covers_are_left_out_and_partial_overlaps_refused(tmp_path):
    all_pairs = _result(tmp_path / "all.json", [("flip", "4", "1", 7, 20), ("flip", "1", "4", 11, 20)])
    more = _result(tmp_path / "more.json", [("flip", "4", "1", 48, 100)], seeds=100)
    held = _result(tmp_path / "held.json", [("flip", "4", "1", 7, 20)], first=1000)
    by_view, left_out = gather([all_pairs, more, held])
    assert [(r[0], r[1], r[2]) for r in by_view["flip"][("4", "1")]] == [(range(100), 48, 100), (range(1000, 1020), 7, 20)]
    assert len(left_out) == 1 and left_out[0].startswith("flip 4/1 seeds 0-19 of")
    by_view, left_out = gather([more, all_pairs])   # the covered row second: left out as well
    assert by_view["flip"][("4", "1")][0][2] == 100 and len(left_out) == 1
    part = _result(tmp_path / "part.json", [("flip", "4", "1", 30, 50)], seeds=50, first=80)
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "anagram_orders.py"), "--rates", str(more), str(part),
                           "--out", str(tmp_path / "o.json")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert_one_line_error(proc, "overlap in part")
    assert not (tmp_path / "o.json").exists()


def test_the_shipped_result_is_the_scripts(tmp_path):
    """The committed bench/results/anagram-orders.json is what the script makes from the committed results; the flip
    clause counts illusions, and the quarter turn, the control, has no pooled rates."""
    out = tmp_path / "orders.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "anagram_orders.py"), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    made, shipped = json.loads(out.read_text()), json.loads((ROOT / "bench/results/anagram-orders.json").read_text())
    for r in (made, shipped):
        r.pop("seconds"), r.pop("command")
    assert made == shipped
    assert "illusions" not in made["views"]["rotate_cw"] and len(made["views"]["flip"]["illusions"]) == 45
    clauses = made["flip_clauses"]
    assert [c["illusions"] for c in clauses.values()] == [44, 22]

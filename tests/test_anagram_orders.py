"""bench/anagram_orders.py: A/B and B/A under a view that is its own inverse, tested for one rate and pooled."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import assert_one_line_error

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from anagram_orders import Run, chi2_sf, gather, orders, seed_range  # noqa: E402


def _result(path: Path, rows: list[tuple[str, str, str, int, int]], seeds: int = 20, first: int = 0,
            step_seed: int | None = None, settings: str = "--guidance-scale 7 --threshold auto") -> Path:
    """A bench/illusions.py result: rows (view, A, B, both right, n); no step_seed: a result from before it was kept."""
    command = f"python bench/illusions.py --seeds {seeds}" + (f" --first-seed {first}" if first else "")
    path.write_text(json.dumps({"command": command, "settings": settings, "rows": [
        {"kind": "anagram", "view": v, "A": a, "B": b, "both_rate": k / n, "n": n} for v, a, b, k, n in rows],
        **({} if step_seed is None else {"step_seed": step_seed})}))
    return path


def test_seed_ranges_come_from_the_recorded_command():
    assert seed_range("python bench/illusions.py --pairs all --seeds 20 --views flip") == range(0, 20)
    assert seed_range("python bench/illusions.py --seeds 20 --first-seed 1000 --pair 4/1") == range(1000, 1020)
    assert seed_range("python bench/illusions.py --pairs targets") == range(0, 50)   # its default


def test_chi2_tail_matches_known_quantiles():
    assert abs(chi2_sf(3.841, 1) - 0.05) < 1e-3
    assert abs(chi2_sf(55.758, 40) - 0.05) < 1e-3
    assert abs(chi2_sf(40, 40) - 0.47026) < 1e-4   # by numerical integration of the density


def _run(k: int, n: int = 20, first: int = 0, step: int = 10_000) -> Run:
    return Run(range(first, first + n), step, k, n, "f")


def test_orders_pool_both_orders_and_test_that_they_agree():
    same = orders({("2", "6"): [_run(4)], ("6", "2"): [_run(5)]})
    assert same["illusions"]["2/6"]["n"] == 40 and same["illusions"]["2/6"]["both_rate"] == 0.225
    assert same["illusions"]["2/6"]["orders"] == {"2/6": [4, 20], "6/2": [5, 20]}
    assert same["illusions"]["2/6"]["paired"]   # one run: both orders on the same noise, up to the view
    assert same["orders_agree"]["df"] == 1 and same["orders_agree"]["p_value"] > 0.5
    assert same["illusions_at_50"] == 0
    apart = orders({("1", "7"): [_run(19, first=1000, step=11_000)], ("7", "1"): [_run(2, first=3000, step=13_000)]})
    assert apart["orders_agree"]["p_value"] < 1e-4   # 95% against 10%: two illusions
    assert not apart["illusions"]["1/7"]["paired"]


def test_rows_that_share_noise_with_a_kept_row_are_left_out_whatever_the_order(tmp_path):
    """Shared noise: overlapping starting seeds, or one step seed and batch size (before step_seed was recorded,
    every run drew its steps from seed 10000, so a run at --first-seed 1000 of 20 images repeats one at 0 of 20).
    More images are kept first, then rows whose step seed is recorded."""
    all_pairs = _result(tmp_path / "all.json", [("flip", "4", "1", 7, 20), ("flip", "1", "4", 11, 20)])
    more = _result(tmp_path / "more.json", [("flip", "4", "1", 48, 100)], seeds=100)
    old_held = _result(tmp_path / "old.json", [("flip", "4", "1", 7, 20)], first=1000)
    held = _result(tmp_path / "held.json", [("flip", "4", "1", 8, 20)], first=1000, step_seed=11_000)
    for files in ([all_pairs, old_held, more, held], [old_held, held, all_pairs, more], [more, all_pairs, held, old_held]):
        by_view, left_out = gather(files)
        kept = by_view["flip"][("4", "1")]
        assert [(r.seeds, r.k, r.n) for r in kept] == [(range(100), 48, 100), (range(1000, 1020), 8, 20)]
        assert sorted(left_out) == ["flip 4/1 seeds 0-19 of " + str(all_pairs),   # among more.json's seeds
                                    "flip 4/1 seeds 1000-1019 of " + str(old_held)]   # held.json's seeds, unknown steps
        assert by_view["flip"][("1", "4")][0].n == 20


def test_bad_rates_are_one_line_before_anything_is_written(tmp_path):
    def run(*files: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "bench" / "anagram_orders.py"), "--rates", *map(str, files),
                               "--out", str(tmp_path / "o.json")], capture_output=True, text=True, cwd=ROOT, timeout=120)

    plain = _result(tmp_path / "plain.json", [("flip", "2", "5", 20, 20)])
    lever = _result(tmp_path / "lever.json", [("flip", "5", "2", 20, 20)], settings="--guidance-scale 12")
    assert_one_line_error(run(plain, lever), "were made differently (--guidance-scale 12): pool runs of one setting")
    values = json.loads(plain.read_text())
    newer = tmp_path / "newer.json"   # one that records its values pools with one that does not, by their flags
    newer.write_text(json.dumps({**values, "setting_values": {"reduction": "auto", "gamma_b": None}, "step_seed": 10_005,
                                 "command": values["command"] + " --first-seed 5",
                                 "rows": [{**values["rows"][0], "A": "5", "B": "2"}]}))
    proc = run(plain, newer)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "o.json").read_text())["views"]["flip"]["illusions"]["2/5"]["n"] == 40
    (tmp_path / "o.json").unlink()
    slots = _result(tmp_path / "slots.json", [("flip", "5", "2", 20, 20)], settings="--reduction alternate")
    assert_one_line_error(run(slots), "chooses by view slot, so A/B and B/A are two illusions there")
    (tmp_path / "other.json").write_text(json.dumps({"command": "python bench/natural_anagrams.py", "rows": []}))
    assert_one_line_error(run(tmp_path / "other.json"), "not a bench/illusions.py command")
    short = _result(tmp_path / "short.json", [("flip", "2", "5", 5, 10)])   # 10 images from 20 seeds
    assert_one_line_error(run(short), "a row of 10 images from 20 seeds")
    assert_one_line_error(run(tmp_path / "none.json"), "no such file")
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

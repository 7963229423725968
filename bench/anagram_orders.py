"""A/B and B/A: under a view that is its own inverse they are one illusion; measured, and counted so.

With views (identity, v) and v(v(x)) = x, the anagram sampler's prediction for prompts (B, A) at v(x) is v of its
prediction for (A, B) at x (tests/test_illusions.py checks it on the embedded model at the defaults), and the
sampler's Gaussian noise is invariant under v.  So the images of B/A are distributed as the views of the images of
A/B, and the two orders work equally often: an image of A/B read right both ways, viewed, is an image of B/A read
right both ways.  bench/illusions.py measures every ordered pair; this script reads its results and

* tests the prediction: per view, a chi-square test of homogeneity of the A/B and B/A rates over all unordered
  pairs (df = pairs whose pooled rate is neither 0 nor 1).  A view that is its own inverse should give chi2 near df;
  rotate_cw, a quarter turn, is the control: its B/A is A/B under the other quarter turn, another illusion;
* pools both orders into one rate per illusion, on the images of every file given (seed ranges must not overlap
  partly; a row whose seeds another row covers is left out, and said so);
* counts issue 17's flip clause by illusion: the 44 flip illusions whose digits are not each other's 180-degree
  turn (all but 6/9), and the 22 that 100 or more training digits already are (N >= 100, the restatement).

    .venv/bin/python bench/anagram_orders.py      # a second; writes bench/results/anagram-orders.json
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import torch

from fundiff.commands.arguments import Parser
from fundiff.engine.views import get_view, is_involution
from fundiff.errors import FundiffError, run_script
from fundiff.io import ensure_writable_file, write_json
from fundiff.metrics import wilson_interval
from fundiff.pipelines.natural_anagrams import RARE, natural_count
from natural_anagrams import load_rows, shown

RESULTS = Path(__file__).resolve().parent / "results"
RATES = [RESULTS / f"illusions-{name}.json" for name in
         ("all-flip-read-as", "all-mirror", "all-rotate-negate-langevin-t500", "all-rotate180",
          "flip-natural100-heldout", "flip-4-1-100")]


def seed_range(command: str) -> range:
    """The starting seeds of a bench/illusions.py run, from its recorded command (--seeds N --first-seed F)."""
    seeds = re.search(r"--seeds (\d+)", command)
    first = re.search(r"--first-seed (\d+)", command)
    return range(int(first.group(1)) if first else 0, (int(first.group(1)) if first else 0)
                 + (int(seeds.group(1)) if seeds else 50))


def gather(files: list[Path]) -> tuple[dict, list[str]]:
    """{view: {(A, B): [(seeds, both right, n, file)]}} over the files' anagram rows, and the rows left out because
    another row of the same pair covers their seeds."""
    by_view: dict[str, dict[tuple[str, str], list]] = {}
    left_out = []
    for path in files:
        command = json.loads(path.read_text()).get("command", "")
        seeds = seed_range(command)
        for r in load_rows(path):
            if r.get("kind") == "hybrid" or r.get("view") is None:
                continue
            kept = by_view.setdefault(r["view"], {}).setdefault((r["A"], r["B"]), [])
            row = (seeds, round(float(r["both_rate"]) * int(r["n"])), int(r["n"]), shown(path))
            for other in list(kept):
                overlap = set(other[0]) & set(seeds)
                if not overlap:
                    continue
                if set(seeds) <= set(other[0]):
                    left_out.append(f"{r['view']} {r['A']}/{r['B']} seeds {seeds.start}-{seeds.stop - 1} of {row[3]}")
                    break
                if set(other[0]) <= set(seeds):
                    kept.remove(other)
                    left_out.append(f"{r['view']} {r['A']}/{r['B']} seeds {other[0].start}-{other[0].stop - 1} of "
                                    f"{other[3]}")
                    continue
                raise FundiffError(f"{r['view']} {r['A']}/{r['B']}: seeds of {other[3]} and {row[3]} overlap in part")
            else:
                kept.append(row)
    return by_view, left_out


def chi2_sf(x: float, df: int) -> float:
    """P(chi2_df >= x): the regularised upper incomplete gamma Q(df / 2, x / 2)."""
    return float(torch.special.gammaincc(torch.tensor(df / 2, dtype=torch.float64), torch.tensor(x / 2, dtype=torch.float64)))


def orders(pairs: dict[tuple[str, str], list]) -> dict:
    """Per unordered pair {a, b} (a < b) both orders' counts and the pooled rate; the homogeneity test over them."""
    illusions, chi2, df, diffs = {}, 0.0, 0, []
    for a, b in sorted(p for p in pairs if p[0] < p[1] and (p[1], p[0]) in pairs):
        ab, ba = [(sum(r[1] for r in pairs[p]), sum(r[2] for r in pairs[p])) for p in ((a, b), (b, a))]
        k, n = ab[0] + ba[0], ab[1] + ba[1]
        low, high = wilson_interval(k / n, n)
        illusions[f"{a}/{b}"] = {"orders": {f"{a}/{b}": list(ab), f"{b}/{a}": list(ba)}, "n": n,
                                 "both_rate": round(k / n, 4), "wilson95": [round(low, 4), round(high, 4)]}
        p1, p2, p = ab[0] / ab[1], ba[0] / ba[1], k / n
        diffs.append(abs(p1 - p2))
        if 0 < p < 1:
            chi2 += (p1 - p2) ** 2 / (p * (1 - p) * (1 / ab[1] + 1 / ba[1]))
            df += 1
    return {"orders_agree": {"chi2": round(chi2, 1), "df": df, "p_value": float(f"{chi2_sf(chi2, df):.3g}") if df else None,
                             "mean_abs_difference": round(sum(diffs) / len(diffs), 4) if diffs else None},
            "illusions": illusions,
            "illusions_at_50": sum(i["both_rate"] >= 0.5 for i in illusions.values())}


def clause(illusions: dict, keep) -> dict:
    """Issue 17's 50% clause over the illusions ``keep`` selects."""
    chosen = {p: i for p, i in illusions.items() if keep(*map(int, p.split("/")))}
    k = sum(round(i["both_rate"] * i["n"]) for i in chosen.values())
    n = sum(i["n"] for i in chosen.values())
    return {"illusions": len(chosen), "at_50": sum(i["both_rate"] >= 0.5 for i in chosen.values()),
            "both_rate": round(k / n, 4) if n else None,
            "misses": {p: [i["both_rate"], i["n"], i["wilson95"]] for p, i in chosen.items() if i["both_rate"] < 0.5}}


def main() -> None:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", nargs="+", type=Path, default=RATES,
                    help="bench/illusions.py results (default: the all-pairs runs of flip, mirror, rotate_cw, negate "
                         "and rotate_180, and the flip runs held out at seeds 1000-1019 and of 4/1 at 0-99)")
    ap.add_argument("--out", type=Path, default=RESULTS / "anagram-orders.json")
    args = ap.parse_args()
    for path in args.rates:
        if not path.is_file():
            raise FundiffError(f"--rates {path}: no such file")
    ensure_writable_file(args.out, "--out")
    start = time.time()
    by_view, left_out = gather(args.rates)
    result = {"command": "python bench/anagram_orders.py --rates " + " ".join(map(shown, args.rates))
              + f" --out {shown(args.out)}", "left_out": left_out, "views": {}}
    for view, pairs in sorted(by_view.items()):
        entry = {"involution": is_involution(get_view(view)), **orders(pairs)}
        if not entry["involution"]:   # its two orders are two illusions: the test only, no pooled rates
            del entry["illusions"], entry["illusions_at_50"]
        result["views"][view] = entry
        agree = entry["orders_agree"]
        print(f"{view}: its own inverse: {entry['involution']}; the orders' rates: chi2 {agree['chi2']} on {agree['df']} "
              f"df (p {agree['p_value']})"
              + (f"; {entry['illusions_at_50']} of {len(entry['illusions'])} illusions at 50%" if entry["involution"] else ""))
    if "flip" in result["views"]:
        flip = result["views"]["flip"]["illusions"]
        result["flip_clauses"] = {
            "issue 17 as written: digits not each other's 180-degree turn": clause(flip, lambda a, b: {a, b} != {6, 9}),
            f"restated: N >= {RARE}": clause(flip, lambda a, b: natural_count("flip", a, b) >= RARE)}
        for name, c in result["flip_clauses"].items():
            print(f"flip, {name}: {c['at_50']} of {c['illusions']} illusions at 50%; misses {c['misses']}")
    result["seconds"] = round(time.time() - start, 1)
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    raise SystemExit(run_script(main, "anagram_orders.py"))

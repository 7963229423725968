"""A/B and B/A: under a view that is its own inverse they are one illusion; measured, and counted so.

With views (identity, v) and v(v(x)) = x, the anagram sampler run for prompts (B, A) from v(z), fed v of each noise
draw, ends at v of the (A, B) image from z (tests/test_illusions.py checks it end to end at the defaults), and
Gaussian noise is invariant under v.  So the images of B/A are distributed as the views of the images of A/B: an
image of A/B read right both ways, viewed, is an image of B/A read right both ways.  That holds when prompts, not
view slots, choose the settings (not the alternate reduction, not --gamma-b).  bench/illusions.py measures every
ordered pair; this script reads its results (of one setting) and

* tests the prediction: per view, a chi-square test of homogeneity of the A/B and B/A rates over the unordered
  pairs (df = the pairs whose pooled rate is neither 0 nor 1).  A view that is its own inverse should give chi2
  near df; rotate_cw, a quarter turn, is the control: its B/A is A/B under the other quarter turn, another illusion.
  In one run the two orders are drawn on the same noise, up to the view (``paired``); the test treats them as
  independent, and a correlation between them would pull chi2 below df;
* pools both orders into one rate per illusion, on the images of every file given.  Two rows of a pair that share
  their noise (overlapping starting seeds, or the same step seed and batch size) are not two measurements: the one
  with more images is kept and the other left out, and said so;
* counts issue 17's flip clause by illusion: the 44 flip illusions whose digits are not each other's 180-degree
  turn (all but 6/9), and the 22 that 100 or more training digits already are (N >= 100, the restatement).

    .venv/bin/python bench/anagram_orders.py      # a second; writes bench/results/anagram-orders.json
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from fundiff.commands.arguments import Parser
from fundiff.engine.views import get_view, is_involution
from fundiff.errors import FundiffError, run_script
from fundiff.io import ensure_writable_file, write_json
from fundiff.metrics import pooled_proportion
from fundiff.pipelines.natural_anagrams import RARE, natural_count
from illusions import STEP_SEED, Settings
from natural_anagrams import load_result, shown

RESULTS = Path(__file__).resolve().parent / "results"
RATES = [RESULTS / f"illusions-{name}.json" for name in
         ("all-flip-read-as", "all-mirror", "all-rotate-negate-langevin-t500", "all-rotate180",
          "flip-natural100-heldout-ab", "flip-natural100-heldout-ba", "flip-4-1-100")]


@dataclass(frozen=True)
class Run:
    """One measured row: its starting seeds, the seed of its step noise, its successes and images, and its file."""

    seeds: range
    step_seed: int
    k: int
    n: int
    file: str

    def shares_noise(self, other: "Run") -> bool:
        """Two runs of one pair are not independent when their starting seeds overlap, or when they drew the same
        step noise (one step seed and one batch size: the noise that decides most of the outcome).  One step seed with
        another batch size draws the same numbers at other steps (a batch of 100 at step d draws what a batch of 50
        draws at steps 2d and 2d + 1); that is counted as independent, which is not verified."""
        overlap = self.seeds.start < other.seeds.stop and other.seeds.start < self.seeds.stop
        return overlap or (self.step_seed, self.n) == (other.step_seed, other.n)


def seed_range(command: str) -> range:
    """The starting seeds of a bench/illusions.py run, from its recorded command (--seeds N --first-seed F)."""
    if "bench/illusions.py" not in command:
        raise FundiffError(f"not a bench/illusions.py command: {command[:80]!r}")
    seeds = re.search(r"--seeds (\d+)", command)
    first = int(m.group(1)) if (m := re.search(r"--first-seed (\d+)", command)) else 0
    return range(first, first + (int(seeds.group(1)) if seeds else 50))


def same_making(one: dict, other: dict) -> bool:
    """Whether two results were made alike: the same model, loop and thresholding, and the same setting's values where
    both record them (``setting_values``), else the same flags (which name only what differed from the defaults of
    their day)."""
    key = "setting_values" if "setting_values" in one and "setting_values" in other else "settings"
    return all(one.get(k) == other.get(k) for k in (key, "model", "timesteps", "threshold"))


def symmetric(result: dict) -> bool:
    """Whether its setting chooses by prompt, so that A/B and B/A are one illusion (bench/illusions.Settings)."""
    values = result.get("setting_values")
    if values is not None:
        try:
            return Settings(**values).symmetric
        except TypeError:
            raise FundiffError(f"setting_values {str(values)[:60]} are not bench/illusions.py's") from None
    flags = str(result.get("settings", ""))   # a result from before the values were recorded
    return "--reduction alternate" not in flags and "--gamma-b" not in flags


def gather(files: list[Path]) -> tuple[dict, list[str]]:
    """{view: {(A, B): [Run]}} over the files' anagram rows, and the rows left out because a row kept for the same
    pair shares their noise.  Rows are kept greedily: more images first, then those with a recorded step seed (the
    seed is known, not assumed), then in the order given."""
    found: dict[str, dict[tuple[str, str], list[tuple]]] = {}
    first = None
    for order, path in enumerate(files):
        result = load_result(path)   # one line if it is not a bench/illusions.py result
        if first is not None and not same_making(result, first[0]):
            raise FundiffError(f"--rates {first[1]} and {shown(path)} were made differently ({result.get('settings')}): "
                               "pool runs of one setting")
        first = first or (result, shown(path))
        try:
            seeds = seed_range(str(result.get("command", "")))
            if not symmetric(result):
                raise FundiffError(f"its setting ({result.get('settings')}) chooses by view slot, so A/B and B/A are "
                                   "two illusions there")
        except FundiffError as exc:
            raise FundiffError(f"--rates {shown(path)}: {exc}") from None
        recorded = "step_seed" in result
        step = int(result.get("step_seed", STEP_SEED))   # before it was recorded, 10000 whatever the first seed
        for r in result["rows"]:
            if r.get("kind") == "hybrid" or r.get("view") is None:
                continue
            if int(r["n"]) != len(seeds):
                raise FundiffError(f"--rates {shown(path)}: a row of {r['n']} images from {len(seeds)} seeds")
            run = Run(seeds, step, round(float(r["both_rate"]) * int(r["n"])), int(r["n"]), shown(path))
            found.setdefault(r["view"], {}).setdefault((r["A"], r["B"]), []).append((-run.n, not recorded, order, run))
    by_view: dict[str, dict[tuple[str, str], list[Run]]] = {}
    left_out = []
    for view, pairs in found.items():
        for (a, b), candidates in pairs.items():
            kept = by_view.setdefault(view, {}).setdefault((a, b), [])
            for *_, run in sorted(candidates, key=lambda c: c[:3]):
                if any(run.shares_noise(other) for other in kept):
                    left_out.append(f"{view} {a}/{b} seeds {run.seeds.start}-{run.seeds.stop - 1} of {run.file}")
                else:
                    kept.append(run)
    return by_view, left_out


def chi2_sf(x: float, df: int) -> float:
    """P(chi2_df >= x): the regularised upper incomplete gamma Q(df / 2, x / 2)."""
    half = torch.tensor([df / 2, x / 2], dtype=torch.float64)
    return float(torch.special.gammaincc(half[0], half[1]))


def orders(pairs: dict[tuple[str, str], list[Run]]) -> dict:
    """Per unordered pair {a, b} (a < b) both orders' counts and the pooled rate; the homogeneity test over them.

    ``paired``: the two orders were drawn on the same noise up to the view (``Run.shares_noise``: in one run, the same
    starting seeds and step seed), so their outcomes may be correlated; the test and the intervals treat the images
    as independent."""
    illusions, chi2, df, diffs = {}, 0.0, 0, []
    for a, b in sorted(p for p in pairs if p[0] < p[1] and (p[1], p[0]) in pairs):
        ab, ba = [pooled_proportion((r.k, r.n) for r in pairs[p]) for p in ((a, b), (b, a))]
        both = pooled_proportion([(ab["count"], ab["n"]), (ba["count"], ba["n"])])
        paired = any(r.shares_noise(q) for r in pairs[(a, b)] for q in pairs[(b, a)])
        illusions[f"{a}/{b}"] = {"orders": {f"{a}/{b}": [ab["count"], ab["n"]], f"{b}/{a}": [ba["count"], ba["n"]]},
                                 "paired": paired, "n": both["n"], "both_rate": both["share"],
                                 "wilson95": both["wilson95"]}
        p1, p2, p = ab["count"] / ab["n"], ba["count"] / ba["n"], both["count"] / both["n"]
        diffs.append(abs(p1 - p2))
        if 0 < p < 1:
            chi2 += (p1 - p2) ** 2 / (p * (1 - p) * (1 / ab["n"] + 1 / ba["n"]))
            df += 1
    agree = {"chi2": round(chi2, 1), "df": df, "p_value": float(f"{chi2_sf(chi2, df):.3g}") if df else None,
             "mean_abs_difference": round(sum(diffs) / len(diffs), 4) if diffs else None}
    return {"orders_agree": agree, "illusions": illusions,
            "illusions_at_50": sum(i["both_rate"] >= 0.5 for i in illusions.values())}


def clause(illusions: dict, keep) -> dict:
    """Issue 17's 50% clause over the illusions ``keep`` selects."""
    chosen = {p: i for p, i in illusions.items() if keep(*map(int, p.split("/")))}
    total = pooled_proportion((round(i["both_rate"] * i["n"]), i["n"]) for i in chosen.values())
    return {"illusions": len(chosen), "at_50": sum(i["both_rate"] >= 0.5 for i in chosen.values()),
            "both_rate": total.get("share"),
            "misses": {p: [i["both_rate"], i["n"], i["wilson95"]] for p, i in chosen.items() if i["both_rate"] < 0.5}}


def main() -> None:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", nargs="+", type=Path, default=RATES,
                    help="bench/illusions.py results (default: the all-pairs runs of flip, mirror, rotate_cw, negate "
                         "and rotate_180, the flip pairs with N >= 100 held out (A < B at seeds 1000-1019, A > B at "
                         "3000-3019) and 4/1 and 1/4 at 0-99)")
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
        pooled = (f"; {entry['illusions_at_50']} of {len(entry['illusions'])} illusions at 50%"
                  if "illusions" in entry else "")
        print(f"{view}: its own inverse: {entry['involution']}; the orders' rates: chi2 {agree['chi2']} on "
              f"{agree['df']} df (p {agree['p_value']}){pooled}")
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

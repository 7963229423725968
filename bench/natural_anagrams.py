"""Natural anagrams: how many real digits already are an anagram of a pair, and how well that predicts the sampler.

A training digit x is a *natural anagram* of the pair A/B under a view v when the shipped classifier reads x as A and
v(x) as B, the two readings ``bench/illusions.py`` asks of a sampled anagram.  A digit y read as B while v^-1(y) reads
as A gives one too: v^-1(y) reads A and its view, y, reads B.  The count over the 60 000 MNIST training digits, the
data the embedded model learned, says how much of the data holds the pair's two readings at once:

    N(A/B) = #{x : read(x) = A, read(v(x)) = B} + #{y : read(y) = B, read(v^-1(y)) = A}

(for a view that is its own inverse, flip, mirror and rotate_180, the second term is the first with A and B
swapped).  The pairs' measured rates (``--rates``, ``bench/illusions.py`` results) are joined to their counts: the
share read right both ways by count band, the rank correlation (Spearman), and for each threshold the pairs at or
above it that miss 50%.  ``--save-table`` writes what fundiff ships (fundiff.pipelines.natural_anagrams): the counts,
the measured rates and each view's mean rate below and above ``RARE``.

    .venv/bin/python bench/natural_anagrams.py --save-table src/fundiff/assets/mnist_natural_anagrams.json  # 3 min
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from fundiff.classifier import load_classifier
from fundiff.commands.arguments import Parser
from fundiff.data.mnist import load_mnist, to_float
from fundiff.engine.views import get_view, is_involution
from fundiff.errors import FundiffError, run_script
from fundiff.io import ensure_writable_file, write_json
from fundiff.pipelines.natural_anagrams import RARE
from fundiff.pipelines.readings import reading_probabilities

ROOT = Path(__file__).resolve().parents[1]
RATES = [ROOT / "bench" / "results" / f"illusions-all-{name}.json"
         for name in ("flip-read-as", "mirror", "rotate-negate-langevin-t500", "rotate180")]
BANDS = [(0, 9), (10, 49), (50, 199), (200, None)]
THRESHOLDS = [10, 30, 60, 100, 200, 300]


@torch.no_grad()
def read(images: torch.Tensor, classifier: torch.nn.Module, batch: int = 4000) -> torch.Tensor:
    """The shipped classifier's reading of each image (in [-1, 1], as a sample)."""
    return torch.cat([reading_probabilities(images[i:i + batch], classifier).argmax(1)
                      for i in range(0, len(images), batch)])


def counts(view_name: str, images: torch.Tensor, upright: torch.Tensor, classifier: torch.nn.Module) -> dict[str, int]:
    """N(A/B) for every pair A != B under the view (the formula above)."""
    view = get_view(view_name)

    def matrix(read_after: torch.Tensor) -> torch.Tensor:   # m[a, b] = #{x : read(x) = a, read(after(x)) = b}
        m = torch.zeros(10, 10, dtype=torch.long)
        return m.index_put_((upright, read_after), torch.ones_like(upright), accumulate=True)

    forward = matrix(read(view.view(images), classifier))
    backward = forward if is_involution(view) else matrix(read(view.inverse_view(images), classifier))
    m = forward + backward.T
    return {f"{a}/{b}": int(m[a, b]) for a in range(10) for b in range(10) if a != b}


def spearman(x: list[float], y: list[float]) -> float:
    """Rank correlation, ties given their mean rank."""
    def ranks(v: list[float]) -> torch.Tensor:
        t = torch.tensor(v, dtype=torch.float64)
        return (t[:, None] > t[None, :]).sum(1).double() + ((t[:, None] == t[None, :]).sum(1).double() - 1) / 2
    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / (rx.norm() * ry.norm()))


def shown(path: Path) -> str:
    """A path as the record shows it: from the repository root when it lies inside."""
    return str(path.resolve().relative_to(ROOT)) if path.resolve().is_relative_to(ROOT) else str(path)


def load_result(rates_file: Path) -> dict:
    """A bench/illusions.py result, its rows checked; one line if the file is not one."""
    try:
        result = json.loads(rates_file.read_text())
        rows = result["rows"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise TypeError("rows is not a list of objects")
        for r in rows:   # an anagram row has what join reads
            if r.get("view") is not None and r.get("kind") != "hybrid":
                r["A"], r["B"], float(r["both_rate"]), int(r["n"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FundiffError(f"--rates {rates_file} is not a bench/illusions.py result ({type(exc).__name__})") from None
    return result


def load_rows(rates_file: Path) -> list[dict]:
    """A bench/illusions.py result's rows (``load_result``)."""
    return load_result(rates_file)["rows"]


def join(view: str, natural: dict[str, int], rates_file: Path) -> dict:
    """The measured anagram rates of ``view`` in ``rates_file`` against the pairs' natural-anagram counts."""
    rows = load_rows(rates_file)
    kept = {f"{r['A']}/{r['B']}": r for r in rows
            if r.get("view") == view and r.get("kind") != "hybrid" and f"{r.get('A')}/{r.get('B')}" in natural}
    rates = {p: r["both_rate"] for p, r in kept.items()}
    if not rates:
        return {}
    pairs = sorted(rates, key=lambda p: (natural[p], p))
    bands = []
    for low, high in BANDS:
        sel = [rates[p] for p in pairs if natural[p] >= low and (high is None or natural[p] <= high)]
        if sel:
            bands.append({"natural": f"{low}-{high}" if high is not None else f"{low}+", "pairs": len(sel),
                          "both_rate": round(sum(sel) / len(sel), 4), "at_50": sum(r >= 0.5 for r in sel)})
    return {"file": shown(rates_file), "pairs": len(pairs), "spearman": round(spearman([natural[p] for p in pairs],
                                                                                      [rates[p] for p in pairs]), 3),
            "bands": bands,
            "thresholds": [{"natural_at_least": th, "pairs": sum(natural[p] >= th for p in pairs),
                            "at_50": sum(natural[p] >= th and rates[p] >= 0.5 for p in pairs),
                            "misses": [p for p in pairs if natural[p] >= th and rates[p] < 0.5]} for th in THRESHOLDS],
            "by_pair": {p: [natural[p], rates[p], kept[p]["n"]] for p in pairs}}


def table(result: dict) -> dict:
    """What fundiff ships: per view its counts, each pair's measured rate [both_rate, n] at the defaults (from the
    joined results), and the mean rate of the pairs below and at or above RARE."""
    views = {}
    for name, v in result["views"].items():
        measured = {p: {"both_rate": round(r, 4), "n": n} for j in v["measured"] for p, (_, r, n) in j["by_pair"].items()}
        entry = {"involution": v["involution"], "natural": v["natural"], "measured": measured}
        for side, keep in (("rare", lambda p: v["natural"][p] < RARE), ("common", lambda p: v["natural"][p] >= RARE)):
            rates = [m["both_rate"] for p, m in measured.items() if keep(p)]
            if rates:
                entry[f"{side}_mean_rate"] = round(sum(rates) / len(rates), 4)
        views[name] = entry
    return {"about": "N(A/B): MNIST training digits x that the shipped classifier reads as A while it reads view(x) as "
                     "B, plus digits y read as B while it reads view^-1(y) as A; measured: bench/illusions.py's share "
                     "read right both ways at the defaults; fundiff.pipelines.natural_anagrams",
            "command": result["command"], "images": result["num_images"], "rare_below": RARE, "views": views}


def main() -> None:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--views", nargs="+", default=["flip", "mirror", "rotate_cw", "rotate_180"])
    ap.add_argument("--rates", nargs="*", type=Path, default=RATES,
                    help="bench/illusions.py results whose rows are joined to the counts, view by view (default: the "
                         "all-pairs runs of flip, mirror, rotate_cw and rotate_180 in bench/results)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "natural-anagrams.json")
    ap.add_argument("--save-table", type=Path, default=None, metavar="FILE.json",
                    help="also write the counts alone, as fundiff ships them (src/fundiff/assets/"
                         "mnist_natural_anagrams.json, read by fundiff.pipelines.natural_anagrams)")
    args = ap.parse_args()
    for name in args.views:
        get_view(name)   # an unknown view is one line, before the work
    measured_by: dict[str, Path] = {}
    for path in args.rates:   # before the work
        if not path.is_file():
            raise FundiffError(f"--rates {path}: no such file")
        for view in sorted({r.get("view") for r in load_rows(path) if r.get("kind") != "hybrid"} & set(args.views)):
            if view in measured_by:
                raise FundiffError(f"--rates {measured_by[view]} and {path} both measure {view}: give one")
            measured_by[view] = path
    ensure_writable_file(args.out, "--out")
    if args.save_table is not None:
        ensure_writable_file(args.save_table, "--save-table")
    start = time.time()
    mnist, classifier = load_mnist(), load_classifier()
    images = to_float(mnist.train_images) * 2 - 1
    upright = read(images, classifier)

    result = {"command": "python bench/natural_anagrams.py --views " + " ".join(args.views)
              + (" --rates " + " ".join(map(shown, args.rates)) if args.rates else "") + f" --out {shown(args.out)}"
              + (f" --save-table {shown(args.save_table)}" if args.save_table is not None else ""),
              "reader": "the shipped classifier", "images": f"the {len(images)} MNIST training digits",
              "num_images": len(images), "views": {}}
    for name in args.views:
        natural = counts(name, images, upright, classifier)
        result["views"][name] = {"involution": is_involution(get_view(name)), "natural": natural,
                                 "measured": [j for j in (join(name, natural, p) for p in args.rates) if j]}
        print(name, json.dumps({k: v for k, v in result["views"][name].items() if k != "natural"})[:2000], flush=True)
    result["seconds"] = round(time.time() - start, 1)
    write_json(args.out, result)
    if args.save_table is not None:
        write_json(args.save_table, table(result))
    print(f"wrote {args.out} ({result['seconds']} s)")


if __name__ == "__main__":
    raise SystemExit(run_script(main, "natural_anagrams.py"))

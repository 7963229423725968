"""Guide each view away from its partner's mirror image: two levers for the hard flip pairs, measured.

In a flip anagram A/B the upright image holds B's strokes, which upright read as B's mirror image m(B) (the digit a
real B reads as when flipped, bench/results/view-symmetry.json), and likewise m(A) shows through under the flip
(docs/illusions.md, "Why the hard pairs fail").  Two ways to push back, at the defaults otherwise:

* ``negative``: view i's negative prompt is its partner's mirror image, fixed (rival guidance off, since it picks
  the negative itself); a view whose partner's mirror image is its own digit keeps the null prompt.
* ``no-rival``: rival guidance as by default, but a view's rival may not be its partner's mirror image.

Each pair is read as bench/illusions.py reads it, on the same noise (seeds 0..N-1, step noise from seed 10000), so the
rows compare with ``bench/illusions.py --pair A/B --seeds N``.

    .venv/bin/python bench/mirror_levers.py --variant negative --seeds 30 --out runs/mirror-negative.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

import fundiff.engine.illusions as engine_illusions
from fundiff.classifier import load_classifier
from fundiff.commands.arguments import Parser, positive_int
from fundiff.engine.views import get_view
from fundiff.errors import FundiffError, run_script
from fundiff.io import ensure_writable_file, write_json
from fundiff.metrics import wilson_interval
from fundiff.pipelines import AnagramPipeline
from fundiff.pipelines.readings import reading_probabilities

from illusions import misreadings, noise, pair

HARD = ["2/6", "3/6", "5/4", "6/2", "6/3", "6/7", "9/7"]
SYMMETRY = Path(__file__).parent / "results" / "view-symmetry.json"


def mirror_images(path: Path) -> dict[int, int]:
    """Each digit's image under the flip: the digit real test digits read as most when flipped."""
    try:
        images = {int(c): int(d["image"]) for c, d in json.loads(path.read_text())["views"]["flip"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FundiffError(f"--symmetry {path} is not bench/view_symmetry.py's result with the flip "
                           f"({type(exc).__name__}: {exc})") from None
    if sorted(images) != list(range(10)):
        raise FundiffError(f"--symmetry {path} does not give all ten digits' images under the flip")
    return images


def measure(variant: str, pairs: list[tuple[str, str]], n: int, mirror: dict[int, int]) -> list[dict]:
    pipe, clf, flip = AnagramPipeline.from_pretrained("mnist"), load_classifier(), get_view("flip")
    plain_rivals, rows = engine_illusions.rivals, []
    for a, b in pairs:
        shows = {int(a): mirror[int(b)], int(b): mirror[int(a)]}   # what shows through in each digit's view
        options, calls = {}, []
        if variant == "negative":
            options = dict(rival=False, negative_prompt=[str(shows[int(a)]) if shows[int(a)] != int(a) else None,
                                                         str(shows[int(b)]) if shows[int(b)] != int(b) else None])
        else:
            def rivals(log_probs: torch.Tensor, label: int) -> torch.Tensor:
                calls.append(label)
                if shows[label] != label:
                    log_probs = log_probs.clone()
                    log_probs[:, shows[label]] = float("-inf")
                return plain_rivals(log_probs, label)

            engine_illusions.rivals = rivals
        try:
            img = pipe([a, b], ["identity", "flip"], latents=noise(n, 0), num_images_per_prompt=n, batch_size=n,
                       generator=torch.Generator().manual_seed(10_000), output_type="pt", **options).samples
        finally:
            engine_illusions.rivals = plain_rivals
        if variant == "no-rival" and not calls:   # the swap must have reached the sampler, or this row is the defaults
            raise RuntimeError("the anagram loop never called fundiff.engine.illusions.rivals: this bench's "
                               "no-rival variant no longer reaches it")
        read_a = reading_probabilities(img, clf).argmax(1)   # fundiff's readings, as bench/illusions.py reads them
        read_b = reading_probabilities(flip.view(img), clf).argmax(1)
        both = ((read_a == int(a)) & (read_b == int(b))).float().mean().item()
        low, high = wilson_interval(both, n)
        rows.append({"A": a, "B": b, "n": n, "shows_through": {a: str(shows[int(a)]), b: str(shows[int(b)])},
                     **({"negative_prompt": options["negative_prompt"]} if options else {}),
                     "A_rate": (read_a == int(a)).float().mean().item(), "B_rate": (read_b == int(b)).float().mean().item(),
                     "both_rate": both, "both_wilson95": [round(low, 4), round(high, 4)],
                     "A_read_as": misreadings(read_a, int(a)), "B_read_as": misreadings(read_b, int(b))})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", choices=["negative", "no-rival"], required=True)
    ap.add_argument("--pair", type=pair, action="append", default=None, metavar="A/B",
                    help=f"a flip pair (repeatable; default the seven hard ones: {' '.join(HARD)})")
    ap.add_argument("--seeds", type=positive_int, default=30)
    ap.add_argument("--symmetry", type=Path, default=SYMMETRY,
                    help="bench/view_symmetry.py's result (each digit's image under the flip)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    ensure_writable_file(args.out, "--out")   # before the work
    torch.set_num_threads(2)
    pairs = args.pair or [tuple(p.split("/")) for p in HARD]
    start = time.time()
    rows = measure(args.variant, pairs, args.seeds, mirror_images(args.symmetry))
    k = sum(round(r["both_rate"] * r["n"]) for r in rows)
    n = sum(r["n"] for r in rows)
    write_json(args.out, {
        "command": f"python bench/mirror_levers.py --variant {args.variant} --seeds {args.seeds}"
                   + "".join(f" --pair {a}/{b}" for a, b in args.pair or [])
                   + (f" --symmetry {args.symmetry}" if args.symmetry != SYMMETRY else "") + f" --out {args.out}",
        "seconds": round(time.time() - start, 1), "pooled": {"n": n, "both_right": k, "both_rate": round(k / n, 4)},
        "rows": rows})
    print(f"wrote {args.out}: {k} of {n} ({k / n:.1%})")


if __name__ == "__main__":
    raise SystemExit(run_script(main, "mirror_levers.py"))

"""How often do MNIST illusions work?  fundiff's own classifier reads each one.

Visual anagrams (upright prompt A, prompt B under the view) for views flip (the study's vertical mirror), rotate_cw
(90 degrees) and negate (and rotate_180, the 180-degree turn, or mirror, left to right, when ``--views`` names
them), and hybrids (low frequencies A, high frequencies B), on the embedded MNIST model with the study's strided
loop (990, 960, ..., 0) and CFG. Each pair gets ``--seeds`` samples (seed k draws sample k's starting noise). An anagram counts for A when the
classifier reads the upright image as A, for B when it reads view(image) as B. A hybrid counts for A when it reads
the low-pass of the image (the decomposition's own Gaussian, what one sees from afar) as A, and for B when it reads
the high-pass's positive part, stretched to [0, 1] (the strokes one sees up close), as B. Hybrids are read by the
shipped classifier, as issue 17 asks (``both_rate``; or by ``--hybrid-reader FILE``), and always also by the shipped
hybrid reader (``hybrid_reader``: the classifier trained on real hybrids' readings, which the product's readings
use; the clean classifier reads only 32% of real hybrids both ways).

    .venv/bin/python bench/illusions.py                 # 50 seeds per pair, writes bench/results/illusions.json
    .venv/bin/python bench/illusions.py --pairs all --seeds 20 --out bench/results/illusions-all.json
                                                        # every ordered digit pair a != b under each view

Each row has the share of images whose readings are both right with its Wilson 95% interval; the
summary pools rows per view and over the target sets of issue 17, and, under a view that is its own inverse, counts
A/B and B/A as one illusion (bench/anagram_orders.py).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from fundiff.classifier import load_classifier, load_hybrid_reader
from fundiff.commands.arguments import Parser, fork_t, nonneg_int, positive_int
from fundiff.engine.correctors import DEFAULT as CORRECTOR
from fundiff.engine.decompositions import Hybrid
from fundiff.engine.schedule import THRESHOLD_CHOICES, describe_threshold
from fundiff.engine.views import get_view, is_involution
from fundiff.pipelines import AnagramPipeline, HybridPipeline
from fundiff.errors import FundiffError, run_script
from fundiff.io import ensure_writable_file, write_json
from fundiff.metrics import pooled_proportion, wilson_interval
from fundiff.pipelines.readings import hybrid_readings

ANAGRAMS = {
    "flip": [("6", "9"), ("9", "6"), ("1", "1"), ("3", "8"), ("2", "5"), ("0", "8")],
    "rotate_cw": [("1", "7"), ("7", "1"), ("3", "8"), ("4", "7")],
    "negate": [("0", "1"), ("1", "7")],
}
OPTIONAL_VIEWS = {"rotate_180": [("6", "9"), ("9", "6")],   # only when --views names them: the 180-degree turn
                  "mirror": [("2", "6"), ("6", "2")]}         # and the left-right mirror
HYBRIDS = [("0", "1"), ("1", "7"), ("3", "8"), ("6", "9"), ("7", "1")]
TARGETS = {"flip": [("1", "7"), ("3", "8"), ("0", "4"), ("2", "5")],
           "rotate_cw": [("1", "7"), ("7", "1"), ("3", "8"), ("4", "7")],
           "hybrid": [("1", "7"), ("0", "1"), ("3", "8")]}


def all_pairs() -> list[tuple[str, str]]:
    return [(str(a), str(b)) for a in range(10) for b in range(10) if a != b]


def pooled(rows: list[dict], keep) -> dict:
    """Both-readings-right over the rows ``keep`` selects: count, n, share and Wilson 95%."""
    chosen = [r for r in rows if keep(r)]
    total = pooled_proportion((round(r["both_rate"] * r["n"]), r["n"]) for r in chosen)
    if not total["n"]:
        return {"pairs": 0}
    return {"pairs": len(chosen), "n": total["n"], "both_right": total["count"], "both_rate": total["share"],
            "wilson95": total["wilson95"]}


def misreadings(read: torch.Tensor, want: int) -> dict:
    """What the wrong readings were: {digit: count}, most common first (the other view's digit showing through?)."""
    wrong = read[read != want]
    counts = torch.bincount(wrong, minlength=10)
    return {str(d): int(counts[d]) for d in counts.argsort(descending=True, stable=True).tolist() if counts[d]}


def pair(text: str) -> tuple[str, str]:
    """--pair A/B: two different digits."""
    a, _, b = text.partition("/")
    if not (len(a) == len(b) == 1 and a in "0123456789" and b in "0123456789" and a != b):
        raise argparse.ArgumentTypeError(f"expected two different digits as A/B, got {text!r}")
    return a, b


STEP_SEED = 10_000


def step_seed(first_seed: int) -> int:
    """The seed of the generator every step of a run draws from (ancestral steps, corrector): 10000 + the first seed,
    so that another --first-seed is held out in its steps as well as in its starting noise.  (Until commit 46321d1 of
    2026-12-06 it was 10000 whatever the first seed: runs at --first-seed 1000 with the batch size of a run at 0 drew
    the same step noise, which decides most of the outcome; docs/illusions.md, "Held out, and what was not".)"""
    return STEP_SEED + first_seed


def noise(n: int, first_seed: int) -> torch.Tensor:
    return torch.cat([torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(first_seed + k)) for k in range(n)])


# a figure row's name for the view
SEEN = {"flip": "flipped", "rotate_cw": "rotated", "negate": "negated", "rotate_180": "turned"}
OTHER = "other"   # --negative other: each view / component is guided away from the other prompt


@dataclass
class Settings:
    """One way of making the illusions (the commands' defaults unless changed): what a lever changes."""

    guidance_scale: float = 7.0
    threshold: str = "auto"
    negative: str | None = None          # None: the null prompt; "other": the other prompt; else that prompt
    reduction: str = "auto"              # the pipeline's default: balanced on MNIST
    balance: float = 0.5                 # the balanced reduction's beta (the pipeline's default)
    rival: str = "auto"                  # rival guidance: auto (the pipeline's default: on with balanced), on, off
    resample_steps: int = 0
    resample_times: int = 1
    hybrid_sigma: float | None = None    # None: the decomposition's default at 28 px
    gamma_b: float | None = None         # prompt B's (view 2 / high-pass) guidance scale, if not guidance_scale
    model: str = "mnist"                 # the embedded model, or another flow model file / run folder
    steps: int | None = None             # None: the study's strided loop (990 ... 0 by 30); else num_inference_steps
    corrector_steps: int | None = None   # Langevin steps per timestep; None: the pipelines' default (auto)
    corrector_snr: float = CORRECTOR.snr
    corrector_t_min: int = CORRECTOR.t_min
    fork_t: int | str | None = "auto"    # the hybrid's fork: auto (the pipeline's default), None (off), or a timestep

    def flags(self) -> str:
        out = [f"--guidance-scale {self.guidance_scale:g}", f"--threshold {self.threshold}"]
        for name, value, default in [("negative", self.negative, None), ("reduction", self.reduction, "auto"), ("balance", self.balance, 0.5),
                                     ("rival", self.rival, "auto"),
                                     ("resample-steps", self.resample_steps, 0), ("resample-times", self.resample_times, 1),
                                     ("hybrid-sigma", self.hybrid_sigma, None), ("gamma-b", self.gamma_b, None),
                                     ("model", self.model, "mnist"), ("steps", self.steps, None),
                                     ("corrector-steps", self.corrector_steps, None),
                                     ("corrector-snr", self.corrector_snr, CORRECTOR.snr),
                                     ("corrector-t-min", self.corrector_t_min, CORRECTOR.t_min),
                                     ("fork-t", "off" if self.fork_t is None else self.fork_t, "auto")]:
            if value != default:
                out.append(f"--{name} {value}")
        return " ".join(out)

    @property
    def symmetric(self) -> bool:
        """Whether A/B and B/A are made alike, prompt by prompt: not so when a view slot, not a prompt, chooses (the
        alternate reduction's first view, --gamma-b's second scale)."""
        return self.reduction != "alternate" and self.gamma_b is None

    def call_options(self, a: str, b: str) -> dict:
        neg = [b, a] if self.negative == OTHER else self.negative
        gamma = self.guidance_scale if self.gamma_b is None else [self.guidance_scale, self.gamma_b]
        return dict(guidance_scale=gamma, negative_prompt=neg, resample_steps=self.resample_steps,
                    resample_times=self.resample_times, num_inference_steps=self.steps,
                    corrector_steps=self.corrector_steps, corrector_snr=self.corrector_snr,
                    corrector_t_min=self.corrector_t_min)


def add_setting_flags(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--guidance-scale", type=float, default=7.0)
    ap.add_argument("--threshold", choices=THRESHOLD_CHOICES, default="auto", help="x0-hat thresholding (auto: static on MNIST)")
    ap.add_argument("--negative", default=None, help="negative prompt of every view: a prompt, or 'other' (the other view's)")
    ap.add_argument("--reduction", choices=["auto", "mean", "alternate", "balanced"], default="auto",
                    help="auto (the default): balanced on MNIST")
    ap.add_argument("--balance", type=float, default=0.5, help="the balanced reduction's strength beta (default 0.5)")
    ap.add_argument("--rival", choices=["auto", "on", "off"], default="auto",
                    help="guide each view away from the digit it is most likely misread as (auto, the default: on "
                         "with the balanced reduction and no --negative)")
    ap.add_argument("--resample-steps", type=int, default=0, help="resample the first N steps (RePaint-style)")
    ap.add_argument("--resample-times", type=int, default=1, help="... this many times each")
    ap.add_argument("--hybrid-sigma", type=float, default=None, help="the hybrid's Gaussian sigma in px (default 0.875 at 28 px)")
    ap.add_argument("--gamma-b", type=float, default=None, help="guidance scale of prompt B (view 2 / high-pass)")
    ap.add_argument("--model", default="mnist", help="the embedded model (default) or a flow model file / run folder")
    ap.add_argument("--steps", type=int, default=None,
                    help="num_inference_steps, spaced as diffusers spaces them (default: the study's strided loop, 34 steps)")
    ap.add_argument("--corrector-steps", type=int, default=None,
                    help="Langevin corrector steps per timestep (default: the pipelines' auto, "
                         f"{CORRECTOR.steps} for balanced anagrams)")
    ap.add_argument("--corrector-snr", type=float, default=CORRECTOR.snr)
    ap.add_argument("--corrector-t-min", type=int, default=CORRECTOR.t_min)
    ap.add_argument("--fork-t", type=fork_t, default="auto", metavar="auto|off|T",
                    help="hybrids: from timestep T on, each band is finished by its own prompt (auto, the default: the "
                         "pipeline's, off: composed to the end, the study's)")


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(guidance_scale=args.guidance_scale, threshold=args.threshold, negative=args.negative,
                    reduction=args.reduction, balance=args.balance, rival=args.rival, resample_steps=args.resample_steps,
                    resample_times=args.resample_times, hybrid_sigma=args.hybrid_sigma, gamma_b=args.gamma_b,
                    model=args.model, steps=args.steps, corrector_steps=args.corrector_steps,
                    corrector_snr=args.corrector_snr, corrector_t_min=args.corrector_t_min, fork_t=args.fork_t)


def target_pairs() -> tuple[dict, list]:
    return {v: TARGETS[v] for v in ("flip", "rotate_cw")}, TARGETS["hybrid"]


def measure(settings: Settings, anagrams: dict, hybrids: list, n: int, log=print, shown: list | None = None,
            first_seed: int = 0, hybrid_reader: Path | None = None) -> dict:
    """Both-readings-right rows for the given pairs (n images each) under ``settings``, and their pooled shares.

    With ``shown`` (a list), each pair appends its first 8 images' readings as figure rows: (row label, images in
    [-1, 1], what the classifier read, the digit it should read).
    """
    anagram = AnagramPipeline.from_pretrained(settings.model, threshold=settings.threshold)
    hybrid = HybridPipeline.from_pipe(anagram)
    clf = load_classifier()
    hybrid_clf = clf if hybrid_reader is None else load_classifier(hybrid_reader)
    shipped_hybrid_reader = load_hybrid_reader()

    def read(img: torch.Tensor, by: torch.nn.Module = clf) -> torch.Tensor:
        with torch.no_grad():
            return by(((img.clamp(-1, 1) + 1) / 2)).argmax(1)

    def sample(pipe, *call, **kwargs) -> torch.Tensor:
        """n images: image k starts from seed first_seed + k's noise; the steps draw from one generator (step_seed)."""
        return pipe(*call, latents=noise(n, first_seed), num_images_per_prompt=n,
                    generator=torch.Generator().manual_seed(step_seed(first_seed)), output_type="pt", batch_size=n,
                    **kwargs).samples

    def with_interval(row: dict) -> dict:
        low, high = wilson_interval(row["both_rate"], row["n"])
        return {**row, "both_wilson95": [round(low, 4), round(high, 4)]}

    rows, start = [], time.time()
    for view_name, pairs in anagrams.items():
        view = get_view(view_name)
        for a, b in pairs:
            img = sample(anagram, [a, b], ["identity", view_name], reduction=settings.reduction, balance=settings.balance,
                         rival={"auto": None, "on": True, "off": False}[settings.rival], **settings.call_options(a, b))
            read_a, read_b = read(img), read(view.view(img))
            ok_a, ok_b = read_a == int(a), read_b == int(b)
            if shown is not None:
                shown += [(f"{view_name} {a}/{b}\nupright", img[:8], read_a[:8], int(a)),
                          (SEEN.get(view_name, view_name), view.view(img[:8]), read_b[:8], int(b))]
            rows.append(with_interval({"kind": "anagram", "view": view_name, "A": a, "B": b, "n": n,
                                       "A_rate": ok_a.float().mean().item(), "B_rate": ok_b.float().mean().item(),
                                       "both_rate": (ok_a & ok_b).float().mean().item(),
                                       "A_read_as": misreadings(read_a, int(a)), "B_read_as": misreadings(read_b, int(b))}))
            log(json.dumps(rows[-1]))
    dec = hybrid.decomposition("hybrid")
    if settings.hybrid_sigma is not None:
        dec = Hybrid(dec.kernel_size, settings.hybrid_sigma)
        hybrid.decomposition = lambda kind="hybrid": dec   # this run's decomposition (the readings use it too)
    for a, b in hybrids:
        img = sample(hybrid, [a, b], "hybrid", fork_t=settings.fork_t, **settings.call_options(a, b))
        low, close = hybrid_readings(img, dec)   # from afar, up close: the readings best-of uses too
        read_a, read_b = read(low, hybrid_clf), read(close, hybrid_clf)
        ok_a, ok_b = read_a == int(a), read_b == int(b)
        if shown is not None:
            shown += [(f"hybrid {a}/{b}\nimage", img[:8], None, None), ("from afar", low[:8], read_a[:8], int(a)),
                      ("up close", close[:8], read_b[:8], int(b))]
        hr_a, hr_b = read(low, shipped_hybrid_reader) == int(a), read(close, shipped_hybrid_reader) == int(b)
        rows.append(with_interval({"kind": "hybrid", "A": a, "B": b, "n": n, "A_rate": ok_a.float().mean().item(),
                                   "B_rate": ok_b.float().mean().item(), "both_rate": (ok_a & ok_b).float().mean().item(),
                                   "whole_image_reads_A": (read(img) == int(a)).float().mean().item(),
                                   "hybrid_reader": {"A_rate": hr_a.float().mean().item(),
                                                     "B_rate": hr_b.float().mean().item(),
                                                     "both_rate": (hr_a & hr_b).float().mean().item()}}))
        log(json.dumps(rows[-1]))
    summary_rows = {f"anagram {v}": pooled(rows, lambda r, v=v: r.get("view") == v) for v in anagrams}
    from anagram_orders import Run, orders   # it reads this module's STEP_SEED

    for v in anagrams:   # under a view that is its own inverse A/B and B/A are one illusion (bench/anagram_orders.py)
        if is_involution(get_view(v)) and settings.symmetric:
            found = orders({(r["A"], r["B"]): [Run(range(first_seed, first_seed + n), step_seed(first_seed),
                                                     round(r["both_rate"] * r["n"]), r["n"], "")]
                            for r in rows if r.get("view") == v})
            if found["illusions"]:
                summary_rows[f"anagram {v}, A/B and B/A pooled"] = {
                    "illusions": len(found["illusions"]), "at_50": found["illusions_at_50"], **found["orders_agree"]}
    if hybrids:
        summary_rows["hybrid"] = pooled(rows, lambda r: r["kind"] == "hybrid")
        summary_rows["hybrid, read by the shipped hybrid reader"] = pooled(
            [{**r, **r["hybrid_reader"], "n": r["n"]} for r in rows if r["kind"] == "hybrid"], lambda r: True)
    for kind, pairs in TARGETS.items():
        summary_rows[f"target set {kind} {' '.join(a + '/' + b for a, b in pairs)}"] = pooled(
            rows, lambda r, kind=kind, pairs=pairs: (r.get("view") == kind or r["kind"] == kind) and (r["A"], r["B"]) in pairs)
    return {"settings": settings.flags(), "setting_values": asdict(settings),
            "step_seed": step_seed(first_seed), "pooled": summary_rows,
            "threshold": describe_threshold(anagram.threshold),
            "seconds": round(time.time() - start, 1), "rows": rows}


def write_figure(shown: list, path: Path, title: str) -> None:
    """``measure``'s figure rows as one labelled grid (fundiff.figures.image_grid)."""
    from fundiff.figures import image_grid

    path.parent.mkdir(parents=True, exist_ok=True)
    labels = [[] if got is None else [f"{int(g)}" if int(g) == want else f"!{int(g)}" for g in got]
              for _, _, got, want in shown]
    image_grid([[((im + 1) / 2).clamp(0, 1) for im in imgs] for _, imgs, _, _ in shown], path,
               row_labels=[label for label, *_ in shown], cell_labels=labels, title=title, cell=0.75)


def main() -> None:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=positive_int, default=50)
    ap.add_argument("--first-seed", type=nonneg_int, default=0,
                    help="image k starts from seed FIRST_SEED + k's noise (default 0); another range is a held-out check "
                         "of a setting chosen on seeds 0..")
    ap.add_argument("--pairs", choices=["curated", "all", "targets"], default=None,
                    help="curated (the default): the pairs above; all: every ordered pair a != b under each view; "
                         "targets: issue 17's target sets only (flip, rotate_cw, the hybrids)")
    ap.add_argument("--pair", type=pair, action="append", default=None, metavar="A/B",
                    help="only this anagram pair (repeatable), under --views (default flip); no hybrids")
    ap.add_argument("--views", nargs="*", choices=[*ANAGRAMS, *OPTIONAL_VIEWS], default=None,
                    help="only these views' anagrams (default: flip, rotate_cw, negate; with --pairs targets, flip and rotate_cw; "
                         "rotate_180, the 180-degree turn, only when named); "
                         "--views alone: the hybrids only")
    ap.add_argument("--hybrid-pairs", choices=["curated", "all"], default="curated",
                    help="curated (the default): the hybrid pairs above and the target set; all: every ordered pair a != b")
    add_setting_flags(ap)
    ap.add_argument("--hybrid-reader", type=Path, default=None,
                    help="read the hybrids' readings with this classifier (bench/hybrid_reader.py --save-reader) instead "
                         "of the shipped one")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "illusions.json")
    ap.add_argument("--figure", type=Path, default=None,
                    help="also write each pair's first 8 images, every reading labelled with what the classifier read "
                         "(red: wrong), to this PNG")
    args = ap.parse_args()
    torch.set_num_threads(2)
    settings = settings_from(args)
    if args.pair and (args.pairs is not None or args.hybrid_pairs != "curated" or args.views == []):
        raise FundiffError("--pair chooses the anagram pairs itself: it takes no --pairs, no --hybrid-pairs and a view "
                           "with --views (default flip)")
    args.pairs = args.pairs or "curated"
    ensure_writable_file(args.out, "--out")   # before the work: a result that cannot be written is lost work
    if args.figure is not None:
        ensure_writable_file(args.figure, "--figure")
    if args.pair:
        anagrams, hybrids = {v: list(dict.fromkeys(args.pair)) for v in (args.views or ["flip"])}, []
    elif args.pairs == "targets":
        anagrams, hybrids = target_pairs()
    else:
        views = [*ANAGRAMS, *(v for v in OPTIONAL_VIEWS if v in (args.views or []))]
        anagrams = {v: all_pairs() if args.pairs == "all" else ANAGRAMS.get(v, OPTIONAL_VIEWS.get(v)) for v in views}
        hybrids = sorted(set(HYBRIDS) | set(TARGETS["hybrid"]))
    if args.hybrid_pairs == "all":
        hybrids = all_pairs()
    if args.views is not None and not args.pair:   # the views asked for; none: the hybrids only
        anagrams = {v: p for v, p in anagrams.items() if v in args.views}
    shown = [] if args.figure is not None else None
    result = measure(settings, anagrams, hybrids, args.seeds, log=lambda line: print(line, flush=True), shown=shown,
                     first_seed=args.first_seed, hybrid_reader=args.hybrid_reader)
    seeds = f"--seeds {args.seeds}" + (f" --first-seed {args.first_seed}" if args.first_seed else "")
    seeds += "".join(f" --pair {a}/{b}" for a, b in args.pair or [])
    if args.hybrid_reader is not None:
        seeds += f" --hybrid-reader {args.hybrid_reader}"
    if args.views is not None:
        seeds += " --views " + " ".join(args.views)
    if args.hybrid_pairs != "curated":
        seeds += f" --hybrid-pairs {args.hybrid_pairs}"
    pairs = "" if args.pair else f"--pairs {args.pairs} "
    summary = {"command": f"python bench/illusions.py {pairs}{seeds} {settings.flags()} "
                          f"--out {args.out}", "model": "embedded MNIST flow (fundiff/assets/mnist_flow.safetensors)",
               "timesteps": "990..0 by 30" if args.steps is None else f"{args.steps} steps, diffusers' spacing", "guidance_scale": args.guidance_scale, **result}
    if args.model != "mnist":
        summary["model"] = args.model
    write_json(args.out, summary)
    if shown is not None:
        write_figure(shown, args.figure, f"what the shipped classifier reads (red: wrong)\n{settings.flags()}")
        print(f"wrote {args.figure}")
    print(f"wrote {args.out} in {summary['seconds']} s")


if __name__ == "__main__":
    raise SystemExit(run_script(main, "illusions.py"))

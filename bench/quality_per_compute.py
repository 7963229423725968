"""Quality per CPU-minute: the study's flow recipe against fundiff's, trained side by side.

Run alone (it uses every core; two jobs on 2 cores slow each other down many times)::

    .venv/bin/python bench/quality_per_compute.py --minutes 20 --out runs/bench-quality

For each recipe it runs the user-facing commands, with the same training-time budget:

    fundiff train flow --recipe R --max-train-minutes M --out OUT/R
    fundiff evaluate --model OUT/R --num-per-class 100 --json OUT/R/eval.json

(both with fundiff's default sampler, midpoint with 7 steps: 28 UNet evaluations per guided image;
``--study-sampler`` also evaluates the study recipe with its own Euler-300 sampler, 600 NFE/image) and writes ``OUT/summary.json`` and ``OUT/summary.md``:
accuracy at gamma = 5, the best classifier-FID over gamma in {1, 1.5, 2, 3, 5} and its ratio to the
real-data floor at the same n, and UNet evaluations per image.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from fundiff.metrics import wilson_interval
from fundiff.commands.arguments import Parser

ROOT = Path(__file__).resolve().parents[1]
FUNDIFF = [sys.executable, "-m", "fundiff"]


def run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def _evaluation_row(v: dict) -> dict:
    """The numbers the summary keeps: guided class models report accuracy and the best gamma; time-only
    models one classifier-FID (shaped like best_fid so the table reads the same)."""
    if "per_guidance_scale" not in v:
        return {"sampler": v["sampler"], "steps": v["steps"], "nfe_per_image_guided": v["nfe_per_image"],
                "accuracy_at_gamma5": None, "fid_floor": v["fid_floor"],
                "best_fid": {"guidance_scale": None, "fid": v["fid"], "fid_over_floor": v["fid"] / v["fid_floor"]}}
    return {"sampler": v["sampler"], "steps": v["steps"],
            "nfe_per_image_guided": max(r["nfe_per_image"] for r in v["per_guidance_scale"]),
            "accuracy_at_gamma5": v.get("accuracy_at_gamma5"), "best_fid": v["best_fid"], "fid_floor": v["fid_floor"]}


def _accuracy_row(v: dict) -> dict:
    """Accuracy at gamma 5 on many samples: the count of misread digits and a Wilson 95% interval."""
    n = v["num_images"] if "num_images" in v else 10 * v["num_per_class"]
    acc = v["accuracy_at_gamma5"]
    low, high = wilson_interval(acc, n)
    return {"num_images": n, "accuracy": acc, "errors": round((1 - acc) * n), "wilson95": [round(low, 5), round(high, 5)]}


def main() -> int:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0, help="training-time budget per recipe (default 20)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-quality")
    ap.add_argument("--num-per-class", type=int, default=100)
    ap.add_argument("--recipes", nargs="+", default=["study", "fundiff"])
    ap.add_argument("--conditioning", choices=["class", "time"], default="class",
                    help="class (default) or time: the time-only (unconditional) models, compared on classifier-FID")
    ap.add_argument("--accuracy-per-class", type=int, default=0, metavar="K",
                    help="class models: also measure accuracy at gamma=5 alone on 10*K samples (a finer count of errors)")
    ap.add_argument("--resume", action="store_true", help="reuse finished training runs in --out")
    ap.add_argument("--study-sampler", action="store_true",
                    help="also evaluate the study recipe with its own sampler (Euler, 300 steps: 600 NFE/image, slow)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"minutes": args.minutes, "conditioning": args.conditioning, "num_images": 10 * args.num_per_class,
               "recipes": {}}
    for recipe in args.recipes:
        run_dir = args.out / recipe
        t0 = time.monotonic()
        run([*FUNDIFF, "train", "flow", "--recipe", recipe, "--conditioning", args.conditioning,
             "--max-train-minutes", str(args.minutes),
             "--out", str(run_dir), "--no-progress", "--checkpoint-interval", "0", *(["--resume"] if args.resume else [])])
        wall = time.monotonic() - t0
        evals = {}
        samplers = [("default", [])]
        if recipe == "study" and args.study_sampler:
            samplers.append(("study-euler-300", ["--sampler", "euler", "--steps", "300"]))
        for name, extra in samplers:
            path = run_dir / f"eval-{name}.json"
            run([*FUNDIFF, "evaluate", "--model", str(run_dir), "--num-per-class", str(args.num_per_class),
                 "--json", str(path), *extra])
            evals[name] = json.loads(path.read_text())
        accuracy = None
        if args.accuracy_per_class and args.conditioning == "class":
            path = run_dir / "eval-accuracy-gamma5.json"
            run([*FUNDIFF, "evaluate", "--model", str(run_dir), "--num-per-class", str(args.accuracy_per_class),
                 "--guidance-scale", "5", "--seed", "1", "--json", str(path)])
            accuracy = _accuracy_row(json.loads(path.read_text()))
        metrics = json.loads((run_dir / "metrics.json").read_text())
        summary["recipes"][recipe] = {
            "train_seconds": metrics["train_seconds"], "steps": metrics["steps"],
            "images_per_second": metrics["images_per_second"], "wall_seconds": round(wall, 1),
            "evaluations": {k: _evaluation_row(v) for k, v in evals.items()},
            "accuracy_at_gamma5_large": accuracy,
        }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    what = "" if args.conditioning == "class" else ", time-only (unconditional) models"
    lines = [f"# Quality after {args.minutes:g} CPU-minutes of training{what} ({summary['num_images']} samples)", "",
             "| recipe | sampler | NFE/image | accuracy at gamma=5 | best classifier-FID (gamma) | floor | FID / floor | train images/s |",
             "|---|---|---|---|---|---|---|---|"]
    for recipe, r in summary["recipes"].items():
        for e in r["evaluations"].values():
            b = e["best_fid"]
            acc = "-" if e["accuracy_at_gamma5"] is None else f"{e['accuracy_at_gamma5']:.4f}"
            gamma = "-" if b["guidance_scale"] is None else f"{b['guidance_scale']:g}"
            lines.append(f"| {recipe} | {e['sampler']} x {e['steps']} | {e['nfe_per_image_guided']} | "
                         f"{acc} | {b['fid']:.3f} ({gamma}) | {e['fid_floor']:.3f} | "
                         f"{b['fid_over_floor']:.2f} | {r['images_per_second']:.0f} |")
    large = {k: r["accuracy_at_gamma5_large"] for k, r in summary["recipes"].items() if r["accuracy_at_gamma5_large"]}
    if large:
        lines += ["", "Accuracy at gamma=5 on more samples (default sampler, seed 1):", "",
                  "| recipe | samples | misread | accuracy | Wilson 95% |", "|---|---|---|---|---|"]
        for recipe, a in large.items():
            lines.append(f"| {recipe} | {a['num_images']} | {a['errors']} | {a['accuracy']:.4f} | "
                         f"{a['wilson95'][0]:.4f}-{a['wilson95'][1]:.4f} |")
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

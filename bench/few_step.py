"""Images per second at equal quality: the embedded teacher ("mnist") against its distilled student ("mnist-fast").

Run alone:  .venv/bin/python bench/few_step.py [--num-per-class 100] [--out DIR] [--json bench/results/few-step.json]

Every setting of fundiff.studies.few_step (teacher at 1, 2, 4, 8, 28 UNet evaluations per image, student
at 1, 2, 4, 8) samples the same 10 x N images from one seed in this process, one after the other, and is
measured the same way (class accuracy, classifier-FID against the test split, images/s of the sampling,
evaluations counted by a hook on the UNet).  "Equal quality": for each teacher setting, the cheapest student
setting whose classifier-FID is at most the teacher's and whose accuracy is at most ACCURACY_SLACK (half a
point: about the half-width of a 95% interval at 99.5% and n = 1000) below the teacher's, and the ratio of
their images per second.
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

from fundiff.data import load_mnist
from fundiff.pipelines import SamplePipeline
from fundiff.studies.few_step import run_few_step
from fundiff.commands.arguments import Parser


ACCURACY_SLACK = 0.005


def equal_quality(rows: list[dict]) -> list[dict]:
    students = sorted((r for r in rows if r["model"] == "student"), key=lambda r: r["evaluations_per_image"])
    pairs = []
    for t in (r for r in rows if r["model"] == "teacher"):
        match = next((s for s in students if s["fid"] <= t["fid"] and s["accuracy"] >= t["accuracy"] - ACCURACY_SLACK), None)
        pairs.append({"teacher_evaluations": t["evaluations_per_image"], "teacher_fid": t["fid"],
                      "teacher_images_per_second": t["images_per_second"],
                      "student_evaluations": match and match["evaluations_per_image"],
                      "student_fid": match and match["fid"],
                      "student_images_per_second": match and match["images_per_second"],
                      "speedup": match and match["images_per_second"] / t["images_per_second"]})
    return pairs


def main(argv=None) -> int:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--num-per-class", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="also keep the figures in this folder")
    p.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    mnist = load_mnist()
    with tempfile.TemporaryDirectory() as tmp:
        result = run_few_step(SamplePipeline.from_pretrained("mnist", device="cpu"),
                              SamplePipeline.from_pretrained("mnist-fast", device="cpu"), args.out or tmp, mnist,
                              num_per_class=args.num_per_class, seed=args.seed, log=print)
    result["equal_quality"] = equal_quality(result["rows"])
    result["command"] = shlex.join(["python", "bench/few_step.py", *(argv if argv is not None else sys.argv[1:])])
    result["wall_seconds"] = round(time.monotonic() - t0, 1)
    for q in result["equal_quality"]:
        if q["student_evaluations"] is None:
            print(f"teacher at {q['teacher_evaluations']:g} evaluations (FID {q['teacher_fid']:.3f}): no student setting "
                  "is as good")
        else:
            print(f"teacher at {q['teacher_evaluations']:g} evaluations (FID {q['teacher_fid']:.3f}, "
                  f"{q['teacher_images_per_second']:.0f} images/s) = student at {q['student_evaluations']:g} "
                  f"(FID {q['student_fid']:.3f}, {q['student_images_per_second']:.0f} images/s): {q['speedup']:.1f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

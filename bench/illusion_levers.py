"""Issue 17's levers, each measured on its target sets: which change makes MNIST illusions read right both ways?

Every lever is one :class:`Settings` of ``bench/illusions.py`` (the commands' defaults otherwise), measured on
the target sets (flip 1/7 3/8 0/4 2/5, rotate_cw 1/7 7/1 3/8 4/7, hybrids 1/7 0/1 3/8) with the same noise
(seed k for image k), read by the shipped classifier; the file keeps every lever's pooled shares, rows,
the cost in UNet calls per step relative to the default, and the seconds it took.

    .venv/bin/python bench/illusion_levers.py --seeds 20      # writes bench/results/illusion-levers.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from illusions import Settings, measure, target_pairs  # noqa: E402
from fundiff.commands.arguments import Parser

MEAN = "mean"   # the levers were measured against the mean of views (the default before the balanced reduction)
LEVERS = {
    "default": Settings(reduction=MEAN),
    "balanced reduction (the default since)": Settings(reduction="balanced"),
    "alternate reduction (one view per step)": Settings(reduction="alternate"),
    "negative prompt: the other prompt": Settings(negative="other", reduction=MEAN),
    "resample the first 5 steps x2": Settings(resample_steps=5, resample_times=2, reduction=MEAN),
    "resample the first 10 steps x2": Settings(resample_steps=10, resample_times=2, reduction=MEAN),
    "resample the first 5 steps x4": Settings(resample_steps=5, resample_times=4, reduction=MEAN),
    "hybrid sigma 1.25 px": Settings(hybrid_sigma=1.25, reduction=MEAN),
    "hybrid sigma 1.75 px": Settings(hybrid_sigma=1.75, reduction=MEAN),
    "prompt B (view 2 / high-pass) at gamma 12": Settings(gamma_b=12.0, reduction=MEAN),
}


def main() -> None:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--only", nargs="*", help="run only the levers whose names contain one of these words")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "illusion-levers.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    anagrams, hybrids = target_pairs()
    done = json.loads(args.out.read_text()) if args.out.exists() else {"levers": {}}
    start = time.time()
    for name, settings in LEVERS.items():
        if args.only and not any(word in name for word in args.only):
            continue
        result = measure(settings, anagrams, hybrids, args.seeds, log=lambda line: None)
        done["levers"][name] = result
        print(f"{name:45s} " + "  ".join(f"{k.split(' ')[2]} {v['both_rate']:.2f}" for k, v in result["pooled"].items()
                                          if k.startswith("target")) + f"  ({result['seconds']} s)", flush=True)
        done["command"] = f"python bench/illusion_levers.py --seeds {args.seeds}"
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(done, indent=2) + "\n")
    print(f"wrote {args.out} in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()

"""What a real digit reads as under each anagram view: the symmetries an anagram pair has to work against.

Every MNIST test digit (10 000, the offline copy) is put through the view and read by the shipped classifier, as
bench/illusions.py reads an anagram's second view.  For each view and digit c the result gives the share of c's
images read as each digit after the view, and the digit it reads as most (its *image under the view*).  A digit
whose image is itself (0, 1, 3 and 8 under the vertical flip, each read so by 95% or more) shows through in the other
view of any pair that holds it, and 2/5, whose flips read as each other, is an easy pair (docs/illusions.md).

    .venv/bin/python bench/view_symmetry.py     # about 20 s; writes bench/results/view-symmetry.json
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from fundiff.classifier import load_classifier
from fundiff.commands.arguments import Parser
from fundiff.data.mnist import load_mnist
from fundiff.engine.views import get_view
from fundiff.errors import run_script
from fundiff.io import ensure_writable_file, write_json
from fundiff.pipelines.readings import reading_probabilities

VIEWS = ("flip", "mirror", "rotate_180", "rotate_cw", "negate")
ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def read_under(view_name: str, images: torch.Tensor, labels: torch.Tensor, classifier: torch.nn.Module,
               batch: int = 2000) -> dict:
    """Per digit: {"n", "reads_as": {digit: share, most first}, "image": the digit read most, "image_share"}.

    ``images`` (N, 1, 28, 28) in [0, 1]; the view acts on [-1, 1], as on a sample."""
    view = get_view(view_name)
    read = torch.cat([reading_probabilities(view.view(images[i:i + batch] * 2 - 1), classifier).argmax(1)
                      for i in range(0, len(images), batch)])
    out = {}
    for c in range(10):
        got = read[labels == c]
        shares = torch.bincount(got, minlength=10).double() / len(got)
        order = shares.argsort(descending=True, stable=True).tolist()
        out[str(c)] = {"n": len(got), "reads_as": {str(d): round(shares[d].item(), 4) for d in order if shares[d] > 0},
                       "image": str(order[0]), "image_share": round(shares[order[0]].item(), 4)}
    return out


def main() -> None:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--views", nargs="+", choices=VIEWS, default=list(VIEWS))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "view-symmetry.json")
    args = ap.parse_args()
    ensure_writable_file(args.out, "--out")   # before the work
    start = time.time()
    mnist = load_mnist()
    images = mnist.test_images.float().div(255).unsqueeze(1)
    classifier = load_classifier()
    result = {view: read_under(view, images, mnist.test_labels, classifier) for view in args.views}
    for view, digits in result.items():
        print(view + ":", "  ".join(f"{c}->{d['image']} {d['image_share']:.0%}" for c, d in digits.items()))
    out = args.out.resolve()
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    write_json(args.out, {"command": f"python bench/view_symmetry.py --views {' '.join(args.views)} --out {shown}",
                          "reader": "the shipped classifier (fundiff/assets/mnist_classifier.safetensors)",
                          "images": "MNIST test set, 10 000", "seconds": round(time.time() - start, 1),
                          "views": result})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    raise SystemExit(run_script(main, "view_symmetry.py"))

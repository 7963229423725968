"""Issue 17's lever from the literature that bench/illusion_levers.py lacks: classifier guidance of anagrams.

Dhariwal & Nichol (2021) guide a diffusion model with a classifier of *noisy* images p(y | x_t, t): the
prediction becomes eps' = eps - s sqrt(1 - abar_t) grad_x log p(y | x_t, t).  For an anagram with views
v_i and digits y_i the guide sums over the views, grad_x sum_i log p(y_i | v_i(x_t), t) (each v_i is a
permutation, so autograd maps the gradient back), and x0-hat is recomputed from eps' so that the loop's
x_t = sqrt(abar) x0 + sqrt(1 - abar) eps still holds.

The guide is a small time-conditioned CNN (fundiff.nn.NoisyMnistClassifier) trained on the embedded model's own
DDPM noise levels (uniform t in 0..999; 4 epochs, 4-10 minutes on 2 cores).  fundiff ships one, made with
``--guide src/fundiff/assets/mnist_noisy_classifier.safetensors`` (trained because the file was absent), which
the anagram's balanced reduction (``--balance``, the default on MNIST) also reads.  The reader stays the shipped clean
classifier (``fundiff.pipelines.readings``), a different network, so the rates are counted as everywhere
else; a rise that comes with cluttered strokes is partly the guide steering the reader, so look at the
images too (``--grid``).

    .venv/bin/python bench/classifier_guidance.py --scales 0,5,20,40 --seeds 20 \\
        --out bench/results/illusions-classifier-guidance.json --grid runs/classifier-guidance.png
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fundiff.backends import load_denoiser
from fundiff.classifier import SHIPPED_NOISY_CLASSIFIER, load_noisy_classifier
from fundiff.nn.noisy_classifier import NoisyMnistClassifier as NoisyClassifier
from fundiff.training.checkpoint import load_model, read_metadata, save_model
from fundiff.engine.denoiser import Prediction
from fundiff.engine.illusions import anagram_predict
from fundiff.engine.views import get_view
from fundiff.errors import run_script
from fundiff.io import write_json
from fundiff.metrics import wilson_interval
from fundiff.pipelines import AnagramPipeline
from fundiff.pipelines.readings import anagram_readings, reading_scores
from fundiff.commands.arguments import Parser

TARGETS = {"flip": [("1", "7"), ("3", "8"), ("0", "4"), ("2", "5")],
           "rotate_cw": [("1", "7"), ("7", "1"), ("3", "8"), ("4", "7")]}   # issue 17's target sets


def train_guide(den, epochs: int, seed: int) -> tuple[NoisyClassifier, dict]:
    """The guide, trained with cross-entropy on x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t uniform."""
    from fundiff.data.mnist import load_mnist, to_float

    torch.manual_seed(seed)
    mnist = load_mnist()
    images, labels = to_float(mnist.train_images) * 2 - 1, mnist.train_labels
    abar = den.schedule.alphas_cumprod
    net, batch = NoisyClassifier(), 256
    steps = epochs * (len(images) // batch)
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4)
    lr = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    start = time.time()
    for _ in range(epochs):
        order = torch.randperm(len(images))
        for i in range(len(images) // batch):
            idx = order[i * batch:(i + 1) * batch]
            t = torch.randint(0, 1000, (batch,))
            a = abar[t].view(-1, 1, 1, 1)
            x_t = a.sqrt() * images[idx] + (1 - a).sqrt() * torch.randn_like(images[idx])
            loss = F.cross_entropy(net(x_t, t), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            lr.step()
    net.eval().requires_grad_(False)
    test, test_labels = to_float(mnist.test_images) * 2 - 1, mnist.test_labels
    accuracy = {}
    with torch.no_grad():
        for t_val in (0, 300, 600, 800, 900, 990):
            t = torch.full((len(test),), t_val)
            a = abar[t].view(-1, 1, 1, 1)
            x_t = a.sqrt() * test + (1 - a).sqrt() * torch.randn_like(test)
            accuracy[str(t_val)] = round(float((net(x_t, t).argmax(1) == test_labels).float().mean()), 4)
    return net, {"epochs": epochs, "steps": steps, "seconds": round(time.time() - start, 1),
                 "test_accuracy_at_t": accuracy}


def guided_anagram(den, net: NoisyClassifier, prompts, views, labels, scale: float, batch: int, until: int = 0):
    """anagram_predict with eps' = eps - scale sqrt(1 - abar_t) grad_x sum_i log p(labels_i | v_i(x), t),
    guided only while t >= ``until`` (the later, low-noise steps are the model's own)."""
    base = anagram_predict(den, prompts, views, batch=batch)

    def predict(x: torch.Tensor, t: int) -> Prediction:
        pred = base(x, t)
        if not scale or t < until:
            return pred
        abar = den.schedule.alpha_bar(t).to(x)
        with torch.enable_grad():
            xg = x.detach().float().requires_grad_(True)
            tt = torch.full((len(x),), t)
            log_p = sum(F.log_softmax(net(v.view(xg), tt), 1)[:, y].sum() for v, y in zip(views, labels))
            grad, = torch.autograd.grad(log_p, xg)
        eps = pred.eps - scale * (1 - abar).sqrt() * grad
        return Prediction((x - (1 - abar).sqrt() * eps) / abar.sqrt(), eps, pred.variance)

    return predict


def main() -> None:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", default="0,5,20,40", help="classifier-guidance scales s (0: the default, unguided)")
    ap.add_argument("--seeds", type=int, default=20, help="images per pair (from one generator seeded 0)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--guide", type=Path, default=None,
                    help="the guide's weights: loaded if the file exists, else trained and saved there (default: the "
                         "shipped fundiff/assets/mnist_noisy_classifier.safetensors, made with --guide PATH)")
    ap.add_argument("--until", default="0", help="guide only while t >= this (comma-separated to compare several)")
    ap.add_argument("--balance", default="", help="view-balancing strengths beta to compare (comma-separated)")
    ap.add_argument("--second-reader", type=Path, default=None,
                    help="an mnist-classifier weights file (fundiff train classifier --seed 1 ...) that reads too")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "illusions-classifier-guidance.json")
    ap.add_argument("--grid", type=Path, default=None, help="write 8 images per pair at each scale to this PNG")
    args = ap.parse_args()
    try:
        scales = [float(s) for s in args.scales.split(",")]
    except ValueError:
        ap.error(f"--scales must be numbers separated by commas, got {args.scales!r}")
    try:
        untils = [int(u) for u in args.until.split(",")]
    except ValueError:
        ap.error(f"--until must be whole numbers separated by commas, got {args.until!r}")
    try:
        balances = [float(b) for b in args.balance.split(",") if b]
    except ValueError:
        ap.error(f"--balance must be numbers separated by commas, got {args.balance!r}")
    reader2 = None
    if args.second_reader is not None:
        from fundiff.classifier import load_classifier

        reader2 = load_classifier(args.second_reader)
    torch.set_num_threads(2)
    start = time.time()
    den = load_denoiser("mnist", device="cpu")
    if args.guide is None:
        net = load_noisy_classifier()
        guide = json.loads(read_metadata(SHIPPED_NOISY_CLASSIFIER)["fundiff.record"])
    elif args.guide.is_file():
        net = load_model(args.guide, expect_kind=NoisyClassifier.kind).requires_grad_(False)
        guide = json.loads(read_metadata(args.guide)["fundiff.record"])
    else:
        net, guide = train_guide(den, args.epochs, seed=0)
        args.guide.parent.mkdir(parents=True, exist_ok=True)
        save_model(args.guide, net, metadata={"record": guide})
    print(f"guide trained in {guide['seconds']} s: accuracy by t {guide['test_accuracy_at_t']}", flush=True)
    pipe = AnagramPipeline(den)
    ts = pipe.check_steps(None)
    results, rows = {}, []

    def measure(key: str, make_predict) -> None:
        """Both-readings-right rates over the target sets for one setting; ``make_predict(a, b, objs, labels, n)``."""
        res, row = {}, []
        for view, pairs in TARGETS.items():
            hits, hits2 = 0, 0
            for a, b in pairs:
                labels, objs = [int(a), int(b)], [get_view("identity"), get_view(view)]
                x = pipe.denoise_batches(args.seeds, None, ts, lambda part: make_predict(
                    a, b, objs, labels, part.stop - part.start), None, torch.Generator().manual_seed(0), None)
                readings = anagram_readings(x, objs)
                right, _ = reading_scores(readings, labels)
                hits += int(right.sum())
                res[f"{view} {a}/{b}"] = round(float(right.float().mean()), 4)
                if reader2 is not None:
                    hits2 += int(reading_scores(readings, labels, reader2)[0].sum())
                row += [((x[k] + 1) / 2).clamp(0, 1) for k in range(8)]
            n = args.seeds * len(pairs)
            low, high = wilson_interval(hits / n, n)
            res[view] = {"n": n, "both_right": hits, "both_rate": round(hits / n, 4),
                         "wilson95": [round(low, 4), round(high, 4)]}
            if reader2 is not None:
                res[view]["second_reader_rate"] = round(hits2 / n, 4)
        results[key] = res
        rows.append(row)
        second = "" if reader2 is None else (f" (second reader: flip {res['flip']['second_reader_rate']:.0%}, "
                                             f"rotate_cw {res['rotate_cw']['second_reader_rate']:.0%})")
        print(f"{key}: flip {res['flip']['both_rate']:.0%}, rotate_cw {res['rotate_cw']['both_rate']:.0%}"
              + second, flush=True)

    for scale in scales:
        for until in (untils if scale else [0]):
            measure(f"scale {scale:g}" + (f" until {until}" if until else ""),
                    lambda a, b, objs, labels, n: guided_anagram(den, net, [a, b], objs, labels, scale, n, until))
    for beta in balances:
        measure(f"balance {beta:g}", lambda a, b, objs, labels, n: anagram_predict(   # this guide as the reader
            den, [a, b], objs, batch=n, reduction="balanced", reader=net, labels=labels, balance=beta))
    if args.grid is not None:
        from fundiff.figures import image_grid

        args.grid.parent.mkdir(parents=True, exist_ok=True)
        image_grid([r[k:k + 8] for r in rows for k in range(0, len(r), 8)], args.grid, cell=0.8)
    summary = {"command": f"python bench/classifier_guidance.py --scales {args.scales} --seeds {args.seeds} "
                          f"--epochs {args.epochs} --until {args.until} --balance {args.balance}"
                          + (f" --second-reader {args.second_reader}" if reader2 is not None else ""),
               "reader": "the shipped classifier (fundiff.pipelines.readings)", "guide": guide,
               "seconds": round(time.time() - start, 1), "by_scale": results}
    write_json(args.out, summary)
    print(f"wrote {args.out} in {summary['seconds']} s")


if __name__ == "__main__":
    raise SystemExit(run_script(main, "classifier_guidance.py"))

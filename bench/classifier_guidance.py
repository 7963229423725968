"""Issue 17's lever from the literature that bench/illusion_levers.py lacks: classifier guidance of anagrams.

Dhariwal & Nichol (2021) guide a diffusion model with a classifier of *noisy* images p(y | x_t, t): the
prediction becomes eps' = eps - s sqrt(1 - abar_t) grad_x log p(y | x_t, t).  For an anagram with views
v_i and digits y_i the guide sums over the views, grad_x sum_i log p(y_i | v_i(x_t), t) (each v_i is a
permutation, so autograd maps the gradient back), and x0-hat is recomputed from eps' so that the loop's
x_t = sqrt(abar) x0 + sqrt(1 - abar) eps still holds.

The guide is a small time-conditioned CNN trained here on the embedded model's own DDPM noise levels
(uniform t in 0..999; 4 epochs, about 6 minutes on 2 cores).  The reader stays the shipped clean
classifier (``fundiff.pipelines.readings``), a different network, so the rates are counted as everywhere
else; a rise that comes with cluttered strokes is partly the guide steering the reader, so look at the
images too (``--grid``).

    .venv/bin/python bench/classifier_guidance.py --scales 0,5,20,40 --seeds 20 \\
        --out bench/results/illusions-classifier-guidance.json --grid runs/classifier-guidance.png
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from fundiff.backends import load_denoiser
from fundiff.engine.denoiser import Prediction
from fundiff.engine.illusions import anagram_predict
from fundiff.engine.views import get_view
from fundiff.metrics import wilson_interval
from fundiff.pipelines import AnagramPipeline
from fundiff.pipelines.readings import anagram_readings, reading_scores

TARGETS = {"flip": [("1", "7"), ("3", "8"), ("0", "4"), ("2", "5")],
           "rotate_cw": [("1", "7"), ("7", "1"), ("3", "8"), ("4", "7")]}   # issue 17's target sets


class NoisyClassifier(nn.Module):
    """p(y | x_t, t): four 3x3 convolutions (28 -> 14 -> 7 px) with GroupNorm, t entering as a FiLM scale and
    shift after the second; x_t in the model's [-1, 1] units, t in 0..999."""

    def __init__(self, width: int = 48):
        super().__init__()
        w = width
        self.time = nn.Sequential(nn.Linear(1, 64), nn.SiLU(), nn.Linear(64, 4 * w))
        self.convs = nn.ModuleList([nn.Conv2d(1, w, 3, padding=1), nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
                                    nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1)])
        self.norms = nn.ModuleList([nn.GroupNorm(8, c) for c in (w, 2 * w, 2 * w, 4 * w)])
        self.head = nn.Linear(4 * w, 10)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        scale, shift = self.time((t.float() / 1000).view(-1, 1)).chunk(2, 1)
        h = x
        for k, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            h = norm(conv(h))
            if k == 2:
                h = h * (1 + scale[..., None, None]) + shift[..., None, None]
            h = F.silu(h)
        return self.head(h.mean((2, 3)))


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


def guided_anagram(den, net: NoisyClassifier, prompts, views, labels, scale: float, batch: int):
    """anagram_predict with eps' = eps - scale sqrt(1 - abar_t) grad_x sum_i log p(labels_i | v_i(x), t)."""
    base = anagram_predict(den, prompts, views, batch=batch)

    def predict(x: torch.Tensor, t: int) -> Prediction:
        pred = base(x, t)
        if not scale:
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
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", default="0,5,20,40", help="classifier-guidance scales s (0: the default, unguided)")
    ap.add_argument("--seeds", type=int, default=20, help="images per pair (from one generator seeded 0)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "illusions-classifier-guidance.json")
    ap.add_argument("--grid", type=Path, default=None, help="write 8 images per pair at each scale to this PNG")
    args = ap.parse_args()
    try:
        scales = [float(s) for s in args.scales.split(",")]
    except ValueError:
        ap.error(f"--scales must be numbers separated by commas, got {args.scales!r}")
    torch.set_num_threads(2)
    start = time.time()
    den = load_denoiser("mnist", device="cpu")
    net, guide = train_guide(den, args.epochs, seed=0)
    print(f"guide trained in {guide['seconds']} s: accuracy by t {guide['test_accuracy_at_t']}", flush=True)
    pipe = AnagramPipeline(den)
    ts = pipe.check_steps(None)
    results, rows = {}, []
    for scale in scales:
        res, row = {}, []
        for view, pairs in TARGETS.items():
            hits = 0
            for a, b in pairs:
                labels, objs = [int(a), int(b)], [get_view("identity"), get_view(view)]
                x = pipe.denoise_batches(args.seeds, None, ts, lambda part: guided_anagram(
                    den, net, [a, b], objs, labels, scale, part.stop - part.start), None,
                    torch.Generator().manual_seed(0), None)
                right, _ = reading_scores(anagram_readings(x, objs), labels)
                hits += int(right.sum())
                res[f"{view} {a}/{b}"] = round(float(right.float().mean()), 4)
                row += [((x[k] + 1) / 2).clamp(0, 1) for k in range(8)]
            n = args.seeds * len(pairs)
            low, high = wilson_interval(hits / n, n)
            res[view] = {"n": n, "both_right": hits, "both_rate": round(hits / n, 4),
                         "wilson95": [round(low, 4), round(high, 4)]}
        results[f"{scale:g}"] = res
        rows.append(row)
        print(f"scale {scale:g}: flip {res['flip']['both_rate']:.0%}, rotate_cw {res['rotate_cw']['both_rate']:.0%}",
              flush=True)
    if args.grid is not None:
        from fundiff.figures import image_grid

        args.grid.parent.mkdir(parents=True, exist_ok=True)
        image_grid([r[k:k + 8] for r in rows for k in range(0, len(r), 8)], args.grid, cell=0.8)
    summary = {"command": f"python bench/classifier_guidance.py --scales {args.scales} --seeds {args.seeds} "
                          f"--epochs {args.epochs}",
               "reader": "the shipped classifier (fundiff.pipelines.readings)", "guide": guide,
               "seconds": round(time.time() - start, 1), "by_scale": results}
    args.out.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {args.out} in {summary['seconds']} s")


if __name__ == "__main__":
    main()

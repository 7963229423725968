"""Hybrids read by a reader trained on hybrid readings: is the 60% target out of reach, or is the reader?

Issue 17 reads a hybrid's two readings (``fundiff.pipelines.readings.hybrid_readings``: the low-pass from afar, the
high-pass's positive part, stretched, up close) with the shipped classifier, which was trained on clean digits.
``bench/hybrid_ceiling.py`` found that real test digits composed as low(A) + high(B) read right both ways only 30% of
the time that way, so the readings, not only the sampler, cap the rate.  This bench trains the shipped classifier's
architecture (``fundiff.nn.MnistClassifier``) on those readings of *training* digits composed the same way (the far
reading labelled A, the close one B), then reads with both readers:

- real *test* digits composed as low(A) + high(B): the ceiling under each reader;
- the control, low(A) + high(A') (two different test images of the digit A): a reader that invents B up close
  would score it, so its "both right" for (A, B) must stay near 0;
- the sampled hybrids at the commands' defaults, on exactly bench/illusions.py's noise (seeds ``--first-seed`` ...).

    .venv/bin/python bench/hybrid_reader.py --out bench/results/hybrid-reader.json
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from illusions import TARGETS, noise, step_seed   # noqa: E402  (bench/illusions.py: the same pairs and noise)

from fundiff.classifier import load_classifier   # noqa: E402
from fundiff.commands.arguments import Parser, nonneg_int, number, positive_int   # noqa: E402
from fundiff.data.mnist import load_mnist, to_float   # noqa: E402
from fundiff.engine.decompositions import get_decomposition   # noqa: E402
from fundiff.errors import run_script   # noqa: E402
from fundiff.io import write_json   # noqa: E402
from fundiff.metrics import wilson_interval   # noqa: E402
from fundiff.nn.classifier import MnistClassifier   # noqa: E402
from fundiff.pipelines import HybridPipeline   # noqa: E402
from fundiff.pipelines.readings import hybrid_readings, reading_probabilities, reading_scores   # noqa: E402
from fundiff.training.checkpoint import save_model   # noqa: E402


def compose(dec, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """low(A) + high(B), as the factorized sampler composes its predictions."""
    return dec.components(a)[0] + dec.components(b)[1]


def train_reader(images: torch.Tensor, labels: torch.Tensor, dec, epochs: int, seed: int, log=print) -> MnistClassifier:
    """MnistClassifier trained on both readings of low(A) + high(B), A a training image, B another of a different
    digit (Adam 1e-3, cosine to 1e-5, batch 256, each epoch a new pairing)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = MnistClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch, n = 256, len(images)
    total = epochs * ((n + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total, eta_min=1e-5)
    for epoch in range(epochs):
        order, partner = torch.randperm(n, generator=gen), torch.randperm(n, generator=gen)
        same = labels[order] == labels[partner]
        partner[same] = partner[same].roll(1)   # a few may still match: they teach "the same digit both ways"
        model.train()
        seen, loss_sum = 0, 0.0
        for i in range(0, n, batch):
            ia, ib = order[i:i + batch], partner[i:i + batch]
            far, close = hybrid_readings(compose(dec, images[ia], images[ib]), dec)
            x = (torch.cat([far, close]).clamp(-1, 1) + 1) / 2
            y = torch.cat([labels[ia], labels[ib]])
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            seen, loss_sum = seen + 1, loss_sum + loss.item()
        log(f"epoch {epoch + 1}/{epochs}: loss {loss_sum / seen:.4f}")
    return model.eval()


def rate(right: torch.Tensor) -> dict:
    k, n = int(right.sum()), len(right)
    low, high = wilson_interval(k / n, n)
    return {"n": n, "both_rate": round(k / n, 4), "wilson95": [round(low, 4), round(high, 4)]}


def main() -> None:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=positive_int, default=3)
    ap.add_argument("--num-train", type=number(int, 1, True, "a whole number in 1..60000", 60_000), default=60_000,
                    help="training images used (a smoke run takes few)")
    ap.add_argument("--pairs-per", type=positive_int, default=500, help="random (A, B) test-image pairs per digit pair")
    ap.add_argument("--seeds", type=positive_int, default=50, help="sampled hybrids per pair (bench/illusions.py's noise)")
    ap.add_argument("--first-seed", type=nonneg_int, default=0)
    ap.add_argument("--reader", type=Path, default=None, help="read with these weights (a --save-reader file): no training")
    ap.add_argument("--save-reader", type=Path, default=None,
                    help="also save the trained reader here (bench/illusions.py --hybrid-reader reads with it)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "hybrid-reader.json")
    args = ap.parse_args()
    start = time.time()
    mnist = load_mnist()
    dec = get_decomposition("hybrid", 28, 1)
    train_x = to_float(mnist.train_images[:args.num_train]) * 2 - 1
    train_y = mnist.train_labels[:args.num_train].long()
    test_x, test_y = to_float(mnist.test_images) * 2 - 1, mnist.test_labels.long()
    if args.reader is not None:
        reader = load_classifier(args.reader)
    else:
        reader = train_reader(train_x, train_y, dec, args.epochs, seed=0)
    trained = time.time() - start
    readers = {"shipped": load_classifier(), "hybrid_reader": reader}

    with torch.no_grad():
        far, close = hybrid_readings(test_x, dec)   # clean test digits: how each reader reads each band of one digit
        clean = {name: {band: round(float((reading_probabilities(x, clf).argmax(1) == test_y).float().mean()), 4)
                        for band, x in (("far", far), ("close", close))} for name, clf in readers.items()}
    gen = torch.Generator().manual_seed(1)
    pipe = HybridPipeline.from_pretrained("mnist")
    rows = []
    for a, b in TARGETS["hybrid"]:
        pool_a, pool_b = test_x[test_y == int(a)], test_x[test_y == int(b)]
        xa = pool_a[torch.randint(len(pool_a), (args.pairs_per,), generator=gen)]
        xa2 = pool_a[torch.randint(len(pool_a), (args.pairs_per,), generator=gen)]
        xb = pool_b[torch.randint(len(pool_b), (args.pairs_per,), generator=gen)]
        sampled = pipe([a, b], latents=noise(args.seeds, args.first_seed), num_images_per_prompt=args.seeds,
                       generator=torch.Generator().manual_seed(step_seed(args.first_seed)), output_type="pt",
                       batch_size=args.seeds).samples
        sets = {"real low(A) + high(B)": compose(dec, xa, xb), "control low(A) + high(A')": compose(dec, xa, xa2),
                "sampled (the defaults)": sampled}
        for what, images in sets.items():
            views = hybrid_readings(images, dec)
            for name, clf in readers.items():
                row = {"A": a, "B": b, "images": what, "reader": name,
                       **rate(reading_scores(views, [int(a), int(b)], clf)[0])}
                rows.append(row)
                print(f"{a}/{b} {what:28s} {name:14s} {row['both_rate']:.1%}", flush=True)
    pooled = {}
    for what in ("real low(A) + high(B)", "control low(A) + high(A')", "sampled (the defaults)"):
        for name in readers:
            chosen = [r for r in rows if r["images"] == what and r["reader"] == name]
            k, n = sum(round(r["both_rate"] * r["n"]) for r in chosen), sum(r["n"] for r in chosen)
            low, high = wilson_interval(k / n, n)
            pooled[f"{what}, {name}"] = {"n": n, "both_rate": round(k / n, 4), "wilson95": [round(low, 4), round(high, 4)]}
    command = (f"python bench/hybrid_reader.py --epochs {args.epochs} --num-train {args.num_train} --pairs-per "
               f"{args.pairs_per} --seeds {args.seeds} --first-seed {args.first_seed}"
               + (f" --reader {args.reader}" if args.reader else "")
               + (f" --save-reader {args.save_reader}" if args.save_reader and not args.reader else "") + f" --out {args.out}")
    write_json(args.out, {
        "command": command,
        "what": "issue 17's hybrid target set {1/7, 0/1, 3/8} read both ways by the shipped classifier and by one trained "
                "on the hybrid readings of training digits",
        "train_seconds": round(trained, 1), "seconds": round(time.time() - start, 1),
        "clean_test_digits_read_right": clean, "pooled": pooled, "rows": rows})
    if args.save_reader is not None and args.reader is None:   # last, so an interrupted run leaves nothing
        save_model(args.save_reader, reader, {
            "what": "a classifier of hybrid readings: MnistClassifier trained on the far and close readings of "
                    "low(A) + high(B) made from MNIST training digits (fundiff.pipelines.readings.hybrid_readings)",
            "command": command, "epochs": args.epochs, "num_train": args.num_train, "seed": 0,
            "train_seconds": round(trained, 1), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
            "clean_test_digits_read_right": clean["hybrid_reader"],
            "target_set_both_right": {k.split(",")[0]: v for k, v in pooled.items() if k.endswith("hybrid_reader")}})
    for key, value in pooled.items():
        print(f"{key}: {value['both_rate']:.1%} {value['wilson95']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    raise SystemExit(run_script(main, "hybrid_reader.py"))

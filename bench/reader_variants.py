"""Issue 17's reader-driven levers that were measured and not adopted, on bench/illusions.py's noise and counts.

The shipped anagram defaults read each view with the noise-aware classifier p(y | v_i(x_t), t) twice per step: to
weight the views (the balanced reduction) and to choose each view's negative prompt (rival guidance).  This script
swaps what the pipelines build per step for a variant and measures it exactly as ``bench/illusions.py`` does (same
starting noise per seed, same sampler noise, same reader), so the rates compare with that bench's:

* ``x0``      the balanced weights read x0-hat instead of x_t: w_i = softmax_i(-beta log p(y_i | v_i(x0-hat), 0)),
              x0-hat the mean of the views' mapped-back x0 predictions (the model's guess of the clean image);
* ``both``    the weights read both: log p(y_i | v_i(x_t), t) + log p(y_i | v_i(x0-hat), 0);
* ``wrong``   rival guidance only while a view is misread (its top class is not y_i), the null prompt otherwise;
* ``gamma``   view-dependent guidance: view i's CFG scale is gamma N w_i per image, the balanced weights (the view that
              reads worst is guided hardest; the mean scale stays gamma), with rival negatives unless ``--rival off``;
* ``hybrid``  hybrids guided away from their misreading: each component's negative prompt is the top class the clean
              classifier reads in that reading (from afar / up close) of the last step's x0-hat, when that is not
              its prompt (the null prompt otherwise, and at the first step);
* ``--reader FILE``  the shipped variant with another noise-aware classifier (``fundiff train noisy-classifier``).

    .venv/bin/python bench/reader_variants.py --variant x0 --balance 0.5 --seeds 50
    .venv/bin/python bench/reader_variants.py --variant hybrid --seeds 100 --first-seed 1000
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

import illusions as bench  # noqa: E402  (bench/illusions.py: the measurement)

import fundiff.pipelines.illusions as pipelines  # noqa: E402
from fundiff.classifier import load_classifier  # noqa: E402
from fundiff.engine import illusions as engine  # noqa: E402
from fundiff.engine.denoiser import Prediction, concat_conditions  # noqa: E402
from fundiff.errors import run_script  # noqa: E402
from fundiff.io import write_json  # noqa: E402
from fundiff.pipelines.readings import hybrid_readings  # noqa: E402
from fundiff.commands.arguments import Parser

VARIANTS = ("shipped", "x0", "both", "wrong", "gamma", "hybrid")
SHIPPED_ANAGRAM, SHIPPED_HYBRID = engine.anagram_predict, engine.hybrid_predict


def anagram_variant(variant: str, other_reader: torch.nn.Module | None):
    """An ``anagram_predict`` replacement for the pipeline: the shipped one but for ``variant``."""

    def build(den, prompts, views, batch=1, guidance_scale=7.0, negative_prompt=None, reduction="mean", reader=None,
              labels=None, balance=1.0, rival=False):
        reader = other_reader or reader
        if variant == "shipped" or reduction != "balanced":
            return SHIPPED_ANAGRAM(den, prompts, views, batch, guidance_scale, negative_prompt, reduction, reader, labels,
                                   balance, rival)
        run = engine._batched(den, prompts, batch, guidance_scale, negative_prompt, views=list(views))
        run_rival = engine._rival_batched(den, prompts, batch, guidance_scale, views)

        def predict(x: torch.Tensor, t: int) -> Prediction:
            seen = [v.view(x) for v in views]
            log_probs = engine.read_views(reader, seen, t)
            if variant == "gamma":
                w = engine.view_weights(log_probs, labels, balance)
                negatives = [[str(int(r)) for r in engine.rivals(lp, y)] if rival else [den.null_prompt] * len(x)
                             for lp, y in zip(log_probs, labels)]
                uncond = concat_conditions([den.view_condition(den.encode(neg), v) for neg, v in zip(negatives, views)])
                cond = concat_conditions([den.view_condition(den.encode([p] * len(x)), v) for p, v in zip(prompts, views)])
                scale = (float(guidance_scale) * len(views) * w).reshape(-1, 1, 1, 1)
                preds = engine._guide_groups(den, torch.cat(seen), t, uncond, cond, scale, len(views))
            elif variant == "wrong":
                negatives = [[str(int(r)) if int(top) != y else den.null_prompt for r, top in
                              zip(engine.rivals(lp, y), lp.argmax(1))] for lp, y in zip(log_probs, labels)]
                preds = run_rival(torch.cat(seen), t, negatives)
            else:
                preds = (run_rival(torch.cat(seen), t, [[str(int(r)) for r in engine.rivals(lp, y)]
                                                        for lp, y in zip(log_probs, labels)]) if rival
                         else run(torch.cat(seen), t))
            mapped = [p.map(v.inverse_view, lambda var, v=v: v.inverse_view(var, variance=True)) for v, p in zip(views, preds)]
            if variant in ("x0", "both"):
                guess = Prediction.mean(mapped).x0.clamp(-1, 1)
                read_x0 = engine.read_views(reader, [v.view(guess) for v in views], 0)
                log_probs = read_x0 if variant == "x0" else [a + b for a, b in zip(log_probs, read_x0)]
            return Prediction.weighted(mapped, engine.view_weights(log_probs, labels, balance).to(x))

        return predict

    return build


def hybrid_misread(den, prompts, dec, batch=1, guidance_scale=7.0, negative_prompt=None):
    """A ``hybrid_predict`` replacement: each component guided away from what its reading of the last x0-hat shows."""
    labels, clf = [int(p) for p in prompts], load_classifier()
    cond = den.encode([p for p in prompts for _ in range(batch)])
    last: dict[str, torch.Tensor] = {}

    def predict(x: torch.Tensor, t: int) -> Prediction:
        negatives = [den.null_prompt] * len(cond)
        if "x0" in last:
            negatives = []
            for reading, y in zip(hybrid_readings(last["x0"].clamp(-1, 1), dec), labels):
                with torch.no_grad():
                    log_p = torch.log_softmax(clf((reading + 1) / 2), 1)
                negatives += [str(int(r)) if int(top) != y else den.null_prompt
                              for r, top in zip(engine.rivals(log_p, y), log_p.argmax(1))]
        preds = den.predict_guided(torch.cat([x] * len(prompts)), t, cond, den.encode(negatives),
                                   guidance_scale).chunk(len(prompts))
        out = engine.compose_hybrid(preds, dec)
        last["x0"] = out.x0
        return out

    return predict


def main() -> None:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", choices=VARIANTS, default="shipped")
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--views", default="flip,rotate_cw", help="anagram views, comma-separated (their target pairs)")
    ap.add_argument("--reader", type=Path, default=None, help="another noise-aware classifier's weights file")
    bench.add_setting_flags(ap)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    settings = bench.settings_from(args)
    other = None
    if args.reader is not None:
        from fundiff.nn import NoisyMnistClassifier
        from fundiff.training import load_model

        other = load_model(args.reader, expect_kind=NoisyMnistClassifier.kind).requires_grad_(False).eval()
    if args.variant == "hybrid":
        pipelines.hybrid_predict = hybrid_misread
        anagrams, hybrids = {}, bench.TARGETS["hybrid"]
    else:
        pipelines.anagram_predict = anagram_variant(args.variant, other)
        try:
            anagrams, hybrids = {v: bench.TARGETS[v] for v in args.views.split(",")}, []
        except KeyError as exc:
            ap.error(f"--views: no target pairs for view {exc}")
    start = time.time()
    result = bench.measure(settings, anagrams, hybrids, args.seeds, log=lambda line: None, first_seed=args.first_seed)
    command = (f"python bench/reader_variants.py --variant {args.variant} --seeds {args.seeds} --first-seed "
               f"{args.first_seed} {settings.flags()}" + (f" --reader {args.reader}" if args.reader else ""))
    summary = {"command": command, **result, "seconds": round(time.time() - start, 1)}
    for name, pooled in result["pooled"].items():
        if pooled.get("pairs"):
            print(f"{name}: {pooled['both_rate']:.1%} (n {pooled['n']})")
    print("; ".join(f"{r.get('view', 'hybrid')} {r['A']}/{r['B']} {r['both_rate']:.0%}" for r in result["rows"]))
    if args.out is not None:
        write_json(args.out, summary)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    raise SystemExit(run_script(main, "reader_variants.py"))

"""Part A 1.8-1.9 as runs that write figures and records: visual anagrams (with their animation) and hybrids.

Each run calls its pipeline (:mod:`fundiff.pipelines.illusions`), optionally stage II
(:class:`~fundiff.pipelines.upsample.UpsamplePipeline`) with the same views or components, and lays
out the figure; ``fundiff anagram`` / ``fundiff hybrid`` and the report call these.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import torch

from fundiff.engine.animation import check_frames, crossfade_frame, ease_in_out, save_animation, view_frames
from fundiff.engine.correctors import DEFAULT as CORRECTOR
from fundiff.figures import image_grid
from fundiff.images import save_npz
from fundiff.io import ensure_writable_dir, write_json
from fundiff.pipelines.base import check_count, to_unit
from fundiff.errors import FundiffError
from fundiff.pipelines.illusions import AnagramPipeline, HybridPipeline
from fundiff.pipelines.natural_anagrams import natural_entry
from fundiff.pipelines.readings import (anagram_readings, check_readable, digit_labels, hybrid_readable, hybrid_reader,
                                        hybrid_reader_name, hybrid_readings, readable_digits, reading_probabilities,
                                        reading_scores)

ANIMATIONS = ("gif", "mp4")   # mp4 needs the optional extra fundiff[video] (imageio-ffmpeg)
# The MNIST illusions the report and the web UI show (prompt 1, prompt 2, view or kind); bench/illusions.py
# measures every pair (docs/illusions.md).
MNIST_ANAGRAMS = [("6", "9", "flip"), ("2", "5", "flip"), ("1", "7", "flip"), ("2", "6", "mirror"),
                  ("7", "1", "rotate_cw"), ("3", "8", "rotate_cw"), ("8", "3", "negate")]   # 2/6: rare flipped, common mirrored
MNIST_HYBRIDS = [("1", "7", "hybrid"), ("0", "1", "hybrid"), ("1", "7", "motion")]


def run_anagram(pipe: AnagramPipeline, out: str | os.PathLike, prompts: Sequence[str], *,
                views: Sequence[str] | None = None, num_inference_steps: int | None = None,
                guidance_scale: float = 7.0, num_images: int = 4, frames: int = 24, seed: int = 0,
                save_array: bool = False, callback: Callable | None = None, upsampler: Any = None,
                stage2_steps: int = 50, stage2_callback: Callable | None = None, animation: str = "gif",
                best_of: int = 1, measure: int = 0, measure_callback: Callable | None = None,
                reduction: str = "auto", rival: bool | None = None,
                corrector: dict[str, Any] | None = None) -> dict[str, Any]:
    """anagram.png (each image under every view), anagram.gif or .mp4 (``animation``: view 1 -> view 2), anagram.json;
    ``measure`` N > 0 (MNIST, digit prompts): N more images, no best-of, and the share read right every way
    (record ``measured``, see :func:`measured_rate`); ``corrector``: the pipeline's ``corrector_*`` arguments
    (default: its own)."""
    if animation not in ANIMATIONS:
        raise FundiffError(f"animation must be one of {', '.join(ANIMATIONS)}, got {animation!r}")
    check_frames(frames)
    prompts = list(prompts)
    _, objs, _, resolved = pipe.check_inputs(prompts, views, None, num_inference_steps, guidance_scale, num_images,
                                             "pt", None, callback, reduction)
    pipe.resolve_rival(rival, resolved, prompts, None)
    corrector = check_corrector(pipe, corrector)
    specs = list(views) if views is not None else ["identity", "flip"]
    pipe.check_best_of(best_of, prompts, num_images)
    digits = check_measure(pipe, prompts, measure)
    out = ensure_writable_dir(out)
    g = torch.Generator().manual_seed(seed)
    res = pipe(prompts, views=specs, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
               num_images_per_prompt=num_images, generator=g, output_type="pt", callback=callback, best_of=best_of,
               reduction=reduction, rival=rival, **corrector)
    img = res.samples
    # every model call before the first file: an interrupted run leaves nothing (the CLI says so)
    big = None if upsampler is None else upsampler(res, prompts, views=objs, num_inference_steps=stage2_steps,
                                                    guidance_scale=guidance_scale, generator=g, output_type="pt",
                                                    callback=stage2_callback).samples
    measured = measured_rate(digits, measure, seed, lambda n, gen: pipe(
        prompts, views=specs, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
        num_images_per_prompt=n, generator=gen, output_type="pt", callback=measure_callback, reduction=reduction,
        rival=rival, **corrector).samples,
        lambda x: anagram_readings(x, objs))
    rows = [[to_unit(v.view(img[k:k + 1])[0]) for v in objs] for k in range(num_images)]
    labels = [f"{s}\n{p!r}" for s, p in zip(specs, prompts)]
    image_grid(rows, out / "anagram.png", col_labels=labels, cell=1.8)
    if len(objs) >= 2:  # the transition from the picture under view 1 to the picture under view 2
        if objs[0].name == "identity":
            movie = view_frames(to_unit(img[0]), objs[1], frames)
        else:
            a, b = rows[0][0], rows[0][1]
            movie = [crossfade_frame(a, b, ease_in_out(k / (frames - 1))) for k in range(frames)]
        save_animation(movie, out / f"anagram.{animation}")
    if big is not None:
        image_grid([[to_unit(v.view(big[k:k + 1])[0]) for v in objs] for k in range(num_images)],
                   out / "anagram_256.png", col_labels=labels, cell=3.0)
    if save_array:
        save_npz(out / "anagram.npz", res.images, prompts=prompts, views=specs)
    record = {"backend": pipe.denoiser.name, "prompts": prompts, "views": specs, "guidance_scale": guidance_scale,
              "reduction": res.record["reduction"], **({"balance": res.record["balance"]} if "balance" in res.record else {}),
              "rival": res.record["rival"], "corrector": res.record["corrector"], "seed": seed, "num_images": num_images, "animation": f"anagram.{animation}" if len(objs) >= 2 else None,
              **_best_of_record(res.record), **_readings_record(pipe, prompts, lambda: anagram_readings(img, objs)),
              **_natural_record(readable_digits(pipe, prompts), objs), **measured}
    write_json(out / "anagram.json", record)
    return record


def fork_text(record: dict) -> str:
    """Where a hybrid forked, from its record (``fork_t``, ``composed_steps``, ``forked_at_t``); '' when it did not
    fork (``fork_t`` None: composed to the end, the study's hybrid)."""
    if record.get("fork_t") is None:
        return ""
    composed, at = record["composed_steps"], record["forked_at_t"]
    if at is None:
        return f"Fork at t {record['fork_t']}: below the last step, so every step composed the prompts' predictions."
    if composed == 0:
        return (f"Forked at t {at}, the first step (at or below t {record['fork_t']}): nothing composed, each prompt "
                "makes its own band from the start.")
    return (f"Forked at t {at} (the first step at or below t {record['fork_t']}), after {composed} composed steps: "
            "from there each prompt finishes its own band.")


def run_hybrid(pipe: HybridPipeline, out: str | os.PathLike, prompts: Sequence[str], *, kind: str = "hybrid",
               reference: Any = None, reference_name: str | None = None, num_inference_steps: int | None = None,
               guidance_scale: float = 7.0, num_images: int = 4, seed: int = 0, save_array: bool = False,
               callback: Callable | None = None, upsampler: Any = None, stage2_steps: int = 50,
               stage2_callback: Callable | None = None, best_of: int = 1, measure: int = 0,
               measure_callback: Callable | None = None, corrector: dict[str, Any] | None = None,
               fork_t: int | str | None = "auto") -> dict[str, Any]:
    """hybrid.png (each image and its components) and hybrid.json; ``measure`` and ``corrector`` as for
    :func:`run_anagram` (two components, no reference: a hybrid is read from afar and up close); ``fork_t`` as for
    :class:`HybridPipeline`."""
    prompts = list(prompts)
    _, dec, _, _ = pipe.check_inputs(prompts, kind, reference, None, num_inference_steps, guidance_scale, num_images,
                                     "pt", None, callback)
    pipe.check_best_of(best_of, prompts, num_images, kind)
    corrector = check_corrector(pipe, corrector)
    pipe.resolve_fork(fork_t, kind, reference)
    digits = check_measure(pipe, prompts, measure)
    if digits is not None:   # a hybrid is read from afar and up close: two components, made from the prompts alone
        check_readable(dec)
        if reference is not None:
            raise FundiffError("measure reads hybrids made from the prompts alone: drop the reference")
    out = ensure_writable_dir(out)
    g = torch.Generator().manual_seed(seed)
    res = pipe(prompts, kind, reference=reference, num_inference_steps=num_inference_steps,
               guidance_scale=guidance_scale, num_images_per_prompt=num_images, generator=g, output_type="pt",
               callback=callback, best_of=best_of, fork_t=fork_t, **corrector)
    # every model call before the first file: an interrupted run leaves nothing (the CLI says so)
    big = None if upsampler is None else upsampler(res, prompts, kind=kind, num_inference_steps=stage2_steps,
                                                    guidance_scale=guidance_scale, generator=g, output_type="pt",
                                                    callback=stage2_callback).samples
    measured = measured_rate(digits, measure, seed, lambda n, gen: pipe(
        prompts, kind, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
        num_images_per_prompt=n, generator=gen, output_type="pt", callback=measure_callback, fork_t=fork_t,
        **corrector).samples, lambda x: hybrid_readings(x, dec), hybrid_reader(dec) if digits is not None else None)
    parts = res.extras["components"]
    rows = [[res.images[k]] + [to_unit(p[k]) for p in parts] for k in range(num_images)]  # high bands around grey
    image_grid(rows, out / "hybrid.png", col_labels=["image"] + [f"{name}: {p!r}" for name, p in zip(dec.names, prompts)],
               cell=1.8, title=f"{kind} image, CFG {guidance_scale:g}")
    if big is not None:
        from fundiff.engine.decompositions import get_decomposition

        bands = get_decomposition(kind, big.shape[-1], big.shape[1]).components(big)
        image_grid([[to_unit(big[k])] + [to_unit(p[k]) for p in bands] for k in range(num_images)],
                   out / "hybrid_256.png", col_labels=["image"] + list(dec.names), cell=3.0)
    if save_array:
        save_npz(out / "hybrid.npz", res.images, prompts=prompts)
    readable = hybrid_readable(pipe, prompts, dec, reference)
    record = {"backend": pipe.denoiser.name, "kind": kind, "prompts": prompts, "components": list(dec.names),
              "reference": reference_name, "guidance_scale": guidance_scale, "corrector": res.record["corrector"],
              "fork_t": res.record["fork_t"], **{k: res.record[k] for k in ("composed_steps", "forked_at_t")
                                                  if k in res.record},
              "seed": seed, "num_images": num_images,
              **({"reader": hybrid_reader_name(dec)} if readable else {}),
              **_best_of_record(res.record),
              **_readings_record(pipe, prompts, lambda: hybrid_readings(res.samples, dec) if readable else None,
                                 hybrid_reader(dec) if readable else None),
              **measured}
    write_json(out / "hybrid.json", record)
    return record


def check_corrector(pipe, corrector: dict[str, Any] | None) -> dict[str, Any]:
    """The pipeline's ``corrector_*`` arguments (default: none given), checked before any file is written."""
    corrector = dict(corrector or {})
    unknown = set(corrector) - {"corrector_steps", "corrector_snr", "corrector_t_min"}
    if unknown:
        raise FundiffError(f"corrector takes corrector_steps, corrector_snr and corrector_t_min, got {sorted(unknown)}")
    pipe.resolve_corrector(corrector.get("corrector_steps"), corrector.get("corrector_snr", CORRECTOR.snr),
                           corrector.get("corrector_t_min", CORRECTOR.t_min), False)
    return corrector


def check_measure(pipe, prompts: Sequence[str], measure: int) -> list[int] | None:
    """The prompts' digits when ``measure`` > 0 (None for 0): a measurement needs the MNIST model and digit prompts."""
    check_count(measure, "measure", 0)
    return digit_labels(prompts, "measure", pipe.denoiser.name) if measure else None


def measured_rate(labels: list[int] | None, n: int, seed: int, sample: Callable[[int, torch.Generator], torch.Tensor],
                  readings: Callable[[torch.Tensor], list[torch.Tensor]],
                  classifier: torch.nn.Module | None = None) -> dict[str, Any]:
    """The model's rate, as ``bench/illusions.py`` measures it: ``sample(n, generator)`` makes n images (seed's
    generator, no best-of), read like the shown ones (by the shipped classifier, or ``classifier``); k of them read
    right every way, share k / n with its Wilson 95% interval.  {} when there is nothing to measure (``labels``
    None)."""
    from fundiff.metrics import wilson_interval

    if labels is None:
        return {}
    views = readings(sample(n, torch.Generator().manual_seed(seed)))
    each = [reading_scores([v], [label], classifier)[0]   # one classifier pass per reading
            for v, label in zip(views, labels)]
    per_reading = [float(ok.float().mean()) for ok in each]
    k = int(torch.stack(each).all(0).sum())
    low, high = wilson_interval(k / n, n)
    return {"measured": {"n": n, "seed": seed, "best_of": 1, "both_right": k, "both_rate": round(k / n, 4),
                         "wilson95": [round(low, 4), round(high, 4)], "reading_rates": [round(r, 4) for r in per_reading]}}


def rate_text(measured: dict[str, Any], of: str = "") -> str:
    """'k of n[ OF] (x%, Wilson 95% lo-hi)' for a ``measured`` record (:func:`measured_rate`)."""
    low, high = measured["wilson95"]
    return (f"{measured['both_right']} of {measured['n']}{' ' + of if of else ''} ({measured['both_rate']:.0%}, "
            f"Wilson 95% {low:.0%}-{high:.0%})")


def read_as(views: Sequence[torch.Tensor], classifier: torch.nn.Module | None = None) -> list[list[tuple[int, float]]]:
    """Per image, what the shipped classifier (or ``classifier``) reads in each reading: (top digit, its probability)."""
    tops = [reading_probabilities(v, classifier).max(1) for v in views]
    return [[(int(top.indices[k]), float(top.values[k])) for top in tops] for k in range(len(views[0]))]


def _readings_record(pipe, prompts: Sequence[str], readings: Callable,
                     classifier: torch.nn.Module | None = None) -> dict[str, Any]:
    """On the MNIST backend with a digit per prompt: how many of the shown images the shipped classifier (or
    ``classifier``) reads right in every reading (fundiff.pipelines.readings, as bench/illusions.py counts them)."""
    labels = readable_digits(pipe, prompts)
    views = None if labels is None else readings()
    if views is None:
        return {}
    right, _ = reading_scores(views, labels, classifier)
    return {"read_right_every_way": int(right.sum()), "read_of": len(right)}


def _natural_record(digits: list[int] | None, views: Sequence[Any]) -> dict[str, Any]:
    """How many training digits already are this anagram, and the pair's measured rate (MNIST digit pairs under a
    view fundiff.pipelines.natural_anagrams has), as ``natural_anagrams``."""
    entry = natural_entry(digits, views)
    return {} if entry is None else {"natural_anagrams": entry}


def _best_of_record(record: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's account of best-of-N, when it ran (its images are chosen, so their rates are not the model's)."""
    return {k: v for k, v in record.items() if k.startswith("best_of")}

"""``fundiff evaluate``: measured quality of a generative MNIST model.

For a class model it samples ``n_per_class`` images of every digit at each guidance scale and
reports, per scale: class accuracy (the shipped classifier reads the intended digit) and
classifier-FID against the test split; then the accuracy at the study's gamma = 5, the scale with the
lowest FID, and the real-data floor of the FID at the same number of images (see
:mod:`fundiff.metrics`).  A time-only model gets the unconditional FID.  The evaluations per image
(NFE, a guided step counting both passes) and the sampling time go with every number.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import torch

from fundiff.data import MNIST
from fundiff.generate import Generator, evaluations_per_image, generate, validate_sampling
from fundiff.metrics import check_per_class, class_accuracy, classifier_fid, real_data_floor

DEFAULT_SCALES = (1.0, 1.5, 2.0, 3.0, 5.0)
STUDY_SCALE = 5.0


def evaluate_generator(
    gen: Generator,
    mnist: MNIST,
    *,
    n_per_class: int = 100,
    sampler: str | None = None,
    steps: int | None = None,
    guidance_scales: Sequence[float] = DEFAULT_SCALES,
    seed: int = 0,
    log=None,
) -> dict[str, Any]:
    """Quality numbers of ``gen``; see the module docstring."""
    check_per_class(n_per_class, "--num-per-class")
    sampler = sampler or gen.default_sampler
    steps = steps or gen.default_steps
    for g in guidance_scales:
        validate_sampling(gen, sampler, steps, g)
    n = 10 * n_per_class
    result: dict[str, Any] = {
        "model": gen.source, "sampler": sampler, "steps": steps, "num_images": n, "seed": seed,
        "precision": gen.precision, "fid_floor": real_data_floor(mnist, n, seed=seed),
    }
    if not gen.is_class_conditional:
        t0 = time.monotonic()
        images, _ = generate(gen, None, n, num_inference_steps=steps, sampler=sampler,
                             generator=torch.Generator().manual_seed(seed))
        result.update(fid=classifier_fid(images, mnist), sampling_seconds=round(time.monotonic() - t0, 2),
                      nfe_per_image=evaluations_per_image(gen, sampler, steps, 1.0, False))
        return result
    labels = torch.arange(10).repeat_interleave(n_per_class)
    per_scale = []
    for g in guidance_scales:
        t0 = time.monotonic()
        images, _ = generate(gen, labels, num_inference_steps=steps, sampler=sampler, guidance_scale=g,
                             generator=torch.Generator().manual_seed(seed))
        row = {
            "guidance_scale": g,
            "accuracy": class_accuracy(images, labels),
            "fid": classifier_fid(images, mnist),
            "nfe_per_image": evaluations_per_image(gen, sampler, steps, g, True),
            "sampling_seconds": round(time.monotonic() - t0, 2),
        }
        per_scale.append(row)
        if log:
            log(f"  gamma={g:g}: accuracy {row['accuracy']:.4f}, classifier-FID {row['fid']:.3f} "
                f"(floor {result['fid_floor']:.3f}), {row['nfe_per_image']} NFE/image, {row['sampling_seconds']} s")
    best = min(per_scale, key=lambda r: r["fid"])
    result["per_guidance_scale"] = per_scale
    result["best_fid"] = {"guidance_scale": best["guidance_scale"], "fid": best["fid"],
                          "fid_over_floor": best["fid"] / result["fid_floor"]}
    at_study = [r for r in per_scale if r["guidance_scale"] == STUDY_SCALE]
    if at_study:
        result["accuracy_at_gamma5"] = at_study[0]["accuracy"]
    return result

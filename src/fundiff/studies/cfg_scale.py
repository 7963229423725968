"""Part A 1.6's guidance scale, swept: what gamma buys in class accuracy and costs in diversity (key ``cfg_scale``).

For each gamma the same noise (one seed) is denoised by the strided CFG loop of
:class:`~fundiff.pipelines.Text2ImagePipeline`, ``num_per_class`` images of every digit, and measured
with the shipped classifier: the share read as their prompt, and the classifier-FID against the MNIST
test set (lower = closer to real digits in the classifier's feature space, a diversity number: guidance
that collapses each class to a few prototypes raises it), next to the real-data floor at the same n.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import torch

from fundiff.figures import image_grid, line_plot
from fundiff.io import ensure_writable_dir, write_json
from fundiff.pipelines.text2image import Text2ImagePipeline

STUDY_SCALES = (1.0, 2.0, 3.0, 5.0, 7.0, 10.0)


def run_cfg_scale(pipe: Text2ImagePipeline, out: str | os.PathLike, mnist: Any, *, scales: Sequence[float] = STUDY_SCALES,
                  num_per_class: int = 10, num_inference_steps: int | None = None, seed: int = 0,
                  callback: Callable | None = None) -> dict[str, Any]:
    """cfg_scale.png (a row of digits per gamma), cfg_scale_curve.png (accuracy and classifier-FID vs gamma), .json."""
    from fundiff.metrics import class_accuracy, classifier_fid, real_data_floor

    digits = [str(d) for d in range(10)]
    for g in scales:   # every input checked before the output folder exists
        pipe.check_inputs(digits, None, num_inference_steps, g, num_per_class, "pt", None, callback)
    out = ensure_writable_dir(out)
    wanted = torch.arange(10).repeat_interleave(num_per_class)
    n = 10 * num_per_class
    rows, runs = [], []
    for g in scales:
        res = pipe(digits, num_inference_steps=num_inference_steps, guidance_scale=g, num_images_per_prompt=num_per_class,
                   generator=torch.Generator().manual_seed(seed), output_type="pt", callback=callback)
        images = res.images
        runs.append({"guidance_scale": g, "accuracy": class_accuracy(images, wanted),
                     "classifier_fid": classifier_fid(images, mnist),
                     "model_evaluations_per_image": res.record["model_evaluations_per_image"]})
        rows.append([images[d * num_per_class] for d in range(10)])
    floor = real_data_floor(mnist, n, seed=seed)
    image_grid(rows, out / "cfg_scale.png", row_labels=[f"γ = {g:g}" for g in scales], col_labels=digits, cell=0.9,
               title="the same noise at each guidance scale (first image of each digit)")
    line_plot([r["guidance_scale"] for r in runs], {"accuracy (share read as the prompt)": [r["accuracy"] for r in runs]},
              out / "cfg_scale_accuracy.png", xlabel="guidance scale γ", ylabel="accuracy", title="accuracy vs γ")
    line_plot([r["guidance_scale"] for r in runs], {"classifier-FID": [r["classifier_fid"] for r in runs],
                                                    f"real-data floor (n = {n})": [floor] * len(runs)},
              out / "cfg_scale_fid.png", xlabel="guidance scale γ", ylabel="classifier-FID", title="classifier-FID vs γ")
    results = {"backend": pipe.denoiser.name, "num_images": n, "seed": seed, "fid_floor": floor,
               "timesteps": res.record["timesteps"], "per_guidance_scale": runs}
    write_json(out / "cfg_scale.json", results)
    return results

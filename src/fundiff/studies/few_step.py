"""Teacher against distilled student at a budget of UNet evaluations per image (report key ``distilled``).

Each setting samples ``num_per_class`` images of every digit from the same seed through
:class:`~fundiff.pipelines.SamplePipeline` and is measured the same way: class accuracy (the shipped
classifier reads the prompted digit), classifier-FID against the MNIST test split (with the real-data floor
at the same n), and images per second of the sampling alone, all in this run.  The evaluations per image
are counted by a forward hook on the UNet while the images are made, not computed from the settings (a
batched guided call of 2N images counts 2 per image).

The teacher pays two evaluations per guided step; its best setting at each budget (measured on the embedded
model, n = 1000): 1 = one unguided Euler step, 2 = one guided Euler step, 4 = two guided Euler steps,
8 = two guided midpoint steps, 28 = its default, seven guided midpoint steps.  The student takes one
evaluation per step whatever the guidance.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from fundiff.figures import image_grid, save_figure
from fundiff.io import ensure_writable_dir, write_json
from fundiff.metrics import class_accuracy, classifier_fid, real_data_floor
from fundiff.pipelines.sample import SamplePipeline

TEACHER_GUIDANCE = 2.0   # the embedded teacher's best classifier-FID (fundiff evaluate: 0.91 at n = 1000)


@dataclass(frozen=True)
class Setting:
    model: str               # "teacher" or "student"
    sampler: str
    steps: int
    guidance_scale: float
    evaluations: int         # what it should cost per image; the hook's count is checked against it


TEACHER_SETTINGS = (Setting("teacher", "euler", 1, 1.0, 1), Setting("teacher", "euler", 1, TEACHER_GUIDANCE, 2),
                    Setting("teacher", "euler", 2, TEACHER_GUIDANCE, 4), Setting("teacher", "midpoint", 2, TEACHER_GUIDANCE, 8),
                    Setting("teacher", "midpoint", 7, TEACHER_GUIDANCE, 28))


def student_settings(student: SamplePipeline, steps: Sequence[int] = (1, 2, 4, 8)) -> tuple[Setting, ...]:
    g = student.model.default_guidance_scale
    return tuple(Setting("student", "shortcut", k, g, k) for k in steps)


@contextmanager
def count_evaluations(model: torch.nn.Module) -> Iterator[list[int]]:
    """counter[0] = images the UNet ``model`` has been run on (a batch of B adds B) inside the block; the
    slices a large CPU batch is split into (the UNet calls itself on each) are not counted twice."""
    counter, depth = [0], [0]

    def enter(module, args):
        depth[0] += 1

    def leave(module, args, out):
        depth[0] -= 1
        if depth[0] == 0:
            counter[0] += out.shape[0]

    handles = [model.register_forward_pre_hook(enter), model.register_forward_hook(leave)]
    try:
        yield counter
    finally:
        for h in handles:
            h.remove()


def measure(pipe: SamplePipeline, setting: Setting, mnist: Any, num_per_class: int, seed: int) -> tuple[dict, torch.Tensor]:
    """One setting's numbers and its images (10 * num_per_class, ordered by digit)."""
    digits = [str(d) for d in range(10)]
    with count_evaluations(pipe.model.model) as counted:
        t0 = time.perf_counter()
        out = pipe(digits, num_images_per_prompt=num_per_class, num_inference_steps=setting.steps, sampler=setting.sampler,
                   guidance_scale=setting.guidance_scale, generator=torch.Generator().manual_seed(seed), output_type="pt")
        seconds = time.perf_counter() - t0
    images, labels = out.images, out.extras["labels"]
    n = len(images)
    row = {"model": setting.model, "sampler": setting.sampler, "steps": setting.steps,
           "guidance_scale": setting.guidance_scale, "evaluations_per_image": counted[0] / n,
           "expected_evaluations": setting.evaluations, "accuracy": class_accuracy(images, labels),
           "fid": classifier_fid(images, mnist), "images_per_second": n / seconds, "seconds": round(seconds, 3)}
    return row, images


def run_few_step(teacher: SamplePipeline, student: SamplePipeline, out: str | os.PathLike, mnist: Any, *,
                 num_per_class: int = 100, seed: int = 0, log=None) -> dict[str, Any]:
    """few_step.json, few_step.png (a row of digits per setting) and few_step_quality.png (FID and accuracy vs
    evaluations per image); returns the json's content."""
    out = ensure_writable_dir(out)
    settings = [(teacher, s) for s in TEACHER_SETTINGS] + [(student, s) for s in student_settings(student)]
    rows, pictures = [], []
    for pipe, setting in settings:
        row, images = measure(pipe, setting, mnist, num_per_class, seed)
        rows.append(row)
        pictures.append([images[d * num_per_class] for d in range(10)])
        if log:
            log(f"  {row['model']} {row['sampler']} x {row['steps']} (γ {row['guidance_scale']:g}): "
                f"{row['evaluations_per_image']:g} evaluations/image, accuracy {row['accuracy']:.3f}, "
                f"classifier-FID {row['fid']:.3f}, {row['images_per_second']:.0f} images/s")
    floor = real_data_floor(mnist, 10 * num_per_class, seed=seed)
    labels = [f"{r['model']} {r['evaluations_per_image']:g}" for r in rows]
    image_grid(pictures, out / "few_step.png", row_labels=labels, col_labels=[str(d) for d in range(10)], cell=0.8,
               title="the same noise: teacher and student at N evaluations per image")
    _quality_plot(rows, floor, out / "few_step_quality.png")
    result = {"num_images": 10 * num_per_class, "seed": seed, "fid_floor": floor, "teacher": teacher.model.source,
              "student": student.model.source, "rows": rows}
    write_json(out / "few_step.json", result)
    return result


def _quality_plot(rows: list[dict], floor: float, path) -> None:
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, marker in (("teacher", "o"), ("student", "s")):
        mine = [r for r in rows if r["model"] == name]
        x = [r["evaluations_per_image"] for r in mine]
        a.plot(x, [r["fid"] for r in mine], marker=marker, label=name)
        b.plot(x, [r["accuracy"] for r in mine], marker=marker, label=name)
    a.axhline(floor, color="0.6", ls=":", label="real-data floor")
    a.axhline(2.5 * floor, color="0.8", ls="--", label="2.5 x floor")
    a.set_yscale("log")
    for ax, what in ((a, "classifier-FID"), (b, "class accuracy")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("UNet evaluations per image")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle("quality against evaluations per image")
    fig.tight_layout()
    save_figure(fig, path)

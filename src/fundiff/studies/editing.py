"""Part A 1.7-1.7.3 as runs that write figures and records: SDEdit sweeps and inpainting.

Each run calls its pipeline (:mod:`fundiff.pipelines.editing`) and lays out the study's figure;
``fundiff edit`` / ``fundiff inpaint`` and the report call these.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import torch

from fundiff.figures import image_grid
from fundiff.images import save_npz
from fundiff.io import ensure_writable_dir, write_json
from fundiff.pipelines.base import to_unit
from fundiff.pipelines.editing import InpaintPipeline, SDEditPipeline


def run_edit(pipe: SDEditPipeline, out: str | os.PathLike, *, image: Any = None, image_name: str | None = None,
             prompt: str | None = None, i_start: Sequence[int] | None = None, strength: Sequence[float] | None = None,
             num_inference_steps: int | None = None, guidance_scale: float = 7.0, num_images: int = 1, seed: int = 0,
             save_array: bool = False, callback: Callable | None = None) -> dict[str, Any]:
    """An SDEdit sweep: one column per start (default the study's i_start 1, 3, 5, 7, 10, 20), sdedit.png + edit.json."""
    prompt = pipe.denoiser.default_prompt if prompt is None else prompt
    # validate everything (and resolve the starts) before the output folder exists
    _, ts, starts, _ = pipe.check_inputs(prompt, image, strength, i_start, None, num_inference_steps, guidance_scale,
                                         num_images, "pt", None, callback)
    out = ensure_writable_dir(out)
    g = torch.Generator().manual_seed(seed)
    results, shown = [], None
    for i in starts:
        res = pipe(prompt, image, i_start=i, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                   num_images_per_prompt=num_images, generator=g, output_type="pt", callback=callback)
        results.append(res.images)
        shown = to_unit(res.extras["input"][0])
    rows = [[shown] + [r[k] for r in results] for k in range(num_images)]
    ran = _what_ran(res.record)
    cfg = "no CFG (the null prompt)" if "guidance" in ran else f"CFG {guidance_scale:g}"
    image_grid(rows, out / "sdedit.png", col_labels=["input"] + [f"i_start {i}\nt = {ts[i]}" for i in starts],
               title=f"SDEdit toward {prompt!r}, {cfg}", cell=1.6)
    if save_array:
        save_npz(out / "sdedit.npz", torch.cat(results), i_start=[i for i in starts for _ in range(num_images)])
    record = {"backend": pipe.denoiser.name, "prompt": prompt, "i_start": starts, "t_start": [ts[i] for i in starts],
              "guidance_scale": guidance_scale, "seed": seed, "image": image_name or "default", **ran}
    write_json(out / "edit.json", record)
    return record


def run_inpaint(pipe: InpaintPipeline, out: str | os.PathLike, *, image: Any = None, mask: torch.Tensor | None = None,
                prompt: str | None = None, num_inference_steps: int | None = None, guidance_scale: float = 7.0,
                num_images: int = 3, jump_length: int = 1, jump_n_sample: int = 1, i_start: int = 0, seed: int = 0,
                save_array: bool = False, callback: Callable | None = None) -> dict[str, Any]:
    """Inpainting (replacement, or RePaint with jumps): inpaint.png (input, mask, kept part, results) + inpaint.json."""
    prompt = pipe.denoiser.default_prompt if prompt is None else prompt
    pipe.check_inputs(prompt, image, mask, None, num_inference_steps, guidance_scale, num_images, jump_length,
                      jump_n_sample, i_start, "pt", None, callback)
    out = ensure_writable_dir(out)
    res = pipe(prompt, image, mask, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
               num_images_per_prompt=num_images, jump_length=jump_length, jump_n_sample=jump_n_sample, i_start=i_start,
               generator=torch.Generator().manual_seed(seed), output_type="pt", callback=callback)
    shown, m = to_unit(res.extras["input"][0]), res.extras["mask"][0]
    masked = shown * (1 - m) + m * 0.5
    image_grid([[shown, m, masked] + list(res.images)], out / "inpaint.png",
               col_labels=["input", "mask (white = new)", "kept"] + [f"result {k + 1}" for k in range(num_images)],
               title=f"inpainting toward {prompt!r}" + (f", RePaint j={jump_length} r={jump_n_sample}"
                                                         if jump_n_sample > 1 else ""), cell=1.6)
    if save_array:
        save_npz(out / "inpaint.npz", res.images, mask=res.extras["mask"].numpy())
    record = {"backend": pipe.denoiser.name, "prompt": prompt, "model_calls": res.record["model_calls"],
              "jump_length": jump_length, "jump_n_sample": jump_n_sample,
              "mask_fraction": res.record["mask_fraction"], "seed": seed, **_what_ran(res.record)}
    write_json(out / "inpaint.json", record)
    return record


def _what_ran(record: dict[str, Any]) -> dict[str, Any]:
    """The pipeline record's account of the loop: guidance passes (and why one), the final step, thresholding."""
    return {k: record[k] for k in ("passes_per_step", "guidance", "final_step", "thresholding") if k in record}

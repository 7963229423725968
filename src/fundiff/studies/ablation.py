"""The study's flow recipe, one factor at a time (report key ``ablation``).

Reference 2.3 asks whether the ExponentialLR scheduler can go.  fundiff's ``noschedule`` recipe drops
it but also lowers the lr 10x and adds an EMA of the weights, so its numbers cannot name the factor
that earns them.  This study trains the study's class-conditioned flow recipe (lr 1e-2, ExponentialLR
to 0.1x, no EMA, t ~ U[0, 1]) and variants that each change exactly one thing, all with the same
data, budget (images seen), seed, width and sampler, and measures each on the same noise:

* class accuracy (the shipped classifier) with its Wilson 95% interval,
* classifier-FID with the real-data floor at the same n,
* the last epoch's mean training loss (not comparable across t-samplings: they weight t differently).

Each variant is a ``fundiff study flow --recipe study`` run with one flag changed; the rows are its
results.  A difference smaller than the intervals (or than the FID's spread between seeds, not
measured here) is not a finding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from fundiff.figures import image_grid, line_plot
from fundiff.io import ensure_writable_dir, write_json
from fundiff.metrics import wilson_interval


@dataclass(frozen=True)
class Variant:
    name: str
    change: str                                                  # what differs from the study's recipe, in words
    train: dict[str, Any] = field(default_factory=dict)          # TrainConfig overrides
    objective: dict[str, Any] = field(default_factory=dict)      # objective overrides
    flags: tuple[str, ...] = ()                                  # the same change as `fundiff study flow` flags


VARIANTS = (
    Variant("study", "the study's recipe: lr 1e-2, ExponentialLR to 0.1x, no EMA, t ~ U[0, 1]"),
    Variant("no-scheduler", "only the scheduler removed (constant lr 1e-2)", {"lr_schedule": "none"},
            flags=("--lr-schedule", "none")),
    Variant("lr-1e-3", "only the lr changed: 1e-3 (still with the scheduler)", {"lr": 1e-3}, flags=("--lr", "0.001")),
    Variant("ema", "only an EMA of the weights added (decay 0.999, warm-up (1+n)/(10+n))", {"ema_decay": 0.999},
            flags=("--ema-decay", "0.999")),
    Variant("logit-normal", "only the t-sampling changed: logit-normal(0, 1) instead of U[0, 1]",
            objective={"time_sampling": "logit-normal"}, flags=("--time-sampling", "logit-normal")),
    Variant("noschedule", "fundiff's noschedule recipe, all at once: no scheduler, lr 1e-3, EMA 0.999",
            {"lr_schedule": "none", "lr": 1e-3, "ema_decay": 0.999},
            flags=("--lr-schedule", "none", "--lr", "0.001", "--ema-decay", "0.999")),
)


def variant_names() -> list[str]:
    return [v.name for v in VARIANTS]


def run_ablation(out: str | os.PathLike, mnist: Any, *, variants: Sequence[str] | None = None, num_hiddens: int = 16,
                 num_train: int = 2000, epochs: int = 10, sampler: str = "midpoint", steps: int = 7,
                 guidance_scale: float = 5.0, eval_per_class: int = 20, seed: int = 0, resume: bool = True,
                 progress: bool = False, log=print) -> dict[str, Any]:
    """Train every variant into ``out/<name>/``; write ablation.json, ablation.png (each variant's samples of
    0..9 on the same noise) and ablation_loss.png (mean loss per epoch)."""
    from fundiff.generate import Generator, generate
    from fundiff.studies.flow import FlowStudyConfig, run_flow_study
    from fundiff.training import load_model

    chosen = [v for v in VARIANTS if variants is None or v.name in variants]
    out = ensure_writable_dir(out)
    rows, images, losses = [], [], {}
    for v in chosen:
        log(f"ablation: {v.name} ({v.change})")
        config = FlowStudyConfig(recipe="study", overrides={"num_train": num_train, "epochs": epochs, **v.train},
                                 objective_options=dict(v.objective), num_hiddens=num_hiddens, show_epochs=(epochs,),
                                 sampler=sampler, steps=steps, guidance_scale=guidance_scale,
                                 eval_per_class=eval_per_class, animation=False, seed=seed)
        r = run_flow_study(out / v.name, config, mnist, resume=resume, progress=progress, log=log)
        last = r["per_epoch"][-1]
        n = r["eval_images"]
        rows.append({"name": v.name, "change": v.change, "flags": list(v.flags), "accuracy": last["accuracy"],
                     "accuracy_wilson95": [round(x, 4) for x in wilson_interval(last["accuracy"], n)],
                     "classifier_fid": last["classifier_fid"], "final_epoch_loss": r["epoch_loss"][-1],
                     "train_seconds": r["train_seconds"]})
        losses[v.name] = r["epoch_loss"]
        model = load_model(out / v.name / "flow-class-run" / "model.safetensors")
        gen = Generator.for_sampling(model, r["objective"], v.name)
        shown, _ = generate(gen, torch.arange(10), num_inference_steps=steps, sampler=sampler,
                            guidance_scale=guidance_scale, generator=torch.Generator().manual_seed(seed))
        images.append(list(shown))
    image_grid(images, out / "ablation.png", row_labels=[v.name for v in chosen], col_labels=[str(d) for d in range(10)],
               cell=0.9, title=f"one factor at a time: the same noise, {sampler} {steps} steps, CFG γ = {guidance_scale:g}")
    line_plot(list(range(1, epochs + 1)), losses, out / "ablation_loss.png", xlabel="epoch", ylabel="mean training loss",
              title="training loss per epoch (t-samplings weight t differently)")
    results = {"num_hiddens": num_hiddens, "num_train": num_train, "epochs": epochs, "sampler": sampler, "steps": steps,
               "guidance_scale": guidance_scale, "eval_images": 10 * eval_per_class, "seed": seed,
               "fid_floor": r["fid_floor"], "rows": rows}
    write_json(out / "ablation.json", results)
    return results

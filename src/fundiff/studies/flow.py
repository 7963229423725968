"""Study part 2 (reference sections 2.2-2.3): time- and class-conditioned generative training.

Trains a flow (or DDPM) model with a recipe and writes the study's deliverables:

* the training-loss curve;
* samples after chosen epochs (the study: 1, 5 and 10), 4 of each digit for a class model with
  guidance gamma = 5, 40 unconditional samples for a time-only model, all from the same noise;
* an animation of the sampling trajectory of the final model;
* ``results.json``: per shown epoch, class accuracy (class models) and classifier-FID with the
  real-data floor at the same number of images.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fundiff.data import MNIST
from fundiff.errors import FundiffError
from fundiff.figures import image_grid, loss_curve
from fundiff.generate import Generator, generate
from fundiff.images import save_gif, save_grid
from fundiff.io import ensure_writable_dir, write_json
from fundiff.metrics import class_accuracy, classifier_fid, real_data_floor
from fundiff.recipes import build_generative_unet, build_objective, get_recipe
from fundiff.training import TrainConfig, load_model, resolve_device, train


@dataclass
class FlowStudyConfig:
    objective: str = "flow"  # or "ddpm"
    conditioning: str = "class"
    recipe: str = "study"
    overrides: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields
    num_hiddens: int | None = None
    show_epochs: tuple[int, ...] = (1, 5, 10)
    steps: int | None = None  # sampler steps (default: the study's, 50 Euler / 300 DDPM for time, 300 for class)
    sampler: str | None = None
    guidance_scale: float = 5.0
    eval_per_class: int = 20
    seed: int = 0


def _study_sampler(objective: str, conditioning: str) -> tuple[str, int]:
    """The study's own samplers: Euler with 50 (time) / 300 (class) steps; ancestral DDPM with T=300."""
    if objective == "flow":
        return "euler", 50 if conditioning == "time" else 300
    return "ddpm", 300


def run_flow_study(out_dir: str | Path, config: FlowStudyConfig, mnist: MNIST, *, resume: bool = False,
                   progress: bool = True, log=print) -> dict[str, Any]:
    recipe = get_recipe(config.objective, config.recipe)
    train_config: TrainConfig = dataclasses.replace(recipe.train, **config.overrides, seed=config.seed, progress=progress)
    train_config.validate()
    if any(not 1 <= e <= train_config.epochs for e in config.show_epochs):
        raise FundiffError(f"--show-epochs must lie in 1..{train_config.epochs}, got {list(config.show_epochs)}")
    out = ensure_writable_dir(out_dir)
    device = resolve_device(train_config.device)
    started = time.monotonic()
    objective = build_objective(config.objective, recipe.objective)
    model = build_generative_unet(config.objective, config.conditioning, config.num_hiddens or recipe.num_hiddens)
    tag = f"{config.objective}-{config.conditioning}"
    run = train(model, objective, mnist.train_images, mnist.train_labels, train_config, out / f"{tag}-run",
                resume=resume, data_source=mnist.source, desc=f"{config.objective} ({config.conditioning})")
    loss_curve(run.losses, out / f"{tag}_loss.png", steps_per_epoch=run.steps_per_epoch,
               title=f"{config.objective} matching, {config.conditioning}-conditioned UNet: training loss"
               if config.objective == "flow" else f"DDPM, {config.conditioning}-conditioned UNet: training loss")
    default_sampler, default_steps = _study_sampler(config.objective, config.conditioning)
    sampler, steps = config.sampler or default_sampler, config.steps or default_steps
    is_class = config.conditioning == "class"
    labels = torch.arange(10).repeat_interleave(4) if is_class else None
    eval_labels = torch.arange(10).repeat_interleave(config.eval_per_class)
    n_eval = len(eval_labels)
    floor = real_data_floor(mnist, n_eval, seed=config.seed)
    shown = []
    rows = []
    for epoch in config.show_epochs:
        path = run.run_dir / "weights" / f"epoch-{epoch:03d}.safetensors"
        gen = Generator.for_sampling(load_model(path, device), objective.config(), str(path))
        g = torch.Generator().manual_seed(config.seed)
        images, _ = generate(gen, labels, 40, num_inference_steps=steps, sampler=sampler,
                             guidance_scale=config.guidance_scale, generator=g)
        save_grid(images, out / f"{tag}_epoch{epoch}.png", nrow=4 if is_class else 10, scale=3)
        rows.append(list(images[:: 4 if is_class else 4][:10]))
        g = torch.Generator().manual_seed(config.seed + 1)
        ev, _ = generate(gen, eval_labels if is_class else None, n_eval, num_inference_steps=steps, sampler=sampler,
                         guidance_scale=config.guidance_scale, generator=g)
        entry = {"epoch": epoch, "classifier_fid": classifier_fid(ev, mnist)}
        if is_class:
            entry["accuracy"] = class_accuracy(ev, eval_labels)
        shown.append(entry)
        log(f"  epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in entry.items() if k != "epoch"))
    image_grid(rows, out / f"{tag}_epochs.png", row_labels=[f"epoch {e}" for e in config.show_epochs],
               title=f"samples after each epoch ({sampler}, {steps} steps" + (f", CFG γ={config.guidance_scale:g})" if is_class else ")"))
    final = Generator.for_sampling(run.model, objective.config(), str(run.run_dir / "model.safetensors"))
    g = torch.Generator().manual_seed(config.seed)
    _, traj = generate(final, labels[::4] if is_class else None, 10, num_inference_steps=steps, sampler=sampler,
                       guidance_scale=config.guidance_scale, generator=g, keep_trajectory=True)
    stride = max(1, len(traj) // 60)
    save_gif(traj[::stride] + ([traj[-1]] if (len(traj) - 1) % stride else []), out / f"{tag}_sampling.gif", nrow=10, scale=3)
    results = {
        "study": f"{config.objective}, {config.conditioning}-conditioned (reference section 2.2-2.3)",
        "recipe": config.recipe, "train": train_config.to_dict(), "num_hiddens": model.config()["num_hiddens"],
        "data": mnist.source, "device": str(device), "sampler": sampler, "steps": steps,
        "guidance_scale": config.guidance_scale if is_class else None,
        "train_seconds": round(run.wall_seconds, 1), "images_per_second": round(run.images_per_second, 1),
        "epoch_loss": run.epoch_losses, "eval_images": n_eval, "fid_floor": floor, "per_epoch": shown,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    write_json(out / f"{tag}_results.json", results)
    return results

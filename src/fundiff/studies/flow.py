"""Study part 2 (reference sections 2.1-2.3 of 2025, 2.2 of 2024): time- and class-conditioned generative training.

Trains a flow (or DDPM) model with a recipe and writes the study's deliverables:

* the training-loss curve;
* samples after chosen epochs (the study: 1, 5 and 10), 4 of each digit for a class model with
  guidance gamma = 5, 40 unconditional samples for a time-only model, with the study's own sampler
  (Euler, 50 steps time-only / 300 class; ancestral DDPM with T = 300);
* optionally the same images from a second sampler on the same noise (``compare``: fundiff's fast
  sampler, or DDIM for DDPM), so the two are measured side by side;
* an animation of the sampling trajectory of the final model;
* ``results.json``: per shown epoch and sampler, class accuracy (class models), classifier-FID with the
  real-data floor at the same number of images, UNet evaluations per image and seconds.

The numbers are measured on ``10 * eval_per_class`` images per epoch and sampler (each digit
``eval_per_class`` times for a class model); the grid shows 4 of each digit (40 images) out of them.
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
from fundiff.generate import Generator, evaluations_per_image, generate, validate_sampling
from fundiff.images import save_gif, save_grid
from fundiff.io import ensure_writable_dir, write_json
from fundiff.metrics import check_per_class, class_accuracy, classifier_fid, real_data_floor
from fundiff.recipes import build_generative_unet, build_objective, get_recipe
from fundiff.training import TrainConfig, load_model, resolve_device, train

GRID_PER_CLASS = 4   # the study's figure: 4 instances of each digit (40 images)


@dataclass
class FlowStudyConfig:
    objective: str = "flow"  # or "ddpm"
    conditioning: str = "class"
    recipe: str = "study"
    overrides: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields
    objective_options: dict[str, Any] = field(default_factory=dict)  # p_uncond, time_sampling (over the recipe's)
    num_hiddens: int | None = None
    show_epochs: tuple[int, ...] = (1, 5, 10)
    steps: int | None = None  # sampler steps (default: the study's, 50 Euler / 300 DDPM for time, 300 for class)
    sampler: str | None = None
    compare: tuple[str, int] | None = None  # a second (sampler, steps) on the same noise, e.g. ("midpoint", 7)
    guidance_scale: float = 5.0
    eval_per_class: int = 20
    animation: bool = True
    seed: int = 0


def study_sampler(objective: str, conditioning: str) -> tuple[str, int]:
    """The study's own samplers: Euler with 50 (time) / 300 (class) steps; ancestral DDPM with T=300."""
    if objective == "flow":
        return "euler", 50 if conditioning == "time" else 300
    return "ddpm", 300


def _grid_rows(n_eval: int, per_class: int, is_class: bool) -> torch.Tensor:
    """Indices of the 40 grid images among the measured ones: the first 4 of each digit (class) or the first 40."""
    if is_class:
        return torch.tensor([d * per_class + i for d in range(10) for i in range(min(GRID_PER_CLASS, per_class))])
    return torch.arange(min(n_eval, 10 * GRID_PER_CLASS))


def _sample(gen: Generator, labels, n: int, sampler: str, steps: int, config: FlowStudyConfig, is_class: bool) -> dict:
    g = torch.Generator().manual_seed(config.seed + 1)
    t0 = time.monotonic()
    images, _ = generate(gen, labels, n, num_inference_steps=steps, sampler=sampler,
                         guidance_scale=config.guidance_scale, generator=g)
    seconds = time.monotonic() - t0
    return {"images": images, "sampler": sampler, "steps": steps, "seconds": round(seconds, 2),
            "model_evaluations_per_image": evaluations_per_image(gen, sampler, steps, config.guidance_scale, is_class)}


def run_flow_study(out_dir: str | Path, config: FlowStudyConfig, mnist: MNIST, *, resume: bool = False,
                   progress: bool = True, log=print) -> dict[str, Any]:
    recipe = get_recipe(config.objective, config.recipe)
    train_config: TrainConfig = dataclasses.replace(recipe.train, **config.overrides, seed=config.seed, progress=progress)
    train_config.validate()
    if any(not 1 <= e <= train_config.epochs for e in config.show_epochs):
        raise FundiffError(f"--show-epochs must lie in 1..{train_config.epochs}, got {list(config.show_epochs)}")
    objective = build_objective(config.objective, {**recipe.objective, **config.objective_options})
    default_sampler, default_steps = study_sampler(config.objective, config.conditioning)
    samplers = [(config.sampler or default_sampler, config.steps or default_steps)] + ([config.compare] if config.compare else [])
    model = build_generative_unet(config.objective, config.conditioning, config.num_hiddens or recipe.num_hiddens)
    check_per_class(config.eval_per_class, "--eval-per-class")   # like a bad sampler: refused before training
    for sampler, steps in samplers:   # bad sampler or steps: refused before anything is trained or written
        validate_sampling(Generator(model, objective.config(), ""), sampler, steps, config.guidance_scale)
    out = ensure_writable_dir(out_dir)
    device = resolve_device(train_config.device)
    started = time.monotonic()
    tag = f"{config.objective}-{config.conditioning}"
    run = train(model, objective, mnist.train_images, mnist.train_labels, train_config, out / f"{tag}-run",
                resume=resume, data_source=mnist.source, desc=f"{config.objective} ({config.conditioning})")
    loss_curve(run.losses, out / f"{tag}_loss.png", steps_per_epoch=run.steps_per_epoch,
               title=f"{config.objective} matching, {config.conditioning}-conditioned UNet: training loss"
               if config.objective == "flow" else f"DDPM, {config.conditioning}-conditioned UNet: training loss")
    is_class = config.conditioning == "class"
    per = config.eval_per_class
    eval_labels = torch.arange(10).repeat_interleave(per) if is_class else None
    n_eval = 10 * per
    grid = _grid_rows(n_eval, per, is_class)
    g_per = min(GRID_PER_CLASS, per)
    floor = real_data_floor(mnist, n_eval, seed=config.seed)
    measured: dict[tuple[str, int], list[dict]] = {s: [] for s in samplers}
    rows: dict[tuple[str, int], list] = {s: [] for s in samplers}
    for epoch in config.show_epochs:
        path = run.run_dir / "weights" / f"epoch-{epoch:03d}.safetensors"
        gen = Generator.for_sampling(load_model(path, device), objective.config(), str(path), train_config.precision)
        for k, (sampler, steps) in enumerate(samplers):
            s = _sample(gen, eval_labels, n_eval, sampler, steps, config, is_class)
            images = s.pop("images")
            shown = images[grid]
            name = f"{tag}_epoch{epoch}.png" if k == 0 else f"{tag}_epoch{epoch}_{sampler}{steps}.png"
            save_grid(shown, out / name, nrow=g_per if is_class else 10, scale=3)
            rows[(sampler, steps)].append(list(shown[::g_per][:10]) if is_class else list(shown[:10]))
            entry = {"epoch": epoch, **s, "classifier_fid": classifier_fid(images, mnist)}
            if is_class:
                entry["accuracy"] = class_accuracy(images, eval_labels)
            measured[(sampler, steps)].append(entry)
            log(f"  epoch {epoch}, {sampler} {steps} steps: " + ", ".join(
                f"{k} {v:.4f}" for k, v in entry.items() if k in ("classifier_fid", "accuracy", "seconds")))
    for k, (sampler, steps) in enumerate(samplers):
        name = f"{tag}_epochs.png" if k == 0 else f"{tag}_epochs_{sampler}{steps}.png"
        image_grid(rows[(sampler, steps)], out / name, row_labels=[f"epoch {e}" for e in config.show_epochs],
                   title=f"samples after each epoch ({sampler}, {steps} steps"
                   + (f", CFG γ={config.guidance_scale:g})" if is_class else ")"))
    if config.animation:
        final = Generator.for_sampling(run.model, objective.config(), str(run.run_dir / "model.safetensors"),
                                       train_config.precision)
        sampler, steps = samplers[0]
        g = torch.Generator().manual_seed(config.seed)
        _, traj = generate(final, torch.arange(10) if is_class else None, 10, num_inference_steps=steps, sampler=sampler,
                           guidance_scale=config.guidance_scale, generator=g, keep_trajectory=True)
        stride = max(1, len(traj) // 60)
        save_gif(traj[::stride] + ([traj[-1]] if (len(traj) - 1) % stride else []), out / f"{tag}_sampling.gif",
                 nrow=10, scale=3)
    (sampler, steps), compare = samplers[0], samplers[1:]
    results = {
        "study": f"{config.objective}, {config.conditioning}-conditioned (reference section 2.1-2.3)",
        "recipe": config.recipe, "train": train_config.to_dict(), "objective": objective.config(),
        "num_hiddens": model.config()["num_hiddens"], "data": mnist.source, "device": str(device),
        "sampler": sampler, "steps": steps, "guidance_scale": config.guidance_scale if is_class else None,
        "train_seconds": round(run.wall_seconds, 1), "images_per_second": round(run.images_per_second, 1),
        "epoch_loss": run.epoch_losses, "eval_images": n_eval, "fid_floor": floor, "per_epoch": measured[samplers[0]],
        "compare": [{"sampler": s, "steps": n, "per_epoch": measured[(s, n)]} for s, n in compare],
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    write_json(out / f"{tag}_results.json", results)
    return results

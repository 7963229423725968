"""``fundiff distill``: a few-step student of a class-conditional flow model (see :mod:`fundiff.distillation`)."""

from __future__ import annotations

import dataclasses

from fundiff.commands.arguments import (add_command, add_data_args, add_run_args, nonneg_float, out_path,
                                        positive_float, positive_int)
from fundiff.commands.common import load_data, report_training, training_flags


def register(sub) -> None:
    from fundiff.distillation import DISTILL_DEFAULTS as T
    from fundiff.distillation import DistillOptions

    o = DistillOptions()
    p = add_command(sub, "distill", cmd_distill, "distil a flow model into a few-step student (1-32 UNet passes per image)",
                    "Train a shortcut student of a class-conditional flow teacher (default: the embedded model): guidance "
                    "becomes an input (one UNet pass per step instead of two) and the step size too, so it samples in "
                    "1, 2, 4, ... steps. Resumable (--resume) and checkpointed like every training run; the result works "
                    "with fundiff sample/evaluate --model DIR.", add_run_args, add_data_args)
    p.add_argument("--out", required=True, type=out_path, help="run folder")
    p.add_argument("--teacher", default="mnist", help="'mnist' (embedded, default) or a class-conditional flow model file/folder")
    g = p.add_argument_group("hyperparameters")
    g.add_argument("--epochs", type=positive_int, default=None, help=f"passes over the training images (default {T.epochs})")
    g.add_argument("--batch-size", type=positive_int, default=None, help=f"images per step (default {T.batch_size})")
    g.add_argument("--lr", type=positive_float, default=None, help=f"AdamW learning rate (default {T.lr:g})")
    g.add_argument("--lr-schedule", choices=["none", "exponential", "cosine"], default=None,
                   help=f"learning-rate decay (default {T.lr_schedule}; cosine: per step to lr x --lr-final-factor)")
    g.add_argument("--lr-final-factor", type=positive_float, default=None, metavar="F",
                   help=f"final lr / lr of the schedule (default {T.lr_final_factor})")
    g.add_argument("--ema-decay", type=nonneg_float, default=None, help=f"EMA of the weights (default {T.ema_decay})")
    g.add_argument("--num-train", type=positive_int, default=None, metavar="N", help="train on a seeded subset of N images")
    g.add_argument("--max-train-minutes", type=positive_float, default=None, help="stop after this much training time")
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the student (same math, faster)")
    g.add_argument("--levels", type=positive_int, default=o.levels,
                   help=f"step sizes 1, 1/2, ..., 2^-(levels-1) (default {o.levels}: 1 to {2 ** (o.levels - 1)} steps)")
    g.add_argument("--consistency-fraction", type=positive_float, default=o.consistency_fraction,
                   help=f"share of each batch on self-consistency targets (default {o.consistency_fraction})")
    g.add_argument("--guidance-min", type=nonneg_float, default=o.guidance_min, help=f"default {o.guidance_min:g}")
    g.add_argument("--guidance-max", type=nonneg_float, default=o.guidance_max,
                   help=f"guidance scales the student learns (default {o.guidance_min:g}..{o.guidance_max:g})")
    g.add_argument("--p-uncond", type=nonneg_float, default=o.p_uncond, help=f"class dropout (default {o.p_uncond})")
    g.add_argument("--default-steps", type=positive_int, default=o.default_steps,
                   help=f"the student's sampling default, stored with it (default {o.default_steps})")
    g.add_argument("--default-guidance-scale", type=nonneg_float, default=o.default_guidance_scale,
                   help=f"the student's default gamma, stored with it (default {o.default_guidance_scale:g})")


def cmd_distill(args) -> int:
    from fundiff.distillation import DISTILL_DEFAULTS, DistillOptions, distill

    hp = training_flags(args, ["epochs", "batch_size", "lr", "lr_schedule", "lr_final_factor", "ema_decay", "num_train",
                               "seed", "device", "precision", "checkpoint_interval", "compile"])
    config = dataclasses.replace(DISTILL_DEFAULTS, **hp, progress=not args.no_progress)
    options = DistillOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(DistillOptions)})
    mnist = load_data(args)
    result = distill(args.out, mnist, teacher=args.teacher, config=config, options=options, resume=args.resume)
    report_training(result)
    return 0

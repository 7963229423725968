"""Editing and illusion commands: ``fundiff edit | inpaint | anagram | hybrid`` (reference 1.7-1.9).

Same backends and options as the Part A commands (``--model mnist`` offline by default, ``--model
deepfloyd --weights PATH``); each parses its flags, loads its pipeline and calls the study run that
writes its figure(s), a JSON record and, with ``--save-array``, the raw images.
"""

from __future__ import annotations

from fundiff.commands.arguments import (PROMPT_HELP, add_command, add_flags, add_generation_args, add_upsample_args,
                                        corrector_snr, corrector_steps, fork_t, nonneg_int, positive_float, positive_int,
                                        timestep_int)
from fundiff.commands.common import load_pipeline, progress_bar
from fundiff.engine.correctors import DEFAULT as CORRECTOR
from fundiff.engine.decompositions import decomposition_names
from fundiff.engine.illusions import FORK_T
from fundiff.engine.views import view_names
from fundiff.errors import FundiffError


def register(sub) -> None:
    p = add_command(sub, "edit", cmd_edit, "SDEdit (1.7): noise an image to timesteps[i_start] and denoise it with a prompt",
                    "Image-to-image: for each --i-start (default the study's sweep 1 3 5 7 10 20) noise --image to "
                    "timesteps[i_start] and denoise with CFG toward --prompt; or --strength as in diffusers. Writes sdedit.png.")
    add_flags(p, "image", "prompt")
    p.add_argument("--i-start", type=int, nargs="+", default=None, help="start indices (default 1 3 5 7 10 20)")
    p.add_argument("--strength", type=positive_float, nargs="+", default=None, help="diffusers-style strength(s) in (0, 1] instead of --i-start")
    add_generation_args(p, "runs/edit")

    p = add_command(sub, "inpaint", cmd_inpaint, "inpainting (1.7.2): generate inside a mask, keep the rest",
                    "Replacement inpainting (the kept region re-noised to the current level every step) or RePaint "
                    "resampling (--jump-length, --jump-n-sample). Mask: an image file, white = generate (--invert-mask "
                    "flips it), or --rect ROWS,COLS in 64-px coordinates (the study's Campanile mask is 2:20,24:42).")
    add_flags(p, "image")
    p.add_argument("--prompt", default=None, help=PROMPT_HELP)
    p.add_argument("--mask", default=None, help="mask image: white = generate, black = keep")
    p.add_argument("--rect", default=None, help="rectangle 'r0:r1,c0:c1' in 64-px coordinates (default 2:20,24:42)")
    p.add_argument("--invert-mask", action="store_true", help="generate where the mask is black instead")
    p.add_argument("--jump-length", type=positive_int, default=1, help="RePaint: steps per jump back up (default 1: no resampling)")
    p.add_argument("--jump-n-sample", type=positive_int, default=1, help="RePaint: passes over each segment (default 1; RePaint uses 10)")
    p.add_argument("--i-start", type=int, default=0, help="start at timesteps[i_start] from the noised input (default 0: pure noise)")
    add_generation_args(p, "runs/inpaint")

    p = add_command(sub, "anagram", cmd_anagram, "visual anagrams (1.8): one image, a different prompt under each view",
                    "N prompts and N views: each step combines v_i^-1(eps_cfg(v_i(x), p_i)), as the mean or (the default "
                    "on MNIST) weighted toward the view a noise-aware classifier reads worst. Views: " + ", ".join(view_specs())
                    + ". Writes anagram.png (every view side by side) and anagram.gif.")
    add_illusion_args(p, "runs/anagram", "one per view, in order")
    p.add_argument("--view", action="append", default=None, help="one per prompt (default: identity, then flip)")
    p.add_argument("--frames", type=positive_int, default=24, help="frames of the transition animation (default 24)")
    p.add_argument("--animation", choices=["gif", "mp4"], default="gif",
                   help="the animation's format (default gif; mp4 needs pip install 'fundiff[video]')")
    p.add_argument("--reduction", choices=["auto", "mean", "alternate", "balanced"], default="auto",
                   help="how the views' predictions combine: mean (the study's), alternate (one view per step), balanced "
                        "(MNIST: weighted toward the view that reads worst), auto (default: balanced on MNIST, else mean)")
    p.add_argument("--rival", choices=["auto", "on", "off"], default="auto",
                   help="MNIST: guide each view away from the digit a noise-aware classifier most likely misreads it as, "
                        "in place of the null negative prompt (auto, the default: on with the balanced reduction)")

    p = add_command(sub, "hybrid", cmd_hybrid, "hybrid / factorized images (1.9): low frequencies from one prompt, high from another",
                    "eps = sum_i f_i(eps_cfg(x, p_i)) for a decomposition f: hybrid (Gaussian low/high pass, kernel 33, "
                    "sigma 2 at 64 px, scaled), triple (three bands), color (grey / colour), motion (motion blur / rest). "
                    "--reference anchors component 1 on a real image. Writes hybrid.png (image and its components).")
    add_illusion_args(p, "runs/hybrid", "one per component, in order (low frequencies first)")
    p.add_argument("--kind", default="hybrid", choices=decomposition_names(), help="hybrid (default), triple, color, motion")
    p.add_argument("--reference", default=None, help="take component 1 from this image (inverse problem)")
    p.add_argument("--fork-t", type=fork_t, default="auto", metavar="auto|off|T",
                   help="from timestep T on, each component is finished by its own prompt, after the composed steps "
                        f"chose the layout (auto, the default: {FORK_T} for the MNIST low/high hybrid, else off: "
                        "composed to the end, the study's)")


def view_specs() -> list[str]:
    """The view names as ``--view`` takes them (with their arguments' forms)."""
    forms = {"patch_permute": "patch_permute[:G]", "permute": "permute:FILE.npy"}
    return [forms.get(name, name) for name in view_names()]


def add_illusion_args(p, default_out: str, prompt_help: str) -> None:
    """The flags anagram and hybrid share: their prompts (one per view or component), stage II and generation."""
    p.add_argument("--prompt", action="append", required=True, help=prompt_help)
    p.add_argument("--best-of", type=positive_int, default=1, metavar="N",
                   help="MNIST: make N candidates per image and keep the one the shipped classifier (a hybrid: the hybrid "
                        "reader) reads right both ways with the highest joint confidence (default 1: no selection; the "
                        "record says when it ran)")
    p.add_argument("--measure", type=nonneg_int, default=0, metavar="N",
                   help="MNIST: also make N more images (no best-of) and report the share the classifier reads right "
                        "both ways, with its Wilson 95%% interval (record 'measured'; default 0: none)")
    g = p.add_argument_group("Langevin corrector (Song et al. 2021; engine/correctors.py)")
    g.add_argument("--corrector-steps", type=corrector_steps, default=None, metavar="N|auto",
                   help="Langevin steps at each timestep from --corrector-t-min up, each one more model call (auto, the "
                        f"default: {CORRECTOR.steps} for MNIST anagrams with the balanced reduction, else 0)")
    g.add_argument("--corrector-snr", type=corrector_snr, default=CORRECTOR.snr, metavar="R",
                   help=f"the Langevin step's signal-to-noise ratio (default {CORRECTOR.snr:g})")
    g.add_argument("--corrector-t-min", type=timestep_int, default=CORRECTOR.t_min, metavar="T",
                   help=f"the lowest timestep the corrector runs at (default {CORRECTOR.t_min})")
    add_upsample_args(p)
    add_generation_args(p, default_out)


def corrector_options(args) -> dict:
    """The pipelines' corrector_* arguments from the command line."""
    return {"corrector_steps": args.corrector_steps, "corrector_snr": args.corrector_snr,
            "corrector_t_min": args.corrector_t_min}


def _upsampler(args, pipe):
    """Stage II over the stage I model, or None without --upsample (which needs DeepFloyd)."""
    if not args.upsample:
        return None
    if pipe.denoiser.name != "deepfloyd":
        raise FundiffError("--upsample needs --model deepfloyd (stage II is DeepFloyd IF's 256 px model)")
    from fundiff.pipelines import UpsamplePipeline

    return UpsamplePipeline.from_pipe(pipe, stage2_weights=args.stage2_weights, cpu_offload=args.cpu_offload,
                                      download=args.download)


def cmd_edit(args) -> int:
    from fundiff.pipelines import SDEditPipeline
    from fundiff.studies.editing import run_edit

    pipe = load_pipeline(SDEditPipeline, args)
    n = args.num_images or 1
    _, ts, starts, _ = pipe.check_inputs(args.prompt, args.image, args.strength, args.i_start, None, args.steps,
                                         args.guidance_scale, n, "pt", None, None)
    with progress_bar(sum(len(ts) - i for i in starts), "SDEdit") as cb:
        run_edit(pipe, args.out, image=args.image, image_name=args.image, prompt=args.prompt, i_start=args.i_start,
                 strength=args.strength, num_inference_steps=args.steps, guidance_scale=args.guidance_scale,
                 num_images=n, seed=args.seed, save_array=args.save_array, callback=cb)
    print(f"wrote {args.out}/sdedit.png ({len(starts)} settings)")
    return 0


def cmd_inpaint(args) -> int:
    from fundiff.pipelines import InpaintPipeline
    from fundiff.pipelines.editing import STUDY_RECT
    from fundiff.studies.editing import run_inpaint

    pipe = load_pipeline(InpaintPipeline, args)
    if args.mask and args.rect:
        raise FundiffError("give --mask or --rect, not both")
    if args.mask:
        from fundiff.engine.inputs import load_mask

        mask = load_mask(args.mask, pipe.image_size, invert=args.invert_mask)
    else:
        mask = pipe.rect_mask(args.rect or STUDY_RECT, invert=args.invert_mask)
    n = args.num_images or 3
    total = pipe.num_steps(args.steps, args.i_start, args.jump_length, args.jump_n_sample) \
        if 0 <= args.i_start < len(pipe.check_steps(args.steps)) else 0
    with progress_bar(total, "inpainting") as cb:
        rec = run_inpaint(pipe, args.out, image=args.image, mask=mask, prompt=args.prompt, num_inference_steps=args.steps,
                          guidance_scale=args.guidance_scale, num_images=n, jump_length=args.jump_length,
                          jump_n_sample=args.jump_n_sample, i_start=args.i_start, seed=args.seed,
                          save_array=args.save_array, callback=cb)
    print(f"wrote {args.out}/inpaint.png ({rec['model_calls']} denoising steps)")
    return 0


def cmd_anagram(args) -> int:
    from fundiff.pipelines import AnagramPipeline
    from fundiff.pipelines.natural_anagrams import natural_note
    from fundiff.studies.illusions import run_anagram

    if args.view is None and len(args.prompt) != 2:
        raise FundiffError(f"give one --view per --prompt ({len(args.prompt)} prompts)")
    pipe = load_pipeline(AnagramPipeline, args)
    up = _upsampler(args, pipe)
    steps = len(pipe.check_steps(args.steps))
    with progress_bar(steps, "anagram") as cb, progress_bar(args.stage2_steps, "stage II") as cb2, \
            progress_bar(steps * len(pipe.batches(args.measure, None)), "measure") as cb3:
        rec = run_anagram(pipe, args.out, args.prompt, views=args.view, num_inference_steps=args.steps,
                          guidance_scale=args.guidance_scale, num_images=args.num_images or 4, frames=args.frames,
                          seed=args.seed, save_array=args.save_array, callback=cb, upsampler=up,
                          stage2_steps=args.stage2_steps, stage2_callback=cb2, animation=args.animation,
                          best_of=args.best_of, measure=args.measure, measure_callback=cb3, reduction=args.reduction,
                          rival={"auto": None, "on": True, "off": False}[args.rival], corrector=corrector_options(args))
    print(f"wrote {args.out}/anagram.png and anagram.{args.animation}{measured_line(rec)}")
    note = natural_note(rec.get("natural_anagrams"))
    if note:
        print(note)
    return 0


def cmd_hybrid(args) -> int:
    from fundiff.pipelines import HybridPipeline
    from fundiff.studies.illusions import fork_text, run_hybrid

    pipe = load_pipeline(HybridPipeline, args)
    up = _upsampler(args, pipe)
    steps = len(pipe.check_steps(args.steps))
    with progress_bar(steps, "hybrid") as cb, progress_bar(args.stage2_steps, "stage II") as cb2, \
            progress_bar(steps * len(pipe.batches(args.measure, None)), "measure") as cb3:
        rec = run_hybrid(pipe, args.out, args.prompt, kind=args.kind, reference=args.reference,
                         reference_name=args.reference, num_inference_steps=args.steps,
                         guidance_scale=args.guidance_scale, num_images=args.num_images or 4, seed=args.seed,
                         save_array=args.save_array, callback=cb, upsampler=up, stage2_steps=args.stage2_steps,
                         stage2_callback=cb2, best_of=args.best_of, measure=args.measure, measure_callback=cb3,
                         corrector=corrector_options(args), fork_t=args.fork_t)
    print(f"wrote {args.out}/hybrid.png{measured_line(rec)}")
    fork = fork_text(rec)
    if fork:
        print(fork)
    return 0


def measured_line(record: dict) -> str:
    """'; read right both ways: k of n (x%, Wilson 95% lo-hi)' for a record with a measurement, else ''."""
    from fundiff.studies.illusions import rate_text

    m = record.get("measured")
    return f"; read right both ways: {rate_text(m, 'new images')}" if m else ""

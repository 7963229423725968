"""Editing and illusion commands: ``fundiff edit | inpaint | anagram | hybrid`` (reference 1.7-1.9).

Same backends and options as the Part A commands (``--model mnist`` offline by default, ``--model
deepfloyd --weights PATH``); each writes its figure(s), a JSON file of what was run and, with
``--save-array``, the raw images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fundiff.commands.part_a import add_backend_args, load_backend, progress_bar
from fundiff.errors import FundiffError


def _unit(x: torch.Tensor) -> torch.Tensor:
    return ((x.detach().float().cpu() + 1) / 2).clamp(0, 1)


def _timesteps(den, steps: int | None) -> list[int]:
    return den.schedule.strided_timesteps() if steps is None else den.schedule.inference_timesteps(steps)


def register(sub, number_types) -> None:
    positive_int, nonneg_float, positive_float = number_types
    steps_help = "num_inference_steps (diffusers spacing); default: the study's strided list 990, 960, ..., 0"

    def common(p: argparse.ArgumentParser, default_out: str, scale: float = 7.0) -> None:
        p.add_argument("--guidance-scale", type=nonneg_float, default=scale, help=f"CFG scale (default {scale:g})")
        p.add_argument("--steps", "--num-inference-steps", dest="steps", type=positive_int, default=None, help=steps_help)
        p.add_argument("--num-images", type=positive_int, default=None, help="images per setting")
        p.add_argument("--out", type=Path, default=Path(default_out), help=f"output folder (default {default_out})")
        p.add_argument("--save-array", action="store_true", help="also write the raw images as an .npz")
        add_backend_args(p)

    p = sub.add_parser(
        "edit", help="SDEdit (1.7): noise an image to timesteps[i_start] and denoise it with a prompt",
        description="Image-to-image: for each --i-start (default the study's sweep 1 3 5 7 10 20) noise --image to "
                    "timesteps[i_start] and denoise with CFG toward --prompt; or --strength as in diffusers. Writes sdedit.png.")
    p.add_argument("--image", default=None, help="image file, bundled sample name, or mnist-test:N")
    p.add_argument("--prompt", default=None, help="default: 'a high quality photo' (DeepFloyd) / '' (MNIST); any prompt edits toward it")
    p.add_argument("--i-start", type=int, nargs="+", default=None, help="start indices (default 1 3 5 7 10 20)")
    p.add_argument("--strength", type=positive_float, nargs="+", default=None, help="diffusers-style strength(s) in (0, 1] instead of --i-start")
    common(p, "runs/edit")
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser(
        "inpaint", help="inpainting (1.7.2): generate inside a mask, keep the rest",
        description="Replacement inpainting (the kept region re-noised to the current level every step) or RePaint resampling "
                    "(--jump-length, --jump-n-sample). Mask: an image file, white = generate (--invert-mask flips it), or "
                    "--rect ROWS,COLS in 64-px coordinates (the study's Campanile mask is 2:20,24:42).")
    p.add_argument("--image", default=None, help="image file, bundled sample name, or mnist-test:N")
    p.add_argument("--mask", default=None, help="mask image: white = generate, black = keep")
    p.add_argument("--rect", default=None, help="rectangle 'r0:r1,c0:c1' in 64-px coordinates (default 2:20,24:42)")
    p.add_argument("--invert-mask", action="store_true", help="generate where the mask is black instead")
    p.add_argument("--prompt", default=None, help="default: 'a high quality photo' (DeepFloyd) / '' (MNIST)")
    p.add_argument("--jump-length", type=positive_int, default=1, help="RePaint: steps per jump back up (default 1: no resampling)")
    p.add_argument("--jump-n-sample", type=positive_int, default=1, help="RePaint: passes over each segment (default 1; RePaint uses 10)")
    p.add_argument("--i-start", type=int, default=0, help="start at timesteps[i_start] from the noised input (default 0: pure noise)")
    common(p, "runs/inpaint")
    p.set_defaults(func=cmd_inpaint)

    p = sub.add_parser(
        "anagram", help="visual anagrams (1.8): one image, a different prompt under each view",
        description="N prompts and N views: each step averages v_i^-1(eps_cfg(v_i(x), p_i)). Views: identity, flip, rotate_cw, "
                    "rotate_ccw, rotate_180, negate, skew, patch_permute[:G], pixel_permute, jigsaw, inner_circle, "
                    "permute:FILE.npy. Writes anagram.png (every view side by side) and anagram.gif.")
    p.add_argument("--prompt", action="append", required=True, help="one per view, in order")
    p.add_argument("--view", action="append", default=None, help="one per prompt (default: identity, then flip)")
    p.add_argument("--frames", type=positive_int, default=24, help="frames of the transition animation (default 24)")
    upsample_args(p)
    common(p, "runs/anagram")
    p.set_defaults(func=cmd_anagram)

    p = sub.add_parser(
        "hybrid", help="hybrid / factorized images (1.9): low frequencies from one prompt, high from another",
        description="eps = sum_i f_i(eps_cfg(x, p_i)) for a decomposition f: hybrid (Gaussian low/high pass, kernel 33, "
                    "sigma 2 at 64 px, scaled), triple (three bands), color (grey / colour), motion (motion blur / rest). "
                    "--reference anchors component 1 on a real image. Writes hybrid.png (image and its components).")
    p.add_argument("--prompt", action="append", required=True, help="one per component, in order (low frequencies first)")
    p.add_argument("--kind", default="hybrid", help="hybrid (default), triple, color, motion")
    p.add_argument("--reference", default=None, help="take component 1 from this image (inverse problem)")
    upsample_args(p)
    common(p, "runs/hybrid")
    p.set_defaults(func=cmd_hybrid)


def upsample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--upsample", action="store_true",
                   help="DeepFloyd: also run stage II (256 px) with the same views / components, so the illusion survives")
    p.add_argument("--stage2-weights", metavar="DIR", default=None, help="DeepFloyd IF stage II folder (DeepFloyd/IF-II-L-v1.0)")
    p.add_argument("--stage2-steps", type=int, default=50, help="stage II num_inference_steps (default 50)")


def _check_upsample(args, den) -> None:
    if args.upsample and den.name != "deepfloyd":
        raise FundiffError("--upsample needs --model deepfloyd (stage II is DeepFloyd IF's 256 px model)")


def _stage2_illusion(args, den, img: torch.Tensor, make_predict, g: torch.Generator) -> torch.Tensor:
    """Upsample 64 px illusions with stage II, the composed prediction rebuilt over the stage II model."""
    from fundiff.engine.deepfloyd import load_stage2, upsample

    stage2 = load_stage2(args.stage2_weights, den.embeddings, device=den.device, dtype=den.dtype,
                         cpu_offload=args.cpu_offload, download=args.download)
    with progress_bar(args.stage2_steps, "stage II") as cb:
        return upsample(stage2, img.to(den.device, den.dtype), [], num_inference_steps=args.stage2_steps,
                        generator=g, threshold=args.threshold != "none", callback=cb,
                        predict=make_predict(stage2)).float().cpu()


def _load_image(den, source):
    from fundiff.engine.inputs import default_image, load_image

    return load_image(source or default_image(den.channels), den.image_size, den.channels).to(den.device, den.dtype)


def cmd_edit(args) -> int:
    from fundiff.engine.denoiser import Conditioned
    from fundiff.engine.editing import SDEDIT_I_STARTS, sdedit
    from fundiff.engine.schedule import Schedule
    from fundiff.figures import image_grid
    from fundiff.images import save_npz
    from fundiff.io import ensure_writable_dir, write_json

    den = load_backend(args)
    image = _load_image(den, args.image)
    ts = _timesteps(den, args.steps)
    if args.strength:
        starts = [Schedule.i_start_for_strength(len(ts), s) for s in args.strength]
    else:
        starts = args.i_start or list(SDEDIT_I_STARTS)
    for i in starts:
        Schedule.check_i_start(ts, i)
    out = ensure_writable_dir(args.out)
    n = args.num_images or 1
    prompt = den.default_prompt if args.prompt is None else args.prompt
    predict = Conditioned.from_prompts(den, [prompt] * n, args.guidance_scale)
    g = torch.Generator().manual_seed(args.seed)
    results = []
    with progress_bar(sum(len(ts) - i for i in starts), "SDEdit") as cb:
        for i in starts:
            res = sdedit(den, predict, image.expand(n, -1, -1, -1), ts, i, generator=g,
                         threshold=args.threshold != "none", callback=cb)
            results.append(_unit(res.image))
    rows = [[_unit(image[0])] + [r[k] for r in results] for k in range(n)]
    image_grid(rows, out / "sdedit.png", col_labels=["input"] + [f"i_start {i}\nt = {ts[i]}" for i in starts],
               title=f"SDEdit toward {prompt!r}, CFG {args.guidance_scale:g}", cell=1.6)
    if args.save_array:
        save_npz(out / "sdedit.npz", torch.cat(results), i_start=[i for i in starts for _ in range(n)])
    write_json(out / "edit.json", {"backend": den.name, "prompt": prompt, "i_start": starts,
                                   "t_start": [ts[i] for i in starts], "guidance_scale": args.guidance_scale,
                                   "seed": args.seed, "image": args.image or "default"})
    print(f"wrote {out}/sdedit.png ({len(starts)} settings)")
    return 0


def cmd_inpaint(args) -> int:
    from fundiff.engine.denoiser import Conditioned
    from fundiff.engine.editing import inpaint
    from fundiff.engine.inputs import load_mask, parse_rect, rect_mask
    from fundiff.figures import image_grid
    from fundiff.images import save_npz
    from fundiff.io import ensure_writable_dir, write_json

    den = load_backend(args)
    image = _load_image(den, args.image)
    if args.mask and args.rect:
        raise FundiffError("give --mask or --rect, not both")
    if args.mask:
        mask = load_mask(args.mask, den.image_size, invert=args.invert_mask)
    else:
        rows, cols = parse_rect(args.rect or "2:20,24:42")
        mask = rect_mask(den.image_size, rows, cols, reference_size=64)
        if args.invert_mask:
            mask = 1 - mask
    mask = mask.to(den.device, den.dtype)
    ts = _timesteps(den, args.steps)
    out = ensure_writable_dir(args.out)
    n = args.num_images or 3
    prompt = den.default_prompt if args.prompt is None else args.prompt
    predict = Conditioned.from_prompts(den, [prompt] * n, args.guidance_scale)
    g = torch.Generator().manual_seed(args.seed)
    from fundiff.engine.editing import repaint_schedule

    moves = repaint_schedule(len(ts) - args.i_start, args.jump_length, args.jump_n_sample) if 0 <= args.i_start < len(ts) else [0]
    with progress_bar(len(moves) - 1, "inpainting") as cb:
        res = inpaint(den, predict, image.expand(n, -1, -1, -1), mask, ts, i_start=args.i_start,
                      jump_length=args.jump_length, jump_n_sample=args.jump_n_sample, generator=g,
                      threshold=args.threshold != "none", callback=cb)
    shown = _unit(image[0])
    masked = shown * (1 - mask[0].float().cpu()) + mask[0].float().cpu() * 0.5
    image_grid([[shown, mask[0].float().cpu(), masked] + list(_unit(res.image))], out / "inpaint.png",
               col_labels=["input", "mask (white = new)", "kept"] + [f"result {k + 1}" for k in range(n)],
               title=f"inpainting toward {prompt!r}" + (f", RePaint j={args.jump_length} r={args.jump_n_sample}"
                                                         if args.jump_n_sample > 1 else ""), cell=1.6)
    if args.save_array:
        save_npz(out / "inpaint.npz", _unit(res.image), mask=mask.float().cpu().numpy())
    write_json(out / "inpaint.json", {"backend": den.name, "prompt": prompt, "model_calls": res.model_calls,
                                      "jump_length": args.jump_length, "jump_n_sample": args.jump_n_sample,
                                      "mask_fraction": float(mask.float().mean()), "seed": args.seed})
    print(f"wrote {out}/inpaint.png ({res.model_calls} denoising steps)")
    return 0


def cmd_anagram(args) -> int:
    from fundiff.engine.animation import save_animation, view_frames
    from fundiff.engine.illusions import anagram_predict
    from fundiff.engine.loops import iterative_denoise
    from fundiff.engine.views import get_view
    from fundiff.figures import image_grid
    from fundiff.images import save_npz
    from fundiff.io import ensure_writable_dir, write_json

    specs = args.view or (["identity", "flip"] if len(args.prompt) == 2 else None)
    if specs is None:
        raise FundiffError(f"give one --view per --prompt ({len(args.prompt)} prompts)")
    views = [get_view(s) for s in specs]
    den = load_backend(args)
    _check_upsample(args, den)
    n = args.num_images or 4
    predict = anagram_predict(den, args.prompt, views, batch=n, guidance_scale=args.guidance_scale)
    size = den.image_size
    for v in views:  # shape checks (a rotation needs a square image) before any work
        v.view(torch.zeros(1, den.channels, size, size))
    ts = _timesteps(den, args.steps)
    out = ensure_writable_dir(args.out)
    g = torch.Generator().manual_seed(args.seed)
    x = torch.randn(n, den.channels, size, size, generator=g).to(den.device, den.dtype)
    with progress_bar(len(ts), "anagram") as cb:
        img = iterative_denoise(den.schedule, predict, x, ts, threshold=den.threshold,
                                generator=g, callback=cb).image.float().cpu()
    rows = [[_unit(v.view(img[k:k + 1])[0]) for v in views] for k in range(n)]
    image_grid(rows, out / "anagram.png", col_labels=[f"{s}\n{p!r}" for s, p in zip(specs, args.prompt)], cell=1.8)
    if len(views) >= 2:
        # the transition from the picture under view 1 to the picture under view 2
        if views[0].name == "identity":
            frames = view_frames(_unit(img[0]), views[1], args.frames)
        else:
            from fundiff.engine.animation import crossfade_frame, ease_in_out

            a, b = rows[0][0], rows[0][1]
            frames = [crossfade_frame(a, b, ease_in_out(k / (args.frames - 1))) for k in range(args.frames)]
        save_animation(frames, out / "anagram.gif")
    if args.upsample:
        big = _stage2_illusion(args, den, img, lambda s2: anagram_predict(s2, args.prompt, views, batch=n,
                                                                          guidance_scale=args.guidance_scale), g)
        image_grid([[_unit(v.view(big[k:k + 1])[0]) for v in views] for k in range(n)], out / "anagram_256.png",
                   col_labels=[f"{s}\n{p!r}" for s, p in zip(specs, args.prompt)], cell=3.0)
    if args.save_array:
        save_npz(out / "anagram.npz", _unit(img), prompts=args.prompt, views=specs)
    write_json(out / "anagram.json", {"backend": den.name, "prompts": args.prompt, "views": specs,
                                      "guidance_scale": args.guidance_scale, "seed": args.seed, "num_images": n})
    print(f"wrote {out}/anagram.png and anagram.gif")
    return 0


def cmd_hybrid(args) -> int:
    from fundiff.engine.decompositions import get_decomposition
    from fundiff.engine.illusions import anchor_hook, hybrid_predict
    from fundiff.engine.loops import iterative_denoise
    from fundiff.figures import image_grid
    from fundiff.images import save_npz
    from fundiff.io import ensure_writable_dir, write_json

    den = load_backend(args)
    _check_upsample(args, den)
    dec = get_decomposition(args.kind, den.image_size, den.channels)
    n = args.num_images or 4
    predict = hybrid_predict(den, args.prompt, dec, batch=n, guidance_scale=args.guidance_scale)
    g = torch.Generator().manual_seed(args.seed)
    hook = None
    if args.reference:
        hook = anchor_hook(den, dec, _load_image(den, args.reference), g)
    ts = _timesteps(den, args.steps)
    out = ensure_writable_dir(args.out)
    size = den.image_size
    x = torch.randn(n, den.channels, size, size, generator=g).to(den.device, den.dtype)
    if hook is not None:
        x = hook(x, ts[0])
    with progress_bar(len(ts), "hybrid") as cb:
        img = iterative_denoise(den.schedule, predict, x, ts, threshold=den.threshold,
                                generator=g, after_step=hook, callback=cb).image.float().cpu()
    parts = dec.components(img)
    rows = [[_unit(img[k])] + [_unit(p[k]) for p in parts] for k in range(n)]  # high bands show around grey
    image_grid(rows, out / "hybrid.png", col_labels=["image"] + [f"{name}: {p!r}" for name, p in zip(dec.names, args.prompt)],
               cell=1.8, title=f"{args.kind} image, CFG {args.guidance_scale:g}")
    if args.upsample:
        big = _stage2_illusion(args, den, img, lambda s2: hybrid_predict(
            s2, args.prompt, get_decomposition(args.kind, s2.image_size, s2.channels), batch=n,
            guidance_scale=args.guidance_scale), g)
        parts = get_decomposition(args.kind, big.shape[-1], big.shape[1]).components(big)
        image_grid([[_unit(big[k])] + [_unit(p[k]) for p in parts] for k in range(n)], out / "hybrid_256.png",
                   col_labels=["image"] + list(dec.names), cell=3.0)
    if args.save_array:
        save_npz(out / "hybrid.npz", _unit(img), prompts=args.prompt)
    write_json(out / "hybrid.json", {"backend": den.name, "kind": args.kind, "prompts": args.prompt,
                                     "components": list(dec.names), "reference": args.reference,
                                     "guidance_scale": args.guidance_scale, "seed": args.seed, "num_images": n})
    print(f"wrote {out}/hybrid.png")
    return 0

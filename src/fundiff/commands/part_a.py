"""Part A commands: ``fundiff forward | denoise | generate | embed | upsample``.

Each takes ``--model mnist`` (the embedded model, offline, the default) or ``--model deepfloyd
--weights PATH`` (DeepFloyd IF through diffusers) and writes the study's figures plus a JSON file of
the numbers into ``--out DIR``.
"""

from __future__ import annotations

from pathlib import Path

from fundiff.commands.arguments import (add_backend_args, add_command, add_flags, out_path, positive_float,
                                        positive_int)
from fundiff.commands.common import check_out as _check_out
from fundiff.commands.common import image_of as _image
from fundiff.commands.common import load_backend, load_pipeline, progress_bar
from fundiff.errors import FundiffError


def register(sub) -> None:
    steps_help = "num_inference_steps, one or more (diffusers spacing); default: the study's strided list 990, 960, ..., 0"

    p = add_command(sub, "forward", cmd_forward, "Part A 1.1: noise an image to timesteps t (forward process)",
                    "x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps at each --t; writes forward.png and forward.json.",
                    add_backend_args)
    add_flags(p, "image", "t", "save_array", out="runs/forward")

    p = add_command(sub, "denoise", cmd_denoise, "Part A 1.2-1.4: Gaussian blur vs one-step vs iterative denoising",
                    "Noise --image to each --t, then denoise it with a Gaussian blur, with one model call, and iteratively "
                    "from strided_timesteps[--i-start]; writes blur.png, one_step.png, iterative.png, comparison.png and "
                    "denoise.json (PSNR of each method against the original).", add_backend_args)
    add_flags(p, "image", "t", "prompt", "save_array", guidance_scale=1.0, out="runs/denoise")   # gamma 1: the study's 1.3-1.4
    p.add_argument("--i-start", type=int, default=10, help="iterative denoising starts at strided_timesteps[i_start] (default 10: t=690)")
    p.add_argument("--stride", type=positive_int, default=30, help="stride of the timestep list 990, 960, ... (default 30)")
    p.add_argument("--blur-kernel", type=positive_int, default=5, help="Gaussian blur kernel size, odd (default 5)")
    p.add_argument("--blur-sigma", type=positive_float, default=2.0, help="Gaussian blur sigma (default 2)")
    p.add_argument("--show-every", type=positive_int, default=5, help="show every Nth step of the iterative loop (default 5)")

    p = add_command(sub, "generate", cmd_generate, "Part A 1.5-1.6: sample images from a prompt with the strided loop and CFG",
                    "Denoise pure noise along the strided timesteps (or --steps N diffusers-spaced ones), with classifier-free "
                    "guidance; one grid row per --steps value with the time it took. Writes generate.png, samples_*.png, "
                    "generate.json.", add_backend_args)
    p.add_argument("--prompt", action="append", default=None,
                   help="repeatable (default: 'a high quality photo' for DeepFloyd, '' for MNIST; MNIST knows '0'..'9', 'seven', 'a 7')")
    p.add_argument("--steps", "--num-inference-steps", dest="steps", type=positive_int, nargs="+", default=None, help=steps_help)
    add_flags(p, "save_array", "stage2_weights", num_images=5, guidance_scale=7.0, out="runs/generate")
    p.add_argument("--upsample", action="store_true", help="DeepFloyd: also upsample every result to 256 px with stage II")

    p = add_command(sub, "embed", cmd_embed, "DeepFloyd: compute T5 prompt embeddings once and cache them in a .pth",
                    "Load the T5 text encoder from --weights and write {prompt: (1, 77, 4096) embedding} for every --prompt "
                    "(plus '' for guidance) into --out, adding to the file if it exists. Later runs need no text encoder.")
    p.add_argument("--weights", metavar="DIR", default=None, help="DeepFloyd IF stage I folder with text_encoder/ and tokenizer/")
    p.add_argument("--prompt", action="append", default=[], help="repeatable")
    p.add_argument("--prompts-file", type=Path, default=None, help="a text file, one prompt per line")
    p.add_argument("--report-prompts", action="store_true",
                   help="also every prompt `fundiff report --model deepfloyd` uses (it loads no text encoder)")
    p.add_argument("--out", type=out_path, default=Path("prompt_embeds.pth"), help="the cache file (default prompt_embeds.pth)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--dtype", default=None, choices=["fp16", "bf16", "fp32"])
    p.add_argument("--download", action="store_true", help="let huggingface_hub download missing weights")

    p = add_command(sub, "upsample", cmd_upsample, "DeepFloyd: stage II super-resolution of a 64 px result to 256 px",
                    "Upsample a 64 px image (PNG, or an .npz from --save-array, PATH.npz:K for image K) with IF stage II.",
                    add_backend_args, model="deepfloyd")
    p.add_argument("--image", required=True, help="the 64 px image: file, .npz[:K]")
    p.add_argument("--prompt", default="", help="the prompt it was made with (default '')")
    p.add_argument("--steps", type=positive_int, default=50, help="num_inference_steps (default 50)")
    p.add_argument("--noise-level", type=int, default=250, help="noise added to the upsampled input (default 250)")
    add_flags(p, "stage2_weights", guidance_scale=4.0, out="upsampled.png")   # diffusers' stage II default


def cmd_forward(args) -> int:
    from fundiff.studies.part_a import run_forward

    den = load_backend(args).denoiser
    res = run_forward(den, _image(args, den), args.out, timesteps=args.t, seed=args.seed, save_array=args.save_array)
    print(f"wrote {args.out}/forward.png; PSNR of the noisy images: "
          + ", ".join(f"t={t}: {v:.1f} dB" for t, v in res["psnr_noisy_db"].items()))
    return 0


def cmd_denoise(args) -> int:
    from fundiff.studies.part_a import DenoiseConfig, run_denoise

    pipe = load_backend(args)
    den = pipe.denoiser
    image = _image(args, den)
    config = DenoiseConfig(timesteps=args.t, prompt=args.prompt, i_start=args.i_start, stride=args.stride,
                           blur_kernel=args.blur_kernel, blur_sigma=args.blur_sigma, guidance_scale=args.guidance_scale,
                           threshold=pipe.threshold, show_every=args.show_every, seed=args.seed,
                           final_step=pipe.final_step,
                           extra={"image": args.image or "default"})
    total = max(0, len(den.schedule.strided_timesteps(stride=args.stride)) - args.i_start)
    with progress_bar(total, "iterative denoising") as cb:
        res = run_denoise(den, image, args.out, config, save_array=args.save_array, progress=cb)
    it = res["iterative"]["psnr_db"]
    print(f"wrote {args.out}/{{blur,one_step,iterative,comparison}}.png; from t={res['iterative']['t_start']}: "
          f"iterative {it['iterative']:.1f} dB, one-step {it['one_step']:.1f} dB, blur {it['blur']:.1f} dB "
          f"(noisy {it['noisy']:.1f} dB)")
    return 0


def _stage2(stage2, seed: int):
    """``upsample(images, prompts)`` for run_generate: stage II over stage I's images in [0, 1]."""
    import torch

    return lambda images, prompts: stage2(images, prompts, generator=torch.Generator().manual_seed(seed),
                                          output_type="pt").images


def cmd_generate(args) -> int:
    from fundiff.pipelines import Text2ImagePipeline, UpsamplePipeline
    from fundiff.studies.part_a import GenerateConfig, run_generate

    pipe = load_pipeline(Text2ImagePipeline, args)
    den = pipe.denoiser
    prompts = args.prompt if args.prompt is not None else [den.default_prompt]
    classify = None
    if den.name == "mnist":
        from fundiff.classifier import load_classifier

        classify = load_classifier()
    if args.upsample and den.name != "deepfloyd":
        raise FundiffError("--upsample needs --model deepfloyd (stage II is DeepFloyd IF's 256 px model)")
    steps = args.steps or [None]
    config = GenerateConfig(prompts=prompts, num_images=args.num_images, guidance_scale=args.guidance_scale,
                            steps=steps, seed=args.seed)
    total = sum(len(pipe.check_steps(s)) for s in steps)
    # stage II runs inside run_generate, before its first file: an interrupt leaves nothing
    upsample = _stage2(UpsamplePipeline.from_pipe(pipe, stage2_weights=args.stage2_weights, cpu_offload=args.cpu_offload,
                                                  download=args.download), args.seed) if args.upsample else None
    with progress_bar(total, "sampling") as cb:
        res = run_generate(pipe, args.out, config, save_array=args.save_array or args.upsample, progress=cb,
                           classify=classify, upsample=upsample)
    for r in res["runs"]:
        acc = f", accuracy {r['accuracy']:.3f}" if "accuracy" in r else ""
        print(f"{r['num_inference_steps']} steps: {r['seconds']:.1f} s ({r['model_evaluations_per_image']} UNet "
              f"evaluations per image){acc}")
    print(f"wrote {args.out}/generate.png")
    return 0


def cmd_embed(args) -> int:
    import torch

    from fundiff.backends.deepfloyd import STAGE_1_REPO, device_and_dtype, resolve_weights, text_encoder_from
    from fundiff.backends.embeddings import PromptEmbeddings

    prompts = list(args.prompt)
    if args.prompts_file is not None:
        if not args.prompts_file.is_file():
            raise FundiffError(f"no such prompts file: {args.prompts_file}")
        try:
            text = args.prompts_file.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError) as exc:
            raise FundiffError(f"{args.prompts_file} is not a readable UTF-8 text file ({type(exc).__name__})") from None
        prompts += [line.strip() for line in text.splitlines() if line.strip()]
    if args.report_prompts:
        from fundiff.report.prompts import deepfloyd_prompts

        prompts += deepfloyd_prompts()
    if not prompts:
        raise FundiffError("give at least one --prompt, --prompts-file or --report-prompts")
    _check_out(args.out, ".pth")
    prompts = list(dict.fromkeys([""] + prompts))
    from fundiff.backends import torch_dtype

    device, dtype = device_and_dtype(args.device, torch_dtype(args.dtype))
    cache = PromptEmbeddings.load(args.out) if args.out.exists() else PromptEmbeddings({}, str(args.out))
    todo = [p for p in prompts if p not in cache]
    if todo:
        folder = resolve_weights(args.weights, STAGE_1_REPO, args.download, dtype=dtype, unet=False, text_encoder=True)
        encode = text_encoder_from(folder, device, dtype)
        cache.add(todo, encode(todo).to(torch.float16))
    cache.save(args.out)
    print(f"{args.out}: {len(todo)} new, {len(cache.prompts())} prompts in all")
    return 0


def cmd_upsample(args) -> int:
    import torch

    from fundiff.images import save_grid
    from fundiff.pipelines import UpsamplePipeline

    _check_out(args.out, ".png")
    pipe = UpsamplePipeline.from_pretrained(args.stage2_weights, threshold=args.threshold, embeddings=args.embeddings,
                                            weights=args.weights, text_encoder=args.text_encoder or not args.embeddings,
                                            device=args.device, dtype=args.dtype, cpu_offload=args.cpu_offload,
                                            download=args.download, max_batch=args.max_batch)
    with progress_bar(args.steps, "stage II") as cb:
        up = pipe(args.image, args.prompt, num_inference_steps=args.steps, guidance_scale=args.guidance_scale,
                  noise_level=args.noise_level, generator=torch.Generator().manual_seed(args.seed), output_type="pt",
                  callback=cb)
    save_grid(up.images, args.out, scale=1, pad=0)
    print(f"wrote {args.out} ({up.images.shape[-1]} px)")
    return 0

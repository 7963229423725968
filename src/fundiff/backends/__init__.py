"""The models behind the denoiser interface, and choosing one: ``--model mnist`` (the embedded flow model, offline default), ``--model deepfloyd
--weights PATH``, or a path to a fundiff flow model."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from fundiff.engine.denoiser import Denoiser
from fundiff.errors import FundiffError
from fundiff.generate import EMBEDDED, EMBEDDED_FAST

DEEPFLOYD = "deepfloyd"


DTYPES = {"fp16": torch.float16, "fp32": torch.float32, "bf16": torch.bfloat16}


def torch_dtype(dtype: str | None) -> torch.dtype | None:
    """"fp16" | "bf16" | "fp32" -> the torch dtype (None stays None: the backend's default)."""
    if dtype is None:
        return None
    if dtype not in DTYPES:
        raise FundiffError(f"dtype must be fp16, bf16 or fp32, got {dtype!r}")
    return DTYPES[dtype]


def load_denoiser(
    model: str = EMBEDDED, *, weights: str | os.PathLike | None = None, embeddings: str | os.PathLike | None = None,
    device: str | None = None, dtype: str | None = None, cpu_offload: bool = False, text_encoder: bool = False,
    download: bool = False, max_batch: int | None = None, precision: str = "fp32",
) -> Denoiser:
    """The denoiser named by ``model``: "mnist" (embedded, offline), a fundiff flow model (file or run folder),
    "deepfloyd" (IF stage I from ``weights`` or the Hugging Face cache) or a DeepFloyd IF stage I folder.

    ``device`` None or "auto": the GPU for DeepFloyd when there is one, the CPU for MNIST models.  DeepFloyd
    options (``weights``, ``embeddings``, ``dtype``, ``cpu_offload``, ``text_encoder``, ``download``, ``max_batch``:
    at most that many images per UNet call) are ignored by MNIST models and vice versa; ``precision`` ("fp32",
    "bf16", "auto") is fundiff's own models' (DeepFloyd has ``dtype``).
    """
    model = str(model)
    if model not in (DEEPFLOYD, EMBEDDED, EMBEDDED_FAST):
        model = str(Path(model).expanduser())   # "~/IF-I-XL-v1.0" is a path, as --weights takes it
    if model != DEEPFLOYD and Path(model).is_dir() and (Path(model) / "model_index.json").is_file():
        weights, model = model, DEEPFLOYD   # a diffusers folder (a local copy of DeepFloyd/IF-I-XL-v1.0)
    device = None if device == "auto" else device
    if model == DEEPFLOYD:
        from fundiff.backends.deepfloyd import load_deepfloyd

        if precision != "fp32":
            raise FundiffError("--precision is for fundiff's own models; DeepFloyd takes --dtype fp16|bf16|fp32")
        return load_deepfloyd(weights, embeddings=embeddings, device=device, dtype=torch_dtype(dtype),
                              cpu_offload=cpu_offload, text_encoder=text_encoder, download=download,
                              max_batch=max_batch)
    from fundiff.backends.mnist import MnistDenoiser

    if model not in (EMBEDDED, EMBEDDED_FAST) and not Path(model).exists():
        raise FundiffError(f"--model must be 'mnist', 'deepfloyd' or a fundiff flow model file/folder; {model!r} is none")
    return MnistDenoiser.load(model, device or "cpu", precision)

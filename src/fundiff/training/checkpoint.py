"""Checkpoints: model weights as safetensors, training state as a torch file, committed atomically.

A *model file* is one ``.safetensors`` file whose metadata holds the architecture
(``fundiff.config``, the UNet's ``config()`` as JSON), so ``load_model(path)`` needs nothing else.

A *training checkpoint* in ``<run>/checkpoints/`` is a pair written under step-numbered names::

    step-00000470.safetensors   model weights (+ EMA weights later), safetensors
    step-00000470.state.pt      optimizer / scheduler state, counters, loss history (torch.save)
    latest.json                 {"step": 470, ...}: the commit point, replaced atomically last

so a process killed at any instant leaves the previous checkpoint intact and loadable.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from fundiff.errors import CheckpointError, FundiffError
from fundiff.io import write_atomic, write_json
from fundiff.nn import build_model
from fundiff.nn.registry import model_skeleton

FORMAT_VERSION = "1"


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def save_model(path: str | os.PathLike, model: nn.Module, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights and architecture to a safetensors file, atomically."""
    meta = {"fundiff.format": FORMAT_VERSION, "fundiff.config": json.dumps(model.config())}
    for key, value in (metadata or {}).items():
        meta[f"fundiff.{key}"] = value if isinstance(value, str) else json.dumps(value)
    tensors = _tensors(model)
    return write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The safetensors metadata of a fundiff model file; CheckpointError if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None
    if "fundiff.config" not in meta:
        raise CheckpointError(f"{path} is not a fundiff model file (no architecture in its metadata)")
    return meta


def read_config(path: str | os.PathLike, meta: dict[str, str]) -> dict[str, Any]:
    """The architecture stored in a model file's metadata: ``fundiff.config`` must be a JSON object."""
    try:
        config = json.loads(meta["fundiff.config"])
    except ValueError as exc:
        raise CheckpointError(f"{path}: its fundiff.config metadata is not JSON ({exc})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: its fundiff.config metadata is not a JSON object, got {type(config).__name__}")
    return config


def check_tensors(path: str | os.PathLike, model: nn.Module) -> None:
    """Refuse ``path`` unless the tensors its safetensors header lists (read without the data) have exactly the
    names and shapes of ``model``'s state_dict (``model`` may be a skeleton on the meta device)."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None
    wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if header == wanted:
        return
    kind = getattr(model, "kind", type(model).__name__)
    if missing := sorted(set(wanted) - set(header)):
        problem = f"no tensor {missing[0]}"
    elif extra := sorted(set(header) - set(wanted)):
        problem = f"an unexpected tensor {extra[0]}"
    else:
        key = next(k for k in sorted(wanted) if header[k] != wanted[k])
        problem = f"{key} has shape {list(header[key])}, the {kind} model needs {list(wanted[key])}"
    raise CheckpointError(f"{path}: weights do not match the stored architecture ({problem})")


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", expect_kind: str | None = None) -> nn.Module:
    """Rebuild the model stored in ``path`` and load its weights (eval mode).

    Before anything is allocated: the stored config must be a JSON object that ``model_skeleton`` accepts (known
    kind, bounded sizes and parameter count), and the header's tensor names and shapes must match that model."""
    meta = read_metadata(path)
    config = read_config(path, meta)
    if expect_kind is not None and config.get("kind") != expect_kind:
        raise CheckpointError(
            f"{path} holds a {config.get('kind')!r} model, but this command needs a {expect_kind!r} one"
        )
    try:
        skeleton = model_skeleton(config)
    except FundiffError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    check_tensors(path, skeleton)
    model = build_model(config)
    try:
        state = load_file(str(path))
        model.load_state_dict(state)
    except (SafetensorError, RuntimeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: weights do not match the stored architecture ({first})") from None
    return model.to(device).eval()


class CheckpointStore:
    """The step-numbered checkpoints of one run, with ``latest.json`` as the atomic commit point."""

    def __init__(self, folder: str | os.PathLike, keep: int = 2):
        self.folder = Path(folder)
        self.keep = keep

    @property
    def pointer(self) -> Path:
        return self.folder / "latest.json"

    def exists(self) -> bool:
        return self.pointer.is_file()

    def save(self, step: int, model: nn.Module, state: dict[str, Any], info: dict[str, Any],
             ema: nn.Module | None = None) -> None:
        """Write weights (+ EMA weights) + state under the step's names, then move ``latest.json`` to them."""
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = f"step-{step:08d}"
        save_model(self.folder / f"{stem}.safetensors", model)
        if ema is not None:
            save_model(self.folder / f"{stem}.ema.safetensors", ema)
        write_atomic(self.folder / f"{stem}.state.pt", lambda tmp: torch.save(state, tmp))
        write_json(self.pointer, {"step": step, "stem": stem, **info})
        self._prune(keep_stem=stem)

    def _prune(self, keep_stem: str) -> None:
        stems = sorted({p.name.split(".")[0] for p in self.folder.glob("step-*.state.pt")})
        old = [s for s in stems if s != keep_stem][: max(0, len(stems) - self.keep)]
        for stem in old:
            for suffix in (".safetensors", ".ema.safetensors", ".state.pt"):
                (self.folder / f"{stem}{suffix}").unlink(missing_ok=True)

    def read_pointer(self) -> dict[str, Any]:
        """``latest.json``: an object whose "step" is a whole number >= 0 and whose "stem" is the plain file name
        ``step-<digits>`` that ``save`` writes (so it cannot point outside this folder), in at most 64 KiB of JSON;
        CheckpointError otherwise."""
        try:
            if self.pointer.stat().st_size > 65536:
                raise ValueError("larger than 64 KiB")
            info = json.loads(self.pointer.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{self.pointer} is unreadable ({exc}); the run cannot be resumed") from None
        if not isinstance(info, dict):
            problem = f"is not a JSON object but a {type(info).__name__}"
        elif isinstance(info.get("step"), bool) or not isinstance(info.get("step"), int) or info["step"] < 0:
            problem = f"has no whole step number >= 0 (step: {info.get('step')!r})"
        elif not isinstance(info.get("stem"), str) or not re.fullmatch(r"step-[0-9]{1,12}", info["stem"]):
            problem = f"names no checkpoint file of the form step-NUMBER (stem: {info.get('stem')!r})"
        else:
            return info
        raise CheckpointError(f"{self.pointer} {problem}; the run cannot be resumed")

    def load(self, model: nn.Module, ema: nn.Module | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Load the latest weights into ``model`` (and ``ema``); return (state, info)."""
        info = self.read_pointer()
        stem = info["stem"]
        weights = self.folder / f"{stem}.safetensors"
        meta = read_metadata(weights)
        if read_config(weights, meta) != model.config():
            raise CheckpointError(
                f"checkpoint {weights} holds a different architecture ({meta['fundiff.config']}) "
                f"than this run ({json.dumps(model.config())})"
            )
        check_tensors(weights, model)
        if ema is not None:
            check_tensors(self.folder / f"{stem}.ema.safetensors", ema)
        try:
            model.load_state_dict(load_file(str(weights)))
            if ema is not None:
                ema.load_state_dict(load_file(str(self.folder / f"{stem}.ema.safetensors")))
            state = torch.load(self.folder / f"{stem}.state.pt", map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure here means a damaged checkpoint
            raise CheckpointError(f"checkpoint {stem} in {self.folder} is damaged ({type(exc).__name__}: {exc})") from None
        return state, info

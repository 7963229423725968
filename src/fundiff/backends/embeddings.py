"""Prompt-embedding caches: T5 embeddings computed once, so sampling needs no text encoder.

The study's format: a ``.pth`` file holding a dict {prompt: tensor (1, 77, 4096) fp16}, where the key
"" is the null prompt for classifier-free guidance.  ``fundiff embed`` writes one (and adds to an
existing one); the DeepFloyd backend reads it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable, Sequence

import torch

from fundiff.errors import FundiffError
from fundiff.io import write_atomic

Encoder = Callable[[list[str]], torch.Tensor]  # prompts -> (N, 77, D)


class PromptEmbeddings:
    """A prompt -> embedding cache, optionally backed by a text encoder for prompts it lacks."""

    def __init__(self, table: dict[str, torch.Tensor] | None = None, source: str = "memory",
                 encoder: Encoder | None = None):
        self.table = {k: self._as_batch_row(k, v) for k, v in (table or {}).items()}
        self.source = source
        self.encoder = encoder

    @staticmethod
    def _as_batch_row(prompt: str, v: torch.Tensor) -> torch.Tensor:
        if not isinstance(v, torch.Tensor) or v.ndim not in (2, 3) or (v.ndim == 3 and v.shape[0] != 1):
            raise FundiffError(f"embedding for prompt {prompt!r} should be a (1, tokens, dim) tensor, "
                               f"got {getattr(v, 'shape', type(v).__name__)}")
        return v if v.ndim == 3 else v.unsqueeze(0)

    @classmethod
    def load(cls, path: str | os.PathLike, encoder: Encoder | None = None) -> "PromptEmbeddings":
        path = Path(path).expanduser()
        if not path.is_file():
            raise FundiffError(f"no such prompt-embedding file: {path} (make one with fundiff embed)")
        try:
            with warnings.catch_warnings():   # torch's notes on foreign pickles; the file is refused in one line below
                warnings.simplefilter("ignore")
                table = torch.load(path, map_location="cpu", weights_only=True)   # never runs pickled code
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
            raise FundiffError(f"{path} is not a prompt-embedding .pth file ({type(exc).__name__})") from None
        if not isinstance(table, dict) or not all(isinstance(k, str) for k in table):
            raise FundiffError(f"{path} is not a prompt-embedding file: expected a dict of prompt -> tensor")
        return cls(table, str(path), encoder)

    def save(self, path: str | os.PathLike) -> Path:
        table = {k: v.detach().cpu().contiguous() for k, v in self.table.items()}
        return write_atomic(path, lambda tmp: torch.save(table, tmp))

    def __contains__(self, prompt: str) -> bool:
        return prompt in self.table

    def prompts(self) -> list[str]:
        return list(self.table)

    def add(self, prompts: Sequence[str], embeds: torch.Tensor) -> None:
        for p, e in zip(prompts, embeds):
            self.table[p] = e.unsqueeze(0).detach().cpu()

    def __call__(self, prompts: Sequence[str]) -> torch.Tensor:
        """(N, tokens, dim) for the prompts; missing ones come from the encoder or are a one-line error."""
        missing = [p for p in dict.fromkeys(prompts) if p not in self.table]
        if missing and self.encoder is not None:
            self.add(missing, self.encoder(missing))
        elif missing:
            known = ", ".join(repr(k) for k in list(self.table)[:8]) + (" ..." if len(self.table) > 8 else "")
            raise FundiffError(f"prompt {missing[0]!r} is not in the embedding cache {self.source} (it has {known}); "
                               "add it with fundiff embed")
        return torch.cat([self.table[p] for p in prompts])

"""Counter-based seeding: every random draw of a run is a pure function of (seed, epoch, step).

The permutation of epoch e uses the stream (seed, e, PERMUTATION) and the noise of step s of epoch e
the stream (seed, e, s).  Nothing depends on how many draws came before, so a run resumed from any
checkpoint, or split across processes, replays exactly the draws of an uninterrupted run.
"""

from __future__ import annotations

import numpy as np
import torch

PERMUTATION = 2**31 - 1


def stream_seed(*key: int) -> int:
    """A 63-bit seed derived from integer keys (numpy's SeedSequence hashing)."""
    words = np.random.SeedSequence([int(k) % 2**63 for k in key]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def generator(*key: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded from ``key``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(stream_seed(*key))
    return gen


def seed_everything(seed: int) -> None:
    """Seed torch's global generators too (model initialisation draws from them)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


INIT_STREAM = 2**31 - 2


def initialize_weights(model: torch.nn.Module, seed: int) -> None:
    """Re-draw every layer's initial weights (``reset_parameters``) from a stream keyed by ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, INIT_STREAM))
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()

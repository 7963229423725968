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


class BatchRandom:
    """Random draws for one step's batch, drawn for the *global* batch and sliced to this process.

    Under data-parallel training every process sees a shard ``[rank * n, (rank + 1) * n)`` of the
    global batch; drawing the global tensor from the shared step stream and keeping the shard's rows
    gives every sample exactly the noise it would get in a single process with the same global batch.
    """

    def __init__(self, gen: torch.Generator, rank: int = 0, world: int = 1):
        self.gen, self.rank, self.world = gen, rank, world

    def _shard(self, full: torch.Tensor, n: int) -> torch.Tensor:
        return full[self.rank * n : (self.rank + 1) * n]

    def randn(self, shape, device, dtype=torch.float32) -> torch.Tensor:
        n, *rest = shape
        return self._shard(torch.randn((n * self.world, *rest), generator=self.gen, device=device, dtype=dtype), n)

    def rand(self, n: int, device) -> torch.Tensor:
        return self._shard(torch.rand(n * self.world, generator=self.gen, device=device), n)

    def randint(self, high: int, n: int, device) -> torch.Tensor:
        return self._shard(torch.randint(0, high, (n * self.world,), generator=self.gen, device=device), n)

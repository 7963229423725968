"""fundiff.training.rng: counter-based random streams, sharded like the global draw."""

from __future__ import annotations

import torch

from fundiff.training.rng import BatchRandom, generator


def test_batch_random_shards_equal_the_global_draw():
    full = BatchRandom(generator(1, 2, 3)).randn((8, 3), "cpu")
    parts = [BatchRandom(generator(1, 2, 3), rank=r, world=2).randn((4, 3), "cpu") for r in range(2)]
    torch.testing.assert_close(torch.cat(parts), full)

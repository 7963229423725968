import os

import pytest
import torch

from helpers import run_cli

# Tests share a 2-core machine: keep torch to one thread per process so subprocess tests do not fight.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def mnist():
    from fundiff.data import load_mnist

    return load_mnist()


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def den():
    """The embedded MNIST model as a Part A denoiser (loaded once; nothing mutates a loaded denoiser)."""
    from fundiff.backends.mnist import MnistDenoiser

    return MnistDenoiser.load("mnist")

"""Data sets: MNIST, offline (see :mod:`fundiff.data.mnist`)."""

from fundiff.data.mnist import MNIST, load_mnist, to_float, write_idx

__all__ = ["MNIST", "load_mnist", "to_float", "write_idx"]

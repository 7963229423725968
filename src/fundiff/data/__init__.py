"""Data sets: MNIST, offline (see :mod:`fundiff.data.mnist`)."""

from fundiff.data.mnist import MNIST, iterate_batches, load_mnist, to_float, write_idx

__all__ = ["MNIST", "iterate_batches", "load_mnist", "to_float", "write_idx"]

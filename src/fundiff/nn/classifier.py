"""The small MNIST CNN behind fundiff's sample-quality metrics (see :mod:`fundiff.metrics`).

Architecture (input 1x28x28 in [0, 1]; every conv 3x3, padding 1, no bias, then BatchNorm + ReLU)::

    conv 32 -> conv 32 -> maxpool 2          28x28 -> 14x14
    conv 64 -> conv 64 -> maxpool 2          14x14 -> 7x7
    maxpool 2 (ceil)                          7x7  -> 4x4
    flatten 1024 -> linear 128 + BN + ReLU   = features(x), F = 128
    dropout -> linear 10                     = forward(x), logits

About 198k parameters (0.8 MB of float32).  The convolutions run in channels-last memory layout,
which is markedly faster on CPU; the weights file stores the usual contiguous layout.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fundiff.nn.registry import register


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@register
class MnistClassifier(nn.Module):
    """conv32-conv32-pool-conv64-conv64-pool-pool-fc128-fc10 with BatchNorm; see the module doc."""

    kind = "mnist-classifier"

    def __init__(self, width: int = 32, feature_dim: int = 128, dropout: float = 0.25):
        super().__init__()
        if width < 1 or feature_dim < 1 or not (0.0 <= dropout < 1.0):
            raise ValueError(f"bad MnistClassifier settings: width={width}, feature_dim={feature_dim}, dropout={dropout}")
        self.width, self.feature_dim, self.dropout = width, feature_dim, dropout
        w = width
        self.body = nn.Sequential(
            *_conv_bn_relu(1, w), *_conv_bn_relu(w, w), nn.MaxPool2d(2),
            *_conv_bn_relu(w, 2 * w), *_conv_bn_relu(2 * w, 2 * w), nn.MaxPool2d(2),
            nn.MaxPool2d(2, ceil_mode=True),
        )
        self.fc = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * w * 4 * 4, feature_dim, bias=False), nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, 10))
        self.body.to(memory_format=torch.channels_last)

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "width": self.width, "feature_dim": self.feature_dim, "dropout": self.dropout}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (N, feature_dim) of images x (N, 1, 28, 28) in [0, 1]."""
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"MnistClassifier expects (N, 1, 28, 28) images, got {tuple(x.shape)}")
        h = self.body(x.contiguous(memory_format=torch.channels_last))
        return self.fc(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, 10)."""
        return self.head(self.features(x))

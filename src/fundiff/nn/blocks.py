"""The study's building blocks for the MNIST UNet (reference section 2.0).

Simple ops (BN = BatchNorm2d, GELU = nn.GELU):

=========  ==================================================  ==============
Conv       Conv2d(k3, s1, p1) + BN + GELU                       H x W kept
DownConv   Conv2d(k3, s2, p1) + BN + GELU                       H -> H/2
UpConv     ConvTranspose2d(k4, s2, p1) + BN + GELU              H -> 2H
Flatten    AvgPool2d(7) + GELU                                  7x7 -> 1x1
Unflatten  ConvTranspose2d(k7, s7, p0) + BN + GELU              1x1 -> 7x7
=========  ==================================================  ==============

Composed ops: ConvBlock = Conv, Conv; DownBlock = DownConv, ConvBlock; UpBlock = UpConv, ConvBlock;
FCBlock(F_in, F_out) = Linear(F_in, F_out), GELU, Linear(F_out, F_out).
"""

from __future__ import annotations

import torch
from torch import nn


class ConvNormAct(nn.Sequential):
    """``conv`` (kernel ``kernel_size``, stride ``stride``, padding 1) + BatchNorm + GELU: the spec's three conv blocks."""

    conv: type[nn.Module] = nn.Conv2d
    kernel_size = 3
    stride = 1

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            self.conv(in_channels, out_channels, kernel_size=self.kernel_size, stride=self.stride, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.GELU(),
        )


class Conv(ConvNormAct):
    """Conv2d(3, 1, 1) + BatchNorm + GELU; keeps the spatial size."""


class DownConv(ConvNormAct):
    """Conv2d(3, 2, 1) + BatchNorm + GELU; halves the spatial size."""

    stride = 2


class UpConv(ConvNormAct):
    """ConvTranspose2d(4, 2, 1) + BatchNorm + GELU; doubles the spatial size."""

    conv = nn.ConvTranspose2d
    kernel_size = 4
    stride = 2


class Flatten(nn.Sequential):
    """AvgPool2d(7) + GELU: a 7x7 map to a 1x1 vector of the same channels."""

    def __init__(self):
        super().__init__(nn.AvgPool2d(kernel_size=7), nn.GELU())


class Unflatten(nn.Sequential):
    """ConvTranspose2d(7, 7, 0) + BatchNorm + GELU: a 1x1 vector back to a 7x7 map."""

    def __init__(self, channels: int):
        super().__init__(
            nn.ConvTranspose2d(channels, channels, kernel_size=7, stride=7, padding=0),
            nn.BatchNorm2d(channels),
            nn.GELU(),
        )


class ConvBlock(nn.Sequential):
    """Conv(in -> out) then Conv(out -> out)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(Conv(in_channels, out_channels), Conv(out_channels, out_channels))


class DownBlock(nn.Sequential):
    """DownConv(in -> out) then ConvBlock(out -> out)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(DownConv(in_channels, out_channels), ConvBlock(out_channels, out_channels))


class UpBlock(nn.Sequential):
    """UpConv(in -> out) then ConvBlock(out -> out)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(UpConv(in_channels, out_channels), ConvBlock(out_channels, out_channels))


class FCBlock(nn.Module):
    """Linear(F_in, F_out), GELU, Linear(F_out, F_out); output shaped (N, F_out, 1, 1) to broadcast."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, out_features), nn.GELU(), nn.Linear(out_features, out_features)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, :, None, None]

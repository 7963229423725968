"""Inference-time speed-ups that keep the math: BatchNorm folded into the preceding convolution.

In eval mode BN is the per-channel affine map y = g (x - m) / sqrt(v + e) + b, so a convolution
followed by BN is one convolution with weights scaled by k = g / sqrt(v + e) per output channel and
bias k (bias - m) + b.  (For ConvTranspose2d the output channels are the weight's second axis.)
The folded model equals the original up to float rounding and saves one pass over every activation.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


@torch.no_grad()
def _fold(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> nn.Module:
    fused = copy.deepcopy(conv)
    k = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shape = [1] * fused.weight.ndim
    axis = 1 if isinstance(conv, nn.ConvTranspose2d) else 0
    shape[axis] = -1
    fused.weight.mul_(k.view(shape))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias = nn.Parameter(k * (bias - bn.running_mean) + bn.bias)
    return fused


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) with every Conv/ConvTranspose + BatchNorm pair folded into one conv."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            children = list(module.children())
            for i in range(len(children) - 1):
                a, b = children[i], children[i + 1]
                if isinstance(a, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(b, nn.BatchNorm2d):
                    module[i] = _fold(a, b)
                    module[i + 1] = nn.Identity()
    return model

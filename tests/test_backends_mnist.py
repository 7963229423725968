"""fundiff.backends.mnist: the embedded flow model as a Part A denoiser (coordinates, thresholding)."""

from __future__ import annotations

import pytest
import torch

from fundiff.engine.denoiser import Conditioned
from fundiff.engine.loops import iterative_denoise
from fundiff.engine.schedule import Threshold
from fundiff.nn.conditioning import call_model


def test_flow_coordinates_are_the_models_own(den):
    """At any noise level the engine's x0-hat is the flow model's y-hat = y_tau + (1 - tau) u, mapped to [-1, 1]."""
    g = torch.Generator().manual_seed(0)
    y = torch.rand(3, 1, 28, 28, generator=g)
    eps = torch.randn(3, 1, 28, 28, generator=g)
    t = 500
    a, s = den.schedule.coefficients(t)
    x = a * (2 * y - 1) + s * eps                      # the engine's noisy image
    tau = 2 * a / (2 * a + s)
    y_tau = tau * y + (1 - tau) * eps                  # the same image on the flow path
    labels = torch.tensor([1, 2, 3])
    u = call_model(den.model, y_tau, torch.full((3,), tau), labels, torch.ones(3))
    pred = den.predict(x, t, labels)
    assert torch.allclose(pred.x0, 2 * (y_tau + (1 - tau) * u) - 1, atol=1e-4)
    assert torch.allclose(pred.eps, y_tau - tau * u, atol=1e-4)


@pytest.mark.slow
def test_static_thresholding_keeps_mnist_backgrounds_black(den):
    """MNIST's pixels sit at -1 and 1, so IF's dynamic thresholding (s = q95(|x0|) > 1, x0 / s) lifts the
    background at every step; the MNIST backend clips x0-hat to [-1, 1] instead."""
    x0 = torch.tensor([[-1.2, -1.0, 0.3, 1.1]]).view(1, 1, 2, 2)
    assert torch.equal(Threshold.static()(x0), x0.clamp(-1, 1))
    assert den.threshold == Threshold.static()
    assert Threshold()(x0)[0, 0, 0, 1] > -0.9  # dynamic: a background pixel at -1 becomes -1 / s

    def background(threshold):
        g = torch.Generator().manual_seed(0)
        predict = Conditioned.from_prompts(den, [str(d) for d in range(10)] * 2, 5.0)
        x = torch.randn(20, 1, 28, 28, generator=g)
        img = (iterative_denoise(den.schedule, predict, x, den.schedule.strided_timesteps(), threshold=threshold,
                                 generator=g).image.clamp(-1, 1) + 1) / 2
        return float(img[img < 0.3].mean())

    static, dynamic = background(den.threshold), background(Threshold())
    assert static < 0.02 < 2 * static < dynamic  # measured: 0.013 vs 0.037 over 100 digits (real MNIST: 0.006)

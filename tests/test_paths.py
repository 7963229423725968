"""fundiff.paths: the affine flow path and its eps / x0 / velocity converters."""

from __future__ import annotations

import torch

from fundiff.paths import x0_eps_from_velocity, x0_from_eps


def test_path_estimates_invert_the_path():
    x1, eps, t = torch.rand(5, 1, 4, 4), torch.randn(5, 1, 4, 4), torch.rand(5)
    tc = t.view(-1, 1, 1, 1)
    xt = (1 - tc) * eps + tc * x1
    x1_hat, eps_hat = x0_eps_from_velocity(xt, t, x1 - eps)
    torch.testing.assert_close(x1_hat, x1)
    torch.testing.assert_close(eps_hat, eps)
    a, s = torch.tensor([0.8] * 5), torch.tensor([0.6] * 5)
    torch.testing.assert_close(x0_from_eps(a.view(-1, 1, 1, 1) * x1 + s.view(-1, 1, 1, 1) * eps, a, s, eps), x1)

"""fundiff.guidance: classifier-free guidance for Part B's class UNets."""

from __future__ import annotations

import torch

from fundiff.guidance import conditional_prediction
from fundiff.nn import ClassConditionalUNet


def test_cfg_is_one_batched_call_matching_two_passes():
    torch.manual_seed(0)
    model = ClassConditionalUNet(1, 10, 4).eval()
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    x, t, y = torch.randn(3, 1, 28, 28), torch.rand(3), torch.tensor([1, 2, 3])
    guided, nfe = conditional_prediction(model, y, 5.0)
    out = guided(x, t)
    assert calls == [6] and nfe == 2
    cond = model(x, y, t, torch.ones(3))
    uncond = model(x, y, t, torch.zeros(3))
    torch.testing.assert_close(out, uncond + 5.0 * (cond - uncond), rtol=1e-4, atol=1e-5)
    plain, nfe1 = conditional_prediction(model, y, 1.0)
    torch.testing.assert_close(plain(x, t), cond)
    assert nfe1 == 1

"""fundiff.objectives: the study's losses (flow matching, DDPM, the classifier's)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from fundiff.data import to_float
from fundiff.nn import ClassConditionalUNet, MnistClassifier, TimeConditionalUNet
from fundiff.objectives import ClassifyObjective, DDPMObjective, FlowMatchingObjective
from fundiff.training import rng
from fundiff.training.rng import BatchRandom, generator


def test_flow_objective_is_the_study_loss():
    torch.manual_seed(0)
    model = ClassConditionalUNet(1, 10, 4)
    x1, y = torch.rand(6, 1, 28, 28), torch.arange(6)
    loss = FlowMatchingObjective(p_uncond=0.5).loss(model, x1, y, BatchRandom(generator(0, 0, 0)))
    r = BatchRandom(generator(0, 0, 0))
    eps = r.randn(x1.shape, "cpu")
    t = r.rand(6, "cpu")
    keep = (r.rand(6, "cpu") >= 0.5).float()
    xt = (1 - t.view(-1, 1, 1, 1)) * eps + t.view(-1, 1, 1, 1) * x1
    torch.testing.assert_close(loss, F.mse_loss(model(xt, y, t, keep), x1 - eps))


def test_ddpm_objective_is_the_study_loss():
    torch.manual_seed(0)
    model = TimeConditionalUNet(1, 4, "additive")
    x0 = torch.rand(6, 1, 28, 28)
    obj = DDPMObjective()
    loss = obj.loss(model, x0, torch.zeros(6, dtype=torch.long), BatchRandom(generator(0, 0, 0)))
    r = BatchRandom(generator(0, 0, 0))
    eps = r.randn(x0.shape, "cpu")
    t = r.randint(300, 6, "cpu")
    ab = obj.schedule.alphas_cumprod[t].float().view(-1, 1, 1, 1)
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    torch.testing.assert_close(loss, F.mse_loss(model(xt, t.float() / 300), eps))


def test_classify_objective_augmentation_is_deterministic(mnist):
    objective = ClassifyObjective()
    x = to_float(mnist.train_images[:64])
    a = objective.augment(x, BatchRandom(rng.generator(0, 1, 2)))
    b = objective.augment(x, BatchRandom(rng.generator(0, 1, 2)))
    c = objective.augment(x, BatchRandom(rng.generator(0, 1, 3)))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, x)
    # every image is an exact translate (zero fill) of its original by at most 2 px, and the shifts vary
    def translate(img, dy, dx):
        out = torch.roll(img, (dy, dx), dims=(1, 2))
        if dy > 0:
            out[:, :dy] = 0
        elif dy < 0:
            out[:, dy:] = 0
        if dx > 0:
            out[:, :, :dx] = 0
        elif dx < 0:
            out[:, :, dx:] = 0
        return out

    found = set()
    for k in range(16):
        offsets = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if torch.equal(a[k], translate(x[k], dy, dx))]
        assert offsets, k
        found.add(offsets[0])
    assert len(found) > 3
    assert torch.equal(ClassifyObjective(max_shift=0).augment(x, None), x)
    model = MnistClassifier()
    loss = objective.loss(model, x, mnist.train_labels[:64], BatchRandom(rng.generator(0, 0, 0)))
    assert loss.shape == () and torch.isfinite(loss)


def test_noisy_classify_objective_is_cross_entropy_on_the_models_noise_levels(mnist):
    from fundiff.engine.schedule import Schedule
    from fundiff.nn import NoisyMnistClassifier
    from fundiff.objectives import NoisyClassifyObjective

    torch.manual_seed(0)
    model, objective = NoisyMnistClassifier(8), NoisyClassifyObjective()
    x, y = to_float(mnist.train_images[:6]), mnist.train_labels[:6]
    loss = objective.loss(model, x, y, BatchRandom(generator(0, 0, 0)))
    r = BatchRandom(generator(0, 0, 0))
    t = r.randint(1000, 6, "cpu")
    eps = r.randn(x.shape, "cpu")
    ab = Schedule.squaredcos().alphas_cumprod[t].float().view(-1, 1, 1, 1)   # the embedded model's schedule
    xt = ab.sqrt() * (2 * x - 1) + (1 - ab).sqrt() * eps
    torch.testing.assert_close(loss, F.cross_entropy(model(xt, t), y))
    assert objective.config()["name"] == "noisy-classify" and objective.config()["schedule"]

"""The few-step student: the spec class UNet that also takes the guidance scale and the step size.

    s(x, c, t, gamma, d) ~ (x_{t+d} - x_t) / d     along the teacher's guided ODE dx/dt = v_gamma(x, t, c),
    v_gamma = v(x, t, 0) + gamma (v(x, t, c) - v(x, t, 0))                 (classifier-free guidance)

so one Euler step x <- x + d s(x, c, t, gamma, d) jumps a whole interval of length d, and guidance costs
one pass, not two (Meng et al. 2023's guidance distillation).  d = 0 is the instantaneous guided velocity;
d = 1 maps noise to an image in one evaluation (Frans et al. 2024's shortcut models).

The body and the (c, t) modulation are :class:`~fundiff.nn.unet.ClassConditionalUNet`'s; (c, t, gamma, d)
adds a FiLM on top at u0 and u1::

    u0 = c1 * u0 * (1 + a1) + t1 + b1,    (a1, b1) = FCBlock(K + 4, 2 * 2D)([c, t, w, d, l])
    u1 = c2 * u1 * (1 + a2) + t2 + b2,    (a2, b2) = FCBlock(K + 4, 2 * D)([c, t, w, d, l])

with w = (gamma - 1) / 4 and l = log2(1 / max(d, 2^-LEVELS)) / LEVELS.  The FiLM's last layers start at
zero, so a student made with :meth:`ShortcutUNet.from_teacher` is exactly its teacher's conditional model
(gamma = 1, d = 0) before training.
"""

from __future__ import annotations

import math
import torch
from torch import nn

from fundiff.nn.blocks import FCBlock
from fundiff.nn.registry import register
from fundiff.nn.unet import ClassConditionalUNet, _time_column

LEVELS = 7   # the finest step the features tell apart is 2^-7; d = 0 shares its feature


@register
class ShortcutUNet(ClassConditionalUNet):
    """s(x, c, t, gamma, d): see the module docstring; an all-zero class vector (or mask 0) is unconditional."""

    kind = "shortcut"

    def __init__(self, in_channels: int = 1, num_classes: int = 10, num_hiddens: int = 32):
        super().__init__(in_channels, num_classes, num_hiddens)
        self.fc1_s = FCBlock(num_classes + 4, 4 * num_hiddens)
        self.fc2_s = FCBlock(num_classes + 4, 2 * num_hiddens)
        for fc in (self.fc1_s, self.fc2_s):
            nn.init.zeros_(fc.net[-1].weight)
            nn.init.zeros_(fc.net[-1].bias)

    @classmethod
    def from_teacher(cls, teacher: ClassConditionalUNet, seed: int = 0) -> "ShortcutUNet":
        """A student that computes exactly ``teacher``'s conditional velocity at every (gamma, d) until trained; the
        FiLM's first layers are drawn from ``seed`` (not from the global random state, so a run is reproducible)."""
        if getattr(teacher, "kind", None) != "class":
            raise ValueError(f"a shortcut student starts from a class-conditional flow UNet, not {teacher.kind!r}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            student = cls(teacher.in_channels, teacher.num_classes, teacher.num_hiddens)
        missing, unexpected = student.load_state_dict(teacher.state_dict(), strict=False)
        if unexpected or any(not k.startswith(("fc1_s.", "fc2_s.")) for k in missing):
            raise ValueError(f"teacher and student layouts differ: missing {missing}, unexpected {unexpected}")
        return student

    def forward(self, x: torch.Tensor, c: torch.Tensor, t: torch.Tensor | float, guidance: torch.Tensor | float,
                step: torch.Tensor | float, mask: torch.Tensor | None = None) -> torch.Tensor:
        if (y := self.in_slices(self.forward, x, c, t, guidance, step, mask)) is not None:
            return y
        n = x.shape[0]
        c = self.class_vector(c, mask, x)
        t = _time_column(t, n, x)
        w = (_time_column(guidance, n, x) - 1.0) / 4.0
        d = _time_column(step, n, x)
        level = torch.log2(1.0 / d.clamp(min=2.0**-LEVELS)) / LEVELS
        features = torch.cat([c, t, w, d, level], dim=1)
        a1, b1 = self.fc1_s(features).chunk(2, dim=1)
        a2, b2 = self.fc2_s(features).chunk(2, dim=1)
        c1, c2 = self.fc1_c(c), self.fc2_c(c)
        t1, t2 = self.fc1_t(t), self.fc2_t(t)
        return self.run(x, lambda u: c1 * u * (1 + a1) + t1 + b1, lambda u: c2 * u * (1 + a2) + t2 + b2)


def step_sizes(levels: int = LEVELS - 1) -> list[float]:
    """The step sizes a student is trained for: 1, 1/2, ..., 2^-levels."""
    return [2.0**-m for m in range(levels + 1)]


def is_power_of_two(steps: int) -> bool:
    return steps >= 1 and 2 ** round(math.log2(steps)) == steps

"""The Part A sampling loops (reference 1.1-1.6), written once over :class:`~fundiff.engine.denoiser.Denoiser`.

``predict`` below is any function (x, t) -> Prediction: a :class:`Conditioned` denoiser (one prompt,
optionally guided), or a composition of them (visual anagrams, hybrids).

* :func:`forward`          x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps               (1.1)
* :func:`one_step_denoise` x0-hat = (x_t - sqrt(1 - alpha_bar_t) eps-hat) / sqrt(alpha_bar_t)   (1.3)
* :func:`denoise_step`     the DDPM posterior step t -> t' with the model's variance            (A.3)
* :func:`iterative_denoise` strided steps from ``timesteps[i_start]`` down to the clean image    (1.4-1.6)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch

from fundiff.engine.denoiser import Prediction
from fundiff.engine.schedule import Schedule, Threshold
from fundiff.errors import FundiffError

Predict = Callable[[torch.Tensor, int], Prediction]
StepHook = Callable[[torch.Tensor, int], torch.Tensor]  # (x at its new timestep, that timestep) -> x


class Corrector(Protocol):
    """Moves x at its own noise level t with more ``predict`` calls (``engine.correctors``)."""

    steps: int

    def applies(self, t: int) -> bool: ...

    def __call__(self, predict: Predict, x: torch.Tensor, t: int, noise_std: float,
                 generator: torch.Generator | None = None) -> torch.Tensor: ...


def randn(shape: tuple[int, ...] | torch.Size, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device (so seeds give the same numbers anywhere it is the CPU)."""
    gen_device = generator.device if generator is not None else like.device
    return torch.randn(tuple(shape), generator=generator, device=gen_device, dtype=like.dtype).to(like.device)


def forward(schedule: Schedule, x0: torch.Tensor, t: int, generator: torch.Generator | None = None,
            noise: torch.Tensor | None = None) -> torch.Tensor:
    """Noise a clean image to timestep t (reference 1.1)."""
    schedule.check_timestep(t)
    noise = randn(x0.shape, generator, x0) if noise is None else noise
    return schedule.add_noise(x0, t, noise)


@torch.no_grad()
def one_step_denoise(predict: Predict, x_t: torch.Tensor, t: int) -> torch.Tensor:
    """The clean-image estimate from one model call (reference 1.3)."""
    return predict(x_t, t).x0


def denoise_step(
    schedule: Schedule, pred: Prediction, x: torch.Tensor, t: int, t_prev: int,
    threshold: Threshold | None = None, generator: torch.Generator | None = None, add_variance: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDPM posterior step t -> t_prev (-1: clean); returns (x_t', the x0-hat it used).

    x0-hat is thresholded (dynamic or static) when ``threshold`` is given; sigma z is added for t > 0.
    """
    x0 = threshold(pred.x0) if threshold is not None else pred.x0
    x_prev = schedule.posterior_mean(x0, x, t, t_prev)
    if add_variance and t > 0:
        z = randn(x.shape, generator, x)
        logvar = schedule.log_variance(t, t_prev, pred.variance)
        x_prev = x_prev + torch.exp(0.5 * logvar).to(x_prev) * z
    return x_prev, x0


@dataclass
class DenoiseResult:
    """The final image and what happened on the way: (timestep, x) after each step."""

    image: torch.Tensor
    trajectory: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    x0_estimates: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    model_calls: int = 0


@torch.no_grad()
def iterative_denoise(
    schedule: Schedule,
    predict: Predict,
    x: torch.Tensor,
    timesteps: list[int],
    i_start: int = 0,
    *,
    threshold: Threshold | None = None,
    generator: torch.Generator | None = None,
    final_step: bool = True,
    after_step: StepHook | None = None,
    keep_trajectory: bool = False,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
    resample_steps: int = 0,
    resample_times: int = 1,
    corrector: Corrector | None = None,
) -> DenoiseResult:
    """Denoise x, which sits at ``timesteps[i_start]``, along the strided ``timesteps`` (reference 1.4).

    Step i goes from t = timesteps[i] to t' = timesteps[i + 1]; with ``final_step`` the last timestep
    also steps to the clean image (t' = -1), as diffusers' pipelines do, otherwise the loop stops at
    ``timesteps[-1]`` as the study's does.  ``after_step(x, t')`` may rewrite x after each step
    (inpainting puts the known region back there).  ``callback(i, t, x)`` runs after every step.

    Resampling (RePaint's jumps of length 1, at high noise only): each of the first ``resample_steps`` steps runs
    ``resample_times`` times; between runs the new x_t' is noised back up to t with q(x_t | x_t')
    (:meth:`Schedule.renoise`), so the predictions composed in ``predict`` get more tries to agree there.

    ``corrector(predict, x, t, s_t, generator)`` (``engine.correctors.Langevin``), where ``corrector.applies(t)``,
    moves x at its own noise level before each prediction (Song et al.'s predictor-corrector sampler).
    """
    Schedule.check_i_start(timesteps, i_start)
    if resample_steps < 0 or resample_times < 1:
        raise FundiffError(f"resampling needs resample_steps >= 0 and resample_times >= 1, got {resample_steps} and "
                           f"{resample_times}")
    result = DenoiseResult(x)
    last = len(timesteps) if final_step else len(timesteps) - 1
    for i in range(i_start, last):
        t = timesteps[i]
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        runs = resample_times if i - i_start < resample_steps and t_prev >= 0 else 1
        for run in range(runs):
            if run:
                x = schedule.renoise(x, t_prev, t, randn(x.shape, generator, x))
            if corrector is not None and corrector.applies(t):
                x = corrector(predict, x, t, schedule.coefficients(t)[1], generator)
                result.model_calls += corrector.steps
            pred = predict(x, t)
            result.model_calls += 1
            x, x0 = denoise_step(schedule, pred, x, t, t_prev, threshold, generator)
            if after_step is not None:
                x = after_step(x, t_prev)
        if keep_trajectory:
            result.trajectory.append((t_prev, x.detach().cpu()))
            result.x0_estimates.append((t, x0.detach().cpu()))
        if callback is not None:
            callback(i, t, x)
    result.image = x
    return result

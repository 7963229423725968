"""Image editing over the denoiser interface: SDEdit and inpainting (reference 1.7-1.7.3).

* :func:`sdedit`  noise the input to t = timesteps[i_start] (x = a_t x0 + s_t eps), then the strided loop
  from there: small i_start keeps little of the input, large i_start keeps a lot.  ``strength`` in (0, 1]
  is diffusers' name for the same knob (i_start = n - int(n strength)).
* :func:`inpaint` the study's replacement method (A.5): after every step the kept region (mask 0) is
  replaced by the original noised to the new timestep, x <- m x + (1 - m) forward(x_orig, t'), so the
  model always sees one noise level; at the end the kept region is the original exactly.
  With ``jump_length`` / ``jump_n_sample`` > 1 it resamples as RePaint does (Lugmayr et al. 2022): after
  every ``jump_length`` steps down, the image is noised back up ``jump_length`` steps with
  q(x_u | x_t) = N(sqrt(ab_u / ab_t) x_t, (1 - ab_u / ab_t) I) and denoised again, ``jump_n_sample`` - 1
  times, which lets the generated region agree with the kept one.

Masks are (1, 1, H, W) or (N, 1, H, W) with 1 = generate, 0 = keep.
"""

from __future__ import annotations

from typing import Callable

import torch

from fundiff.engine.denoiser import Denoiser
from fundiff.engine.loops import DenoiseResult, Predict, denoise_step, forward, iterative_denoise, randn
from fundiff.engine.schedule import BACKEND_DEFAULT, Schedule, Threshold, resolve_threshold
from fundiff.errors import FundiffError

SDEDIT_I_STARTS = (1, 3, 5, 7, 10, 20)


@torch.no_grad()
def sdedit(den: Denoiser, predict: Predict, image: torch.Tensor, timesteps: list[int], i_start: int, *,
           generator: torch.Generator | None = None, threshold: Threshold | None | object = BACKEND_DEFAULT,
           keep_trajectory: bool = False, final_step: bool = True, callback: Callable | None = None) -> DenoiseResult:
    """SDEdit: forward(image, timesteps[i_start]) then denoise from i_start (reference 1.7).

    ``threshold``: the thresholding of x0-hat (None: the plain formula); by default the denoiser's own.
    """
    Schedule.check_i_start(timesteps, i_start)
    x = forward(den.schedule, image, timesteps[i_start], generator=generator)
    return iterative_denoise(den.schedule, predict, x, timesteps, i_start, generator=generator,
                             threshold=resolve_threshold(threshold, den), keep_trajectory=keep_trajectory,
                             final_step=final_step, callback=callback)


def check_mask(mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[-2:] != image.shape[-2:]:
        raise FundiffError(f"the mask must be 1 x {image.shape[-2]} x {image.shape[-1]} like the image, "
                           f"got {' x '.join(map(str, mask.shape[1:]))}")
    if mask.sum() == 0:
        raise FundiffError("the mask is empty: nothing to generate (white = generate; see --invert-mask)")
    return mask.to(image)


def repaint_schedule(num_steps: int, jump_length: int = 1, jump_n_sample: int = 1) -> list[int]:
    """Levels visited in order, 0 = the start, ``num_steps`` = clean: down by one (denoise) or up (renoise).

    RePaint's schedule with one jump level: counting u = num_steps - level down to 0, at every u in
    {0, j, 2j, ...} below num_steps - j the walk goes back up j levels, jump_n_sample - 1 times in all.
    jump_n_sample = 1 is the plain walk 0, 1, ..., num_steps.
    """
    if jump_length < 1 or jump_n_sample < 1:
        raise FundiffError("--jump-length and --jump-n-sample must be at least 1")
    jumps = {u: jump_n_sample - 1 for u in range(0, num_steps - jump_length, jump_length)}
    u, path = num_steps, [0]
    while u >= 1:
        u -= 1
        path.append(num_steps - u)
        if jumps.get(u, 0) > 0:
            jumps[u] -= 1
            for _ in range(jump_length):
                u += 1
                path.append(num_steps - u)
    return path


@torch.no_grad()
def inpaint(den: Denoiser, predict: Predict, image: torch.Tensor, mask: torch.Tensor, timesteps: list[int], *,
            i_start: int = 0, jump_length: int = 1, jump_n_sample: int = 1, generator: torch.Generator | None = None,
            threshold: Threshold | None | object = BACKEND_DEFAULT, keep_trajectory: bool = False,
            final_step: bool = True, callback: Callable | None = None) -> DenoiseResult:
    """Generate where ``mask`` is 1, keep ``image`` where it is 0 (replacement, optionally RePaint resampling).

    Starts from pure noise at timesteps[i_start] (i_start = 0: the study's setting) or, for i_start > 0,
    from the input noised there (SDEdit inside the mask).
    """
    mask = check_mask(mask, image)
    sched = den.schedule
    thr = resolve_threshold(threshold, den)
    Schedule.check_i_start(timesteps, i_start)
    ts = list(timesteps[i_start:]) + ([-1] if final_step else [])   # level k of the walk is ts[k]; -1 is clean

    def keep(x: torch.Tensor, t: int) -> torch.Tensor:
        known = sched.add_noise(image, t, randn(image.shape, generator, image)) if t >= 0 else image
        return mask * x + (1 - mask) * known

    x = randn(image.shape, generator, image) if i_start == 0 else forward(sched, image, ts[0], generator=generator)
    x = keep(x, ts[0])
    result = DenoiseResult(x)
    path = repaint_schedule(len(ts) - 1, jump_length, jump_n_sample)
    for step, (k, k_next) in enumerate(zip(path, path[1:])):
        t, t_next = ts[k], ts[k_next]
        if k_next > k:   # denoise one step, then put the known region back at the new level
            pred = predict(x, t)
            result.model_calls += 1
            x, _ = denoise_step(sched, pred, x, t, t_next, thr, generator)
            x = keep(x, t_next)
        else:            # RePaint's undo: noise back up from t to t_next > t
            x = sched.renoise(x, t, t_next, randn(x.shape, generator, x))
        if keep_trajectory:
            result.trajectory.append((t_next, x.detach().cpu()))
        if callback is not None:
            callback(step, t, x)
    result.image = x
    return result

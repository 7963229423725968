"""The discrete noise schedule every Part A loop walks.

A schedule is T = 1000 timesteps with cumulative products alpha_bar_t (t = 0 almost clean,
t = T-1 almost pure noise).  A noisy image at timestep t is

    x_t = a_t x0 + s_t eps,    a_t = sqrt(alpha_bar_t),  s_t = sqrt(1 - alpha_bar_t).

DeepFloyd IF brings its own (``squaredcos_cap_v2``, read off its scheduler); fundiff's MNIST flow
model is given the same one, so t = 250, 500, 750 and the strided list 990, 960, ..., 0 mean the same
noise levels on both backends.

Strided sampling walks a decreasing list of timesteps ``ts``; ``i_start`` indexes into it (the
study's ``strided_timesteps = list(range(990, -1, -30))``, ``i_start = 10`` is t = 690).  One step
from t to the next timestep t' (or to "clean", t' = -1, after the last) is the DDPM posterior
(reference A.3) with alpha = alpha_bar_t / alpha_bar_t', beta = 1 - alpha:

    x_t' = sqrt(alpha_bar_t') beta / (1 - alpha_bar_t) x0  +  sqrt(alpha) (1 - alpha_bar_t') / (1 - alpha_bar_t) x_t
           + sigma z,

with log sigma^2 = f log beta + (1 - f) log beta~ for learned-range variance v (f = (v + 1) / 2) and
beta~ = (1 - alpha_bar_t') / (1 - alpha_bar_t) beta (the "fixed small" variance when the model has no
variance channels).  Noise is added only for t > 0, as diffusers' ``DDPMScheduler.step`` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from fundiff.errors import FundiffError

NUM_TRAIN_TIMESTEPS = 1000


def squaredcos_alphas_cumprod(num_steps: int = NUM_TRAIN_TIMESTEPS, max_beta: float = 0.999) -> torch.Tensor:
    """alpha_bar of the cosine schedule (Nichol & Dhariwal), as diffusers' ``squaredcos_cap_v2`` builds it.

    alpha_bar(u) = cos^2((u + 0.008) / 1.008 * pi / 2); beta_i = min(1 - alpha_bar((i+1)/T) / alpha_bar(i/T), 0.999);
    alpha_bar_t = prod_{i <= t} (1 - beta_i), the betas rounded to float32 first (bit-compatible with diffusers).
    """
    def f(u: float) -> float:
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1 - f((i + 1) / num_steps) / f(i / num_steps), max_beta) for i in range(num_steps)]
    return torch.cumprod(1.0 - torch.tensor(betas, dtype=torch.float32), dim=0)


@dataclass(frozen=True)
class Threshold:
    """Dynamic thresholding of x0-hat (Imagen): s = clamp(quantile(|x0|, ratio), 1, max_value) per image,
    x0 <- clamp(x0, -s, s) / s.  IF stage I asks for ratio 0.95, max 1.5.

    ``max_value`` = 1 is Imagen's *static* thresholding, x0 <- clamp(x0, -1, 1) (:meth:`static`).  That is
    the one for data whose pixels sit at the ends of the range, as MNIST's do: there the 95% quantile of
    |x0-hat| is at or above 1 in almost every image, so dynamic thresholding divides the whole image by
    s > 1 at every step and lifts the black background (-1 -> -1/s), which accumulates into grey speckle.
    """

    ratio: float = 0.95
    max_value: float = 1.5

    @classmethod
    def static(cls) -> "Threshold":
        """x0 <- clamp(x0, -1, 1)."""
        return cls(max_value=1.0)

    @property
    def is_static(self) -> bool:
        return self.max_value == 1.0

    def __call__(self, x0: torch.Tensor) -> torch.Tensor:
        if self.is_static:
            return x0.clamp(-1, 1)
        dtype = x0.dtype
        flat = x0.float().reshape(x0.shape[0], -1)
        s = torch.quantile(flat.abs(), self.ratio, dim=1).clamp(min=1, max=self.max_value).unsqueeze(1)
        return (torch.clamp(flat, -s, s) / s).reshape(x0.shape).to(dtype)


THRESHOLD_CHOICES = ("auto", "dynamic", "static", "none")


def describe_threshold(threshold: Threshold | None) -> str:
    """'none', 'static' or 'dynamic (ratio R, max M)', for records."""
    if threshold is None:
        return "none"
    return "static" if threshold.is_static else f"dynamic (ratio {threshold.ratio:g}, max {threshold.max_value:g})"


def choose_threshold(choice: str, backend_default: Threshold | None) -> Threshold | None:
    """``--threshold``: the backend's own ("auto": dynamic for DeepFloyd IF, static for MNIST), IF's dynamic
    one (ratio 0.95, max 1.5), static clipping to [-1, 1], or none (the study's plain x0 formula)."""
    if choice not in THRESHOLD_CHOICES:
        raise FundiffError(f"--threshold must be one of {', '.join(THRESHOLD_CHOICES)}, got {choice!r}")
    return {"auto": backend_default, "dynamic": Threshold(), "static": Threshold.static(), "none": None}[choice]


BACKEND_DEFAULT = object()  # "the denoiser's own thresholding" (a loop's default)


def resolve_threshold(threshold: Threshold | None | object, denoiser) -> Threshold | None:
    """``BACKEND_DEFAULT`` -> the denoiser's own thresholding; a Threshold or None is taken as given."""
    return denoiser.threshold if threshold is BACKEND_DEFAULT else threshold  # type: ignore[return-value]


class Schedule:
    """alpha_bar over T discrete timesteps, and the coefficients the loops need.

    One class for both of the study's schedules: DeepFloyd IF's cosine one (:meth:`squaredcos`, T = 1000)
    and the 2024 study's DDPM one (:meth:`linear`, T = 300, betas linear from 1e-4 to 0.02).
    """

    def __init__(self, alphas_cumprod: torch.Tensor, config: dict | None = None):
        self.alphas_cumprod_f64 = alphas_cumprod.detach().double().cpu()
        self.alphas_cumprod = alphas_cumprod.detach().float().cpu()
        self.num_train_timesteps = len(self.alphas_cumprod)
        self._config = dict(config or {"path": "alphas_cumprod", "num_steps": self.num_train_timesteps})

    @classmethod
    def squaredcos(cls, num_steps: int = NUM_TRAIN_TIMESTEPS) -> "Schedule":
        return cls(squaredcos_alphas_cumprod(num_steps), {"path": "squaredcos_cap_v2", "num_steps": num_steps})

    @classmethod
    def linear(cls, num_steps: int = 300, beta1: float = 1e-4, beta2: float = 0.02) -> "Schedule":
        """The 2024 study's DDPM schedule: betas linear in [beta1, beta2], alpha_bar = cumprod(1 - beta) (float64)."""
        betas = torch.linspace(beta1, beta2, num_steps, dtype=torch.float64)
        sched = cls(torch.cumprod(1 - betas, dim=0), {"path": "ddpm", "num_steps": num_steps, "beta1": beta1,
                                                       "beta2": beta2})
        sched.betas = betas
        return sched

    @property
    def num_steps(self) -> int:
        return self.num_train_timesteps

    def config(self) -> dict:
        """What rebuilds this schedule (recorded with a trained model)."""
        return dict(self._config)

    def coefficients_at(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a_t, s_t) for a tensor of integer timesteps (training), from the float64 alpha_bar, as float32."""
        ab = self.alphas_cumprod_f64.to(t.device)[t.long()]
        return ab.sqrt().float(), (1 - ab).sqrt().float()

    # -- noise levels --------------------------------------------------------------------------
    def alpha_bar(self, t: int) -> torch.Tensor:
        """alpha_bar_t; 1 for t < 0 (the clean image)."""
        return self.alphas_cumprod[t] if t >= 0 else torch.tensor(1.0)

    def coefficients(self, t: int) -> tuple[float, float]:
        """(a_t, s_t) = (sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t))."""
        ab = self.alpha_bar(t)
        return float(ab.sqrt()), float((1 - ab).sqrt())

    def check_timestep(self, t: int) -> int:
        if not (0 <= int(t) < self.num_train_timesteps):
            raise FundiffError(f"timestep t={t} is outside 0..{self.num_train_timesteps - 1}")
        return int(t)

    # -- timestep lists ------------------------------------------------------------------------
    def strided_timesteps(self, start: int = 990, stride: int = 30) -> list[int]:
        """The study's list(range(start, -1, -stride)): 990, 960, ..., 30, 0."""
        self.check_timestep(start)
        if stride < 1:
            raise FundiffError(f"the timestep stride must be at least 1, got {stride}")
        return list(range(start, -1, -stride))

    def inference_timesteps(self, num_inference_steps: int) -> list[int]:
        """``num_inference_steps`` timesteps spaced like diffusers' DDPMScheduler ("leading"): k * (T // n), descending."""
        n, T = int(num_inference_steps), self.num_train_timesteps
        if not 1 <= n <= T:
            raise FundiffError(f"num_inference_steps must be in 1..{T}, got {num_inference_steps}")
        ratio = T // n
        return [i * ratio for i in range(n - 1, -1, -1)]

    @staticmethod
    def i_start_for_strength(num_steps: int, strength: float) -> int:
        """diffusers' img2img convention: run the last int(n * strength) of n timesteps, i.e. i_start = n - that."""
        if not 0.0 < strength <= 1.0:
            raise FundiffError(f"strength must be in (0, 1], got {strength}")
        return num_steps - min(int(num_steps * strength), num_steps)

    @staticmethod
    def check_i_start(timesteps: list[int], i_start: int) -> int:
        if not 0 <= i_start < len(timesteps):
            raise FundiffError(f"i_start={i_start} is outside 0..{len(timesteps) - 1} for these {len(timesteps)} timesteps")
        return i_start

    # -- the forward process and the posterior step --------------------------------------------
    def add_noise(self, x0: torch.Tensor, t: int, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps (reference 1.1)."""
        ab = self.alpha_bar(t).to(x0.device, x0.dtype)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def renoise(self, x: torch.Tensor, t: int, t_up: int, noise: torch.Tensor) -> torch.Tensor:
        """x_t -> x_t_up (t_up > t): a sample of q(x_u | x_t) = N(sqrt(ab_u / ab_t) x_t, (1 - ab_u / ab_t) I),
        the forward process continued from t (RePaint's undo; t = -1 is the clean image)."""
        ratio = self.alpha_bar(t_up) / self.alpha_bar(t)
        return ratio.sqrt().to(x) * x + (1 - ratio).sqrt().to(x) * noise

    def posterior_mean(self, x0: torch.Tensor, x: torch.Tensor, t: int, t_prev: int) -> torch.Tensor:
        """The DDPM posterior mean of x_t' given x_t and x0 (reference A.3), t' = t_prev (-1: clean)."""
        ab_t, ab_prev = self.alpha_bar(t), self.alpha_bar(t_prev)
        alpha = ab_t / ab_prev
        beta = 1 - alpha
        c_x0 = (ab_prev.sqrt() * beta) / (1 - ab_t)
        c_xt = alpha.sqrt() * (1 - ab_prev) / (1 - ab_t)
        return c_x0.to(x.device, x.dtype) * x0 + c_xt.to(x.device, x.dtype) * x

    def beta(self, t: int, t_prev: int) -> torch.Tensor:
        """beta of the step t -> t_prev: 1 - alpha_bar_t / alpha_bar_t' (the study's DDPM variance sigma^2 = beta)."""
        return 1 - self.alpha_bar(t) / self.alpha_bar(t_prev)

    def log_variance(self, t: int, t_prev: int, predicted_variance: torch.Tensor | None) -> torch.Tensor:
        """log sigma^2 of the step t -> t_prev: learned range between log beta~ and log beta, or log beta~."""
        ab_t, ab_prev = self.alpha_bar(t), self.alpha_bar(t_prev)
        beta = 1 - ab_t / ab_prev
        small = ((1 - ab_prev) / (1 - ab_t) * beta).clamp(min=1e-20)
        if predicted_variance is None:
            return small.log()
        frac = (predicted_variance + 1) / 2
        return frac * beta.log().to(frac) + (1 - frac) * small.log().to(frac)

"""DeepFloyd IF through ``diffusers``: stage I (64 px) as a Part A denoiser, stage II (256 px) upsampling.

Components are diffusers' own classes (``UNet2DConditionModel``, ``DDPMScheduler``, T5 through
``IFPipeline.encode_prompt``), loaded from a local folder (a copy of ``DeepFloyd/IF-I-XL-v1.0``, or the
user's Hugging Face cache); nothing is downloaded unless asked.  The stage I UNet predicts 6 channels:
eps (0-2) and learned-range variance values (3-5).  With x = a_t x0 + s_t eps:

    eps-hat = unet(x, t, T5(prompt))[:, :3],   x0-hat = (x - s_t eps-hat) / a_t.

Stage II is the same loop on a UNet that also sees the bilinearly upsampled 64 px image, noised to
``noise_level`` by its image-noising scheduler, and that level as ``class_labels``.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from fundiff.engine.denoiser import Conditioned, Denoiser, Prediction
from fundiff.backends.embeddings import PromptEmbeddings
from fundiff.engine.loops import iterative_denoise, randn
from fundiff.engine.schedule import BACKEND_DEFAULT, Schedule, Threshold, resolve_threshold
from fundiff.errors import FundiffError
from fundiff.paths import x0_from_eps

STAGE_1_REPO = "DeepFloyd/IF-I-XL-v1.0"
STAGE_2_REPO = "DeepFloyd/IF-II-L-v1.0"
INSTALL_HINT = "DeepFloyd IF needs diffusers and transformers: pip install 'fundiff[deepfloyd]'"


def _diffusers():
    try:
        import diffusers  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        raise FundiffError(INSTALL_HINT) from None
    # diffusers >= 0.36 renames from_pretrained's torch_dtype to dtype; the old name works on every version.
    warnings.filterwarnings("ignore", message=".*torch_dtype.*is deprecated", category=FutureWarning)
    return diffusers


def threshold_from_config(config: Any) -> Threshold | None:
    """The dynamic thresholding a diffusers DDPMScheduler config asks for (None if off)."""
    if not getattr(config, "thresholding", False):
        return None
    return Threshold(float(config.dynamic_thresholding_ratio), float(config.sample_max_value))


class DeepFloydDenoiser(Denoiser):
    """IF stage I: a diffusers UNet2DConditionModel (6 output channels) and its DDPMScheduler config."""

    name = "deepfloyd"
    channels = 3
    null_prompt = ""
    default_prompt = "a high quality photo"
    max_batch_images = 8

    def __init__(self, unet: torch.nn.Module, scheduler: Any, embeddings: PromptEmbeddings,
                 execution_device: torch.device | str | None = None, offload_hook: Any = None,
                 max_unet_batch: int | None = None):
        self.unet = unet
        self.offload_hook = offload_hook       # --cpu-offload: accelerate's hook, to send the UNet back to the CPU
        self.max_unet_batch = max_unet_batch   # --max-batch: at most this many images per UNet call (None: any)
        self.scheduler_config = scheduler.config
        self.schedule = Schedule(scheduler.alphas_cumprod)
        self.threshold = threshold_from_config(scheduler.config)
        self.embeddings = embeddings
        self.image_size = int(unet.config.sample_size)
        self._device = torch.device(execution_device) if execution_device else next(unet.parameters()).device

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def encode(self, prompts: Sequence[str]) -> torch.Tensor:
        if self.offload_hook is not None and any(p not in self.embeddings for p in prompts):
            self.offload_hook.offload()   # T5 is about to visit the GPU: the UNet leaves it first
        return self.embeddings(list(prompts)).to(self.device, self.dtype)

    def _unet(self, x: torch.Tensor, t: int, cond: torch.Tensor, **extra: Any) -> torch.Tensor:
        """The UNet on x, in slices of at most ``max_unet_batch`` images (CFG and views multiply the batch)."""
        t_in = torch.tensor(t, device=self.device)
        x = x.to(self.device, self.dtype)
        size = self.max_unet_batch or x.shape[0]
        parts = []
        for s in range(0, x.shape[0], size):
            rows = {k: v[s : s + size] for k, v in extra.items()}
            parts.append(self.unet(x[s : s + size], t_in, encoder_hidden_states=cond[s : s + size], return_dict=False,
                                   **rows)[0])
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, t: int, cond: torch.Tensor) -> Prediction:
        out = self._unet(x, t, cond)
        return self._prediction(x, t, out)

    def _prediction(self, x: torch.Tensor, t: int, out: torch.Tensor) -> Prediction:
        """Split the UNet's 6 channels into eps and variance; x0 = (x - s eps) / a."""
        eps, variance = out.to(x.dtype).split(x.shape[1], dim=1)
        ab = self.schedule.alpha_bar(t).to(x.device, x.dtype)
        x0 = x0_from_eps(x, ab ** 0.5, (1 - ab) ** 0.5, eps)
        return Prediction(x0=x0, eps=eps, variance=variance)


class DeepFloydStageII(DeepFloydDenoiser):
    """IF stage II: denoises 256 px images conditioned on an upsampled, noised 64 px image.

    The low-resolution image travels with the conditioning, never as state of the model: a stage II
    conditioning is the tuple (text embeddings, low-res image, noise level), one row per image.
    :meth:`bind` gives a stage II denoiser for one low-res batch (a new object sharing the UNet) whose
    :meth:`encode` returns such tuples; :meth:`view_condition` passes a view on to the low-res image
    (anagrams at 256 px: view i applies to the whole 6-channel input).
    """

    name = "deepfloyd-stage-2"

    def __init__(self, unet: torch.nn.Module, scheduler: Any, image_noising_scheduler: Any,
                 embeddings: PromptEmbeddings, execution_device: torch.device | str | None = None,
                 offload_hook: Any = None, max_unet_batch: int | None = None):
        super().__init__(unet, scheduler, embeddings, execution_device, offload_hook, max_unet_batch)
        self.channels = int(unet.config.in_channels) // 2
        self.image_noising_scheduler = image_noising_scheduler
        self.bound: tuple[torch.Tensor, int] | None = None   # (low-res images, noise level) of a bound copy

    def low_res_condition(self, image: torch.Tensor, noise_level: int, generator: torch.Generator | None) -> torch.Tensor:
        """``image`` (N, 3, h, w) in [-1, 1] upsampled bilinearly (align_corners) and noised to ``noise_level``."""
        size = self.image_size
        up = F.interpolate(image.to(self.device, self.dtype), (size, size), mode="bilinear", align_corners=True)
        noise = randn(up.shape, generator, up)
        level = torch.tensor([noise_level] * up.shape[0], device=up.device)
        return self.image_noising_scheduler.add_noise(up, noise, timesteps=level)

    def bind(self, low_res: torch.Tensor, noise_level: int) -> "DeepFloydStageII":
        """A stage II denoiser whose prompts are conditioned on ``low_res`` (this one is left as it is)."""
        bound = copy.copy(self)
        bound.bound = (low_res, int(noise_level))
        return bound

    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.bound is None:
            raise FundiffError("stage II needs its low-resolution input: use stage2.bind(low_res, noise_level)")
        low, level = self.bound
        embeds = super().encode(prompts)
        if embeds.shape[0] % low.shape[0]:
            raise FundiffError(f"{embeds.shape[0]} prompts for {low.shape[0]} low-resolution images")
        rows = low.repeat(embeds.shape[0] // low.shape[0], 1, 1, 1)
        return embeds, rows, torch.full((embeds.shape[0],), level, device=self.device)

    @staticmethod
    def view_condition(cond: tuple, view: Any) -> tuple:
        embeds, low, level = cond
        return embeds, view.view(low), level

    @torch.no_grad()
    def predict(self, x: torch.Tensor, t: int, cond: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> Prediction:
        embeds, low, level = cond
        out = self._unet(torch.cat([x.to(low), low], dim=1), t, embeds, class_labels=level)
        return self._prediction(x, t, out)


@torch.no_grad()
def upsample(stage2: DeepFloydStageII, image: torch.Tensor, prompts: Sequence[str], *,
             num_inference_steps: int = 50, guidance_scale: float = 4.0, noise_level: int = 250,
             generator: torch.Generator | None = None, threshold: Threshold | None | object = BACKEND_DEFAULT,
             callback: Callable[[int, int, torch.Tensor], None] | None = None,
             predict: Callable[[DeepFloydStageII], Callable] | None = None) -> torch.Tensor:
    """Stage II super-resolution of 64 px images (N, 3, 64, 64) in [-1, 1] to 256 px, with fundiff's loop.

    Defaults are ``IFSuperResolutionPipeline``'s; the random draws come in the same order (initial
    noise, then the low-resolution image's noise, then one draw per step), so a shared seed gives the
    same result as the pipeline.  ``predict(bound_stage2)`` builds the prediction over the stage II model
    bound to this low-res input (anagrams and hybrids at 256 px: their views and components are defined
    at every size); by default the plain prompt prediction with CFG.
    """
    n, size = image.shape[0], stage2.image_size
    x = randn((n, stage2.channels, size, size), generator, torch.empty(0, device=stage2.device, dtype=stage2.dtype))
    bound = stage2.bind(stage2.low_res_condition(image, noise_level, generator), noise_level)
    step = predict(bound) if predict is not None else Conditioned.from_prompts(bound, prompts, guidance_scale)
    ts = stage2.schedule.inference_timesteps(num_inference_steps)
    return iterative_denoise(stage2.schedule, step, x, ts, threshold=resolve_threshold(threshold, stage2),
                             generator=generator, callback=callback).image


# -- loading ------------------------------------------------------------------------------------


def device_and_dtype(device: str | torch.device | None, dtype: torch.dtype | None) -> tuple[torch.device, torch.dtype]:
    """Where and in what precision IF runs: ``device`` None/"auto" is the GPU when there is one; ``dtype`` None is
    fp16 on a GPU, fp32 on the CPU."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu") if device in (None, "auto") else torch.device(device)
    return device, dtype or (torch.float16 if device.type == "cuda" else torch.float32)


def download_patterns(repo: str, dtype: torch.dtype, unet: bool = True, text_encoder: bool = False) -> list[str]:
    """The files of ``repo`` that loading needs, as huggingface_hub ``allow_patterns`` (fnmatch), and no more.

    The UNet (``unet``) in one precision only: the ``.fp16`` safetensors when ``dtype`` is float16 (a GPU),
    else the full-precision ones; the schedulers (stage II's ``image_noising_scheduler/`` too); and T5
    (``text_encoder``: its shards in that precision, their index, the tokenizer) only when T5 will run.
    Never the ``.bin`` pickles, the 8-bit T5, the safety checker or the watermarker.
    """
    fp16 = dtype == torch.float16
    patterns = ["model_index.json", "scheduler/scheduler_config.json"]
    if unet:
        patterns += ["unet/config.json", f"unet/diffusion_pytorch_model{'.fp16' if fp16 else ''}.safetensors"]
        if repo == STAGE_2_REPO:
            patterns.append("image_noising_scheduler/scheduler_config.json")
    if text_encoder:
        patterns += ["tokenizer/*", "text_encoder/config.json"]
        patterns += (["text_encoder/model.fp16-*-of-*.safetensors", "text_encoder/model.safetensors.index.fp16.json"]
                     if fp16 else ["text_encoder/model-*-of-*.safetensors", "text_encoder/model.safetensors.index.json"])
    return patterns


def resolve_weights(weights: str | os.PathLike | None, repo: str, download: bool = False, *,
                    dtype: torch.dtype = torch.float32, unet: bool = True, text_encoder: bool = False) -> Path:
    """A local folder with the pipeline (model_index.json, unet/, scheduler/ ...), from a path or the HF cache.

    ``weights`` may be the pipeline folder itself or a folder holding it under the repo's name
    (``IF-I-XL-v1.0``).  Without ``weights``, the Hugging Face cache is searched offline; only
    ``download=True`` lets huggingface_hub fetch it (gated: needs an accepted licence and a token), and then
    only the files :func:`download_patterns` names for this ``dtype`` and these parts.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.exists():
            raise FundiffError(f"DeepFloyd IF weights folder {path} does not exist")
        if not path.is_dir():
            raise FundiffError(f"DeepFloyd IF weights {path} should be a folder (a copy of {repo})")
        needed = ("unet", "scheduler") if unet else ("scheduler",)
        for candidate in (path, path / repo.split("/")[1]):
            if all((candidate / folder).is_dir() for folder in needed):
                return candidate
        raise FundiffError(f"{path} holds no DeepFloyd IF pipeline (expected unet/ and scheduler/ folders from {repo})")
    _diffusers()
    from huggingface_hub import snapshot_download

    patterns = download_patterns(repo, dtype, unet=unet, text_encoder=text_encoder)
    try:
        return Path(snapshot_download(repo, allow_patterns=patterns, local_files_only=not download))
    except Exception as exc:  # noqa: BLE001 - offline miss, gated repo, no token: all one line
        why = "not in the Hugging Face cache" if not download else f"download failed ({type(exc).__name__})"
        raise FundiffError(f"DeepFloyd IF weights for {repo}: {why}; pass --weights DIR (a local copy of {repo}), "
                           "or --download after accepting the licence on its model card and logging in") from None


def _variant(folder: Path, dtype: torch.dtype) -> str | None:
    return "fp16" if dtype == torch.float16 and any(folder.glob("*.fp16.*")) else None


def load_unet_and_scheduler(path: Path, dtype: torch.dtype) -> tuple[torch.nn.Module, Any]:
    diffusers = _diffusers()
    try:
        unet = diffusers.UNet2DConditionModel.from_pretrained(
            path, subfolder="unet", torch_dtype=dtype, variant=_variant(path / "unet", dtype), local_files_only=True)
        scheduler = diffusers.DDPMScheduler.from_pretrained(path, subfolder="scheduler", local_files_only=True)
    except (OSError, ValueError, EnvironmentError) as exc:
        raise FundiffError(f"cannot load DeepFloyd IF from {path}: {str(exc).splitlines()[0]}") from None
    return unet.eval(), scheduler


def text_encoder_from(path: Path, device: torch.device, dtype: torch.dtype) -> Callable[[list[str]], torch.Tensor]:
    """T5 from the pipeline folder, as ``IFPipeline.encode_prompt`` uses it (no caption cleaning).

    T5-XXL is 4.8 B parameters (9.5 GB in fp16): it lives in CPU memory and visits the GPU only while it
    encodes, then leaves it (and the cache is emptied), so it never holds GPU memory between prompts.
    """
    diffusers = _diffusers()
    if not (path / "text_encoder").is_dir():
        raise FundiffError(f"{path} has no text_encoder/ folder; use a prompt-embedding file (--embeddings)")
    try:
        pipe = diffusers.IFPipeline.from_pretrained(
            path, unet=None, safety_checker=None, watermarker=None, feature_extractor=None,
            requires_safety_checker=False, torch_dtype=dtype, local_files_only=True,
            variant=_variant(path / "text_encoder", dtype))
    except (OSError, ValueError, EnvironmentError) as exc:
        raise FundiffError(f"cannot load the T5 text encoder from {path}: {str(exc).splitlines()[0]}") from None

    def encode(prompts: list[str]) -> torch.Tensor:
        pipe.text_encoder.to(device)
        try:
            embeds, _ = pipe.encode_prompt(prompts, do_classifier_free_guidance=False, device=device, clean_caption=False)
            return embeds.detach().cpu()
        finally:
            if device.type != "cpu":
                pipe.text_encoder.to("cpu")
                if device.type == "cuda":
                    torch.cuda.empty_cache()

    return encode


def load_deepfloyd(
    weights: str | os.PathLike | None = None, *, embeddings: str | os.PathLike | None = None,
    device: str | torch.device | None = None, dtype: torch.dtype | None = None, cpu_offload: bool = False,
    text_encoder: bool = False, download: bool = False, max_batch: int | None = None,
) -> DeepFloydDenoiser:
    """Stage I as a denoiser.  Prompts come from ``embeddings`` (a .pth cache) and/or the T5 encoder.

    fp16 on CUDA, fp32 on the CPU by default; ``cpu_offload`` keeps the UNet in CPU memory and moves it
    to the GPU only while it runs (accelerate's model offload).
    """
    device, dtype = device_and_dtype(device, dtype)
    use_t5 = text_encoder or embeddings is None
    path = resolve_weights(weights, STAGE_1_REPO, download, dtype=dtype, text_encoder=use_t5)
    unet, scheduler = load_unet_and_scheduler(path, dtype)
    if unet.config.in_channels != 3 or unet.config.out_channels != 6:
        raise FundiffError(f"{path} is not an IF stage I model (UNet {unet.config.in_channels} -> "
                           f"{unet.config.out_channels} channels, expected 3 -> 6)")
    encoder = text_encoder_from(path, device, dtype) if use_t5 else None
    cache = PromptEmbeddings.load(embeddings, encoder) if embeddings else PromptEmbeddings({}, str(path), encoder)
    placed, hook = _place(unet, device, cpu_offload)
    return DeepFloydDenoiser(placed, scheduler, cache, device, hook, max_batch)


def load_stage2(
    weights: str | os.PathLike | None, embeddings: PromptEmbeddings, *, device: str | torch.device | None = None,
    dtype: torch.dtype | None = None, cpu_offload: bool = False, download: bool = False, max_batch: int | None = None,
) -> DeepFloydStageII:
    """Stage II (``DeepFloyd/IF-II-L-v1.0``), sharing stage I's prompt embeddings."""
    device, dtype = device_and_dtype(device, dtype)
    path = resolve_weights(weights, STAGE_2_REPO, download, dtype=dtype)
    unet, scheduler = load_unet_and_scheduler(path, dtype)
    if unet.config.in_channels != 6:
        raise FundiffError(f"{path} is not an IF stage II model (its UNet takes {unet.config.in_channels} channels, expected 6)")
    diffusers = _diffusers()
    try:
        noising = diffusers.DDPMScheduler.from_pretrained(path, subfolder="image_noising_scheduler", local_files_only=True)
    except (OSError, ValueError, EnvironmentError):
        raise FundiffError(f"{path} has no image_noising_scheduler/ folder (is it a copy of {STAGE_2_REPO}?)") from None
    placed, hook = _place(unet, device, cpu_offload)
    return DeepFloydStageII(placed, scheduler, noising, embeddings, device, hook, max_batch)


def _place(unet: torch.nn.Module, device: torch.device, cpu_offload: bool) -> tuple[torch.nn.Module, Any]:
    """The UNet on ``device``, or (``cpu_offload``) in CPU memory with accelerate's hook that brings it to the GPU
    when it runs; the hook (or None) is returned too, for :meth:`DeepFloydDenoiser.encode` to send it back."""
    if cpu_offload and device.type != "cpu":
        from accelerate import cpu_offload_with_hook

        return cpu_offload_with_hook(unet, execution_device=device)
    return unet.to(device), None

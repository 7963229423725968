"""Visual anagrams and hybrid images (reference 1.8-1.9) as pipelines.

* :class:`AnagramPipeline`  N prompts, N views: eps = (1/N) sum_i v_i^-1(eps_cfg(v_i(x), p_i)), or on the
  embedded MNIST model (``reduction="auto"``) the balanced sum sum_i w_i v_i^-1(eps_i), weighted toward the view
  the shipped noise-aware classifier reads worst, with each view guided away from its rival, the digit that
  classifier most likely misreads it as (``rival``; ``engine.illusions``).
  ``out.images`` are the images as generated (view 1 = identity shows prompt 1); ``out.extras["views"]``
  holds the view objects, so ``views[i].view(out.samples)`` shows the reading of prompt i.
* :class:`HybridPipeline`   eps = sum_i f_i(eps_cfg(x, p_i)) for a decomposition f (low/high pass, three
  bands, grey/colour, motion blur); ``reference`` anchors component 1 on a real image.  On the embedded MNIST
  model the low/high hybrid forks at ``fork_t`` (``FORK_T``): composed until then, each band finished by its own
  prompt from there (``engine.illusions.forked_denoise``).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from fundiff.engine.correctors import DEFAULT as CORRECTOR, Langevin
from fundiff.engine.decompositions import get_decomposition
from fundiff.engine.illusions import (FORK_T, REDUCTIONS, anagram_predict, anchor_hook, apart_predict, check_rival, fork_index,
                                     forked_denoise, hybrid_predict, no_negative)
from fundiff.engine.views import View, get_view
from fundiff.errors import FundiffError
from fundiff.pipelines import readings
from fundiff.pipelines.base import Callback, DiffusionPipeline, PipelineOutput, check_common, check_count, check_scale


AUTO = "auto"   # the anagram's default reduction: balanced where a noise-aware classifier reads the prompts


MAX_PROMPTS = 8   # views or components: every step runs the model on each (visual_anagrams' largest set is 4)


def _prompt_list(prompt: Any, what: str) -> list[str]:
    part = 'view' if what == 'an anagram' else 'component'
    if isinstance(prompt, str) or not isinstance(prompt, (list, tuple)) or not all(isinstance(p, str) for p in prompt):
        raise FundiffError(f"{what} needs a list of prompts, one per {part}, got {prompt!r}")
    if len(prompt) > MAX_PROMPTS:
        raise FundiffError(f"{what} takes at most {MAX_PROMPTS} prompts (one per {part}), got {len(prompt)}")
    return list(prompt)


class _IllusionPipeline(DiffusionPipeline):
    """What anagrams and hybrids share: one guided prediction per prompt, with (per prompt, optionally) its own
    ``guidance_scale`` and ``negative_prompt``, and the loop's high-noise resampling (``resample_steps`` steps run
    ``resample_times`` times each, RePaint-style; see ``engine.loops.iterative_denoise``)."""

    def check_shared(self, num_inference_steps: int | None, guidance_scale: Any, num_images_per_prompt: int,
                     output_type: str, generator: Any, callback: Any, prompts: list[str],
                     negative_prompt: Any, resample_steps: int = 0, resample_times: int = 1) -> list[int]:
        check_count(num_images_per_prompt, "num_images_per_prompt")
        scales = guidance_scale if isinstance(guidance_scale, (list, tuple)) else [guidance_scale]
        if len(scales) not in (1, len(prompts)):
            raise FundiffError(f"guidance_scale must be one number or a list of {len(prompts)} (one per prompt), "
                               f"got {len(scales)}")
        for g in scales:
            check_scale(g)
        check_common(output_type, generator, callback)
        self.check_encodable(prompts, negative_prompt, per_prompt=True)
        ts = self.check_steps(num_inference_steps)
        check_count(resample_steps, "resample_steps", 0, len(ts))
        check_count(resample_times, "resample_times", 1, 10)
        return ts

    @staticmethod
    def resolve_corrector(corrector_steps: int | None, corrector_snr: float, corrector_t_min: int,
                          auto: bool) -> Langevin | None:
        """Langevin corrector steps (``engine.correctors``): ``corrector_steps`` None (auto) runs :data:`CORRECTOR`'s
        where ``auto`` says it is measured to help, 0 none; ``corrector_snr`` / ``corrector_t_min`` its step size and
        the lowest timestep it runs at.  Bad values are one-line errors."""
        steps = (CORRECTOR.steps if auto else 0) if corrector_steps is None else corrector_steps
        corrector = Langevin(steps, corrector_snr, corrector_t_min)
        return corrector if corrector.steps else None

    @staticmethod
    def settings_record(guidance_scale: Any, negative_prompt: Any, resample_steps: int, resample_times: int,
                        corrector: Langevin | None = None) -> dict:
        """The guidance and loop settings as the record states them (resampling only when it ran; the corrector
        always: None when it did not run)."""
        scales = [float(g) for g in guidance_scale] if isinstance(guidance_scale, (list, tuple)) else float(guidance_scale)
        out: dict[str, Any] = {"guidance_scale": scales}
        if negative_prompt is not None:
            out["negative_prompt"] = list(negative_prompt) if isinstance(negative_prompt, (list, tuple)) else negative_prompt
        if resample_steps and resample_times > 1:
            out["resample"] = {"steps": resample_steps, "times": resample_times}
        out["corrector"] = corrector.record() if corrector is not None else None
        return out

    def check_best_of(self, best_of: int, prompts: list[str], num_images_per_prompt: int) -> list[int] | None:
        """The prompts' digits when ``best_of`` > 1 (None for 1); best-of needs the MNIST model and digit prompts."""
        check_count(best_of, "best_of", 1, 64)
        check_count(num_images_per_prompt * best_of, "num_images_per_prompt x best_of")
        return None if best_of == 1 else readings.digit_labels(prompts, "best_of", self.denoiser.name)

    @staticmethod
    def keep_best(samples: torch.Tensor, views: list[torch.Tensor], labels: list[int], n: int, record: dict,
                  decomposition: Any = None) -> torch.Tensor:
        """Of each group of ``n`` candidates the one read right both ways with the highest joint confidence (an
        anagram's views by the shipped classifier; a hybrid's readings by its reader, ``readings.hybrid_reader``); the
        record says best-of ran, who chose, and how the kept images and all candidates read."""
        classifier = None if decomposition is None else readings.hybrid_reader(decomposition)
        reader = "the shipped classifier" if decomposition is None else readings.hybrid_reader_name(decomposition)
        right, joint = readings.reading_scores(views, labels, classifier)
        keep = readings.best_of(right, joint, n)
        record.update(best_of=n, best_of_reader=reader, best_of_kept_both_right=float(right[keep].float().mean()),
                      best_of_candidates_both_right=float(right.float().mean()),
                      best_of_joint_confidence=[round(float(c), 4) for c in joint[keep]])
        return samples[keep]


class AnagramPipeline(_IllusionPipeline):
    """``pipe(prompt=["6", "9"], views=["identity", "flip"], num_images_per_prompt=4)``."""

    def check_inputs(self, prompt: Any, views: Any, negative_prompt: Any, num_inference_steps: int | None,
                     guidance_scale: Any, num_images_per_prompt: int, output_type: str, generator: Any,
                     callback: Any, reduction: str = "auto", resample_steps: int = 0,
                     resample_times: int = 1) -> tuple[list[str], list[View], list[int], str]:
        prompts = _prompt_list(prompt, "an anagram")
        if views is None:
            if len(prompts) != 2:
                raise FundiffError(f"give one view per prompt ({len(prompts)} prompts); the default views "
                                   "identity, flip are for two")
            views = ["identity", "flip"]
        if isinstance(views, (str, View)) or not isinstance(views, (list, tuple)):
            raise FundiffError(f"views must be a list of view names or View objects, got {views!r}")
        if len(views) != len(prompts):
            raise FundiffError(f"a visual anagram needs one view per prompt: {len(prompts)} prompts, {len(views)} views")
        objs = [get_view(v) for v in views]
        size = self.image_size
        for v in objs:  # shape checks (a rotation needs a square image) before any work
            v.view(torch.zeros(1, self.denoiser.channels, size, size))
        if reduction not in (AUTO, *REDUCTIONS):
            raise FundiffError(f"reduction must be one of {', '.join((AUTO, *REDUCTIONS))}, got {reduction!r}")
        ts = self.check_shared(num_inference_steps, guidance_scale, num_images_per_prompt, output_type, generator,
                               callback, prompts, negative_prompt, resample_steps, resample_times)
        return prompts, objs, ts, self.resolve_reduction(reduction, prompts)

    def resolve_reduction(self, reduction: str, prompts: list[str]) -> str:
        """"auto": "balanced" where a noise-aware classifier reads these prompts (the MNIST model, digit prompts), else
        "mean"; "balanced" elsewhere is a one-line error."""
        try:
            readings.digit_labels(prompts, "the balanced reduction", self.denoiser.name)
        except FundiffError:
            if reduction == "balanced":
                raise
            return "mean" if reduction == AUTO else reduction
        return "balanced" if reduction == AUTO else reduction

    def resolve_rival(self, rival: bool | None, reduction: str, prompts: list[str], negative_prompt: Any) -> bool:
        """None (auto): rival guidance where the noise-aware classifier reads the prompts (the balanced reduction ran),
        unless a negative prompt was given; True where it cannot run is a one-line error."""
        if rival is None:
            return reduction == "balanced" and no_negative(negative_prompt)
        if not isinstance(rival, bool):
            raise FundiffError(f"rival must be True, False or None (auto), got {rival!r}")
        if rival:
            readings.digit_labels(prompts, "rival guidance", self.denoiser.name)
            check_rival(reduction, negative_prompt)
        return rival

    @torch.no_grad()
    def __call__(self, prompt: Sequence[str], views: Sequence[str | View] | None = None, *,
                 negative_prompt: str | Sequence[str | None] | None = None, num_inference_steps: int | None = None,
                 guidance_scale: float | Sequence[float] = 7.0, num_images_per_prompt: int = 4,
                 generator: torch.Generator | None = None, output_type: str = "pil",
                 callback: Callback | None = None, batch_size: int | None = None,
                 latents: torch.Tensor | None = None, best_of: int = 1, reduction: str = "auto",
                 resample_steps: int = 0, resample_times: int = 1, balance: float = 0.5,
                 rival: bool | None = None, corrector_steps: int | None = None,
                 corrector_snr: float = CORRECTOR.snr, corrector_t_min: int = CORRECTOR.t_min) -> PipelineOutput:
        """``num_images_per_prompt`` anagrams (defaults: ``fundiff anagram``'s); ``latents``: the starting noise
        (``num_images_per_prompt x best_of`` of them).  ``best_of`` N > 1 (MNIST): N candidates for each image, of
        which the one the classifier reads right under every view with the highest joint confidence is kept.
        ``negative_prompt`` / ``guidance_scale``: one for every view or a list, one per view; ``reduction``: "mean"
        of the views' predictions every step, "alternate" (one view per step), "balanced" (MNIST: weighted toward
        the view the noise-aware classifier reads worst, with strength ``balance``), or "auto" (the default:
        balanced on MNIST, mean elsewhere); ``rival`` (MNIST): guide each view away from the digit that classifier
        most likely misreads it as, in place of the negative prompt (None, the default: wherever the balanced
        reduction runs and no ``negative_prompt`` is given); ``corrector_steps``: Langevin steps at each timestep
        t >= ``corrector_t_min`` (``engine.correctors``; None, the default: ``engine.correctors.DEFAULT``'s 4 wherever
        the balanced reduction runs, else 0).  The record says which ran."""
        check_scale(balance, "balance", 0.0, 20.0)
        prompts, objs, ts, reduction = self.check_inputs(prompt, views, negative_prompt, num_inference_steps, guidance_scale,
                                              num_images_per_prompt, output_type, generator, callback, reduction,
                                              resample_steps, resample_times)
        rival = self.resolve_rival(rival, reduction, prompts, negative_prompt)
        corrector = self.resolve_corrector(corrector_steps, corrector_snr, corrector_t_min, reduction == "balanced")
        labels = self.check_best_of(best_of, prompts, num_images_per_prompt)
        total = num_images_per_prompt * best_of
        self.check_latents(latents, total)
        reader, digits = None, None
        if reduction == "balanced" or rival:
            from fundiff.classifier import load_noisy_classifier

            reader = load_noisy_classifier(self.denoiser.device)
            digits = readings.digit_labels(prompts, "the balanced reduction")
        samples = self.denoise_batches(
            total, batch_size, ts, lambda part: anagram_predict(
                self.denoiser, prompts, objs, batch=part.stop - part.start, guidance_scale=guidance_scale,
                negative_prompt=negative_prompt, reduction=reduction, reader=reader, labels=digits, balance=balance,
                rival=rival),
            latents, generator, callback, resample=(resample_steps, resample_times), corrector=corrector)
        specs = views if views is not None else ["identity", "flip"]
        record = self.record(prompts=prompts, views=[s if isinstance(s, str) else s.name for s in specs],
                             **self.settings_record(guidance_scale, negative_prompt, resample_steps, resample_times,
                                                    corrector),
                             reduction=reduction, **({"balance": float(balance)} if reduction == "balanced" else {}),
                             rival=rival,
                             num_images=num_images_per_prompt, num_inference_steps=len(ts))
        if labels is not None:
            samples = self.keep_best(samples, readings.anagram_readings(samples, objs), labels, best_of, record)
        out = self.output(samples, output_type, record)
        out.extras["views"] = objs
        return out


class HybridPipeline(_IllusionPipeline):
    """``pipe(prompt=["1", "7"], kind="hybrid")``: low frequencies read as "1", high as "7"."""

    def check_best_of(self, best_of: int, prompts: list[str], num_images_per_prompt: int,
                      kind: str = "hybrid") -> list[int] | None:
        labels = super().check_best_of(best_of, prompts, num_images_per_prompt)
        if labels is not None and kind != "hybrid":
            raise FundiffError(f"best_of reads a hybrid from afar and up close: it needs kind 'hybrid', not {kind!r}")
        return labels

    def decomposition(self, kind: str = "hybrid"):
        return get_decomposition(kind, self.image_size, self.denoiser.channels)

    def resolve_fork(self, fork_t: Any, kind: str, reference: Any) -> int | None:
        """The timestep the components part at: ``fork_t`` "auto" is :data:`FORK_T` for the MNIST low/high hybrid
        without a reference (measured there) and None (composed to the end, the study's) elsewhere; None; or a
        timestep.  Bad values are one-line errors."""
        if isinstance(fork_t, str) and fork_t == AUTO:
            return FORK_T if self.denoiser.name == "mnist" and kind == "hybrid" and reference is None else None
        if fork_t is None:
            return None
        if isinstance(fork_t, bool) or not isinstance(fork_t, int):
            raise FundiffError(f"fork_t must be 'auto', None or a timestep, got {fork_t!r}")
        if not 0 <= fork_t < self.denoiser.schedule.num_train_timesteps:
            last = self.denoiser.schedule.num_train_timesteps - 1
            raise FundiffError(f"fork_t must be 'auto', None or a timestep in 0..{last}, got {fork_t}")
        if reference is not None:
            raise FundiffError("a reference anchors component 1, and a fork finishes every component by its own "
                               "prompt: turn the fork off with a reference (fork_t=None; --fork-t off)")
        return fork_t

    @staticmethod
    def fork_record(timesteps: list[int], fork: int) -> dict[str, Any]:
        """How many steps were composed, and the timestep of the first step taken apart (None: never apart)."""
        k = fork_index(timesteps, fork)
        return {"composed_steps": k, "forked_at_t": timesteps[k] if k < len(timesteps) else None}

    def check_inputs(self, prompt: Any, kind: str, reference: Any, negative_prompt: Any,
                     num_inference_steps: int | None, guidance_scale: Any, num_images_per_prompt: int,
                     output_type: str, generator: Any, callback: Any, resample_steps: int = 0, resample_times: int = 1):
        prompts = _prompt_list(prompt, "a hybrid")
        if not isinstance(kind, str):
            raise FundiffError(f"kind must be a decomposition name, got {kind!r}")
        dec = self.decomposition(kind)
        if len(prompts) != len(dec):
            raise FundiffError(f"this decomposition has {len(dec)} components ({', '.join(dec.names)}) "
                               f"but {len(prompts)} prompts were given")
        ts = self.check_shared(num_inference_steps, guidance_scale, num_images_per_prompt, output_type, generator,
                               callback, prompts, negative_prompt, resample_steps, resample_times)
        ref = self.image_tensor(reference) if reference is not None else None
        return prompts, dec, ts, ref

    def forked_loop(self, prompts: list[str], dec: Any, fork: int, batch: int, guidance_scale: Any,
                    negative_prompt: Any):
        """``iterative_denoise``'s stand-in for one batch: the composed prediction it is given until
        ``timesteps[fork]``, then each component's copy of the state finished by its own prompt."""
        apart = apart_predict(self.denoiser, prompts, batch, guidance_scale, negative_prompt)

        def loop(schedule: Any, joint: Any, x: torch.Tensor, timesteps: list[int], **kwargs: Any):
            if kwargs.pop("after_step", None) is not None:   # resolve_fork refuses a reference, the only hook
                raise FundiffError("a forked hybrid takes no after-step hook")
            return forked_denoise(schedule, joint, apart, x, timesteps, fork, dec, **kwargs)

        return loop

    @torch.no_grad()
    def __call__(self, prompt: Sequence[str], kind: str = "hybrid", *, reference: Any = None,
                 negative_prompt: str | Sequence[str | None] | None = None, num_inference_steps: int | None = None,
                 guidance_scale: float | Sequence[float] = 7.0, num_images_per_prompt: int = 4,
                 generator: torch.Generator | None = None, output_type: str = "pil",
                 callback: Callback | None = None, batch_size: int | None = None,
                 latents: torch.Tensor | None = None, best_of: int = 1, resample_steps: int = 0,
                 resample_times: int = 1, corrector_steps: int | None = None, corrector_snr: float = CORRECTOR.snr,
                 corrector_t_min: int = CORRECTOR.t_min, fork_t: int | str | None = AUTO) -> PipelineOutput:
        """``num_images_per_prompt`` hybrids; ``out.extras["components"]`` holds each image's components in [-1, 1];
        ``latents``: the starting noise (``num_images_per_prompt x best_of``).  ``best_of`` N > 1 (MNIST, kind
        "hybrid"): of N candidates per image, the one read right from afar and up close, most confidently.
        ``corrector_steps``: Langevin steps at each timestep t >= ``corrector_t_min`` (``engine.correctors``; None,
        the default: none, as it did not help the MNIST hybrids).  ``fork_t``: from the first timestep at or below
        it, each component is finished by its own prompt (``engine.illusions.forked_denoise``; resampling and the
        corrector run before it only); "auto" (the default): :data:`FORK_T` for the MNIST low/high hybrid, else
        None, the study's composed loop to the end."""
        prompts, dec, ts, ref = self.check_inputs(prompt, kind, reference, negative_prompt, num_inference_steps,
                                                  guidance_scale, num_images_per_prompt, output_type, generator, callback,
                                                  resample_steps, resample_times)
        fork = self.resolve_fork(fork_t, kind, ref)
        corrector = self.resolve_corrector(corrector_steps, corrector_snr, corrector_t_min, False)
        labels = self.check_best_of(best_of, prompts, num_images_per_prompt, kind)
        total = num_images_per_prompt * best_of
        self.check_latents(latents, total)
        samples = self.denoise_batches(
            total, batch_size, ts, lambda part: hybrid_predict(
                self.denoiser, prompts, dec, batch=part.stop - part.start, guidance_scale=guidance_scale,
                negative_prompt=negative_prompt), latents, generator, callback,
            make_hook=(lambda: anchor_hook(self.denoiser, dec, ref, generator)) if ref is not None else None,
            resample=(resample_steps, resample_times), corrector=corrector,
            make_loop=None if fork is None else lambda part: self.forked_loop(
                prompts, dec, fork_index(ts, fork), part.stop - part.start, guidance_scale, negative_prompt))
        record = self.record(kind=kind, prompts=prompts, components=list(dec.names),
                             **self.settings_record(guidance_scale, negative_prompt, resample_steps, resample_times,
                                                    corrector),
                             fork_t=fork, **(self.fork_record(ts, fork) if fork is not None else {}),
                             num_images=num_images_per_prompt, num_inference_steps=len(ts))
        if labels is not None:
            samples = self.keep_best(samples, readings.hybrid_readings(samples, dec), labels, best_of, record, dec)
        out = self.output(samples, output_type, record)
        out.extras.update(decomposition=dec, components=[c.float().cpu() for c in dec.components(out.samples)])
        return out

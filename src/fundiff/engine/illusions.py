"""Visual anagrams and factorized (hybrid) images: predictions composed from several prompts (reference 1.8-1.9).

Both are a ``predict(x, t)`` for the ordinary loop, built from one guided prediction per prompt, all
run as one batched model call.

* Anagram (Geng et al. 2024): prompt i is asked about view v_i(x), its answer is mapped back with
  v_i^-1 and the answers are averaged:  eps = (1/N) sum_i v_i^-1(eps_cfg(v_i(x), t, p_i)), likewise x0;
  the variance channels are averaged too (a permutation moves them, a negation leaves them alone).
  Views must be orthogonal (permutations, negation) so that v_i(x) is still an image at the same noise level.
  The "balanced" reduction weights the views instead of averaging them: w_i = softmax_i(-beta log p(y_i | v_i(x), t))
  per image, from a noise-aware classifier p(y | x_t, t) and the digit y_i prompt i names, so the view that reads
  worst so far gets the most say; eps = sum_i w_i v_i^-1(eps_i), likewise x0 and the variance (the weights sum
  to 1, so x = a x0 + s eps still holds).  It only chooses between the model's own predictions: unlike
  classifier guidance it adds no gradient, so it cannot draw strokes the model would not.
  "Rival" guidance (``rival=True``, with the same classifier) changes each view's negative prompt every step: view i
  is guided toward its digit y_i and away from its rival r_i = argmax_{c != y_i} p(c | v_i(x), t), the digit it is
  most likely to be misread as now, eps_i = eps(v_i(x), r_i) + gamma (eps(v_i(x), y_i) - eps(v_i(x), r_i)), in place
  of the null prompt's eps(v_i(x), "").  The same two passes per view; no gradient either.
* Hybrid / factorized diffusion (Geng et al. 2024): with linear components f_i summing to the identity,
  eps = sum_i f_i(eps_cfg(x, t, p_i)), likewise x0 (then still x = a x0 + s eps); variance averaged.
  Anchored on a real image, component 1 is replaced each step by f_1 of the reference noised to the
  current level (an inverse problem; f_1 = a mask would be inpainting).
  Forked (``forked_denoise``): the composed prediction until timestep t_fork chooses one layout for all prompts; from
  there the state is copied once per prompt, copy i is finished by prompt i alone, and the image is sum_i f_i(x_i).
  Where the components overlap in frequency (a 28-px digit's 2-3 px strokes against a Gaussian of sigma 0.875),
  the composed late steps let each prompt erase the other's strokes; apart, each keeps its own.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from fundiff.engine.denoiser import Conditioned, Denoiser, Prediction, concat_conditions
from fundiff.engine.loops import DenoiseResult, Predict, iterative_denoise, randn
from fundiff.errors import FundiffError


REDUCTIONS = ("mean", "alternate", "balanced")

FORK_T = 690   # the MNIST low/high hybrid's default fork (measured: docs/illusions.md, "The fork")


def parse_fork(text: str, last: int = 999, name: str = "fork_t") -> int | str | None:
    """A fork as a user types it: 'auto' (the pipeline's default), 'off' (None: composed to the end) or a timestep
    0..``last`` in plain digits; anything else is a one-line error naming ``name``."""
    if text in ("auto", "off"):
        return None if text == "off" else text
    if text.isascii() and text.isdigit() and len(text) <= len(str(last)) and int(text) <= last:
        return int(text)
    raise FundiffError(f"{name} must be 'auto', 'off' or a timestep in 0..{last}, got {text!r}")


def per_prompt(value: Any, n: int, what: str) -> list:
    """A setting given once (the same for every prompt) or as a list with one entry per prompt."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise FundiffError(f"{what} must be one value or a list of {n} (one per prompt), got {len(value)}")
        return list(value)
    return [value] * n


def no_negative(negative_prompt: str | Sequence[str | None] | None) -> bool:
    """Whether ``negative_prompt`` leaves every prompt's negative at the null prompt (None, or a list of None)."""
    if isinstance(negative_prompt, (list, tuple)):
        return all(neg is None for neg in negative_prompt)
    return negative_prompt is None


def check_rival(reduction: str, negative_prompt: str | Sequence[str | None] | None) -> None:
    """One-line errors where rival guidance cannot run: with the alternate reduction, or with a negative prompt."""
    if reduction == "alternate":
        raise FundiffError("rival guidance reads every view at every step: it needs the mean or balanced reduction, "
                           "not alternate")
    if not no_negative(negative_prompt):
        raise FundiffError("rival guidance chooses each view's negative prompt itself: give no negative_prompt with it")


def _batched(den: Denoiser, prompts: Sequence[str], batch: int, guidance_scale: float | Sequence[float],
             negative_prompt: str | Sequence[str | None] | None, views: Sequence[Any] | None = None):
    """len(prompts) groups of ``batch`` images as one guided call (the one CFG wrapper), split back per prompt.

    Group i is guided toward prompt i away from its negative prompt (one for all, or one per prompt; None: the
    null prompt) at its guidance scale (one for all, or one per prompt: gamma_i of u_i + gamma_i (c_i - u_i)).
    With ``views``, group i's conditioning is seen through view i (``Denoiser.view_condition``: stage II's
    low-resolution input is viewed like the image; text and labels are unchanged).
    """
    n = len(prompts)
    negs = [den.null_prompt if neg is None else neg for neg in per_prompt(negative_prompt, n, "negative_prompt")]
    scales = [float(g) for g in per_prompt(guidance_scale, n, "guidance_scale")]

    def groups(texts: Sequence[str]):
        conds = [den.encode([p] * batch) for p in texts]
        if views is not None:
            conds = [den.view_condition(c, v) for c, v in zip(conds, views)]
        return concat_conditions(conds)

    if len(set(scales)) == 1:
        predict = Conditioned(den, groups(prompts), groups(negs) if scales[0] != 1.0 else None, scales[0])

        def run(xs: torch.Tensor, t: int) -> list[Prediction]:
            return predict(xs, t).chunk(n)

        return run
    cond, uncond = groups(prompts), groups(negs)
    gamma = _group_gammas(guidance_scale, n, batch)

    def run_scaled(xs: torch.Tensor, t: int) -> list[Prediction]:
        return _guide_groups(den, xs, t, uncond, cond, gamma, n)

    return run_scaled


def _group_gammas(guidance_scale: float | Sequence[float], n: int, batch: int) -> torch.Tensor:
    """(n batch, 1, 1, 1): group i's guidance scale for each of its ``batch`` images."""
    scales = [float(g) for g in per_prompt(guidance_scale, n, "guidance_scale")]
    return torch.tensor(scales).repeat_interleave(batch).view(-1, 1, 1, 1)


def _guide_groups(den: Denoiser, xs: torch.Tensor, t: int, uncond: Any, cond: Any, gamma: torch.Tensor,
                  n: int) -> list[Prediction]:
    """CFG of n groups with both passes in one model call and a gamma per image, split back per group."""
    u, c = den.predict(torch.cat([xs, xs]), t, concat_conditions([uncond, cond])).chunk(2)
    return Prediction.guide(u, c, gamma.to(xs)).chunk(n)


def _rival_batched(den: Denoiser, prompts: Sequence[str], batch: int, guidance_scale: float | Sequence[float],
                   views: Sequence[Any]):
    """Like :func:`_batched`, but each image's negative prompt is given at every call (``negatives[i]``: group i's
    ``batch`` prompts), so that it can change from step to step; both passes in one call, a gamma per group."""
    n = len(prompts)
    gamma = _group_gammas(guidance_scale, n, batch)
    cond = concat_conditions([den.view_condition(den.encode([p] * batch), v) for p, v in zip(prompts, views)])

    def run(xs: torch.Tensor, t: int, negatives: Sequence[Sequence[str]]) -> list[Prediction]:
        uncond = concat_conditions([den.view_condition(den.encode(list(neg)), v) for neg, v in zip(negatives, views)])
        return _guide_groups(den, xs, t, uncond, cond, gamma, n)

    return run


def anagram_predict(den: Denoiser, prompts: Sequence[str], views: Sequence[Any], batch: int = 1,
                    guidance_scale: float | Sequence[float] = 7.0, negative_prompt: str | Sequence[str | None] | None = None,
                    reduction: str = "mean", reader: Reader | None = None, labels: Sequence[int] | None = None,
                    balance: float = 1.0, rival: bool = False) -> Predict:
    """The view-mapped prediction of a visual anagram (N prompts, N views).

    ``reduction`` "mean": every step averages all N mapped predictions (one batched call of N groups);
    "alternate" (visual_anagrams' option): step k uses view k mod N alone, at 1/N of the cost (a step is a
    timestep: repeated calls at one t, such as a corrector's, keep its view); "balanced":
    the weighted sum of the module doc, with ``reader(x_t, t)`` the logits of p(y | x_t, t), ``labels[i]`` prompt
    i's class and ``balance`` beta (0 is the mean).  ``rival``: each view is guided away from its rival digit (module
    doc) instead of ``negative_prompt``; it reads with the same ``reader`` and needs the mean or balanced reduction.
    """
    if len(prompts) != len(views):
        raise FundiffError(f"a visual anagram needs one view per prompt: {len(prompts)} prompts, {len(views)} views")
    if reduction not in REDUCTIONS:
        raise FundiffError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    reads = reduction == "balanced" or rival
    if reads and (reader is None or labels is None or len(labels) != len(views)):
        what = "rival guidance" if rival else "the balanced reduction"
        raise FundiffError(f"{what} needs a noise-aware classifier and one class label per view")
    if rival:
        check_rival(reduction, negative_prompt)

    def mapped_back(v: Any, p: Prediction) -> Prediction:
        return p.map(v.inverse_view, lambda var: v.inverse_view(var, variance=True))

    if reduction == "alternate":
        negs = per_prompt(negative_prompt, len(prompts), "negative_prompt")
        scales = per_prompt(guidance_scale, len(prompts), "guidance_scale")
        runs = [_batched(den, [p], batch, g, neg, views=[v]) for p, g, neg, v in zip(prompts, scales, negs, views)]
        step = {"k": -1, "t": None}   # the view advances when t does: corrector calls at t keep t's view

        def predict_one(x: torch.Tensor, t: int) -> Prediction:
            if t != step["t"]:
                step["k"], step["t"] = step["k"] + 1, t
            k = step["k"] % len(views)
            return mapped_back(views[k], runs[k](views[k].view(x), t)[0])

        return predict_one
    run = _batched(den, prompts, batch, guidance_scale, negative_prompt, views=list(views))
    run_rival = _rival_batched(den, prompts, batch, guidance_scale, views) if rival else None

    def predict(x: torch.Tensor, t: int) -> Prediction:
        seen = [v.view(x) for v in views]
        log_probs = read_views(reader, seen, t) if reads else None
        if run_rival is not None:
            negatives = [[str(int(r)) for r in rivals(lp, y)] for lp, y in zip(log_probs, labels)]
            preds = run_rival(torch.cat(seen), t, negatives)
        else:
            preds = run(torch.cat(seen), t)
        mapped = [mapped_back(v, p) for v, p in zip(views, preds)]
        if reduction == "mean":
            return Prediction.mean(mapped)
        return Prediction.weighted(mapped, view_weights(log_probs, labels, balance).to(x))

    return predict


Reader = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def read_views(reader: Reader, seen: Sequence[torch.Tensor], t: int) -> list[torch.Tensor]:
    """log p(. | seen_i, t) from the noise-aware classifier, one (B, classes) tensor per view."""
    tt = torch.full((len(seen[0]),), int(t), dtype=torch.long, device=seen[0].device)
    with torch.no_grad():
        return [torch.log_softmax(reader(s.float(), tt).float(), 1) for s in seen]


def view_weights(log_probs: Sequence[torch.Tensor], labels: Sequence[int], balance: float) -> torch.Tensor:
    """(N views, B images) weights w_i = softmax_i(-balance log p(labels_i | v_i(x_t), t)), each column summing to 1."""
    log_p = torch.stack([lp[:, y] for lp, y in zip(log_probs, labels)])
    return torch.softmax(-float(balance) * log_p, 0)


def rivals(log_probs: torch.Tensor, label: int) -> torch.Tensor:
    """Per image (B,), the class other than ``label`` that log p(. | x_t, t) (B, classes) ranks highest."""
    others = log_probs.clone()
    others[:, label] = float("-inf")
    return others.argmax(1)


def hybrid_predict(den: Denoiser, prompts: Sequence[str], decomposition: Any, batch: int = 1,
                   guidance_scale: float | Sequence[float] = 7.0,
                   negative_prompt: str | Sequence[str | None] | None = None) -> Predict:
    """Component i of the prediction comes from prompt i (eps, x0 summed; variance averaged)."""
    if len(prompts) != len(decomposition):
        raise FundiffError(f"this decomposition has {len(decomposition)} components "
                           f"({', '.join(decomposition.names)}) but {len(prompts)} prompts were given")
    run = _batched(den, prompts, batch, guidance_scale, negative_prompt)

    def predict(x: torch.Tensor, t: int) -> Prediction:
        return compose_hybrid(run(torch.cat([x] * len(prompts)), t), decomposition)

    return predict


def compose_hybrid(preds: Sequence[Prediction], decomposition: Any) -> Prediction:
    """Component i of x0 and eps from ``preds[i]``, summed; the variances averaged."""
    x0 = sum(decomposition.components(p.x0)[i] for i, p in enumerate(preds))
    eps = sum(decomposition.components(p.eps)[i] for i, p in enumerate(preds))
    var = [p.variance for p in preds]
    variance = torch.stack(var).mean(0) if all(v is not None for v in var) else None
    return Prediction(x0, eps, variance)


def fork_index(timesteps: Sequence[int], fork_t: int) -> int:
    """Index of the first of ``timesteps`` (descending) at or below ``fork_t``: the first step the prompts take apart
    (0: apart from the start; len(timesteps): never)."""
    return next((i for i, t in enumerate(timesteps) if t <= fork_t), len(timesteps))


def apart_predict(den: Denoiser, prompts: Sequence[str], batch: int = 1,
                  guidance_scale: float | Sequence[float] = 7.0,
                  negative_prompt: str | Sequence[str | None] | None = None) -> Predict:
    """Prompt i alone predicts the i-th group of ``batch`` images (one copy of the state per prompt), one call."""
    run = _batched(den, prompts, batch, guidance_scale, negative_prompt)

    def predict(x: torch.Tensor, t: int) -> Prediction:
        return Prediction.cat(run(x, t))

    return predict


def forked_denoise(schedule: Any, joint: Predict, apart: Predict, x: torch.Tensor, timesteps: list[int], fork: int,
                   decomposition: Any, *, callback: Callable | None = None, final_step: bool = True,
                   resample_steps: int = 0, resample_times: int = 1, corrector: Any = None,
                   **loop: Any) -> DenoiseResult:
    """The hybrid loop forked at ``timesteps[fork]`` (module doc): ``joint`` (the composed prediction) steps x from
    timesteps[0] to timesteps[fork]; then one copy of x per component is stepped by ``apart`` (copy i by prompt i) to
    the end, and the image is sum_i f_i(copy_i).  Resampling and the corrector run in the joint steps only (they
    exist to make the prompts agree); ``callback(i, t, image)`` sees the composed image in both parts.  ``loop``:
    ``iterative_denoise``'s threshold and generator."""
    n = len(decomposition)

    def composed(xs: torch.Tensor) -> torch.Tensor:
        return sum(decomposition.components(part)[i] for i, part in enumerate(xs.chunk(n)))

    together = dict(callback=callback, resample_steps=resample_steps, resample_times=resample_times,
                    corrector=corrector, **loop)
    if fork >= len(timesteps):   # never apart: the composed loop
        return iterative_denoise(schedule, joint, x, timesteps, final_step=final_step, **together)
    calls = 0
    if fork > 0:
        first = iterative_denoise(schedule, joint, x, timesteps[:fork + 1], final_step=False, **together)
        x, calls = first.image, first.model_calls
    apart_cb = (lambda i, t, xs: callback(i, t, composed(xs))) if callback is not None else None
    rest = iterative_denoise(schedule, apart, torch.cat([x] * n), timesteps, fork, final_step=final_step,
                             callback=apart_cb, **loop)
    return DenoiseResult(composed(rest.image), model_calls=calls + rest.model_calls)


def anchor_hook(den: Denoiser, decomposition: Any, reference: torch.Tensor, generator: torch.Generator | None):
    """after_step hook: x <- f_1(reference noised to t') + sum_{i>1} f_i(x); exact f_1(reference) at the end."""

    def hook(x: torch.Tensor, t: int) -> torch.Tensor:
        ref = reference.expand_as(x)
        known = den.schedule.add_noise(ref, t, randn(x.shape, generator, x)) if t >= 0 else ref
        parts = decomposition.components(x)
        return decomposition.components(known)[0] + sum(parts[1:])

    return hook

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
* Hybrid / factorized diffusion (Geng et al. 2024): with linear components f_i summing to the identity,
  eps = sum_i f_i(eps_cfg(x, t, p_i)), likewise x0 (then still x = a x0 + s eps); variance averaged.
  Anchored on a real image, component 1 is replaced each step by f_1 of the reference noised to the
  current level (an inverse problem; f_1 = a mask would be inpainting).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from fundiff.engine.denoiser import Conditioned, Denoiser, Prediction, concat_conditions
from fundiff.engine.loops import Predict, randn
from fundiff.errors import FundiffError


REDUCTIONS = ("mean", "alternate", "balanced")


def per_prompt(value: Any, n: int, what: str) -> list:
    """A setting given once (the same for every prompt) or as a list with one entry per prompt."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise FundiffError(f"{what} must be one value or a list of {n} (one per prompt), got {len(value)}")
        return list(value)
    return [value] * n


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
    gamma = torch.tensor(scales).repeat_interleave(batch).view(-1, 1, 1, 1)

    def run_scaled(xs: torch.Tensor, t: int) -> list[Prediction]:   # both passes in one call, a gamma per group
        u, c = den.predict(torch.cat([xs, xs]), t, concat_conditions([uncond, cond])).chunk(2)
        return Prediction.guide(u, c, gamma.to(xs)).chunk(n)

    return run_scaled


def anagram_predict(den: Denoiser, prompts: Sequence[str], views: Sequence[Any], batch: int = 1,
                    guidance_scale: float | Sequence[float] = 7.0, negative_prompt: str | Sequence[str | None] | None = None,
                    reduction: str = "mean", reader: Reader | None = None, labels: Sequence[int] | None = None,
                    balance: float = 1.0) -> Predict:
    """The view-mapped prediction of a visual anagram (N prompts, N views).

    ``reduction`` "mean": every step averages all N mapped predictions (one batched call of N groups);
    "alternate" (visual_anagrams' option): step k uses view k mod N alone, at 1/N of the cost; "balanced":
    the weighted sum of the module doc, with ``reader(x_t, t)`` the logits of p(y | x_t, t), ``labels[i]`` prompt
    i's class and ``balance`` beta (0 is the mean).
    """
    if len(prompts) != len(views):
        raise FundiffError(f"a visual anagram needs one view per prompt: {len(prompts)} prompts, {len(views)} views")
    if reduction not in REDUCTIONS:
        raise FundiffError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    if reduction == "balanced" and (reader is None or labels is None or len(labels) != len(views)):
        raise FundiffError("the balanced reduction needs a noise-aware classifier and one class label per view")

    def mapped_back(v: Any, p: Prediction) -> Prediction:
        return p.map(v.inverse_view, lambda var: v.inverse_view(var, variance=True))

    if reduction == "alternate":
        negs = per_prompt(negative_prompt, len(prompts), "negative_prompt")
        scales = per_prompt(guidance_scale, len(prompts), "guidance_scale")
        runs = [_batched(den, [p], batch, g, neg, views=[v]) for p, g, neg, v in zip(prompts, scales, negs, views)]
        calls = [0]

        def predict_one(x: torch.Tensor, t: int) -> Prediction:
            k = calls[0] % len(views)
            calls[0] += 1
            return mapped_back(views[k], runs[k](views[k].view(x), t)[0])

        return predict_one
    run = _batched(den, prompts, batch, guidance_scale, negative_prompt, views=list(views))

    def predict(x: torch.Tensor, t: int) -> Prediction:
        seen = [v.view(x) for v in views]
        mapped = [mapped_back(v, p) for v, p in zip(views, run(torch.cat(seen), t))]
        if reduction == "mean":
            return Prediction.mean(mapped)
        return Prediction.weighted(mapped, view_weights(reader, seen, labels, t, balance).to(x))

    return predict


Reader = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def view_weights(reader: Reader, seen: Sequence[torch.Tensor], labels: Sequence[int], t: int, balance: float) -> torch.Tensor:
    """(N views, B images) weights w_i = softmax_i(-balance log p(labels_i | seen_i, t)), each column summing to 1."""
    tt = torch.full((len(seen[0]),), int(t), dtype=torch.long, device=seen[0].device)
    with torch.no_grad():
        log_p = torch.stack([torch.log_softmax(reader(s.float(), tt).float(), 1)[:, y] for s, y in zip(seen, labels)])
    return torch.softmax(-float(balance) * log_p, 0)


def hybrid_predict(den: Denoiser, prompts: Sequence[str], decomposition: Any, batch: int = 1,
                   guidance_scale: float | Sequence[float] = 7.0,
                   negative_prompt: str | Sequence[str | None] | None = None) -> Predict:
    """Component i of the prediction comes from prompt i (eps, x0 summed; variance averaged)."""
    if len(prompts) != len(decomposition):
        raise FundiffError(f"this decomposition has {len(decomposition)} components "
                           f"({', '.join(decomposition.names)}) but {len(prompts)} prompts were given")
    run = _batched(den, prompts, batch, guidance_scale, negative_prompt)

    def predict(x: torch.Tensor, t: int) -> Prediction:
        preds = run(torch.cat([x] * len(prompts)), t)
        x0 = sum(decomposition.components(p.x0)[i] for i, p in enumerate(preds))
        eps = sum(decomposition.components(p.eps)[i] for i, p in enumerate(preds))
        var = [p.variance for p in preds]
        variance = torch.stack(var).mean(0) if all(v is not None for v in var) else None
        return Prediction(x0, eps, variance)

    return predict


def anchor_hook(den: Denoiser, decomposition: Any, reference: torch.Tensor, generator: torch.Generator | None):
    """after_step hook: x <- f_1(reference noised to t') + sum_{i>1} f_i(x); exact f_1(reference) at the end."""

    def hook(x: torch.Tensor, t: int) -> torch.Tensor:
        ref = reference.expand_as(x)
        known = den.schedule.add_noise(ref, t, randn(x.shape, generator, x)) if t >= 0 else ref
        parts = decomposition.components(x)
        return decomposition.components(known)[0] + sum(parts[1:])

    return hook

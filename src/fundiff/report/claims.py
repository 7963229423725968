"""The report's sentences that are computed from a section's numbers (kept apart from the running of sections)."""

from __future__ import annotations

from typing import Any


def one_step_claims(r: dict[str, Any]) -> list[str]:
    d = r["denoiser"]
    claims = [f"Test PSNR at σ = {r['config']['sigma']:g}: noisy input {d['noisy_input']['psnr']:.1f} dB; after each epoch "
              + ", ".join(f"{e['psnr']:.1f}" for e in d["test_per_epoch"]) + " dB.",
              "Out of distribution (σ: denoised / noisy dB): "
              + ", ".join(f"{q['sigma']:g}: {q['psnr']:.1f}/{q['noisy_input']['psnr']:.1f}" for q in d["ood"]) + "."]
    if "pure_noise" in r:
        p = r["pure_noise"]
        last, ref = p["per_epoch"][-1], p["reference_scales"]
        claims.append(f"Pure noise in: loss {p['final_epoch_loss']:.4f} vs {p['loss_floor_mean_predictor']:.4f} for always "
                      f"answering the mean image; outputs sit {last['mse_to_train_mean']:.5f} (MSE) from the training mean, "
                      f"test digits {ref['test_digits_mse_to_train_mean']:.4f}: the model collapses to the centroid.")
    return claims


def null_prompt_claims(records) -> list[str]:
    """What guidance ran, when a run's prompt was the null prompt (one unguided pass instead of CFG)."""
    if not any("guidance" in r for r in records):
        return []
    return ["With the prompt '' (the null prompt) classifier-free guidance would compare the prompt with itself "
            "(ε_u + γ(ε_c − ε_u) = ε_u); those runs are one unguided pass: the same images at half the model calls."]

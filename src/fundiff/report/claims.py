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


def _quality(e: dict[str, Any]) -> str:
    acc = f"accuracy {e['accuracy']:.0%}, " if "accuracy" in e else ""
    return f"{acc}classifier-FID {e['classifier_fid']:.2f}"


def flow_claims(r: dict[str, Any]) -> list[str]:
    """Per sampler: quality after each shown epoch, and its cost (evaluations per image, seconds)."""
    what = "flow" if r["objective"]["name"] == "flow" else "DDPM"
    cond = "class-conditioned" if r["guidance_scale"] is not None else "time-conditioned"
    runs = [{"sampler": r["sampler"], "steps": r["steps"], "per_epoch": r["per_epoch"]}, *r["compare"]]
    claims = []
    for k, run in enumerate(runs):
        last = run["per_epoch"][-1]
        who = "the study's sampler" if k == 0 else "on the same noise"
        claims.append(f"{what}, {cond}, {run['sampler']} {run['steps']} steps ({who}): "
                      + "; ".join(f"epoch {e['epoch']}: {_quality(e)}" for e in run["per_epoch"])
                      + f" (real-data floor {r['fid_floor']:.2f} at n = {r['eval_images']}); "
                      f"{last['model_evaluations_per_image']} UNet evaluations per image, {last['seconds']:.1f} s for "
                      f"{r['eval_images']} images.")
    claims.append(f"Training: {r['train']['num_train']} images per epoch, {r['train']['epochs']} epochs, "
                  f"{r['train_seconds']:.0f} s ({r['images_per_second']:.0f} images/s); mean loss per epoch "
                  + ", ".join(f"{x:.4f}" for x in r["epoch_loss"]) + ".")
    return claims


def ablation_claims(r: dict[str, Any]) -> list[str]:
    rows = {row["name"]: row for row in r["rows"]}
    claims = [f"{row['name']} ({row['change']}): {_quality(row)}, accuracy 95% interval "
              f"{row['accuracy_wilson95'][0]:.0%}-{row['accuracy_wilson95'][1]:.0%}; last epoch's loss "
              f"{row['final_epoch_loss']:.4f}; {row['train_seconds']:.0f} s." for row in r["rows"]]
    base = rows.get("study")
    if base:
        for row in r["rows"]:
            if row["name"] == "study":
                continue
            lo, hi = base["accuracy_wilson95"]
            lo2, hi2 = row["accuracy_wilson95"]
            overlap = lo2 <= hi and lo <= hi2
            claims.append(f"{row['name']} vs the study's recipe: classifier-FID {row['classifier_fid']:.2f} vs "
                          f"{base['classifier_fid']:.2f}, accuracy {row['accuracy']:.0%} vs {base['accuracy']:.0%} "
                          + ("(the accuracy intervals overlap: no difference shown at this n)." if overlap else
                             "(the accuracy intervals do not overlap)."))
    claims.append(f"All rows: D = {r['num_hiddens']}, {r['num_train']} images per epoch, {r['epochs']} epochs, seed "
                  f"{r['seed']}, {r['sampler']} {r['steps']} steps at γ = {r['guidance_scale']:g}, {r['eval_images']} "
                  f"images each (real-data floor {r['fid_floor']:.2f}). One seed per row: the spread between seeds was "
                  "not measured.")
    return claims


def few_step_claims(r: dict[str, Any]) -> list[str]:
    """Teacher against student, row by row, and the images per second each buys at matched evaluations."""
    rows, floor = r["rows"], r["fid_floor"]

    def line(x: dict[str, Any]) -> str:
        return (f"{x['evaluations_per_image']:g} evaluations ({x['sampler']} x {x['steps']}, γ {x['guidance_scale']:g}): "
                f"accuracy {x['accuracy']:.1%}, classifier-FID {x['fid']:.2f} ({x['fid'] / floor:.1f}x the floor), "
                f"{x['images_per_second']:.0f} images/s")

    claims = [f"{r['num_images']} images a setting, real-data floor {floor:.3f} at that n, one seed."]
    claims += [f"Teacher, {line(x)}." for x in rows if x["model"] == "teacher"]
    claims += [f"Student, {line(x)}." for x in rows if x["model"] == "student"]
    best = next(x for x in rows if x["model"] == "teacher" and x["evaluations_per_image"] == 28) if any(
        x["evaluations_per_image"] == 28 for x in rows) else None
    matched = [x for x in rows if x["model"] == "student" and best and x["fid"] <= best["fid"] * 1.25]
    if best and matched:
        m = min(matched, key=lambda x: x["evaluations_per_image"])
        claims.append(f"The student's {m['evaluations_per_image']:g}-evaluation setting comes within 25% of the teacher's "
                      f"28-evaluation classifier-FID ({m['fid']:.2f} vs {best['fid']:.2f}) at "
                      f"{m['images_per_second'] / best['images_per_second']:.1f}x its images per second.")
    return claims


def natural_claim(numbers: dict[str, Any], records: list[dict[str, Any]]) -> list[str]:
    """How many training digits already are each shown pair's anagram (``natural_anagrams`` in the records; MNIST),
    and what that count predicts: each view's mean measured rate of rare and common pairs, from the shipped table
    (docs/illusions.md, "What predicts a pair")."""
    from fundiff.pipelines.natural_anagrams import RARE, natural_table, percent, table_rate

    entries = [r["natural_anagrams"] for r in records if r.get("natural_anagrams", {}).get("measured")]
    if not entries:
        return []
    table = natural_table()
    numbers["natural_anagrams"] = {f"{e['pair']} {e['view']}": e["count"] for e in entries}
    per = "; ".join(f"{name} {n:,}" for name, n in numbers["natural_anagrams"].items())
    means = "; ".join(f"{v} {e['rare_mean_rate']:.0%} against {e['common_mean_rate']:.0%}"
                      for v, e in table["views"].items() if "rare_mean_rate" in e and "common_mean_rate" in e)
    moved = []   # shown under another view because the flip measured them under 50%
    for e in entries:
        flip = table_rate("flip", *map(int, e["pair"].split("/")))
        if e["view"] != "flip" and flip is not None and flip["both_rate"] < 0.5 <= e["measured"]["both_rate"]:
            moved.append(f"{e['pair']} read {percent(flip['both_rate'])} flipped (N "
                         f"{table['views']['flip']['natural'][e['pair']]:,}) and {percent(e['measured']['both_rate'])} "
                         f"under {e['view']} (N {e['count']:,}), so it is shown so")
    return [f"How many of the {table['images']:,} MNIST training digits already are each shown anagram (N, "
            f"bench/natural_anagrams.py): {per}. Over every digit pair at the defaults, pairs with N under {RARE} read "
            f"right both ways less often than the others: {means} (docs/illusions.md)"
            + (". " + "; ".join(moved) if moved else "") + "."]


def reading_claim(numbers: dict[str, Any], records: list[dict[str, Any]], reader: str = "the shipped classifier") -> str:
    """The measured rates: per shown pair, how many of ``--measure`` N new images (no best-of) ``reader`` reads right
    every way, with the Wilson 95% interval, and all pairs pooled (this run; also in the section's ``numbers`` under
    ``measured``)."""
    from fundiff.metrics import wilson_interval
    from fundiff.studies.illusions import rate_text

    rows = [r for r in records if "measured" in r]
    names = [f"{'/'.join(r['prompts'])} {r.get('views', [None, r.get('kind')])[-1]}" for r in rows]
    numbers["measured"] = {name: r["measured"] for name, r in zip(names, rows)}
    if not rows:
        return "No illusion was measured (the prompts name no digits)."
    per = "; ".join(f"{name} {rate_text(r['measured'])}" for name, r in zip(names, rows))
    k, n = sum(r["measured"]["both_right"] for r in rows), sum(r["measured"]["n"] for r in rows)
    low, high = wilson_interval(k / n, n)
    pooled = {"both_right": k, "n": n, "both_rate": k / n, "wilson95": [low, high]}
    return (f"Measured: the share of new images (from the shown images' seed, no best-of) that {reader} "
            f"reads right both ways: {per}; all {len(rows)} pairs {rate_text(pooled)}. These pairs were picked to show the "
            "illusion; bench/illusions.py measures every digit pair and the levers tried (docs/illusions.md, "
            "bench/results/illusions-all-*.json, illusion-levers.json).")


def hybrid_claims(numbers: dict[str, Any], records: list[dict[str, Any]], measured: bool) -> list[str]:
    """The hybrid section's computed sentences: the fork its low/high hybrids ran with, and (``measured``, MNIST)
    their rates as the hybrid reader reads them."""
    claims = []
    forks = sorted({r["fork_t"] for r in records if r.get("fork_t") is not None})
    if forks:
        claims.append(f"The low/high hybrids fork at t {', '.join(map(str, forks))}: the composed ε chooses the layout "
                      "until then, and from there each prompt finishes its own band alone, x = lowpass(x₁) + "
                      "highpass(x₂); composed to the end, each prompt erases the other's 2-3 px strokes "
                      "(docs/illusions.md, \"The fork\").")
    if measured:
        claims += [reading_claim(numbers, records, "the shipped hybrid reader (for the motion hybrid, the shipped "
                                                   "classifier)"),
                   "The hybrid reader is the classifier's architecture trained on the readings of real low/high hybrids "
                   "of MNIST training digits: of such hybrids made from test digits it reads 97% right both ways, the "
                   "clean classifier 32% (docs/illusions.md)."]
    return claims

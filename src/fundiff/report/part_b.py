"""The report's Part B sections: the one-step denoiser, flow matching with and without the LR scheduler, the shipped
model (CPU-sized trainings where the study shows epoch-by-epoch pictures; each with the command that reruns it)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from importlib import resources
from pathlib import Path

from fundiff.io import write_json
from fundiff.report.claims import one_step_claims
from fundiff.report.sections import Section, load_json


def add_part_b(rep) -> None:
    """Run and add the Part B sections to ``rep`` (a :class:`fundiff.report.Report`)."""
    q = rep.config.quick
    data = rep.config.data_args
    resume = ["--resume"] if rep.config.resume else []

    def one_step(s: Section) -> None:
        extra = ["--num-train", "512", "--epochs", "5", "--eval-images", "100"] if q else ["--num-train", "6000"]
        def run(o: Path) -> None:
            from fundiff.studies.one_step import PRESETS, run_one_step_study

            sizes = {"num_train": 512, "epochs": 5, "eval_images": 100} if q else {"num_train": 6000}
            config = dataclasses.replace(PRESETS["demo"], **sizes)
            config.validate()
            run_one_step_study(o, config, rep.mnist_data, resume=rep.config.resume, progress=False)

        d = rep.step(s, ["study", "denoiser", "--preset", "demo", *extra, *resume, "--no-progress", *data], run,
                      backend=False)
        for name in ("noising.png", "denoiser_loss.png", "denoiser_epoch1.png", "denoiser_epoch5.png", "denoiser_ood.png",
                     "denoiser_ood_psnr.png", "pure_noise_loss.png", "pure_noise_epoch1.png", "pure_noise_epoch5.png"):
            if (d / name).is_file():
                rep.fig(s, d / name)
        r = load_json(d / "results.json")
        s.numbers = r
        s.claims += one_step_claims(r)

    def flows(s: Section) -> None:
        common = ["--num-hiddens", "16" if q else "32", "--num-train", "256" if q else "5000", "--sampler", "midpoint",
                  "--steps", "7", "--eval-per-class", "5" if q else "20", "--no-progress", *resume, *data]
        epochs = ["--epochs", "2", "--show-epochs", "1", "2"] if q else []
        res = {}
        for recipe in ("study", "noschedule"):
            def run(o: Path, recipe: str = recipe) -> None:
                from fundiff.studies.flow import FlowStudyConfig, run_flow_study

                config = FlowStudyConfig(
                    recipe=recipe, overrides={"num_train": 256 if q else 5000, **({"epochs": 2} if q else {})},
                    num_hiddens=16 if q else 32, show_epochs=(1, 2) if q else (1, 5, 10), steps=7, sampler="midpoint",
                    guidance_scale=5.0, eval_per_class=5 if q else 20, seed=0)
                run_flow_study(o, config, rep.mnist_data, resume=rep.config.resume, progress=False)

            d = rep.step(s, ["study", "flow", "--recipe", recipe, *common, *epochs], run, backend=False,
                          folder=f"flow-{recipe}")
            for name in ("flow-class_loss.png", "flow-class_epochs.png", "flow-class_sampling.gif"):
                rep.fig(s, d / name)
            res[recipe] = load_json(d / "flow-class_results.json")
        s.numbers = res
        for recipe, r in res.items():
            last = r["per_epoch"][-1]
            s.claims.append(f"{recipe} recipe ({'ExponentialLR, gamma = 0.1^(1/10) per epoch' if recipe == 'study' else 'constant lr 10x lower, EMA of the weights'}): "
                            f"after epoch {last['epoch']} accuracy {last.get('accuracy', float('nan')):.0%}, classifier-FID "
                            f"{last['classifier_fid']:.2f} (real-data floor {r['fid_floor']:.2f} at n = {r['eval_images']}); "
                            f"{r['train_seconds']:.0f} s of training.")

    def shipped(s: Section) -> None:
        assets = Path(str(resources.files("fundiff") / "assets"))
        (rep.out / s.key).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(assets / "mnist_flow_loss.png", rep.out / s.key / "mnist_flow_loss.png")
        rep.fig(s, rep.out / s.key / "mnist_flow_loss.png")
        record = json.loads((assets / "mnist_flow.json").read_text())
        path = rep.out / s.key / "evaluate.json"
        argv = ["evaluate", "--model", "mnist", "--num-per-class", "5" if q else "20", "--guidance-scale", "1",
                "--guidance-scale", "5", "--json", str(path), *data]
        s.commands.append(["fundiff", *argv[:-2 - len(data)], "--json", f"{s.key}/evaluate.json"])
        from fundiff.evaluate import evaluate_generator
        from fundiff.generate import load_generator
        from fundiff.training import resolve_device

        write_json(path, evaluate_generator(load_generator("mnist", resolve_device("auto")), rep.mnist_data,
                                            n_per_class=5 if q else 20, sampler=None, steps=None,
                                            guidance_scales=[1.0, 5.0], seed=0, log=print))
        ev = load_json(path)
        s.numbers = {"record": record, "evaluate": ev}
        s.claims.append(f"Shipped model: {record.get('command', '')}")
        per = {round(r["guidance_scale"], 3): r for r in ev.get("per_guidance_scale", [])}
        if 1.0 in per and 5.0 in per:
            s.claims.append(f"CFG vs no CFG on the shipped model ({ev['num_images']} images): accuracy "
                            f"{per[5.0]['accuracy']:.1%} at γ = 5, {per[1.0]['accuracy']:.1%} at γ = 1; classifier-FID "
                            f"{per[5.0]['fid']:.2f} vs {per[1.0]['fid']:.2f} (floor {ev['fid_floor']:.2f}).")

    rep.add(Section("one_step", "Part B 1: the one-step denoiser, out of distribution, and pure noise",
                     "Train D(x + σε) ≈ x at σ = 0.5; show epochs 1 and 5, other σ, and the collapse when the input is pure noise."
                     + (" (quick: 512 images)" if q else " (CPU-sized: D = 32, 6000 images, 5 epochs)")), one_step)
    rep.add(Section("flow", "Part B 2: flow matching with class conditioning, with and without the LR scheduler",
                     "Samples after epochs 1, 5, 10 (4 of each digit, CFG γ = 5); can we drop the ExponentialLR scheduler?"
                     + (" (quick)" if q else " (CPU-sized: D = 32, 5000 images per epoch; midpoint sampler, 7 steps)")), flows)
    rep.add(Section("shipped", "Part B 3: the embedded model, CFG vs no CFG",
                     "The class-conditional flow model shipped with fundiff: its recorded training and measured quality."), shipped)

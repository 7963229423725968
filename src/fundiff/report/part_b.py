"""The report's Part B sections: the one-step denoiser, time- and class-conditioned flow matching (the study's
sampler beside fundiff's fast one), the recipe one factor at a time, the 2024 DDPM, and the shipped model.

Every training is CPU-sized (:data:`FULL` / :data:`QUICK` hold the sizes); each section prints the command
that reruns it at this size and the study's full-size command beside it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fundiff.io import write_json
from fundiff.report.claims import ablation_claims, few_step_claims, flow_claims, one_step_claims
from fundiff.report.sections import Section, load_json


@dataclass(frozen=True)
class Sizes:
    one_step_train: int
    flow_width: int          # flow_time and flow (the study: 64)
    flow_train: int          # images per epoch (the study: all 60 000)
    flow_epochs: tuple[int, ...]   # shown epochs, the last is the number trained (the study: 1, 5, 10)
    class_steps: int         # the study's Euler steps for the class model (300)
    time_steps: int          # ... for the time-only model (50)
    flow_eval_per_class: int   # class model (its images cost the study's 300 Euler steps each)
    time_eval_per_class: int
    ablation_width: int
    ablation_train: int
    ablation_epochs: int
    ablation_eval_per_class: int
    ddpm_width: int
    ddpm_train: int
    ddpm_epochs: tuple[int, ...]   # the study: 5, 20
    ddpm_steps: int          # ancestral steps (the study: T = 300)


FULL = Sizes(one_step_train=2000, flow_width=16, flow_train=5000, flow_epochs=(1, 5, 10), class_steps=300,
             time_steps=50, flow_eval_per_class=4, time_eval_per_class=10, ablation_width=16, ablation_train=1500,
             ablation_epochs=10, ablation_eval_per_class=20, ddpm_width=16, ddpm_train=1500, ddpm_epochs=(5, 20),
             ddpm_steps=300)
QUICK = Sizes(one_step_train=512, flow_width=8, flow_train=256, flow_epochs=(1, 2), class_steps=30, time_steps=20,
              flow_eval_per_class=4, time_eval_per_class=4, ablation_width=8, ablation_train=256, ablation_epochs=2,
              ablation_eval_per_class=4, ddpm_width=8, ddpm_train=256, ddpm_epochs=(1, 2), ddpm_steps=30)
FAST = ("midpoint", 7)   # fundiff's sampler on its own flow models
DDIM = ("ddim", 50)


def add_part_b(rep) -> None:
    """Run and add the Part B sections to ``rep`` (a :class:`fundiff.report.Report`)."""
    q = rep.config.quick
    z = QUICK if q else FULL
    data = rep.config.data_args
    resume = ["--resume"] if rep.config.resume else []

    def one_step(s: Section) -> None:
        extra = ["--num-train", str(z.one_step_train)] + (
            ["--num-hiddens", "8", "--epochs", "5", "--eval-images", "100"] if q else [])
        def run(o: Path) -> None:
            from fundiff.studies.one_step import PRESETS, run_one_step_study

            sizes = {"num_train": z.one_step_train, **({"num_hiddens": 8, "epochs": 5, "eval_images": 100} if q else {})}
            config = dataclasses.replace(PRESETS["demo"], **sizes)
            config.validate()
            run_one_step_study(o, config, rep.mnist_data, resume=rep.config.resume, progress=False)

        d = rep.step(s, ["study", "denoiser", "--preset", "demo", *extra, *resume, "--no-progress", *data], run,
                      backend=False)
        s.full_size.append(["fundiff", "study", "denoiser", "--preset", "study"])
        for name in ("noising.png", "denoiser_loss.png", "denoiser_epoch1.png", "denoiser_epoch5.png", "denoiser_ood.png",
                     "denoiser_ood_psnr.png", "pure_noise_loss.png", "pure_noise_epoch1.png", "pure_noise_epoch5.png"):
            if (d / name).is_file():
                rep.fig(s, d / name)
        r = load_json(d / "results.json")
        s.numbers = r
        s.claims += one_step_claims(r)

    def flow_run(s: Section, folder: str, *, objective: str, conditioning: str, width: int, train: int,
                 epochs: tuple[int, ...], steps: int, compare: tuple[str, int] | None, per: int) -> tuple[Path, dict]:
        """One `fundiff study flow` run of the study's recipe at a CPU size; its folder and results."""
        argv = ["study", "flow", "--objective", objective, "--conditioning", conditioning, "--num-hiddens", str(width),
                "--num-train", str(train), "--epochs", str(epochs[-1]), "--show-epochs", *map(str, epochs),
                "--steps", str(steps), "--eval-per-class", str(per)] + (
                ["--compare", compare[0], str(compare[1])] if compare else []) + ["--no-progress", *resume, *data]

        def run(o: Path) -> None:
            from fundiff.studies.flow import FlowStudyConfig, run_flow_study

            config = FlowStudyConfig(objective=objective, conditioning=conditioning, recipe="study",
                                     overrides={"num_train": train, "epochs": epochs[-1]}, num_hiddens=width,
                                     show_epochs=epochs, steps=steps, compare=compare, guidance_scale=5.0,
                                     eval_per_class=per, seed=rep.config.seed)
            run_flow_study(o, config, rep.mnist_data, resume=rep.config.resume, progress=False)

        d = rep.step(s, argv, run, backend=False, folder=folder)
        s.full_size.append(["fundiff", "study", "flow", "--objective", objective, "--conditioning", conditioning] + (
            ["--compare", compare[0], str(compare[1])] if compare else []))
        tag = f"{objective}-{conditioning}"
        r = load_json(d / f"{tag}_results.json")
        for name in [f"{tag}_loss.png", f"{tag}_epochs.png"] + [f"{tag}_epochs_{c['sampler']}{c['steps']}.png"
                                                                for c in r["compare"]] + [f"{tag}_sampling.gif"]:
            rep.fig(s, d / name)
        return d, r

    def flow_time(s: Section) -> None:
        _, r = flow_run(s, "flow_time", objective="flow", conditioning="time", width=z.flow_width, train=z.flow_train,
                        epochs=z.flow_epochs, steps=z.time_steps, compare=None, per=z.time_eval_per_class)
        s.numbers = r
        s.claims += flow_claims(r)

    def flow(s: Section) -> None:
        _, r = flow_run(s, "flow", objective="flow", conditioning="class", width=z.flow_width, train=z.flow_train,
                        epochs=z.flow_epochs, steps=z.class_steps, compare=FAST, per=z.flow_eval_per_class)
        s.numbers = r
        s.claims += flow_claims(r)

    def ddpm(s: Section) -> None:
        for conditioning in ("time", "class"):
            _, r = flow_run(s, f"ddpm-{conditioning}", objective="ddpm", conditioning=conditioning, width=z.ddpm_width,
                            train=z.ddpm_train, epochs=z.ddpm_epochs, steps=z.ddpm_steps, compare=DDIM, per=4)
            s.numbers[conditioning] = r
            s.claims += flow_claims(r)
        r = s.numbers["class"]
        t, last = r["train"], r["per_epoch"][-1]
        steps = t["num_train"] // t["batch_size"] * t["epochs"]
        s.claims.append(f"At this size the class DDPM takes {steps} optimizer steps at lr {t['lr']:g} (the study's full size: "
                        f"60 000 // 128 x 20 = 9360): after epoch {last['epoch']} the classifier reads "
                        f"{last['accuracy']:.0%} of its samples as their class. The ablation's lr-1e-3 row is the flow "
                        "model at the same lr and a similar number of steps: it too reads far below the lr-1e-2 rows.")

    def ablation(s: Section) -> None:
        from fundiff.studies.ablation import VARIANTS, run_ablation

        d = rep.out / s.key   # each row is its own `fundiff study flow --recipe study` run with one flag changed
        base = ["fundiff", "study", "flow", "--recipe", "study", "--num-hiddens", str(z.ablation_width), "--num-train",
                str(z.ablation_train), "--epochs", str(z.ablation_epochs), "--show-epochs", str(z.ablation_epochs),
                "--sampler", FAST[0], "--steps", str(FAST[1]), "--eval-per-class", str(z.ablation_eval_per_class),
                "--no-animation"]
        for v in VARIANTS:
            s.commands.append([*base, *v.flags, *data, "--out", f"{s.key}/{v.name}"])
            s.full_size.append(["fundiff", "study", "flow", "--recipe", "study", "--sampler", FAST[0], "--steps",
                                str(FAST[1]), "--show-epochs", "10", "--no-animation", *v.flags])
        r = run_ablation(d, rep.mnist_data, num_hiddens=z.ablation_width, num_train=z.ablation_train,
                         epochs=z.ablation_epochs, sampler=FAST[0], steps=FAST[1],
                         eval_per_class=z.ablation_eval_per_class, seed=rep.config.seed, resume=rep.config.resume)
        rep.fig(s, d / "ablation.png")
        rep.fig(s, d / "ablation_loss.png")
        s.numbers = r
        s.claims += ablation_claims(r)

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

    def distilled(s: Section) -> None:
        from fundiff.pipelines import SamplePipeline
        from fundiff.studies.few_step import run_few_step

        per = 5 if q else 100
        d = rep.out / s.key
        s.commands.append(["python", "bench/few_step.py", "--num-per-class", str(per), "--out", s.key])
        s.full_size.append(["fundiff", "evaluate", "--model", "mnist-fast", "--num-per-class", "100"])
        r = run_few_step(SamplePipeline.from_pretrained("mnist", device="cpu"),
                         SamplePipeline.from_pretrained("mnist-fast", device="cpu"), d, rep.mnist_data,
                         num_per_class=per, log=print)
        rep.fig(s, d / "few_step.png")
        rep.fig(s, d / "few_step_quality.png")
        s.numbers = r
        s.claims += few_step_claims(r)

    size = "quick" if q else "CPU-sized"
    rep.add(Section("one_step", "Part B 1: the one-step denoiser, out of distribution, and pure noise",
                     "Train D(x + σε) ≈ x at σ = 0.5; show epochs 1 and 5, other σ, and the collapse when the input is pure noise "
                     f"({size}: D = {8 if q else 32}, {z.one_step_train} images per epoch, 5 epochs; the study: D = 128, 60 000)."),
            one_step)
    rep.add(Section("flow_time", "Part B 2.1: flow matching with a time-conditioned UNet",
                     f"The study's recipe (lr 1e-2, ExponentialLR to 0.1x, batch 64) and sampler (Euler, {z.time_steps} "
                     f"steps): the loss curve and 40 samples after epochs {', '.join(map(str, z.flow_epochs))} ({size}: "
                     f"D = {z.flow_width}, {z.flow_train} images per epoch; the study: D = 64, 60 000)."), flow_time)
    rep.add(Section("flow", "Part B 2.2: flow matching with class conditioning, the study's sampler and fundiff's",
                     f"The study's recipe; 4 of each digit after epochs {', '.join(map(str, z.flow_epochs))}, CFG γ = 5, with "
                     f"the study's sampler (Euler, {z.class_steps} steps) and fundiff's (midpoint, 7 steps) on the same "
                     f"noise ({size}: D = {z.flow_width}, {z.flow_train} images per epoch)."), flow)
    rep.add(Section("ablation", "Part B 2.3: can we drop the LR scheduler? The recipe, one factor at a time",
                     "The study's recipe, then the same with only the scheduler removed, only the lr, only an EMA, only the "
                     "t-sampling changed, and fundiff's noschedule recipe (all three at once); same data, budget, seed and "
                     f"sampler (midpoint, 7 steps, γ = 5) ({size}: D = {z.ablation_width}, {z.ablation_train} images per "
                     f"epoch, {z.ablation_epochs} epochs)."), ablation)
    rep.add(Section("ddpm", "Part B (2024): DDPM with time and class conditioning, ancestral sampling and DDIM",
                     f"The 2024 study's DDPM (T = 300, β 1e-4..0.02, lr 1e-3, ExponentialLR, batch 128): loss curves and "
                     f"samples after epochs {', '.join(map(str, z.ddpm_epochs))} with the ancestral sampler "
                     f"({z.ddpm_steps} steps) and DDIM (50 steps) on the same noise ({size}: D = {z.ddpm_width}, "
                     f"{z.ddpm_train} images per epoch; the study: D = 64, 60 000, 20 epochs)."), ddpm)
    rep.add(Section("shipped", "Part B 3: the embedded model, CFG vs no CFG",
                     "The class-conditional flow model shipped with fundiff: its recorded training and measured quality."), shipped)
    rep.add(Section("distilled", "Beyond the study: a distilled few-step model (mnist-fast) against its teacher",
                     "The embedded model and its shortcut student (fundiff distill: guidance and step size as inputs) at "
                     "1, 2, 4, 8 and 28 UNet evaluations per image, on the same noise: images, class accuracy, "
                     "classifier-FID and images per second, all measured in this run."), distilled)

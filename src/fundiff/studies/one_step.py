"""Study part 1 (reference section 2.1): the one-step denoiser and its failure on pure noise.

What it does, writing PNG figures and ``results.json`` into one folder:

1. noising visualisation: test digits at sigma in [0, .2, .4, .5, .6, .8, 1];
2. trains D(z) ~ x with z = x + 0.5 eps (fresh noise each batch) and plots the loss curve;
3. test-set denoising after epoch 1 and after the last epoch (figures, and test MSE / PSNR per epoch);
4. the out-of-distribution sweep: the sigma=0.5 denoiser applied at every sigma of the list, with the
   test MSE / PSNR per sigma next to those of the noisy input;
5. trains the same UNet on pure noise (z = eps) and measures its collapse: with no information in z
   the MSE-optimal output is the training-set mean image E[x], so the loss floors at the mean pixel
   variance of the data, outputs for different noise inputs agree with each other, and they sit
   next to the mean image.

PSNR = 10 log10(1 / MSE) for images in [0, 1], averaged over images; outputs are clipped to [0, 1].
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fundiff.data import MNIST, to_float
from fundiff.errors import FundiffError
from fundiff.figures import image_grid, line_plot, loss_curve
from fundiff.images import psnr
from fundiff.io import ensure_writable_dir, write_json
from fundiff.nn import UnconditionalUNet
from fundiff.objectives.denoise import DenoiseObjective
from fundiff.training import TrainConfig, load_model, resolve_device, train
from fundiff.training import rng
from fundiff.training.trainer import select_subset

SIGMAS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)
EVAL_STREAM = 7_000_001  # rng key for the fixed evaluation noise (independent of training draws)


@dataclass
class OneStepStudyConfig:
    """Settings of the study; the defaults are the study's (D=128, batch 256, Adam 1e-4, 5 epochs)."""

    num_hiddens: int = 128
    batch_size: int = 256
    lr: float = 1e-4
    epochs: int = 5
    sigma: float = 0.5
    num_train: int | None = None
    eval_images: int = 1000
    seed: int = 0
    device: str = "auto"
    checkpoint_interval: float = 300.0
    precision: str = "fp32"  # training's UNet arithmetic (fundiff.training.precision); evaluation runs in fp32
    pure_noise: bool = True  # also run section 1.2.3

    def validate(self) -> None:
        if self.num_hiddens < 1:
            raise FundiffError(f"--num-hiddens must be at least 1, got {self.num_hiddens}")
        if not (0 < self.sigma and math.isfinite(self.sigma)):
            raise FundiffError(f"--sigma must be a positive number, got {self.sigma}")
        if not 1 <= self.eval_images <= 10000:
            raise FundiffError(f"--eval-images must be in 1..10000, got {self.eval_images}")
        self.train_config().validate()

    def train_config(self, progress: bool = True) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=self.seed,
            num_train=self.num_train, checkpoint_interval=self.checkpoint_interval,
            device=self.device, precision=self.precision, progress=progress,
        )


# The CPU-sized demo: a quarter of the width (about 1/16 of the FLOPs per image, 390 vs 28 images/s
# on the 2-core CPU) and a fifth of the images, so 230 steps instead of 1170, with a 10x learning rate
# to make up for the fewer steps.  Measured to show every effect of the study in about 5 minutes.
PRESETS: dict[str, OneStepStudyConfig] = {
    "spec": OneStepStudyConfig(),
    "demo": OneStepStudyConfig(num_hiddens=32, batch_size=256, lr=1e-3, epochs=5, num_train=12000, eval_images=1000),
}


def _quality(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    pred = pred.clamp(0, 1)
    return {
        "mse": float(((pred - target) ** 2).mean()),
        "psnr": float(psnr(pred, target).mean()),
    }


@torch.no_grad()
def _apply(model: nn.Module, z: torch.Tensor, batch: int = 500) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(z[i : i + batch].to(device)).cpu() for i in range(0, len(z), batch)])


def _eval_noise(shape: torch.Size, seed: int, key: int) -> torch.Tensor:
    return torch.randn(shape, generator=rng.generator(seed, EVAL_STREAM, key))


def run_one_step_study(
    out_dir: str | Path,
    config: OneStepStudyConfig,
    mnist: MNIST,
    *,
    resume: bool = False,
    progress: bool = True,
    log=print,
) -> dict[str, Any]:
    """Run the whole of study part 1 into ``out_dir``; returns the numbers also written to results.json."""
    config.validate()
    out = ensure_writable_dir(out_dir)
    device = resolve_device(config.device)
    started = time.monotonic()
    x_test = to_float(mnist.test_images[: config.eval_images])
    show = x_test[:8]
    results: dict[str, Any] = {
        "study": "one-step denoiser (reference section 2.1)",
        "config": dataclasses.asdict(config),
        "data": mnist.source,
        "device": str(device),
        "sigmas": list(SIGMAS),
        "psnr_note": "PSNR = 10 log10(1/MSE) per image (capped at 100 dB), averaged; model outputs clipped to [0, 1]",
    }

    # 1. Noising visualisation.
    eps_show = _eval_noise(show.shape, config.seed, 0)
    image_grid(
        [[(x + s * e).clamp(0, 1) for s in SIGMAS] for x, e in zip(show[:5], eps_show[:5])],
        out / "noising.png",
        col_labels=[f"σ = {s:g}" for s in SIGMAS],
        title="z = x + σ·ε on MNIST test digits",
    )

    # 2. Train the sigma-denoiser.
    train_x, train_y = mnist.train_images, mnist.train_labels
    run = train(
        UnconditionalUNet(1, config.num_hiddens), DenoiseObjective(config.sigma), train_x, train_y,
        config.train_config(progress), out / f"denoiser-sigma{config.sigma:g}",
        resume=resume, data_source=mnist.source, desc=f"denoiser σ={config.sigma:g}",
    )
    loss_curve(
        run.losses, out / "denoiser_loss.png", steps_per_epoch=run.steps_per_epoch,
        title=f"one-step denoiser, σ = {config.sigma:g}: training loss",
    )

    # 3. Test-set denoising per epoch (figures after epoch 1 and the last).
    eps_test = _eval_noise(x_test.shape, config.seed, 1)
    z_test = x_test + config.sigma * eps_test
    per_epoch = []
    for epoch in range(1, config.epochs + 1):
        model = load_model(run.run_dir / "weights" / f"epoch-{epoch:03d}.safetensors", device)
        denoised = _apply(model, z_test)
        per_epoch.append({"epoch": epoch, **_quality(denoised, x_test)})
        if epoch in (1, config.epochs):
            q = per_epoch[-1]
            image_grid(
                [list(x_test[:8]), list(z_test[:8].clamp(0, 1)), list(denoised[:8].clamp(0, 1))],
                out / f"denoiser_epoch{epoch}.png",
                row_labels=["clean x", f"noisy z (σ={config.sigma:g})", "D(z)"],
                title=f"after epoch {epoch}: test PSNR {q['psnr']:.2f} dB, MSE {q['mse']:.4f}",
            )
    results["denoiser"] = {
        "run_dir": str(run.run_dir),
        "train_seconds": round(run.wall_seconds, 1),
        "images_per_second": round(run.images_per_second, 1),
        "steps": len(run.losses),
        "final_epoch_loss": run.epoch_losses[-1],
        "epoch_loss": run.epoch_losses,
        "noisy_input": _quality(z_test, x_test),
        "test_per_epoch": per_epoch,
    }

    # 4. Out-of-distribution sweep with the final model.
    final = load_model(run.run_dir / "model.safetensors", device)
    ood, ood_rows = [], []
    ood_show_eps = _eval_noise(show[:2].shape, config.seed, 2)
    for s in SIGMAS:
        z = x_test + s * eps_test
        ood.append({"sigma": s, **_quality(_apply(final, z), x_test), "noisy_input": _quality(z, x_test)})
    for x, e in zip(show[:2], ood_show_eps):
        zs = torch.stack([x + s * e for s in SIGMAS])
        ood_rows += [list(zs.clamp(0, 1)), list(_apply(final, zs).clamp(0, 1))]
    image_grid(
        ood_rows, out / "denoiser_ood.png",
        row_labels=["noisy z", "D(z)", "noisy z", "D(z)"],
        col_labels=[f"σ = {s:g}\n{q['psnr']:.1f} dB" for s, q in zip(SIGMAS, ood)],
        title=f"denoiser trained at σ = {config.sigma:g}, tested at other σ (test PSNR per column)",
    )
    line_plot(
        SIGMAS, {"D(z)": [q["psnr"] for q in ood], "noisy z": [q["noisy_input"]["psnr"] for q in ood]},
        out / "denoiser_ood_psnr.png", xlabel="σ at test time", ylabel="test PSNR (dB)",
        title="out-of-distribution noise levels", mark_x=config.sigma,
    )
    results["denoiser"]["ood"] = ood

    # 5. The pure-noise denoiser and its collapse to the mean.
    if config.pure_noise:
        results["pure_noise"] = _pure_noise(out, config, mnist, resume, progress, device)

    results["wall_seconds"] = round(time.monotonic() - started, 1)
    write_json(out / "results.json", results)
    log(summary(results, out))
    return results


def _pure_noise(out: Path, config: OneStepStudyConfig, mnist: MNIST, resume: bool, progress: bool, device) -> dict:
    run = train(
        UnconditionalUNet(1, config.num_hiddens), DenoiseObjective(None), mnist.train_images, mnist.train_labels,
        config.train_config(progress), out / "denoiser-pure-noise",
        resume=resume, data_source=mnist.source, desc="pure-noise denoiser",
    )
    # Statistics of the data the run trained on (the same seeded subset).
    subset = select_subset(len(mnist.train_images), config.num_train, config.seed)
    x_train = to_float(mnist.train_images[subset])
    mean_image = x_train.mean(0, keepdim=True)
    loss_floor = float(((x_train - mean_image) ** 2).mean())  # MSE of the best constant predictor
    loss_curve(
        run.losses, out / "pure_noise_loss.png", steps_per_epoch=run.steps_per_epoch,
        title="denoiser on pure noise z = ε: training loss", floor=loss_floor,
        floor_label=f"MSE of predicting the mean image ({loss_floor:.4f})",
    )
    k = 256
    z = _eval_noise(torch.Size((k, 1, 28, 28)), config.seed, 3)
    x_test = to_float(mnist.test_images[:k])
    per_epoch = []
    for epoch in range(1, config.epochs + 1):
        model = load_model(run.run_dir / "weights" / f"epoch-{epoch:03d}.safetensors", device)
        outputs = _apply(model, z)
        per_epoch.append({
            "epoch": epoch,
            "mse_to_train_mean": float(((outputs - mean_image) ** 2).mean()),
            "pairwise_mse_between_outputs": _mean_pairwise_mse(outputs),
        })
        if epoch in (1, config.epochs):
            q = per_epoch[-1]
            image_grid(
                [list(z[:8].clamp(0, 1)), list(outputs[:8].clamp(0, 1)) + [mean_image[0]]],
                out / f"pure_noise_epoch{epoch}.png",
                row_labels=["input z = ε", "D(z)"],
                col_labels=[f"ε{i + 1}" for i in range(8)] + ["train mean"],
                title=(f"pure-noise denoiser after epoch {epoch}: MSE to the training mean "
                       f"{q['mse_to_train_mean']:.5f}"),
            )
    return {
        "run_dir": str(run.run_dir),
        "train_seconds": round(run.wall_seconds, 1),
        "final_epoch_loss": run.epoch_losses[-1],
        "epoch_loss": run.epoch_losses,
        "loss_floor_mean_predictor": loss_floor,
        "per_epoch": per_epoch,
        "reference_scales": {
            "test_digits_mse_to_train_mean": float(((x_test - mean_image) ** 2).mean()),
            "pairwise_mse_between_test_digits": _mean_pairwise_mse(x_test),
        },
        "explanation": (
            "z = ε is independent of x, so E||D(z) - x||^2 is minimised by the constant D(z) = E[x]: "
            "the training-set mean image (the 'centroid'). The loss floors at the mean pixel variance "
            "of the data, and outputs for different noise inputs agree with each other and with the mean image "
            "far more closely than real digits do."
        ),
    }


def _mean_pairwise_mse(x: torch.Tensor) -> float:
    """Mean over pairs i != j of the per-pixel MSE between images i and j."""
    flat = x.flatten(1).double()
    n, d = flat.shape
    sq = torch.cdist(flat, flat) ** 2
    return float(sq.sum() / (n * (n - 1) * d))


def summary(results: dict[str, Any], out: Path) -> str:
    """A short human-readable digest of the numbers."""
    d = results["denoiser"]
    lines = [
        f"one-step denoiser study -> {out}",
        f"  trained {d['steps']} steps in {d['train_seconds']} s ({d['images_per_second']} images/s)",
        "  test PSNR at σ={:g}: noisy {:.2f} dB, epoch 1 {:.2f} dB, epoch {} {:.2f} dB".format(
            results["config"]["sigma"], d["noisy_input"]["psnr"], d["test_per_epoch"][0]["psnr"],
            d["test_per_epoch"][-1]["epoch"], d["test_per_epoch"][-1]["psnr"],
        ),
        "  OOD sweep (σ: denoised dB / noisy dB): " + ", ".join(
            f"{q['sigma']:g}: {q['psnr']:.1f}/{q['noisy_input']['psnr']:.1f}" for q in d["ood"]
        ),
    ]
    if "pure_noise" in results:
        p = results["pure_noise"]
        last = p["per_epoch"][-1]
        ref = p["reference_scales"]
        lines.append(
            f"  pure noise: loss {p['final_epoch_loss']:.4f} vs mean-image floor {p['loss_floor_mean_predictor']:.4f}; "
            f"outputs' MSE to the train mean {last['mse_to_train_mean']:.5f} "
            f"(test digits: {ref['test_digits_mse_to_train_mean']:.4f}); pairwise MSE between outputs "
            f"{last['pairwise_mse_between_outputs']:.5f} (between test digits: {ref['pairwise_mse_between_test_digits']:.4f})"
        )
    lines.append(f"  figures: {', '.join(sorted(p.name for p in out.glob('*.png')))}")
    return "\n".join(lines)

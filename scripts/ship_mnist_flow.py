"""Copy a finished ``fundiff train flow`` run into the package as the embedded MNIST model.

    .venv/bin/fundiff train flow --recipe fundiff --conditioning class --epochs 16 --compile --seed 0 \\
        --out runs/mnist-flow-shipped
    .venv/bin/python scripts/ship_mnist_flow.py runs/mnist-flow-shipped

writes ``src/fundiff/assets/mnist_flow.safetensors`` (the EMA weights), ``mnist_flow.json`` (the
command, seed, training record and the measured quality of ``fundiff evaluate``) and
``mnist_flow_loss.png`` (the loss curve).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import shutil
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "src" / "fundiff" / "assets"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--command", required=True, help="the exact training command, for the record")
    ap.add_argument("--num-per-class", type=int, default=100)
    args = ap.parse_args()

    from fundiff.data import load_mnist
    from fundiff.evaluate import evaluate_generator
    from fundiff.figures import loss_curve
    from fundiff.generate import load_generator

    weights = args.run / "model.safetensors"
    metrics = json.loads((args.run / "metrics.json").read_text())
    config = json.loads((args.run / "config.json").read_text())
    mnist = load_mnist()
    gen = load_generator(weights)
    quality = evaluate_generator(gen, mnist, n_per_class=args.num_per_class, log=print)
    ASSETS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, ASSETS / "mnist_flow.safetensors")
    loss_curve(metrics["loss"], ASSETS / "mnist_flow_loss.png", steps_per_epoch=metrics["steps_per_epoch"],
               title="embedded MNIST flow model: training loss")
    record = {
        "command": args.command,
        "seed": config["train"]["seed"],
        "config": config,
        "training": {k: metrics[k] for k in ("steps", "steps_per_epoch", "train_images", "train_seconds", "images_per_second", "epoch_loss")},
        "quality": {"evaluate_command": f"fundiff evaluate --model mnist --num-per-class {args.num_per_class}", **quality},
        "sha256": hashlib.sha256((ASSETS / "mnist_flow.safetensors").read_bytes()).hexdigest(),
        "torch": torch.__version__,
        "machine": "2-core CPU (the project's CPU machine kind)",
        "date": datetime.date.today().isoformat(),
    }
    (ASSETS / "mnist_flow.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"shipped {weights} -> {ASSETS / 'mnist_flow.safetensors'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Throughput of the spec UNet on this machine: training (eager vs compiled) and sampling vs matmul peak.

Run alone:  .venv/bin/python bench/throughput.py [--num-hiddens 64 --batch-size 64]

* peak: float32 GEMM throughput (GFLOP/s) of torch.mm on 1024 x 1024 matrices with all threads;
* training: images/s of one flow-matching step (class UNet, Adam) in plain eager PyTorch and with
  ``--compile`` (torch.compile), measured in the same process, and the ratio;
* sampling: UNet evaluations/s of the class UNet as fundiff samples (eval mode, BatchNorm folded,
  batch of 500, no grad), and the FLOP rate that implies as a fraction of the GEMM peak.
FLOPs are counted with torch.utils.flop_counter (a multiply-add is 2 FLOPs).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from fundiff.nn import ClassConditionalUNet
from fundiff.nn.fuse import fold_batchnorm
from fundiff.objectives import FlowMatchingObjective
from fundiff.training.rng import BatchRandom, generator
from fundiff.training.trainer import compile_for_training


def timed(fn, warmup: int, reps: int) -> float:
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-hiddens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    d, bs = args.num_hiddens, args.batch_size
    a = torch.randn(1024, 1024)
    peak = 2 * 1024**3 / timed(lambda: torch.mm(a, a), 3, 30) / 1e9

    def train_rate(compiled: bool) -> float:
        torch.manual_seed(0)
        model = ClassConditionalUNet(1, 10, d)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        net = compile_for_training(model) if compiled else model
        obj, x, y = FlowMatchingObjective(), torch.rand(bs, 1, 28, 28), torch.randint(0, 10, (bs,))
        i = [0]

        def step():
            i[0] += 1
            loss = obj.loss(net, x, y, BatchRandom(generator(0, 0, i[0])))
            opt.zero_grad()
            loss.backward()
            opt.step()

        return bs / timed(step, 4, args.steps)

    eager, compiled = train_rate(False), train_rate(True)
    eager2 = train_rate(False)  # again, after the compiled run, to see drift
    model = fold_batchnorm(ClassConditionalUNet(1, 10, d).eval())
    xs, ys, ts = torch.randn(500, 1, 28, 28), torch.randint(0, 10, (500,)), torch.rand(500)
    with FlopCounterMode(display=False) as fc:
        with torch.no_grad():
            model(xs[:1], ys[:1], ts[:1])
    flops_per_eval = fc.get_total_flops()
    with torch.no_grad():
        per_batch = timed(lambda: model(xs, ys, ts), 1, 3)
    evals_per_s = 500 / per_batch
    result = {
        "num_hiddens": d, "batch_size": bs, "threads": torch.get_num_threads(),
        "gemm_peak_gflops": round(peak, 1),
        "train_images_per_s_eager": round((eager + eager2) / 2, 1),
        "train_images_per_s_compiled": round(compiled, 1),
        "train_speedup": round(compiled / ((eager + eager2) / 2), 3),
        "forward_gflop_per_image": round(flops_per_eval / 1e9, 4),
        "sampling_evals_per_s": round(evals_per_s, 1),
        "sampling_fraction_of_peak": round(evals_per_s * flops_per_eval / 1e9 / peak, 3),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

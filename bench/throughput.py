"""Throughput of the spec UNet on this machine: training (plain eager vs fundiff) and sampling vs matmul peak.

Run alone:  .venv/bin/python bench/throughput.py [--num-hiddens 64 --batch-size 64 --rounds 3]

* peak: float32 GEMM throughput (GFLOP/s) of torch.mm with all threads, the best of square sizes 512, 1024
  and 2048, measured before and after the training rounds (the best of both);
* training: images/s of one flow-matching step (class UNet, Adam) measured in fresh child processes,
  alternated ``--rounds`` times so drift in the machine hits every variant alike:
    - ``plain``: the study's loop in plain eager PyTorch (NCHW, foreach Adam, default allocator);
    - ``fundiff``: the same step as ``fundiff train`` runs it (fundiff.training.speed: allocator
      kept, channels-last convolutions, fused Adam);
    - ``fundiff+compile``: that plus ``--compile`` (torch.compile);
    - ``fundiff+bf16``: the fundiff step with ``--precision bf16`` (the UNet under bf16 autocast; weights,
      Adam and loss fp32), as a fraction of a bf16 GEMM peak measured the same way.
  The speed-up is the ratio of medians. Each rate is also given as GFLOP/s (training FLOPs of one step,
  forward + backward, counted once) and as a fraction of the GEMM peak; ``same_flop_ceiling`` = peak /
  plain rate is the most any method that keeps the FLOPs (the same math) could gain over plain eager.
* sampling (fp32 and bf16): UNet evaluations/s of the class UNet as fundiff samples (Generator.for_sampling: eval mode,
  BatchNorm folded, channels-last, batch of 500 computed in slices, no grad), and the FLOP rate that
  implies as a fraction of the GEMM peak.
FLOPs are counted with torch.utils.flop_counter (a multiply-add is 2 FLOPs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from fundiff.nn import ClassConditionalUNet
from fundiff.generate import Generator
from fundiff.objectives import FlowMatchingObjective
from fundiff.training import speed
from fundiff.training.rng import BatchRandom, generator
from fundiff.training.precision import NATIVE_CPU_FLAGS, cpu_flags, with_precision
from fundiff.training.trainer import compile_for_training
from fundiff.commands.arguments import Parser

VARIANTS = ("plain", "fundiff", "fundiff+compile", "fundiff+bf16")


def timed(fn, warmup: int, reps: int) -> float:
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def train_rate(variant: str, d: int, bs: int, steps: int) -> float:
    """Images/s of the training step in this process, set up as ``variant`` says."""
    torch.manual_seed(0)
    model = ClassConditionalUNet(1, 10, d)
    if variant == "plain":
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        net = model
    else:
        speed.keep_freed_memory()
        speed.prefer_channels_last(model)
        opt = speed.make_adam(model.parameters(), decoupled=False, lr=1e-3)
        net = compile_for_training(model) if variant.endswith("+compile") else model
        net = with_precision(net, "bf16" if variant.endswith("+bf16") else "fp32", torch.device("cpu"))
    obj, x, y = FlowMatchingObjective(), torch.rand(bs, 1, 28, 28), torch.randint(0, 10, (bs,))
    i = [0]

    def step():
        i[0] += 1
        loss = obj.loss(net, x, y, BatchRandom(generator(0, 0, i[0])))
        opt.zero_grad()
        loss.backward()
        opt.step()

    return bs / timed(step, 4 if variant.endswith("+compile") else 3, steps)


def gemm_peak(dtype: torch.dtype = torch.float32) -> float:
    """Best torch.mm rate (GFLOP/s) of ``dtype`` over a few square sizes and repeats."""
    best = 0.0
    for n in (512, 1024, 2048):
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        reps = max(1, int(1e9 / (2 * n**3)))
        for _ in range(3):
            best = max(best, 2 * n**3 / timed(lambda: torch.mm(a, b), 1, reps) / 1e9)
    return best


def train_gflop_per_image(d: int, bs: int) -> float:
    """FLOPs of one training step (forward + backward of the UNet) per image, by torch's flop counter."""
    model = ClassConditionalUNet(1, 10, d)
    obj, x, y = FlowMatchingObjective(), torch.rand(bs, 1, 28, 28), torch.randint(0, 10, (bs,))
    with FlopCounterMode(display=False) as fc:
        obj.loss(model, x, y, BatchRandom(generator(0, 0, 1))).backward()
    return fc.get_total_flops() / bs / 1e9


def child(args) -> int:
    print(json.dumps({"images_per_s": train_rate(args.child, args.num_hiddens, args.batch_size, args.steps)}))
    return 0


def measure_in_child(variant: str, args) -> float:
    cmd = [sys.executable, __file__, "--child", variant, "--num-hiddens", str(args.num_hiddens),
           "--batch-size", str(args.batch_size), "--steps", str(args.steps)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["images_per_s"]


def main() -> int:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-hiddens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    d, bs = args.num_hiddens, args.batch_size
    peak_before = gemm_peak()
    bf16_peak = gemm_peak(torch.bfloat16)
    print(f"GEMM peak before: {peak_before:.1f} GFLOP/s (bf16 {bf16_peak:.1f})", flush=True)
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        for v in VARIANTS:
            rates[v].append(round(measure_in_child(v, args), 1))
        print(f"round {r + 1}: " + ", ".join(f"{v} {rates[v][-1]}" for v in VARIANTS), flush=True)
    med = {v: statistics.median(xs) for v, xs in rates.items()}

    peak_after = gemm_peak()
    peak = max(peak_before, peak_after)
    train_gflop = train_gflop_per_image(d, bs)
    model = Generator.for_sampling(ClassConditionalUNet(1, 10, d).eval(), {"name": "flow"}, "bench").model
    xs, ys, ts = torch.randn(500, 1, 28, 28), torch.randint(0, 10, (500,)), torch.rand(500)
    with FlopCounterMode(display=False) as fc:
        with torch.no_grad():
            model(xs[:1], ys[:1], ts[:1])
    flops_per_eval = fc.get_total_flops()
    with torch.no_grad():
        per_batch = timed(lambda: model(xs, ys, ts), 1, 3)
        bf16_model = with_precision(model, "bf16", torch.device("cpu"))
        per_batch_bf16 = timed(lambda: bf16_model(xs, ys, ts), 1, 3)
    evals_per_s, evals_per_s_bf16 = 500 / per_batch, 500 / per_batch_bf16
    result = {
        "num_hiddens": d, "batch_size": bs, "threads": torch.get_num_threads(), "rounds": args.rounds,
        "gemm_peak_gflops": round(peak, 1),
        "gemm_peak_gflops_before_after": [round(peak_before, 1), round(peak_after, 1)],
        "train_gflop_per_image": round(train_gflop, 4),
        "train_images_per_s": rates,
        "train_images_per_s_median": med,
        "train_gflops_median": {v: round(m * train_gflop, 1) for v, m in med.items()},
        "train_fraction_of_peak": {v: round(m * train_gflop / (bf16_peak if v.endswith("+bf16") else peak), 3)
                                   for v, m in med.items()},   # bf16 rows: of the bf16 GEMM peak
        "cpu_native_bf16": sorted(cpu_flags() & NATIVE_CPU_FLAGS),
        "gemm_peak_gflops_bf16": round(bf16_peak, 1),
        "train_speedup_bf16_over_fundiff_fp32": round(med["fundiff+bf16"] / med["fundiff"], 3),
        "same_flop_ceiling": round(peak / (med["plain"] * train_gflop), 3),
        "train_speedup_fundiff": round(med["fundiff"] / med["plain"], 3),
        "train_speedup_fundiff_compile": round(med["fundiff+compile"] / med["plain"], 3),
        "forward_gflop_per_image": round(flops_per_eval / 1e9, 4),
        "sampling_evals_per_s": round(evals_per_s, 1),
        "sampling_fraction_of_peak": round(evals_per_s * flops_per_eval / 1e9 / peak, 3),
        "sampling_evals_per_s_bf16": round(evals_per_s_bf16, 1),
        "sampling_fraction_of_bf16_peak": round(evals_per_s_bf16 * flops_per_eval / 1e9 / bf16_peak, 3),
        "sampling_speedup_bf16": round(evals_per_s_bf16 / evals_per_s, 3),
        "command": " ".join(["python", "bench/throughput.py", *sys.argv[1:]]),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

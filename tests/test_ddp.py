"""Multi-process training: ``torchrun --nproc_per_node=2 -m fundiff train ...`` on CPU (gloo).

What a 2-process run must equal
-------------------------------
Each rank trains on its half of every global batch, with the noise those samples get in one process,
and DDP averages the gradients.  torch's SyncBatchNorm refuses CPU tensors, so on the CPU BatchNorm
normalises each half with the half's own statistics.  Hence two references:

* a single process whose BatchNorm also normalises each half of the batch on its own
  (:class:`PerShardBatchNorm`): the 2-process run must give *bit-identical* weights (BN buffers
  included) and losses equal up to float rounding (the logged loss is the mean of the two shard
  means rather than one mean over the batch: relative 1e-6);
* the plain single-process run of the same command: here only the BatchNorm statistics differ
  (16 instead of 32 images per statistic), which moves each step's loss by well under 1 %
  (measured: at most 0.5 % over the 8 steps); weights are then only comparable in layout.
"""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from fundiff.errors import FundiffError
from fundiff.nn import ClassConditionalUNet
from fundiff.recipes import build_objective, get_recipe
from fundiff.training import TrainConfig, train
from fundiff.training import distributed

from helpers import assert_one_line_error, free_port, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="this torch build has no torch.distributed with gloo",
)]

WORLD = 2
TRAIN = ["train", "flow", "--conditioning", "class", "--num-hiddens", "4", "--num-train", "256",
         "--batch-size", "32", "--epochs", "1", "--device", "cpu", "--no-progress", "--recipe", "study"]
STEPS = 256 // 32
RUN_FILES = {"config.json", "metrics.json", "model.safetensors", "weights/epoch-001.safetensors",
             "checkpoints/latest.json", f"checkpoints/step-{STEPS:08d}.safetensors",
             f"checkpoints/step-{STEPS:08d}.state.pt"}


def torchrun(*args, launcher=(), timeout=180):
    """``python -m torch.distributed.run --nproc_per_node=2 --master_port=<free> -m fundiff ARGS``."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={WORLD}",
           f"--master_port={free_port()}", *launcher, "-m", "fundiff", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def files(run_dir):
    return {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file()}


def metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def assert_identical_weights(a, b):
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


class PerShardBatchNorm(ClassConditionalUNet):
    """The class UNet with BatchNorm as 2 CPU ranks see it: each half of a batch normalised on its own.

    The running statistics are rank 0's (DDP broadcasts rank 0's buffers), so the second half
    leaves them alone (momentum 0) and ``num_batches_tracked`` counts one batch per step.
    """

    def forward(self, x, c, t, mask):
        if not self.training:
            return super().forward(x, c, t, mask)
        bns = [m for m in self.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        outs = []
        for r, shard in enumerate(zip(*(a.chunk(WORLD) for a in (x, c, t, mask)))):
            for bn in bns:
                bn.momentum = 0.1 if r == 0 else 0.0
            outs.append(super().forward(*shard))
        for bn in bns:
            bn.momentum = 0.1
            bn.num_batches_tracked -= WORLD - 1
        return torch.cat(outs)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "run"
    proc = torchrun(*TRAIN, "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_two_processes_equal_one_process_with_the_same_global_batch(ddp_run, mnist, tmp_path):
    # One set of files, written by rank 0 alone, the same set a single process writes.
    single = tmp_path / "single"
    proc = run_cli(*TRAIN, "--out", single)
    assert proc.returncode == 0, proc.stderr
    assert files(ddp_run) == files(single) == RUN_FILES
    assert json.loads((ddp_run / "config.json").read_text()) == json.loads((single / "config.json").read_text())
    m_ddp, m_single = metrics(ddp_run), metrics(single)
    assert m_ddp["steps"] == m_single["steps"] == STEPS and m_ddp["train_images"] == 256

    # The plain single process: only BatchNorm's statistics differ (per 16-image shard vs per 32-image batch).
    assert m_ddp["loss"] == pytest.approx(m_single["loss"], rel=1e-2)
    w_ddp, w_single = load_file(str(ddp_run / "model.safetensors")), load_file(str(single / "model.safetensors"))
    assert w_ddp.keys() == w_single.keys(), "the saved model must be the plain module's (no 'module.' prefixes)"
    assert all(w_ddp[k].shape == w_single[k].shape for k in w_ddp)

    # A single process with per-shard BatchNorm: bit-identical weights, losses up to rounding.
    recipe = get_recipe("flow", "study")
    config = dataclasses.replace(recipe.train, num_train=256, batch_size=32, epochs=1, device="cpu", progress=False)
    result = train(PerShardBatchNorm(1, 10, 4), build_objective("flow", recipe.objective),
                   mnist.train_images, mnist.train_labels, config, tmp_path / "per-shard")
    assert_identical_weights(ddp_run / "model.safetensors", result.run_dir / "model.safetensors")
    assert m_ddp["loss"] == pytest.approx(result.losses, rel=1e-6, abs=0)


def test_mid_epoch_checkpoints_and_resume_under_torchrun(ddp_run, tmp_path):
    out = tmp_path / "run"
    proc = torchrun(*TRAIN, "--out", out, "--checkpoint-interval", "0.001")  # a checkpoint after every step
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_identical_weights(out / "model.safetensors", ddp_run / "model.safetensors")
    assert metrics(out)["loss"] == metrics(ddp_run)["loss"]
    # Rewind to the step-7 checkpoint, as if killed before the last step, and resume on 2 processes.
    pointer = out / "checkpoints" / "latest.json"
    info = json.loads(pointer.read_text())
    assert info["step"] == STEPS and (out / "checkpoints" / f"step-{STEPS - 1:08d}.state.pt").is_file()
    pointer.write_text(json.dumps({**info, "step": STEPS - 1, "stem": f"step-{STEPS - 1:08d}", "epoch": 0}))
    for name in ("model.safetensors", "metrics.json", "weights/epoch-001.safetensors"):
        (out / name).unlink()
    proc = torchrun(*TRAIN, "--out", out, "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_identical_weights(out / "model.safetensors", ddp_run / "model.safetensors")
    assert metrics(out)["loss"] == metrics(ddp_run)["loss"]


def test_time_budget_stops_every_rank_at_the_same_step(ddp_run, tmp_path):
    out = tmp_path / "run"
    proc = torchrun(*TRAIN, "--out", out, "--max-train-minutes", "0.00001")  # 0.6 ms: rank 0 stops after step 1
    assert proc.returncode == 0, proc.stderr[-3000:]  # a rank left waiting for a step would hang, not exit
    m = metrics(out)
    assert m["stopped_by_time_budget"] and m["steps"] == 1
    assert m["loss"] == metrics(ddp_run)["loss"][:1]
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["step"] == 1


def test_batch_size_not_divisible_by_the_world_size_is_a_one_line_error(tmp_path):
    bad = [*TRAIN[:TRAIN.index("--batch-size")], "--batch-size", "33", *TRAIN[TRAIN.index("--batch-size") + 2:]]
    message = "fundiff: error: --batch-size 33 is the global batch and must be divisible by the 2 processes"
    # What each torchrun child does (checked before any process group exists): one line, exit code 2.
    proc = run_cli(*bad, "--out", tmp_path / "rank", env={"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"})
    assert_one_line_error(proc, message, "use 32 or 34")
    # Under torchrun: the launcher fails; each rank prints that line at most once (torchrun stops
    # the other rank as soon as one exits, sometimes before it prints), and nothing is written.
    proc = torchrun(*bad, "--out", tmp_path / "run")
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("fundiff: error:")]
    assert 1 <= len(lines) <= WORLD and all(message in line for line in lines), proc.stderr[-3000:]
    assert not (tmp_path / "run").exists()
    assert distributed.shard_size(32, 2) == 16


def test_the_check_is_part_of_the_config_validation(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    TrainConfig(batch_size=32).validate()
    with pytest.raises(FundiffError, match="must be divisible by the 2 processes torchrun started; use 32 or 34"):
        TrainConfig(batch_size=33).validate()
    with pytest.raises(FundiffError, match="use 2 or a multiple of it"):
        distributed.shard_size(1, 2)


def test_bf16_under_torchrun_follows_one_process_in_bf16(ddp_run, mnist, tmp_path):
    """--precision bf16 with 2 processes trains like one process (per-shard BatchNorm) in bf16.

    Not bit for bit, unlike fp32: in one process autocast casts each weight to bf16 once per forward, so the two
    shards' weight gradients meet in that bf16 copy; under DDP each rank's gradient reaches the fp32 weight first
    and the ranks average in fp32. So the losses agree to bf16's precision, not exactly.
    """
    out = tmp_path / "ddp-bf16"
    proc = torchrun(*TRAIN, "--precision", "bf16", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "config.json").read_text())["precision"] == "bf16"
    recipe = get_recipe("flow", "study")
    config = dataclasses.replace(recipe.train, num_train=256, batch_size=32, epochs=1, device="cpu", progress=False,
                                 precision="bf16")
    result = train(PerShardBatchNorm(1, 10, 4), build_objective("flow", recipe.objective),
                   mnist.train_images, mnist.train_labels, config, tmp_path / "per-shard")
    assert metrics(out)["loss"] == pytest.approx(result.losses, rel=2e-2)
    assert metrics(out)["loss"] != metrics(ddp_run)["loss"]   # the fp32 run of the same command: bf16 did run
    w_ddp, w_one = load_file(str(out / "model.safetensors")), load_file(str(result.run_dir / "model.safetensors"))
    assert {v.dtype for v in w_ddp.values() if v.is_floating_point()} == {torch.float32}
    assert w_ddp.keys() == w_one.keys()

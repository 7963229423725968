"""The shared trainer: determinism, atomic checkpoints, exact resume after SIGKILL and Ctrl-C."""

import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from fundiff.errors import CheckpointError, FundiffError
from fundiff.nn import ClassConditionalUNet, UnconditionalUNet
from fundiff.objectives import DenoiseObjective
from fundiff.training import TrainConfig, load_model, save_model, train
from fundiff.training.checkpoint import CheckpointStore

from helpers import assert_one_line_error

TINY = dict(epochs=2, batch_size=32, lr=1e-3, num_train=128, device="cpu", progress=False)


def tiny_run(mnist, run_dir, resume=False, sigma=0.5, **overrides):
    config = TrainConfig(**{**TINY, **overrides})
    return train(UnconditionalUNet(1, 4), DenoiseObjective(sigma), mnist.train_images, mnist.train_labels,
                 config, run_dir, resume=resume)


def weights(path):
    return load_file(str(path))


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_same_seed_same_weights_and_run_folder(mnist, tmp_path):
    r1 = tiny_run(mnist, tmp_path / "a")
    r2 = tiny_run(mnist, tmp_path / "b")
    assert_same_weights(r1.run_dir / "model.safetensors", r2.run_dir / "model.safetensors")
    assert r1.losses == r2.losses and len(r1.losses) == 2 * (128 // 32)
    r3 = tiny_run(mnist, tmp_path / "c", seed=1)
    assert r3.losses != r1.losses
    files = {p.relative_to(r1.run_dir).as_posix() for p in r1.run_dir.rglob("*")}
    assert {"config.json", "metrics.json", "model.safetensors", "weights/epoch-001.safetensors",
            "weights/epoch-002.safetensors", "checkpoints/latest.json"} <= files
    assert not [f for f in files if ".tmp-" in f]
    metrics = json.loads((r1.run_dir / "metrics.json").read_text())
    assert metrics["steps"] == 8 and len(metrics["loss"]) == 8 and len(metrics["epoch_loss"]) == 2


def test_training_reduces_the_loss(mnist, tmp_path):
    r = tiny_run(mnist, tmp_path / "r", epochs=6, num_train=256)
    assert r.epoch_losses[-1] < 0.5 * r.epoch_losses[0]


def test_existing_run_needs_resume_and_same_settings(mnist, tmp_path):
    tiny_run(mnist, tmp_path / "r")
    with pytest.raises(FundiffError, match="--resume"):
        tiny_run(mnist, tmp_path / "r")
    with pytest.raises(FundiffError, match="train.lr"):
        tiny_run(mnist, tmp_path / "r", resume=True, lr=5e-4)
    # A finished run resumed is a no-op that returns the same history.
    again = tiny_run(mnist, tmp_path / "r", resume=True)
    assert len(again.losses) == 8


def test_exponential_schedule_decays_per_epoch_and_is_saved(mnist, tmp_path):
    tiny_run(mnist, tmp_path / "full", lr_schedule="exponential", epochs=3)
    # the study's ExponentialLR(gamma = 0.1 ** (1 / epochs)) stepped per epoch: epoch 3 trains at lr0 * 0.1**(2/3)
    state = torch.load(next((tmp_path / "full" / "checkpoints").glob("*.state.pt")), weights_only=True)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 * 0.1 ** (2 / 3))
    assert TrainConfig(lr=1.0, epochs=3, lr_schedule="exponential").lr_at(2 * 5, 5) == pytest.approx(0.1 ** (2 / 3))


def test_model_files_round_trip_and_refuse_other_architectures(tmp_path):
    m = ClassConditionalUNet(1, 10, 4)
    save_model(tmp_path / "m.safetensors", m)
    back = load_model(tmp_path / "m.safetensors")
    x, c, t = torch.randn(2, 1, 28, 28), torch.tensor([3, 4]), torch.rand(2)
    torch.testing.assert_close(back(x, c, t), m.eval()(x, c, t))
    with pytest.raises(CheckpointError, match="'class' model, but this command needs a 'unconditional'"):
        load_model(tmp_path / "m.safetensors", expect_kind="unconditional")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "absent.safetensors")


def test_damaged_checkpoint_is_a_clear_error(mnist, tmp_path):
    tiny_run(mnist, tmp_path / "r", epochs=1)
    store = CheckpointStore(tmp_path / "r" / "checkpoints")
    state_file = next(store.folder.glob("*.state.pt"))
    state_file.write_bytes(state_file.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="damaged"):
        tiny_run(mnist, tmp_path / "r", epochs=1, resume=True)


# ------------------------------------------------------------------------------------------------
# Killed runs, through the CLI as a user would run them.

CLI_TRAIN = ["train", "denoiser", "--num-hiddens", "4", "--batch-size", "16", "--lr", "1e-3",
             "--epochs", "2", "--num-train", "800", "--seed", "3", "--device", "cpu", "--no-progress"]


def _popen(args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "fundiff", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(run_dir, proc, predicate, timeout=120):
    pointer = run_dir / "checkpoints" / "latest.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"training ended before the kill: {proc.communicate()}")
        try:
            info = json.loads(pointer.read_text())
            if predicate(info["step"]):
                return info["step"]
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared in time")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    from helpers import run_cli

    out = tmp_path_factory.mktemp("full") / "run"
    proc = run_cli(*CLI_TRAIN, "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out / "model.safetensors"


@pytest.mark.slow
@pytest.mark.parametrize("interval", ["0.2", "0"], ids=["mid-epoch-checkpoints", "epoch-checkpoints-only"])
def test_sigkill_mid_epoch_then_resume_gives_identical_weights(tmp_path, cli, uninterrupted, interval):
    out = tmp_path / "run"
    steps_per_epoch = 800 // 16
    proc = _popen([*CLI_TRAIN, "--out", str(out), "--checkpoint-interval", interval])
    if interval == "0":
        # wait for the epoch-1 checkpoint, then kill somewhere inside epoch 2
        _wait_for_checkpoint(out, proc, lambda s: s == steps_per_epoch)
        time.sleep(0.5)
    else:
        _wait_for_checkpoint(out, proc, lambda s: 0 < s % steps_per_epoch)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "model.safetensors").exists(), "the kill came too late to test anything"
    resumed = cli(*CLI_TRAIN, "--out", out, "--resume", "--checkpoint-interval", interval)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(out / "model.safetensors", uninterrupted)
    assert not list(out.rglob(".tmp-*"))


@pytest.mark.slow
def test_ctrl_c_saves_and_resume_finishes_identically(tmp_path, cli, uninterrupted):
    out = tmp_path / "run"
    proc = _popen([*CLI_TRAIN, "--out", str(out), "--checkpoint-interval", "0"])
    _wait_for_checkpoint(out, proc, lambda s: s == 50)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    step = json.loads((out / "checkpoints" / "latest.json").read_text())["step"]
    assert step > 50, "Ctrl-C should have saved the steps since the epoch checkpoint"
    resumed = cli(*CLI_TRAIN, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(out / "model.safetensors", uninterrupted)


@pytest.mark.slow
def test_rerun_without_resume_is_refused(tmp_path, cli, uninterrupted):
    out = uninterrupted.parent
    proc = cli(*CLI_TRAIN, "--out", out)
    assert_one_line_error(proc, "--resume")
    proc = cli(*CLI_TRAIN[:-1], "--lr", "0.5", "--no-progress", "--out", out, "--resume")
    assert_one_line_error(proc, "train.lr")


@pytest.mark.slow
def test_compiled_training_follows_the_eager_run(mnist, tmp_path):
    """--compile changes the kernels, not the math: the loss curve matches the eager run closely."""
    eager = tiny_run(mnist, tmp_path / "eager", epochs=1)
    compiled = tiny_run(mnist, tmp_path / "compiled", epochs=1, compile=True)
    np.testing.assert_allclose(compiled.losses, eager.losses, rtol=2e-3)
    assert (compiled.run_dir / "model.safetensors").is_file()


def test_channels_last_and_fused_adam_keep_the_math(mnist, tmp_path):
    """The default speed path (NHWC convolutions, fused Adam, glibc allocator kept) computes what plain
    NCHW eager with foreach Adam computes: same gradients, same update, and a run's loss curve agrees."""
    from fundiff.training import speed

    torch.manual_seed(0)
    nchw = ClassConditionalUNet(1, 10, 8)
    nhwc = speed.prefer_channels_last(ClassConditionalUNet(1, 10, 8))
    nhwc.load_state_dict(nchw.state_dict())
    x, y, t = torch.rand(16, 1, 28, 28), torch.arange(16) % 10, torch.rand(16)
    for m in (nchw, nhwc):
        m(x, y, t).square().mean().backward()
    for (name, a), b in zip(nchw.named_parameters(), nhwc.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)
    fused = speed.make_adam(nhwc.parameters(), decoupled=False, lr=1e-3)
    plain = torch.optim.Adam(nchw.parameters(), lr=1e-3)
    for p, q in zip(nchw.parameters(), nhwc.parameters()):
        q.grad = torch.empty_like(q).copy_(p.grad)  # identical gradients, in q's layout as autograd gives them
    plain.step(), fused.step()
    for (name, a), b in zip(nchw.named_parameters(), nhwc.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7, msg=name)
    assert fused.defaults["fused"]

    fast = tiny_run(mnist, tmp_path / "fast", epochs=1)
    slow = tiny_run(mnist, tmp_path / "plain", epochs=1, channels_last=False)
    np.testing.assert_allclose(fast.losses, slow.losses, rtol=1e-4)
    conv = next(p for p in fast.model.parameters() if p.ndim == 4 and p.shape[1] > 1)
    assert conv.is_contiguous(memory_format=torch.channels_last)


def test_speed_helpers():
    from fundiff.training import speed

    if sys.platform.startswith("linux"):
        assert speed.keep_freed_memory() is True
        assert speed.keep_freed_memory() is True  # idempotent
    opt = speed.make_adam([torch.nn.Parameter(torch.zeros(3))], decoupled=True, lr=1e-3)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["fused"]
    # a parameter type without a fused kernel (float64 is fine; a sparse-capable path is not needed): falls back
    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float16))
    opt16 = speed.make_adam([p], decoupled=False, lr=1e-3)
    assert isinstance(opt16, torch.optim.Adam)


# ------------------------------------------------------------------------------------------------
# Progress: a bar on a terminal, plain lines in a log.

class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_in_a_log_is_plain_lines_at_epoch_ends():
    from fundiff.training.progress import TrainingProgress

    log = _Stream(tty=False)
    p = TrainingProgress(total=6, initial=0, desc="flow matching", stream=log, every_s=3600)
    for step in range(1, 7):
        p.update(step, (step - 1) // 3 + 1, 2, 0.5 / step, 100.0, epoch_end=step % 3 == 0)
    p.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 2
    assert lines[0].startswith("flow matching: step 3/6 (50%), epoch 1/2, loss 0.1667, 100 images/s")
    assert "left" in lines[0] and "left" not in lines[1] and "step 6/6 (100%), epoch 2/2" in lines[1]
    quiet = _Stream(tty=False)
    TrainingProgress(6, 0, "x", enabled=False, stream=quiet).update(3, 1, 2, 0.1, 1.0, epoch_end=True)
    assert quiet.getvalue() == ""


def test_progress_on_a_terminal_is_a_bar():
    from fundiff.training.progress import TrainingProgress

    term = _Stream(tty=True)
    p = TrainingProgress(total=4, initial=1, desc="denoiser", stream=term)
    for step in range(2, 5):
        p.update(step, 1, 1, 0.25, 50.0, epoch_end=step == 4)
    p.close()
    out = term.getvalue()
    assert "\r" in out and "4/4" in out and "loss=0.2500" in out


@pytest.mark.slow
def test_training_command_logs_lines_when_not_on_a_terminal(tmp_path, cli):
    args = [a for a in CLI_TRAIN if a != "--no-progress"]
    proc = cli(*args, "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr
    epoch_lines = [line for line in proc.stderr.splitlines() if line.startswith("denoiser sigma=0.5: step ")]
    assert [line.split(",")[1].strip() for line in epoch_lines] == ["epoch 1/2", "epoch 2/2"], proc.stderr

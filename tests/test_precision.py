"""--precision: bf16 autocast for fundiff's own UNets, with fp32 weights, optimizer, loss and checkpoints."""

from __future__ import annotations

import json
import signal

import pytest
import torch
from safetensors.torch import load_file

from fundiff.errors import FundiffError
from fundiff.nn import ClassConditionalUNet
from fundiff.training import precision
from fundiff.training.precision import Autocast, resolve_precision, with_precision

from helpers import assert_one_line_error

CPU = torch.device("cpu")


def test_auto_is_bf16_only_where_the_cpu_has_native_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "avx512_vnni"}))
    assert resolve_precision("auto", CPU) == "fp32"        # AVX-512 without BF16: emulated, measured slower
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert resolve_precision("auto", CPU) == "bf16"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert resolve_precision("auto", CPU) == "bf16"
    assert resolve_precision("fp32", CPU) == "fp32" and resolve_precision("bf16", CPU) == "bf16"
    with pytest.raises(FundiffError, match="--precision must be one of auto, fp32, bf16"):
        resolve_precision("fp16", CPU)
    with pytest.raises(FundiffError, match="not on mps"):
        resolve_precision("bf16", torch.device("mps"))


def test_this_machines_flags_are_read():
    flags = precision.cpu_flags()
    assert isinstance(flags, frozenset)
    assert resolve_precision("auto", CPU) == ("bf16" if flags & precision.NATIVE_CPU_FLAGS else "fp32")


def test_autocast_view_shares_weights_and_answers_in_fp32():
    m = ClassConditionalUNet(1, 10, 4).eval()
    assert with_precision(m, "fp32", CPU) is m
    view = with_precision(m, "bf16", CPU)
    assert isinstance(view, Autocast) and view.kind == "class"
    assert all(a is b for a, b in zip(view.parameters(), m.parameters()))
    x, c, t = torch.randn(3, 1, 28, 28), torch.tensor([1, 2, 3]), torch.rand(3)
    with torch.no_grad():
        out, ref = view(x, c, t), m(x, c, t)
    assert out.dtype == torch.float32 and ref.dtype == torch.float32
    assert not torch.equal(out, ref)                                  # it did compute in bf16 ...
    assert (out - ref).abs().max() < 0.05 * ref.abs().max() + 0.05     # ... to bf16's precision


def _tiny_train(mnist, run_dir, prec, **kw):
    from fundiff.objectives import FlowMatchingObjective
    from fundiff.training import TrainConfig, train

    config = TrainConfig(epochs=1, batch_size=32, lr=1e-3, num_train=128, device="cpu", progress=False,
                         precision=prec, ema_decay=0.9, **kw)
    return train(ClassConditionalUNet(1, 10, 4), FlowMatchingObjective(), mnist.train_images, mnist.train_labels,
                 config, run_dir)


def test_bf16_training_keeps_fp32_weights_and_records_its_precision(mnist, tmp_path):
    bf = _tiny_train(mnist, tmp_path / "bf16", "bf16")
    fp = _tiny_train(mnist, tmp_path / "fp32", "fp32")
    assert bf.losses != fp.losses                                     # the forward really ran in bf16
    assert all(abs(a - b) < 0.1 * b for a, b in zip(bf.losses, fp.losses))
    for f in ("model.safetensors", "weights/epoch-001.safetensors"):
        assert {v.dtype for v in load_file(str(bf.run_dir / f)).values() if v.is_floating_point()} == {torch.float32}
    assert json.loads((bf.run_dir / "config.json").read_text())["precision"] == "bf16"
    assert json.loads((bf.run_dir / "metrics.json").read_text())["precision"] == "bf16"
    assert json.loads((fp.run_dir / "config.json").read_text())["precision"] == "fp32"
    # a finished bf16 run resumed as fp32 is refused: the weights would not be the same run's
    with pytest.raises(FundiffError, match="precision"):
        from fundiff.objectives import FlowMatchingObjective
        from fundiff.training import TrainConfig, train

        train(ClassConditionalUNet(1, 10, 4), FlowMatchingObjective(), mnist.train_images, mnist.train_labels,
              TrainConfig(epochs=1, batch_size=32, lr=1e-3, num_train=128, device="cpu", progress=False,
                          precision="fp32", ema_decay=0.9), bf.run_dir, resume=True)


def test_bf16_sampling_stays_close_to_fp32_on_the_same_seed():
    """The stated tolerance: the embedded model at its defaults (7 midpoint steps, gamma 5), 40 images."""
    from fundiff.metrics import classifier_predictions
    from fundiff.pipelines import SamplePipeline

    images = {}
    for prec in ("fp32", "bf16"):
        pipe = SamplePipeline.from_pretrained("mnist", device="cpu", precision=prec)
        res = pipe([str(d) for d in range(10)], num_images_per_prompt=4, generator=torch.Generator().manual_seed(0),
                   output_type="pt")
        assert res.record["precision"] == prec
        images[prec] = res.images
    diff = (images["bf16"] - images["fp32"]).abs()
    assert diff.mean() < 0.005 and diff.max() < 0.25, (float(diff.mean()), float(diff.max()))   # measured 0.0013, 0.091
    same = (classifier_predictions(images["bf16"])[0] == classifier_predictions(images["fp32"])[0]).float().mean()
    assert same >= 0.95


# 100 steps an epoch: long enough that a mid-epoch checkpoint comes before the run ends, even where bf16 is native
# and the run is fast (320 images, 20 steps an epoch, finished before the kill on an AVX512-BF16 machine)
CLI_BF16 = ["train", "flow", "--recipe", "study", "--num-hiddens", "4", "--batch-size", "16", "--epochs", "2",
            "--num-train", "1600", "--seed", "3", "--device", "cpu", "--no-progress", "--precision", "bf16",
            "--checkpoint-interval", "0.2"]


@pytest.mark.slow
def test_bf16_sigkill_then_resume_gives_the_uninterrupted_weights(tmp_path, cli):
    from test_training import _popen, _wait_for_checkpoint, assert_same_weights

    full = cli(*CLI_BF16, "--out", tmp_path / "full")
    assert full.returncode == 0, full.stderr
    out = tmp_path / "run"
    proc = _popen([*CLI_BF16, "--out", str(out)])
    _wait_for_checkpoint(out, proc, lambda s: 0 < s % 100)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "model.safetensors").exists(), "the kill came too late to test anything"
    resumed = cli(*CLI_BF16, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(out / "model.safetensors", tmp_path / "full" / "model.safetensors")
    # the same run resumed in fp32 is one line, exit 2
    proc = cli(*[a if a != "bf16" else "fp32" for a in CLI_BF16], "--out", out, "--resume")
    assert_one_line_error(proc, "precision")


def test_precision_flag_on_the_commands(cli, tmp_path):
    proc = cli("sample", "--prompt", "7", "--num-images", "2", "--precision", "fp16", "--out", tmp_path / "s.png")
    assert_one_line_error(proc, "fp16")
    assert not (tmp_path / "s.png").exists()
    proc = cli("edit", "--model", "deepfloyd", "--precision", "bf16", "--weights", tmp_path / "none")
    assert_one_line_error(proc, "DeepFloyd takes --dtype")

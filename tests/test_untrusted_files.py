"""Files fundiff reads but did not necessarily write: a model file's stored architecture, a run's latest.json and a
permutation .npy.  Their claims are checked before anything is allocated or unpickled; a bad one is one line on
stderr and exit code 2."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from fundiff.cli import main
from fundiff.errors import CheckpointError, FundiffError
from fundiff.nn import ClassConditionalUNet
from fundiff.training import load_model, save_model
from helpers import assert_one_line_error

FLOW = json.dumps({"name": "flow", "p_uncond": 0.1, "time_sampling": "uniform"})


def model_file(path, config, tensors=None):
    """A safetensors file claiming to be a flow model with ``config`` (a dict, or raw metadata text)."""
    text = config if isinstance(config, str) else json.dumps(config)
    save_file(tensors or {"w": torch.zeros(1)}, str(path),
              metadata={"fundiff.format": "1", "fundiff.config": text, "fundiff.objective": FLOW})
    return path


def run_main(argv, capsys):
    """``fundiff ARGV`` in this process: (exit code, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err.strip()


def assert_refused(code, err, *fragments):
    assert code == 2, (code, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


# --------------------------------------------------------------------------------------------------
# model files: the stored config

CLASS = {"kind": "class", "in_channels": 1, "num_hiddens": 4, "num_classes": 10}


@pytest.mark.parametrize("config,fragment", [
    ("not json {", "its fundiff.config metadata is not JSON"),
    ("[1, 2]", "its fundiff.config metadata is not a JSON object, got list"),
    ('"class"', "is not a JSON object, got str"),
    ({**CLASS, "num_classes": -3}, "num_classes must be a whole number in 1..1000, got -3"),
    ({**CLASS, "num_hiddens": "abc"}, "num_hiddens must be a whole number in 1..512, got 'abc'"),
    ({**CLASS, "num_hiddens": 4.0}, "num_hiddens must be a whole number in 1..512, got 4.0"),
    ({**CLASS, "in_channels": True}, "in_channels must be a whole number in 1..16, got True"),
    ({**CLASS, "in_channels": 0}, "in_channels must be a whole number in 1..16, got 0"),
    ({**CLASS, "kind": ["class"]}, "unknown model kind ['class']"),
    ({**CLASS, "depth": 3}, "bad class model config"),
    ({"kind": "time", "in_channels": 1, "num_hiddens": 4, "time_mode": "sideways"}, "time_mode must be"),
    ({"kind": "shortcut", "in_channels": 16, "num_hiddens": 512, "num_classes": 1000}, "parameters, more than"),
], ids=["not-json", "list", "string", "negative-classes", "string-width", "float-width", "bool-channels",
        "zero-channels", "list-kind", "unknown-argument", "bad-time-mode", "too-many-parameters"])
def test_bad_stored_config_is_one_line(config, fragment, tmp_path, capsys):
    path = model_file(tmp_path / "m.safetensors", config)
    code, err = run_main(["sample", "--model", path, "--out", tmp_path / "x.png"], capsys)
    assert_refused(code, err, "m.safetensors", fragment)
    assert not (tmp_path / "x.png").exists()


# Each of these would allocate tens of GB to TB if the config were trusted: run in a subprocess, one per loader.
@pytest.mark.parametrize("command,config,fragment", [
    (["sample", "--model", "{f}", "--out", "{o}.png"], {**CLASS, "num_hiddens": 1_000_000},
     "num_hiddens must be a whole number in 1..512, got 1000000"),
    (["train", "flow", "--conditioning", "class", "--init", "{f}", "--out", "{o}"], {**CLASS, "in_channels": 10**9},
     "in_channels must be a whole number in 1..16, got 1000000000"),
    (["distill", "--teacher", "{f}", "--out", "{o}"], {**CLASS, "num_classes": 10**9},
     "num_classes must be a whole number in 1..1000, got 1000000000"),
], ids=["sample", "train-init", "distill-teacher"])
def test_huge_stored_config_is_refused_by_every_loader(command, config, fragment, tmp_path, cli):
    path = model_file(tmp_path / "huge.safetensors", config)
    out = tmp_path / "out"
    proc = cli(*[a.format(f=path, o=out) for a in command], timeout=120)
    assert_one_line_error(proc, "huge.safetensors", fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.safetensors"]


def test_config_that_disagrees_with_the_tensors_is_refused_before_building(tmp_path, monkeypatch, capsys):
    real = tmp_path / "real.safetensors"
    save_model(real, ClassConditionalUNet(1, 10, 4), metadata={"objective": json.loads(FLOW)})
    from safetensors.torch import load_file

    tensors = load_file(str(real))
    wide = model_file(tmp_path / "wide.safetensors", {**CLASS, "num_hiddens": 512}, tensors)   # 129 M parameters
    monkeypatch.setattr("fundiff.training.checkpoint.build_model",
                        lambda config: pytest.fail("built the model before checking the file's tensors"))
    with pytest.raises(CheckpointError, match=r"wide.safetensors: weights do not match the stored architecture "
                                              r"\(\S+ has shape \[\d+(, \d+)*\], the class model needs"):
        load_model(wide)
    code, err = run_main(["sample", "--model", wide, "--out", tmp_path / "x.png"], capsys)
    assert_refused(code, err, "wide.safetensors", "weights do not match the stored architecture")
    fewer = model_file(tmp_path / "fewer.safetensors", CLASS, {k: v for k, v in tensors.items() if "fc1_c" not in k})
    with pytest.raises(CheckpointError, match=r"fewer.safetensors: .*\(no tensor fc1_c\."):
        load_model(fewer)
    more = model_file(tmp_path / "more.safetensors", CLASS, {**tensors, "extra": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"more.safetensors: .*\(an unexpected tensor extra\)"):
        load_model(more)


def test_a_genuine_model_file_still_loads(tmp_path):
    path = tmp_path / "ok.safetensors"
    model = ClassConditionalUNet(1, 10, 4)
    save_model(path, model)
    loaded = load_model(path, expect_kind="class")
    assert loaded.config() == model.config()
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


# --------------------------------------------------------------------------------------------------
# latest.json of a run folder

TRAIN = ["train", "flow", "--conditioning", "class", "--num-hiddens", "4", "--num-train", "8", "--epochs", "1",
         "--batch-size", "8", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("train") / "run"
    assert main([*TRAIN, "--out", str(run)]) == 0
    return run


class _Proc:
    """main()'s exit code and stderr, shaped like a subprocess result for assert_one_line_error (in-process: no
    second interpreter and torch import per case)."""

    def __init__(self, argv, capsys):
        capsys.readouterr()
        try:
            self.returncode = main([str(a) for a in argv])
        except SystemExit as exc:
            self.returncode = exc.code
        captured = capsys.readouterr()
        self.stdout, self.stderr = captured.out, captured.err


@pytest.mark.parametrize("pointer,fragment", [
    ([1, 2], "latest.json is not a JSON object but a list"),
    ({"step": 1, "stem": "../outside"}, "names no checkpoint file of the form step-NUMBER (stem: '../outside')"),
    ({"step": 1, "stem": "/etc/passwd"}, "(stem: '/etc/passwd')"),
    ({"step": 1, "stem": 7}, "(stem: 7)"),
    ({"step": "1", "stem": "step-00000001"}, "has no whole step number >= 0 (step: '1')"),
    ({"stem": "step-00000001"}, "has no whole step number >= 0 (step: None)"),
], ids=["list", "parent-folder", "absolute", "number-stem", "string-step", "no-step"])
def test_resume_refuses_a_bad_latest_json(pointer, fragment, finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    for p in (run / "checkpoints").glob("step-00000001.*"):   # a loadable checkpoint outside checkpoints/
        shutil.copy(p, run / p.name.replace("step-00000001", "outside"))
    (run / "checkpoints" / "latest.json").write_text(json.dumps(pointer))
    proc = _Proc([*TRAIN, "--out", run, "--resume"], capsys)
    assert_one_line_error(proc, "latest.json", fragment, "the run cannot be resumed")


def test_resume_refuses_a_config_json_that_is_not_an_object(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "config.json").write_text("[1]")
    proc = _Proc([*TRAIN, "--out", run, "--resume"], capsys)
    assert_one_line_error(proc, "config.json", "is not a run's config")


def test_resume_refuses_a_huge_latest_json(tmp_path):
    from fundiff.training.checkpoint import CheckpointStore

    store = CheckpointStore(tmp_path)
    store.pointer.write_text(json.dumps({"step": 1, "stem": "step-00000001", "pad": "x" * 100_000}))
    with pytest.raises(CheckpointError, match="larger than 64 KiB"):
        store.read_pointer()


# --------------------------------------------------------------------------------------------------
# permutation files

def npy_header(path, shape, descr="<i8", data=b""):
    """A .npy file whose header claims ``shape`` of ``descr``, followed by ``data`` (however short)."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": descr, "fortran_order": False, "shape": shape})
        fh.write(data)
    return path


def test_permutation_header_claiming_10_billion_entries_is_refused_unread(tmp_path, cli):
    path = npy_header(tmp_path / "big.npy", (10**10,), data=b"\0" * 16)
    proc = cli("anagram", "--prompt", "6", "--prompt", "9", "--view", "identity", "--view", f"permute:{path}",
               "--out", tmp_path / "out", timeout=120)
    assert_one_line_error(proc, "permutation file", "big.npy has 10,000,000,000 entries, more than the 1,048,576")
    assert not (tmp_path / "out").exists()


def test_permutation_file_claims_are_checked_before_reading(tmp_path, monkeypatch):
    from fundiff.engine.views import PermuteView

    truncated = npy_header(tmp_path / "short.npy", (784,), data=np.arange(10, dtype="<i8").tobytes())
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([object()] * 4), allow_pickle=True)
    np.save(tmp_path / "ok.npy", np.random.default_rng(0).permutation(16))
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("read the data before checking the header"))
    with pytest.raises(FundiffError, match=r"short.npy is truncated: its header promises 784 entries \(6272 bytes\), "
                                           r"the file holds 80 bytes"):
        PermuteView.from_file(truncated)
    with pytest.raises(FundiffError, match=r"obj.npy must be a 1-D array of integer pixel indices, got shape \(4,\) object"):
        PermuteView.from_file(pickled)
    with pytest.raises(FundiffError, match=r"ok.npy has 16 entries, but 8x8 has 64"):
        PermuteView.from_file(tmp_path / "ok.npy", size=8)
    with pytest.raises(FundiffError, match=r"2-D.npy must be a 1-D array .* got shape \(4, 4\)"):
        PermuteView.from_file(npy_header(tmp_path / "2-D.npy", (4, 4), data=bytes(128)))
    monkeypatch.undo()
    assert PermuteView.from_file(tmp_path / "ok.npy").size == (4, 4)

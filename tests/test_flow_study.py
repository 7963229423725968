"""Study part 2 on a tiny configuration: the figures, the animation and the per-epoch numbers."""

import json

import pytest

from PIL import Image


@pytest.mark.slow
def test_flow_study_writes_the_deliverables(tmp_path, cli):
    out = tmp_path / "study"
    proc = cli("study", "flow", "--out", out, "--num-hiddens", "4", "--num-train", "128", "--batch-size", "32",
               "--epochs", "2", "--show-epochs", "1", "2", "--steps", "3", "--eval-per-class", "2", "--device", "cpu",
               "--compare", "midpoint", "2", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    for name in ["flow-class_loss.png", "flow-class_epoch1.png", "flow-class_epoch2.png", "flow-class_epochs.png",
                 "flow-class_epochs_midpoint2.png", "flow-class_epoch2_midpoint2.png"]:
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
    gif = Image.open(out / "flow-class_sampling.gif")
    assert gif.n_frames == 4
    res = json.loads((out / "flow-class_results.json").read_text())
    assert [e["epoch"] for e in res["per_epoch"]] == [1, 2]
    assert res["sampler"] == "euler" and res["steps"] == 3 and res["eval_images"] == 20
    n = res["eval_images"]
    assert all(e["accuracy"] * n == pytest.approx(round(e["accuracy"] * n)) for e in res["per_epoch"])  # counts of n
    assert all(e["classifier_fid"] > res["fid_floor"] for e in res["per_epoch"])   # 2 tiny epochs: above the floor
    # the second sampler on the same labels: its own cost, counted per image (guided: two passes per evaluation)
    (cmp,) = res["compare"]
    assert cmp["sampler"] == "midpoint" and cmp["steps"] == 2 and [e["epoch"] for e in cmp["per_epoch"]] == [1, 2]
    assert cmp["per_epoch"][0]["model_evaluations_per_image"] == 2 * 2 * 2
    assert res["per_epoch"][0]["model_evaluations_per_image"] == 3 * 1 * 2
    assert all(e["seconds"] > 0 for e in res["per_epoch"] + cmp["per_epoch"])
    # the study recipe's hyperparameters, with the flags' overrides
    assert res["train"]["lr"] == 1e-2 and res["train"]["lr_schedule"] == "exponential"


@pytest.mark.slow
def test_show_epochs_beyond_training_is_refused(tmp_path, cli):
    from helpers import assert_one_line_error

    proc = cli("study", "flow", "--out", tmp_path / "s", "--epochs", "2", "--show-epochs", "5", "--device", "cpu")
    assert_one_line_error(proc, "--show-epochs")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("pair, message", [(["foo", "7"], "SAMPLER must be one of"), (["midpoint", "x"], "STEPS must be"),
                                           (["ddpm", "7"], "does not fit a flow model")])
def test_bad_compare_is_refused_before_training(tmp_path, cli, pair, message):
    from helpers import assert_one_line_error

    proc = cli("study", "flow", "--out", tmp_path / "s", "--epochs", "1", "--show-epochs", "1", "--compare", *pair,
               "--device", "cpu")
    assert_one_line_error(proc, message)
    assert not (tmp_path / "s").exists()

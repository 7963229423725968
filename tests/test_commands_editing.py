"""fundiff.commands.editing: edit, inpaint, anagram and hybrid on the command line."""

from __future__ import annotations

import json

import pytest

from helpers import assert_one_line_error


@pytest.mark.slow
def test_edit_inpaint_anagram_hybrid_commands(cli, tmp_path):
    runs = {
        "edit": ["edit", "--image", "mnist-test:3", "--prompt", "8", "--i-start", "2", "6", "--steps", "10"],
        "inpaint": ["inpaint", "--image", "mnist-test:1", "--rect", "0:32,32:64", "--prompt", "4", "--steps", "8",
                    "--jump-length", "2", "--jump-n-sample", "2", "--num-images", "2"],
        "anagram": ["anagram", "--prompt", "6", "--prompt", "9", "--steps", "8", "--num-images", "2", "--frames", "4"],
        "hybrid": ["hybrid", "--prompt", "1", "--prompt", "7", "--steps", "8", "--num-images", "2"],
    }
    files = {"edit": ["sdedit.png", "edit.json"], "inpaint": ["inpaint.png", "inpaint.json"],
             "anagram": ["anagram.png", "anagram.gif", "anagram.json"], "hybrid": ["hybrid.png", "hybrid.json"]}
    for name, args in runs.items():
        proc = cli(*args, "--out", tmp_path / name)
        assert proc.returncode == 0, (name, proc.stderr)
        assert "Measured at the defaults" not in proc.stdout, (name, proc.stdout)
        for f in files[name]:
            assert (tmp_path / name / f).is_file(), (name, f)
    assert json.loads((tmp_path / "edit" / "edit.json").read_text())["t_start"] == [700, 300]
    anagram = json.loads((tmp_path / "anagram" / "anagram.json").read_text())
    assert anagram["natural_anagrams"]["count"] == 208   # 6/9 under the flip: measured 95%, so no note was printed
    assert anagram["reduction"] == "balanced" and anagram["balance"] == 0.5 and anagram["rival"] is True  # MNIST's defaults
    proc = cli(*runs["anagram"], "--reduction", "mean", "--out", tmp_path / "mean")
    assert proc.returncode == 0, proc.stderr
    mean = json.loads((tmp_path / "mean" / "anagram.json").read_text())
    assert mean["reduction"] == "mean" and mean["rival"] is False
    assert anagram["corrector"] == {"kind": "langevin", "steps": 4, "snr": 0.3, "t_min": 500} and mean["corrector"] is None
    proc = cli(*runs["hybrid"], "--corrector-steps", "2", "--corrector-t-min", "500", "--fork-t", "off",
               "--out", tmp_path / "corrected")
    assert proc.returncode == 0, proc.stderr
    assert "Fork" not in proc.stdout, proc.stdout   # composed to the end: no fork to report
    corrected = json.loads((tmp_path / "corrected" / "hybrid.json").read_text())
    assert corrected["corrector"] == {"kind": "langevin", "steps": 2, "snr": 0.3, "t_min": 500}
    hybrid = json.loads((tmp_path / "hybrid" / "hybrid.json").read_text())
    assert hybrid["corrector"] is None and hybrid["fork_t"] == 690


def test_hybrid_command_says_where_it_forked(cli, tmp_path):
    proc = cli("hybrid", "--prompt", "1", "--prompt", "7", "--steps", "4", "--num-images", "1", "--fork-t", "600",
               "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "hybrid.json").read_text())
    assert record["forked_at_t"] <= 600 and record["composed_steps"] >= 1
    assert proc.stdout.splitlines()[-1] == (
        f"Forked at t {record['forked_at_t']} (the first step at or below t 600), after {record['composed_steps']} "
        "composed steps: from there each prompt finishes its own band.")


@pytest.mark.parametrize("args,fragments", [
    (["anagram", "--prompt", "6", "--prompt", "9", "--view", "identity"], ["one view per prompt"]),
    (["anagram", "--prompt", "6", "--prompt", "9", "--view", "identity", "--view", "spin"], ["unknown view", "spin"]),
    (["anagram", "--prompt", "6", "--prompt", "9", "--view", "identity", "--view", "patch_permute"], ["patch"]),
    (["hybrid", "--prompt", "1", "--kind", "zoom"], ["invalid choice", "zoom"]),
    (["hybrid", "--prompt", "1", "--prompt", "2", "--kind", "color"], ["3 colour channels"]),
    (["inpaint", "--rect", "70:80,0:5"], ["70"]),
    (["inpaint", "--rect", "nonsense"], ["nonsense"]),
    (["edit", "--i-start", "50"], ["i_start=50"]),
    (["edit", "--strength", "1.5"], ["strength"]),
    (["anagram", "--prompt", "6", "--prompt", "9", "--corrector-steps", "17"], ["--corrector-steps", "0..16"]),
    (["anagram", "--prompt", "6", "--prompt", "9", "--corrector-steps", "many"], ["--corrector-steps", "'auto'"]),
    (["hybrid", "--prompt", "1", "--prompt", "7", "--corrector-snr", "0"], ["--corrector-snr", "(0, 2]"]),
    (["hybrid", "--prompt", "1", "--prompt", "7", "--corrector-t-min", "1000"], ["--corrector-t-min", "0..999"]),
])
def test_editing_bad_input_is_one_line(cli, tmp_path, args, fragments):
    proc = cli(*args, "--out", tmp_path / "o")
    assert_one_line_error(proc, *fragments)
    for f in fragments:
        assert f in proc.stderr, proc.stderr


def test_anagram_command_says_when_a_pair_is_rare_in_the_data(cli, tmp_path):
    proc = cli("anagram", "--prompt", "two", "--prompt", "6", "--steps", "2", "--num-images", "1", "--frames", "2",
               "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == (
        "Measured at the defaults, 2/6 under flip read right both ways in 9 of 40 images, 22.5% (6/2's images, flipped, "
        "are 2/6's, so both orders count): only 75 of the 60,000 MNIST training digits (as they are, or under flip) "
        "read 2 upright and 6 under flip, a rare pair (docs/illusions.md). Under mirror it read 97.5%.")
    assert json.loads((tmp_path / "anagram.json").read_text())["natural_anagrams"]["count"] == 75

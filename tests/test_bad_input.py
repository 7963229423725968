"""A sweep of malformed inputs across every command and the web handlers: each gets one line (exit code 2 on the
command line, a message on the page in the web UI), never a traceback, and leaves no output file behind."""

from __future__ import annotations

import gc
import io
import pickle
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from fundiff.cli import main
from helpers import assert_one_line_error, write_png_bomb


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bad and good input files, made once."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "text.png").write_text("this is a text file renamed .png")
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(good, format="PNG")
    (d / "truncated.png").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (d / "good.png").write_bytes(good.getvalue())
    jpg = io.BytesIO()
    Image.new("RGB", (64, 64)).save(jpg, format="JPEG")
    (d / "truncated.jpg").write_bytes(jpg.getvalue()[:200])
    (d / "empty.png").write_bytes(b"")
    (d / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with zipfile.ZipFile(d / "noimages.npz", "w") as zf:
        zf.writestr("labels.npy", b"")
    Image.new("L", (64, 64), 0).save(d / "black-mask.png")
    (d / "folder").mkdir()
    for suffix in ("png", "npz", "gif", "json", "pth"):
        (d / f"folder.{suffix}").mkdir()   # an output file's name taken by a folder
    (d / "garbage.safetensors").write_bytes(b"\x00" * 64)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(d / "foreign.safetensors"))            # valid, but not a fundiff model
    (d / "pickle.pth").write_bytes(pickle.dumps({"a high quality photo": object()}))   # never unpickled
    (d / "text.pth").write_text("not a torch file")
    (d / "nan.npy").write_bytes(b"")
    write_png_bomb(d / "bomb.png", 10_000, 10_000)
    (d / "binary.txt").write_bytes(b"\xff\xfe\x00 not UTF-8 \xc3\x28")
    return d


def _cases():
    """(id, argv with {d} for the inputs folder and {o} for the output, fragment of the one-line error)."""
    return [
        # corrupt and truncated files
        ("text-as-png", "edit --image {d}/text.png --out {o}", "is not an image PIL can read"),
        ("truncated-png", "edit --image {d}/truncated.png --out {o}", "truncated or corrupt"),
        ("truncated-jpg-reference", "hybrid --prompt 1 --prompt 7 --reference {d}/truncated.jpg --out {o}", "truncated.jpg"),
        ("empty-file", "forward --image {d}/empty.png --out {o}", "empty.png"),
        ("corrupt-npz", "denoise --image {d}/corrupt.npz --out {o}", "not a readable .npz"),
        ("npz-without-images", "edit --image {d}/noimages.npz --out {o}", "has no 'images' array"),
        ("npz-index-out-of-range", "edit --image {d}/noimages.npz:7 --out {o}", "noimages.npz"),
        ("folder-as-image", "edit --image {d}/folder --out {o}", "is a folder"),
        ("missing-image", "inpaint --image {d}/nope.png --out {o}", "no such image file"),
        ("corrupt-mask", "inpaint --mask {d}/text.png --out {o}", "is not an image"),
        ("garbage-model", "sample --model {d}/garbage.safetensors --out {o}.png", "garbage.safetensors"),
        ("foreign-model", "sample --model {d}/foreign.safetensors --out {o}.png", "foreign.safetensors"),
        ("foreign-model-part-a", "generate --model {d}/foreign.safetensors --out {o}", "foreign.safetensors"),
        # masks
        ("empty-mask", "inpaint --mask {d}/black-mask.png --out {o}", "the mask is empty"),
        ("mask-and-rect", "inpaint --mask {d}/black-mask.png --rect 2:20,24:42 --out {o}", "not both"),
        ("rect-nonsense", "inpaint --rect nonsense --out {o}", "rect"),
        ("rect-empty", "inpaint --rect 5:5,0:10 --out {o}", "rect"),
        ("rect-outside", "inpaint --rect 0:100,0:10 --out {o}", "rect"),
        # unknown views, kinds and prompts
        ("unknown-view", "anagram --prompt 6 --prompt 9 --view identity --view spin --out {o}", "unknown view 'spin'"),
        ("view-count", "anagram --prompt 6 --prompt 9 --prompt 1 --out {o}", "one --view per --prompt"),
        ("view-bad-argument", "anagram --prompt 6 --prompt 9 --view identity --view patch_permute:abc --out {o}", "patch_permute"),
        ("permute-missing-file", "anagram --prompt 6 --prompt 9 --view identity --view permute:{d}/none.npy --out {o}", "none.npy"),
        ("unknown-kind", "hybrid --prompt 1 --prompt 7 --kind blend --out {o}", "invalid choice: 'blend'"),
        ("color-on-grey", "hybrid --prompt 1 --prompt 7 --kind color --out {o}", "3 colour channels"),
        ("fork-past-the-schedule", "hybrid --prompt 1 --prompt 7 --fork-t 1000 --out {o}", "--fork-t: expected 'auto'"),
        ("fork-with-reference", "hybrid --prompt 1 --prompt 7 --fork-t 600 --reference digit-3 --out {o}",
         "turn the fork off with a reference"),
        ("unknown-prompt", "generate --prompt cat --out {o}", "cat"),
        ("unknown-sample-prompt", "sample --prompt 'a dog' --out {o}.png", "a dog"),
        # the distilled model and fundiff distill
        ("fast-odd-steps", "sample --model mnist-fast --steps 3 --out {o}.png", "--steps must be one of 1, 2, 4"),
        ("fast-guidance-untrained", "sample --model mnist-fast --guidance-scale 9 --out {o}.png",
         "--guidance-scale must be in [1, 5]"),
        ("fast-teacher-sampler", "sample --model mnist-fast --sampler euler --out {o}.png", "distilled few-step"),
        ("fast-in-part-a", "edit --model mnist-fast --out {o}", "use --model mnist"),
        ("distill-a-student", "distill --teacher mnist-fast --out {o}", "itself distilled"),
        ("distill-missing-teacher", "distill --teacher {d}/nope.safetensors --out {o}", "no such model file"),
        ("distill-garbage-teacher", "distill --teacher {d}/garbage.safetensors --out {o}", "garbage.safetensors"),
        ("distill-odd-default-steps", "distill --default-steps 3 --out {o}", "power of two"),
        ("unknown-sampler", "sample --sampler rk4 --out {o}.png", "invalid choice: 'rk4'"),
        ("sampler-for-other-objective", "sample --sampler ddpm --out {o}.png", "ddpm"),
        ("unknown-recipe", "train flow --recipe fast --out {o}", "invalid choice: 'fast'"),
        # out-of-range timesteps, strengths and i_start
        ("t-too-large", "forward --t 1000 --out {o}", "1000"),
        ("t-negative", "forward --t -1 --out {o}", "-1"),
        ("i-start-too-large", "denoise --i-start 40 --out {o}", "i_start=40"),
        ("edit-i-start-too-large", "edit --i-start 34 --out {o}", "i_start=34"),
        ("inpaint-i-start-negative", "inpaint --i-start -1 --out {o}", "i_start"),
        ("strength-above-one", "edit --strength 1.5 --out {o}", "strength"),
        ("strength-zero", "edit --strength 0 --out {o}", "--strength"),
        ("zero-steps", "generate --steps 0 --out {o}", "--steps"),
        ("zero-sample-steps", "sample --steps 0 --out {o}.png", "--steps"),
        ("zero-epochs", "train flow --epochs 0 --out {o}", "--epochs"),
        ("noisy-classifier-zero-batch", "train noisy-classifier --batch-size 0 --out {o}", "--batch-size"),
        # NaN and inf
        ("nan-guidance", "generate --guidance-scale nan --out {o}", "--guidance-scale"),
        ("inf-sample-guidance", "sample --guidance-scale inf --out {o}.png", "guidance"),
        ("nan-strength", "edit --strength nan --out {o}", "--strength"),
        ("nan-evaluate-guidance", "evaluate --guidance-scale nan --json {o}.json", "guidance"),
        ("nan-blur-sigma", "denoise --blur-sigma nan --out {o}", "--blur-sigma"),
        # huge requests
        ("huge-num-images", "generate --num-images 1000000 --out {o}", "10000"),
        ("rival-with-alternate", "anagram --prompt 6 --prompt 9 --rival on --reduction alternate --out {o}", "not alternate"),
        ("rival-without-digits", "anagram --prompt 6 --prompt '' --rival on --out {o}", "every prompt must name a digit"),
        ("huge-anagram", "anagram --prompt 6 --prompt 9 --num-images 20000 --out {o}", "10000"),
        ("huge-gif", "sample --num-images 1000000 --gif {o}.gif --out {o}.png", "--gif animates at most"),
        # missing weights folders and embeddings that are not fundiff's
        ("missing-deepfloyd-weights", "generate --model deepfloyd --weights {d}/no-such-folder --out {o}", "does not exist"),
        ("weights-not-a-folder", "generate --model deepfloyd --weights {d}/good.png --out {o}", "should be a folder"),
        ("missing-model", "generate --model {d}/no-such-model --out {o}", "no-such-model"),
        ("pickled-embeddings", "upsample --image {d}/good.png --embeddings {d}/pickle.pth --out {o}.png",
         "pickle.pth is not a prompt-embedding .pth file"),
        ("text-embeddings", "upsample --image {d}/good.png --embeddings {d}/text.pth --out {o}.png",
         "text.pth is not a prompt-embedding .pth file"),
        ("missing-embeddings", "upsample --image {d}/good.png --embeddings {d}/none.pth --out {o}.png", "no such prompt-embedding file"),
        ("wrong-suffix", "sample --out {o}.jpg", "should end in .png"),
        ("download-without-data", "data --download", "--download needs --data"),
        # ports and access
        ("port-too-large", "serve --port 70000", "--port"),
        ("port-not-a-number", "serve --port http", "--port"),
        ("exposed-without-login", "serve --host 0.0.0.0", "--no-auth"),
        ("concurrency-past-32", "serve --concurrency 1000", "--concurrency"),
        # a decompression bomb
        ("decompression-bomb", "edit --image {d}/bomb.png --out {o}", "over the limit of 50,000,000"),
        # requests whose size would only show once allocated (a reviewer's probes; each grew memory without bound)
        ("seed-past-64-bits", "sample --seed 99999999999999999999 --out {o}.png", "--seed"),
        ("view-seed-past-64-bits",
         "anagram --prompt 6 --prompt 9 --view identity --view patch_permute:grid=4,seed=99999999999999999999 --out {o}",
         "a view's seed must be in 0..4294967295"),
        ("stream-of-a-billion", "sample --num-images 1000000000 --out {o}.png", "split it into several runs"),
        ("unet-width-a-million", "train flow --num-hiddens 1000000 --out {o}", "--num-hiddens"),
        ("more-per-class-than-mnist", "evaluate --num-per-class 6001 --json {o}.json", "--num-per-class must be"),
        ("study-more-per-class-than-mnist", "study flow --eval-per-class 100000 --out {o}", "--eval-per-class must be"),
        ("repaint-a-billion-jumps", "inpaint --jump-n-sample 1000000000 --jump-length 5 --out {o}", "jump_n_sample"),
        ("one-frame", "anagram --prompt 6 --prompt 9 --frames 1 --out {o}", "2..240 frames"),
        ("one-frame-crossfade", "anagram --prompt 6 --prompt 9 --view flip --view identity --frames 1 --out {o}",
         "2..240 frames"),
        ("a-billion-frames", "anagram --prompt 6 --prompt 9 --frames 1000000000 --out {o}", "2..240 frames"),
        ("blur-kernel-of-20-million", "denoise --blur-kernel 20000001 --out {o}", "blur kernel size"),
        ("sigma-1e200", "train denoiser --sigma 1e200 --out {o}", "--sigma"),
        ("study-sigma-1e308", "study denoiser --sigma 1e308 --out {o}", "--sigma"),
        ("negative-digit", "generate --prompt=-1 --out {o}", "'-1'"),
        ("prompts-file-not-utf8", "embed --prompts-file {d}/binary.txt --out {o}.pth", "not a readable UTF-8 text file"),
        ("empty-image-name", "edit --image '' --out {o}", "--image"),
        ("empty-out", "sample --out ''", "--out"),
        ("evaluate-json-as-png", "evaluate --num-per-class 2 --json {o}.png", "should end in .json"),
        # an output file's name that is a folder: refused before the work, not an OSError after it
        ("sample-out-is-a-folder", "sample --out {d}/folder.png", "folder.png is a folder: give a file name ending in .png"),
        ("sample-array-is-a-folder", "sample --save-array {d}/folder.npz --out {o}.png", "folder.npz is a folder"),
        ("sample-gif-is-a-folder", "sample --gif {d}/folder.gif --out {o}.png", "folder.gif is a folder"),
        ("evaluate-json-is-a-folder", "evaluate --json {d}/folder.json", "folder.json is a folder"),
        ("embed-out-is-a-folder", "embed --prompt cat --out {d}/folder.pth", "folder.pth is a folder"),
        ("upsample-out-is-a-folder", "upsample --image {d}/good.png --out {d}/folder.png", "folder.png is a folder"),
        ("nine-views", "anagram " + "--prompt 1 " * 9 + "--view identity " * 9 + "--out {o}", "at most 8 prompts"),
    ]


CASES = _cases()


def test_the_sweep_is_wide():
    assert len(CASES) >= 40
    commands = {argv.split()[0] for _, argv, _ in CASES}
    assert commands >= {"edit", "inpaint", "anagram", "hybrid", "forward", "denoise", "generate", "upsample", "sample",
                        "evaluate", "train", "data", "serve", "distill"}


@pytest.mark.parametrize("argv,fragment", [(a, f) for _, a, f in CASES], ids=[i for i, _, _ in CASES])
def test_bad_input_is_one_line_and_writes_nothing(argv, fragment, files, tmp_path, capsys):
    import shlex

    out = tmp_path / "out"
    words = shlex.split(argv.format(d=files, o=out))
    gc.collect()   # an earlier test's garbage (gradio's unclosed event loop) warns when collected, not this command
    with warnings.catch_warnings(record=True) as caught:   # on the command line a warning is one more line
        warnings.simplefilter("always")
        try:
            code = main(words)
        except SystemExit as exc:   # argparse's own errors
            code = exc.code
    err = capsys.readouterr().err.strip()
    assert not caught, [str(w.message) for w in caught]
    assert code == 2, (code, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    if fragment is not None:
        assert fragment in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "left behind: " + ", ".join(p.name for p in tmp_path.iterdir())


def test_serve_without_gradio_says_how_to_install_it(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    assert main(["serve", "--port", "7869"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("fundiff serve needs gradio: pip install 'fundiff[web]'") and len(err.splitlines()) == 1, err


# --------------------------------------------------------------------------------------------------
# The web handlers: a one-line message on the page (gr.Error), no traceback, no file in their scratch folder

def _web_cases(files):
    import numpy as np

    drawing = {"background": np.zeros((256, 256, 4), np.uint8) | np.uint8(255), "layers": [], "composite": None}
    drawing["background"][100:150, 100:150, :3] = 0
    return [
        ("generate-unknown-prompt", lambda w, den: w.run_generate(den, "a cat", steps=2), "unknown class prompt"),
        ("generate-zero-steps", lambda w, den: w.run_generate(den, "7", steps=0), "steps must be a whole number"),
        ("generate-too-many-steps", lambda w, den: w.run_generate(den, "7", steps=10_000), "1..100"),
        ("generate-nan-guidance", lambda w, den: w.run_generate(den, "7", steps=2, guidance_scale=float("nan")), "guidance"),
        ("generate-inf-seed", lambda w, den: w.run_generate(den, "7", steps=2, seed=float("inf")), "seed"),
        ("generate-many-images", lambda w, den: w.run_generate(den, "7", steps=2, num_images=1000), "number of images"),
        ("sdedit-empty-canvas", lambda w, den: w.run_sdedit(den, None, "7", steps=2), "the canvas is empty"),
        ("sdedit-strength", lambda w, den: w.run_sdedit(den, drawing, "7", strength=5, steps=2), "strength"),
        ("inpaint-bad-rect", lambda w, den: w.run_inpaint(den, drawing, "nonsense", "7", steps=2), "rect"),
        ("inpaint-no-mask", lambda w, den: w.run_inpaint(den, drawing, "", "7", steps=2), "mask"),
        ("anagram-unknown-view", lambda w, den: w.run_anagram(den, "6", "9", view="spin", steps=2), "unknown view"),
        ("anagram-unknown-prompt", lambda w, den: w.run_anagram(den, "6", "dog", steps=2), "dog"),
        ("hybrid-unknown-kind", lambda w, den: w.run_hybrid(den, "blend", "1", "7", steps=2), "blend"),
        ("hybrid-color-on-grey", lambda w, den: w.run_hybrid(den, "color", "1", "7", steps=2), "colour"),
        ("upload-not-an-image", lambda w, den: w.upload_to_canvas(den, str(files / "text.png")), "is not an image"),
        ("upload-truncated", lambda w, den: w.upload_to_canvas(den, str(files / "truncated.png")), "truncated"),
        ("upload-bomb", lambda w, den: w.upload_to_canvas(den, str(files / "bomb.png")), "over the limit"),
        ("upload-nothing", lambda w, den: w.upload_to_canvas(den, None), "no file was uploaded"),
    ]


WEB_IDS = [case[0] for case in _web_cases(Path("."))]


@pytest.mark.parametrize("k", range(len(WEB_IDS)), ids=WEB_IDS)
def test_web_handlers_turn_bad_input_into_one_line_messages(k, files, den):
    gr = pytest.importorskip("gradio")
    from fundiff.web import app as web
    from fundiff.web import forms

    _, call, fragment = _web_cases(files)[k]
    before = sorted(forms._SCRATCH[0].iterdir()) if forms._SCRATCH else []
    with pytest.raises(gr.Error) as excinfo:
        call(web, den)
    message = str(excinfo.value.message if hasattr(excinfo.value, "message") else excinfo.value)
    assert fragment in message and "\n" not in message.strip() and "Traceback" not in message, message
    assert (sorted(forms._SCRATCH[0].iterdir()) if forms._SCRATCH else []) == before


def test_a_bench_script_reports_bad_input_and_ctrl_c_in_one_line(capsys):
    """fundiff.errors.run_script, the benches' __main__: one line and exit 2 for a FundiffError, 130 for Ctrl-C."""
    from fundiff.errors import FundiffError, run_script

    def bad():
        raise FundiffError("balance must be in [0, 20],\n got -3.0")

    def interrupted():
        raise KeyboardInterrupt

    assert run_script(bad, "illusions.py") == 2
    assert capsys.readouterr().err == "illusions.py: error: balance must be in [0, 20], got -3.0\n"
    assert run_script(interrupted, "illusions.py") == 130
    assert capsys.readouterr().err == "illusions.py: interrupted; nothing was written\n"
    assert run_script(lambda: None, "illusions.py") == 0


BENCHES = sorted(p.name for p in (Path(__file__).resolve().parents[1] / "bench").glob("*.py"))


@pytest.mark.parametrize("script", BENCHES)
def test_every_bench_script_refuses_an_unknown_flag_in_one_line(script):
    bench = Path(__file__).resolve().parents[1] / "bench" / script
    proc = subprocess.run([sys.executable, str(bench), "--no-such-flag"], capture_output=True, text=True, timeout=120,
                          cwd=bench.parents[1])
    err = assert_one_line_error(proc, "(see --help)")   # unrecognized --no-such-flag, or a missing required one
    assert err.startswith(f"{script}: error:")

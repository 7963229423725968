"""``fundiff serve``: the web UI's job functions called directly, the queue, and the command's checks.

The tests call the module-level ``run_*`` functions of :mod:`fundiff.web.app` on the embedded MNIST model; the same
UI in a real browser is ``test_web_browser.py``.
"""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

gr = pytest.importorskip("gradio", reason="the web UI needs gradio: pip install 'fundiff[web]'")

from helpers import assert_one_line_error, free_port, write_png_bomb  # noqa: E402

from fundiff.web import app as web  # noqa: E402

# gradio's queue statistics use pandas options that pandas 3 deprecates: not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")

SCALE = web.DISPLAY // 28          # MNIST results are enlarged this many times
CELL = 28 * SCALE                  # one enlarged MNIST image


@pytest.fixture(scope="module")
def den():
    from fundiff.backends import load_denoiser

    return load_denoiser("mnist", device="cpu")


def _message(excinfo) -> str:
    return str(getattr(excinfo.value, "message", excinfo.value))


def _drawn_canvas(den) -> dict:
    """An SDEdit canvas with a '1' drawn on it (a white bar), as the editor sends it."""
    composite = web._blank_canvas(den).copy()
    composite[50:210, 118:138, :3] = 255
    return {"background": web._blank_canvas(den), "layers": [], "composite": composite}


# ----------------------------------------------------------------------------------------------
# The job functions, without a browser


def test_build_app_has_the_tabs_and_a_bounded_in_order_queue(den):
    demo = web.build_app(denoiser=den, concurrency=1, max_queue=5)
    assert isinstance(demo, gr.Blocks)
    tabs = [c["props"].get("label") for c in demo.config["components"] if c["type"] in ("tab", "tabitem")]
    assert tabs == ["Generate", "SDEdit", "Inpaint", "Anagram", "Hybrid"]
    # the Anagram tab opens on 6 / 9 under the flip (a mirror: an illusion), not the 180-degree turn (a plain 6)
    views = [c["props"]["value"] for c in demo.config["components"] if c["props"].get("label") == "view"]
    assert views == ["flip"]
    fork = [c["props"]["value"] for c in demo.config["components"] if c["props"].get("label") == "fork at t"]
    assert fork == ["auto"]
    assert demo._queue.max_size == 5
    jobs = {f.api_name: f for f in demo.fns.values() if f.api_visibility == "public"}
    assert set(jobs) == {"generate", "sdedit", "inpaint", "anagram", "hybrid"}
    # every model job shares one concurrency group of size 1: one at a time, in order, across all tabs
    assert {(f.concurrency_id, f.concurrency_limit, f.queue) for f in jobs.values()} == {("model", 1, True)}
    assert demo.config["analytics_enabled"] is False


def test_build_app_applies_the_threshold_choice_without_mutating_the_denoiser():
    from fundiff.backends.mnist import MnistDenoiser
    from fundiff.engine.schedule import Threshold

    d = MnistDenoiser.load()
    for choice, expected in ((True, Threshold.static()), ("dynamic", Threshold()), (False, None), ("none", None)):
        app = web.build_app(denoiser=d, threshold=choice)
        assert app.fundiff_pipeline.threshold == expected, choice
        assert app.fundiff_pipeline.denoiser is d
        assert d.threshold == Threshold.static(), choice   # the model's own setting is left alone


def test_generate_gives_an_enlarged_grid_of_the_prompted_digit(den):
    from fundiff.classifier import load_classifier

    img = web.run_generate(den, "7", steps=10, guidance_scale=7.0, seed=0, num_images=4)
    assert isinstance(img, Image.Image) and img.mode == "L"
    assert img.size == ((2 * (28 + 2) + 2) * SCALE,) * 2          # 2 x 2 grid with 2-px gaps, enlarged
    one = web.run_generate(den, "seven", steps=10, seed=0, num_images=1)
    assert one.size == (CELL, CELL)
    digit = torch.from_numpy(np.asarray(one, dtype=np.float32)[::SCALE, ::SCALE] / 255)[None, None]
    assert load_classifier()(digit).argmax(1).item() == 7
    assert np.array_equal(np.asarray(web.run_generate(den, "7", 3, 7.0, 5, 1)), np.asarray(web.run_generate(den, "7", 3, 7.0, 5, 1)))
    assert not np.array_equal(np.asarray(web.run_generate(den, "7", 3, 7.0, 5, 1)), np.asarray(web.run_generate(den, "7", 3, 7.0, 6, 1)))


def test_generate_tab_offers_the_distilled_model_as_fast(den):
    from fundiff.classifier import load_classifier

    demo = web.build_app(denoiser=den)
    radios = [c["props"] for c in demo.config["components"] if c["props"].get("elem_id") == "gen-model"]
    assert radios and [list(c) for c in radios[0]["choices"]] == [["teacher"] * 2, ["fast"] * 2] and radios[0]["visible"] is True
    fast = web.fast_pipeline(den)
    assert fast.model.is_shortcut
    one = web.run_generate_fast(fast, "seven", seed=0, num_images=1)     # its own default steps and guidance
    digit = torch.from_numpy(np.asarray(one, dtype=np.float32)[::SCALE, ::SCALE] / 255)[None, None]
    assert one.size == (CELL, CELL) and load_classifier()(digit).argmax(1).item() == 7
    calls = []
    web.run_generate_fast(fast, "3", steps=2, guidance_scale=2, num_images=1,
                          progress=lambda value, desc=None, unit=None: calls.append(value))
    assert calls == [(0, 2), (1, 2), (2, 2)]
    for kwargs, fragment in (({"steps": 3}, "takes 1, 2, 4"), ({"guidance_scale": 7}, "guidance scale must be in 1..5")):
        with pytest.raises(gr.Error) as excinfo:
            web.run_generate_fast(fast, "7", **kwargs)
        assert fragment in _message(excinfo)
    from fundiff.backends.mnist import MnistDenoiser
    from fundiff.generate import Generator

    other = MnistDenoiser(Generator(den.generator.model, den.generator.objective, "/elsewhere/model.safetensors"))
    assert web.fast_pipeline(other) is None   # not the embedded teacher: no student of it to offer


def test_progress_is_reported_step_by_step(den):
    calls = []
    web.run_generate(den, "3", steps=4, num_images=1, progress=lambda value, desc=None, unit=None: calls.append(value))
    assert calls == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"prompt": "a cat"}, "unknown class prompt 'a cat'"),
        ({"prompt": "7", "steps": 0}, "steps must be a whole number in 1..100"),
        ({"prompt": "7", "steps": 2.5}, "steps must be a whole number"),
        ({"prompt": "7", "num_images": 0}, "number of images"),
        ({"prompt": "7", "guidance_scale": float("nan")}, "guidance scale"),
    ],
)
def test_bad_form_values_give_a_message_not_a_crash(den, kwargs, fragment):
    with pytest.raises(gr.Error) as excinfo:
        web.run_generate(den, **{"steps": 2, **kwargs})
    assert fragment in _message(excinfo)


def test_a_non_image_upload_gives_a_message(den, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is a text file, not a picture")
    with pytest.raises(gr.Error) as excinfo:
        web.upload_to_canvas(den, str(bad))
    assert "notes.png is not an image" in _message(excinfo)
    assert str(tmp_path) not in _message(excinfo)       # the user's file name, not the server's temp path
    with pytest.raises(gr.Error, match="no file was uploaded"):
        web.upload_to_canvas(den, None)


def test_a_decompression_bomb_upload_is_refused_from_its_header(den, tmp_path, monkeypatch):
    """A 97 KB PNG that decodes to 100 megapixels: a message within a second, and nothing is decoded."""
    bomb = write_png_bomb(tmp_path / "bomb.png", 10_000, 10_000)
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("the bomb was decoded"))
    start = time.monotonic()
    with pytest.raises(gr.Error) as excinfo:
        web.upload_to_canvas(den, str(bomb))
    assert time.monotonic() - start < 1.0
    assert "bomb.png has 100,000,000 pixels (10000 x 10000), over the limit of 50,000,000" in _message(excinfo)


def test_uploads_share_the_model_jobs_queue_slots(den):
    app = web.build_app(denoiser=den, concurrency=1)
    uploads = [d for d in app.fns.values() if d.fn is not None and getattr(d.fn, "__name__", "") == "to_canvas"]
    assert len(uploads) == 2                                           # the SDEdit and the Inpaint upload boxes
    assert all(d.concurrency_id == "model" and d.concurrency_limit == 1 for d in uploads)


def test_an_uploaded_image_lands_on_the_canvas(den):
    from fundiff.engine.inputs import sample_path

    value = web.upload_to_canvas(den, str(sample_path("digit-5")))
    assert value["background"].shape == (web.CANVAS, web.CANVAS, 4) and value["background"].dtype == np.uint8
    assert value["layers"] == []


@pytest.mark.parametrize("editor", [None, "blank", {"background": None, "layers": [], "composite": None}])
def test_sdedit_on_an_empty_canvas_gives_a_message(den, editor):
    if editor == "blank":
        editor = web._editor_value(web._blank_canvas(den))
    with pytest.raises(gr.Error, match="the canvas is empty"):
        web.run_sdedit(den, editor, "7", steps=3)


def test_sdedit_of_a_drawing(den):
    grid, caption = web.run_sdedit(den, _drawn_canvas(den), "7", strength=0.6, steps=5, seed=0, num_images=2)
    assert grid.size == ((3 * (28 + 2) + 2) * SCALE, (28 + 4) * SCALE)   # input + 2 results in a row
    assert "i_start 2 of 5 steps" in caption and "'7'" in caption


def test_inpaint_with_a_painted_mask_a_rectangle_or_none(den):
    editor = web._editor_value(web._default_photo(den))
    with pytest.raises(gr.Error, match="no mask"):
        web.run_inpaint(den, editor, "", "", steps=3)
    grid, caption = web.run_inpaint(den, editor, "2:20,24:42", "", steps=3, num_images=1)
    assert grid.size == ((3 * (28 + 2) + 2) * SCALE, (28 + 4) * SCALE) and "rectangle 2:20,24:42" in caption
    layer = np.zeros((web.CANVAS, web.CANVAS, 4), np.uint8)
    layer[40:140, 60:200] = (255, 0, 170, 150)                  # a translucent brush stroke
    grid, caption = web.run_inpaint(den, {**editor, "layers": [layer]}, "", "7", steps=3, num_images=1)
    assert "painted" in caption
    with pytest.raises(gr.Error, match="bad rectangle"):
        web.run_inpaint(den, editor, "2-20", "", steps=3)


def test_anagram_gives_the_image_its_view_and_an_animation(den, tmp_path):
    img, viewed, gif, caption = web.run_anagram(den, "6", "9", "rotate_180", steps=3, seed=0, out_dir=tmp_path)
    assert caption.startswith("The shipped classifier reads this image as ") and "under rotate_180" in caption
    assert img.size == viewed.size == (CELL, CELL)
    assert np.array_equal(np.asarray(viewed), np.asarray(img)[::-1, ::-1])
    with Image.open(gif) as anim:
        assert anim.format == "GIF" and anim.n_frames > 2
    assert "Measured at the defaults" not in caption             # 6/9 under the turn: measured 100%
    *_, caption = web.run_anagram(den, "2", "6", "flip", steps=2, seed=0, out_dir=tmp_path)
    assert caption.endswith("under flip, a rare pair (docs/illusions.md). Under mirror it read 97.5%.")   # the CLI's
    assert "patch_permute" not in web.usable_views(den)         # needs sides divisible by 8; MNIST is 28 px
    with pytest.raises(gr.Error, match="unknown view"):
        web.run_anagram(den, "6", "9", "sideways", steps=2, out_dir=tmp_path)


def test_hybrid_gives_the_image_and_its_components(den):
    img, parts, caption = web.run_hybrid(den, "hybrid", "1", "7", None, steps=3)
    assert img.size == (CELL, CELL)
    assert [caption for _, caption in parts] == ["low: '1'", "high: '7'"]
    assert "from afar" in caption and "up close" in caption
    _, parts, caption = web.run_hybrid(den, "triple", "1", "7", "0", steps=2)
    assert len(parts) == 3 and caption == ""                    # three bands have no far / close reading
    assert "color" not in web.usable_kinds(den)                 # grey model
    with pytest.raises(gr.Error, match="3 colour channels"):
        web.run_hybrid(den, "color", "1", "7", None, steps=2)


def test_hybrid_tab_forks_as_the_command_does(den):
    from fundiff.engine.illusions import FORK_T
    from fundiff.pipelines import HybridPipeline
    from fundiff.web.forms import to_picture

    pipe = HybridPipeline(den)
    steps = list(pipe.check_steps(6))
    for form, fork in [("auto", "auto"), ("off", None), (" 500 ", 500), ("", "auto")]:
        img, _, caption = web.run_hybrid(den, "hybrid", "1", "7", None, steps=6, seed=2, fork_t=form)
        ref = pipe(["1", "7"], "hybrid", num_inference_steps=6, generator=torch.Generator().manual_seed(2),
                   output_type="pt", num_images_per_prompt=1, fork_t=fork)
        assert np.array_equal(np.asarray(img), np.asarray(to_picture(ref.images)))
        said = [line for line in caption.split("\n\n") if line.startswith("Forked at t")]
        if fork is None:
            assert not said
        else:   # the step it forked at, not the limit asked for
            limit = FORK_T if fork == "auto" else fork
            k = next(i for i, t in enumerate(steps) if t <= limit)
            assert said == [f"Forked at t {steps[k]} (the first step at or below t {limit}), after {k} composed steps: "
                            "from there each prompt finishes its own band."]
    assert "Forked" not in web.run_hybrid(den, "triple", "1", "7", "0", steps=2)[2]          # auto: off for bands


def test_illusion_tabs_state_the_readings_and_the_rate_the_cli_measures(den, tmp_path):
    """The caption says what the classifier reads in the shown image; measure N counts exactly what
    ``fundiff anagram --measure N`` counts (the same images from the same seed); best-of is labelled."""
    from fundiff.pipelines import AnagramPipeline, HybridPipeline
    from fundiff.studies.illusions import read_as, run_anagram, run_hybrid

    img, _, _, caption = web.run_anagram(den, "1", "7", "flip", steps=4, seed=3, measure=6, out_dir=tmp_path)
    record = run_anagram(AnagramPipeline(den), tmp_path / "cli", ["1", "7"], num_inference_steps=4, num_images=1,
                         seed=3, measure=6)
    m = record["measured"]
    assert f"Measured: {m['both_right']} of 6 new images ({m['both_rate']:.0%}" in caption
    x = torch.from_numpy(np.asarray(img.convert("L"))[::SCALE, ::SCALE].copy()).float().div(127.5).sub(1)[None, None]
    (up, p_up), (down, p_down) = read_as([x, x.flip(-2)])[0]    # the shown picture, read again from its pixels
    assert f"**{up}** as is" in caption and f"**{down}** under flip" in caption
    assert caption.split("\n\n")[0].endswith("right both ways.") == ((up, down) == (1, 7))
    assert "Best of" not in caption

    _, _, caption = web.run_hybrid(den, "hybrid", "1", "7", None, steps=4, seed=3, best_of=2, measure=4)
    record = run_hybrid(HybridPipeline(den), tmp_path / "cli-h", ["1", "7"], num_inference_steps=4, num_images=1,
                        seed=3, measure=4)
    assert f"Measured: {record['measured']['both_right']} of 4 new images" in caption
    assert "Best of 2: the shipped hybrid reader chose it from 2 candidates" in caption   # the reader that chose
    assert caption.startswith("The shipped hybrid reader reads this image as ")   # hybrids: the reader of hybrids


@pytest.mark.parametrize("call, fragment", [
    (lambda den: web.run_anagram(den, "6", "9", "flip", steps=2, measure=65), "measure must be a whole number in 0..64"),
    (lambda den: web.run_anagram(den, "6", "9", "flip", steps=2, best_of=9), "best of must be a whole number in 1..8"),
    (lambda den: web.run_anagram(den, "", "9", "flip", steps=2, measure=2), "every prompt must name a digit"),
    (lambda den: web.run_hybrid(den, "triple", "1", "7", "0", steps=2, measure=2), "needs two components"),
    (lambda den: web.run_hybrid(den, "hybrid", "1", "7", None, steps=2, fork_t="soon"),
     "fork at t must be 'auto', 'off' or a timestep in 0..999, got 'soon'"),
    (lambda den: web.run_hybrid(den, "hybrid", "1", "7", None, steps=2, fork_t="1000"), "0..999, got '1000'"),
])
def test_bad_reading_options_give_a_message_before_any_work(den, monkeypatch, call, fragment):
    from fundiff.pipelines.base import DiffusionPipeline

    monkeypatch.setattr(DiffusionPipeline, "denoise_batches", lambda *a, **k: pytest.fail("the model ran"))
    with pytest.raises(gr.Error) as excinfo:
        call(den)
    assert fragment in _message(excinfo)


def test_an_rgb_text_model_works_too(tmp_path):
    """A tiny random DeepFloyd-IF-like model (16 px RGB, any text prompt): the colour paths of the UI."""
    pytest.importorskip("diffusers")
    from deepfloyd_tiny import save_pipeline

    from fundiff.backends import load_denoiser

    save_pipeline(tmp_path / "IF-I-XL-v1.0", stage=1)
    rgb = load_denoiser("deepfloyd", weights=str(tmp_path), text_encoder=True, device="cpu", dtype="fp32")
    assert isinstance(web.build_app(denoiser=rgb), gr.Blocks)
    assert "color" in web.usable_kinds(rgb) and "patch_permute" in web.usable_views(rgb)
    img = web.run_generate(rgb, "a rocket ship", steps=2, num_images=1)
    assert img.mode == "RGB" and img.size == (16 * (web.DISPLAY // 16),) * 2
    canvas = web._editor_value(web._blank_canvas(rgb))                  # white, drawn on in black
    canvas["composite"] = canvas["composite"].copy()
    canvas["composite"][60:90, 40:220, :3] = 0
    grid, _ = web.run_sdedit(rgb, canvas, "a rocket ship", strength=0.5, steps=2, num_images=1)
    assert grid.mode == "RGB"
    _, parts, caption = web.run_hybrid(rgb, "color", "a rocket ship", "a dog", None, steps=2)
    assert caption == ""                                        # only the MNIST model has a classifier to read with
    assert [caption.split(":")[0] for _, caption in parts] == ["grey", "colour"]


@pytest.mark.slow
def test_jobs_from_several_users_run_one_at_a_time_in_order(den, monkeypatch):
    """Three clients submit at once: each gets its image, and the jobs never overlap."""
    from gradio_client import Client

    spans, lock = [], threading.Lock()
    real = web.run_generate

    def recorded(*args, **kwargs):
        start = time.monotonic()
        out = real(*args, **kwargs)
        time.sleep(0.3)
        with lock:
            spans.append((start, time.monotonic(), args[1]))
        return out

    monkeypatch.setattr(web, "run_generate", recorded)
    demo = web.build_app(denoiser=den, concurrency=1, max_queue=8)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                share=False, footer_links=[], mcp_server=False)
    try:
        client = Client(demo.local_url, verbose=False, download_files=False, analytics_enabled=False)
        jobs = [client.submit(str(d), 2, 7.0, 0, 1, api_name="/generate") for d in (1, 2, 3)]
        results = [job.result(timeout=120) for job in jobs]
    finally:
        demo.close()
    assert all(r for r in results)
    spans.sort()
    assert len(spans) == 3
    assert all(a_end <= b_start for (_, a_end, _), (b_start, _, _) in zip(spans, spans[1:])), spans


@pytest.mark.slow
def test_serve_command_line(cli):
    from fundiff.commands.serve import is_loopback

    proc = cli("serve", "--help")
    assert proc.returncode == 0 and "--max-queue" in proc.stdout and "127.0.0.1" in proc.stdout
    proc = cli("serve", "--port", "70000")
    assert proc.returncode == 2 and "--port" in proc.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = cli("serve", "--port", str(taken.getsockname()[1]))
    assert_one_line_error(proc, "cannot listen on 127.0.0.1:", "--port")
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "127.0.1.1"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.5", "::", "example.org"))


def test_serve_refuses_an_exposed_host_without_a_login_and_bad_logins(tmp_path, capsys):
    """Each is one line and exit 2 before the model or gradio loads (run in-process: the same main() as the command)."""
    from fundiff.cli import main

    empty = tmp_path / "empty.txt"
    empty.write_text("# nobody\n\n")
    for argv, fragments in [
        (["--host", "0.0.0.0"], ["--host 0.0.0.0 exposes the UI", "--auth", "--no-auth"]),
        (["--auth", "ada"], ["--auth: expected USER:PASSWORD"]),
        (["--auth", ":pw"], ["--auth: expected USER:PASSWORD"]),
        (["--auth-file", str(tmp_path / "none.txt")], ["cannot read --auth-file"]),
        (["--auth-file", str(empty)], ["holds no USER:PASSWORD line"]),
        (["--auth", "a:b", "--no-auth"], ["not both"]),
    ]:
        assert main(["serve", *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and all(f in err for f in fragments), (argv, err)


def test_login_check_is_exact():
    check = web.check_login([("ada", "pw one"), ("bob", "two")])
    assert check("ada", "pw one") and check("bob", "two")
    assert not check("ada", "two") and not check("bob", "pw one") and not check("ada", "pw one ") and not check("", "")

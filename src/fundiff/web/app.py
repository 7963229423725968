"""``fundiff serve``: a local web UI over the engine, built with gradio.

Tabs: Generate (prompt -> images), SDEdit (an uploaded image or a digit drawn on a canvas -> edited
images), Inpaint (a mask painted on the image, or a rectangle -> regenerated region), Anagram (two
prompts and a view -> one image that reads differently under the view, with its animation) and
Hybrid (prompts per frequency band -> one image and its components).  On the MNIST model the illusion
tabs offer the report's pairs as examples, say how the shipped classifier (hybrids: the hybrid reader) reads
the image, and can keep the best of N candidates or measure the rate on N new images
(:mod:`fundiff.studies.illusions`).

The model is loaded once per server process (:func:`build_app`); every job goes through gradio's
queue, ``concurrency`` at a time (default 1: in order of arrival) with at most ``max_queue``
waiting, and reports its progress step by step.  The server listens on the loopback interface
unless told otherwise, never opens a share link and sends no analytics.

The work is done by the ``run_*`` functions of :mod:`fundiff.web.jobs` (plain Python: a pipeline and the form's
values in, PIL images out), which the tests call directly.  Errors the user can fix (a prompt the
model does not know, an upload that is not an image, an empty canvas) are raised as ``gr.Error``
with a one-line message, shown on the page.
"""


from __future__ import annotations

import hmac

from fundiff.errors import FundiffError
from fundiff.pipelines.illusions import FORK_T
from fundiff.studies.illusions import MNIST_ANAGRAMS, MNIST_HYBRIDS
from fundiff.web.forms import (CANVAS, DEFAULT_STEPS, DISPLAY, MAX_BEST_OF, MAX_IMAGES, MAX_MEASURE, MAX_STEPS,
                               MAX_UPLOAD, OUTPUT_BUTTONS, _blank_canvas, _default_photo, _editor_value,
                               gr, load_upload, upload_to_canvas)
from fundiff.web.jobs import (run_anagram, run_generate, run_generate_fast, run_hybrid, run_inpaint, run_sdedit,
                              usable_kinds, usable_views)

__all__ = ["CANVAS", "DEFAULT_STEPS", "DISPLAY", "MAX_STEPS", "build_app", "check_login", "load_upload",
           "run_anagram", "run_generate", "run_generate_fast", "run_hybrid", "run_inpaint", "run_sdedit", "serve", "upload_to_canvas",
           "usable_kinds", "usable_views"]


def _steps_slider(elem_id: str | None = None) -> gr.Slider:
    return gr.Slider(1, MAX_STEPS, value=DEFAULT_STEPS, step=1, label="steps",
                     info="denoising steps (the study uses 34; fewer is faster)", elem_id=elem_id)


def _guidance_slider() -> gr.Slider:
    return gr.Slider(0, 15, value=7.0, step=0.5, label="guidance scale", info="classifier-free guidance (1 = none)")


def _seed_box(seed: int = 0) -> gr.Number:
    return gr.Number(value=seed, precision=0, minimum=0, label="seed", info="same seed, same images")


def _reading_controls(tab: str, visible: bool) -> tuple[gr.Slider, gr.Slider]:
    """Best-of N and measure N (MNIST: the shipped classifier reads each anagram, the hybrid reader each hybrid; hidden
    for other models)."""
    best = gr.Slider(1, MAX_BEST_OF, value=1, step=1, label="best of", visible=visible, elem_id=f"{tab}-best-of",
                     info="make N candidates and keep the one read right both ways (a selection)")
    measure = gr.Slider(0, MAX_MEASURE, value=0, step=1, label="measure", visible=visible, elem_id=f"{tab}-measure",
                        info="also make N new images, without best-of, and count how many read right both ways")
    return best, measure


def _prompt_help(den) -> str:
    if den.name == "mnist":
        return "a digit: '0'..'9', 'seven', 'a 7', or empty for any digit"
    return "a text prompt (without --text-encoder it must be in the --embeddings cache)"


def _editor_brush(den, mask: bool) -> gr.Brush:
    if mask:
        return gr.Brush(colors=[("#ff00aa", 0.6)], default_color=("#ff00aa", 0.6), color_mode="fixed",
                        default_size=max(4, CANVAS // 16))
    colour = "#ffffff" if den.channels == 1 else "#000000"
    return gr.Brush(colors=[colour], default_color=colour, color_mode="defaults" if den.channels == 3 else "fixed",
                    default_size=max(4, CANVAS // 24))


def fast_pipeline(den):
    """The distilled "mnist-fast" sampling pipeline when ``den`` is the embedded teacher it was distilled from, else None."""
    from fundiff.generate import EMBEDDED, EMBEDDED_FAST, embedded_model_path

    gen = getattr(den, "generator", None)
    if gen is None or gen.source != str(embedded_model_path(EMBEDDED)) or not embedded_model_path(EMBEDDED_FAST).is_file():
        return None
    from fundiff.pipelines import SamplePipeline

    return SamplePipeline.from_pretrained(EMBEDDED_FAST, device=str(gen.device))


def build_app(model: str = "mnist", *, denoiser=None, concurrency: int = 1, max_queue: int = 16,
              threshold: bool | str = True, seed: int = 0, **backend_kwargs) -> gr.Blocks:
    """The gradio app over one denoiser, loaded once here (``model`` and ``backend_kwargs`` as for
    :func:`fundiff.backends.load_denoiser`, or an already loaded ``denoiser``).

    The queue runs ``concurrency`` jobs at a time (default 1: in order) with at most ``max_queue`` waiting.
    ``threshold`` is a ``--threshold`` choice (auto, dynamic, static, none; True = auto, False = none: the
    study's plain x0 formula); ``seed`` is the
    seed the forms start with.
    """
    if denoiser is None:
        from fundiff.backends import load_denoiser

        denoiser = load_denoiser(model, **backend_kwargs)
    from fundiff.pipelines import DiffusionPipeline

    # one loaded model and its thresholding, shared by every tab's pipeline (the denoiser is not mutated)
    base = DiffusionPipeline(denoiser, threshold={True: "auto", False: "none"}.get(threshold, threshold))
    den = denoiser
    if concurrency < 1 or max_queue < 1:
        raise FundiffError("concurrency and max_queue must be at least 1")
    mnist = den.name == "mnist"
    helptext = _prompt_help(den)
    default_prompt = "7" if mnist else "a high quality photo"

    fast = fast_pipeline(den)   # the distilled student, offered as a "fast" choice on the Generate tab

    def generate_job(prompt, steps, guidance, seed, n, choice="teacher", progress=gr.Progress()):
        if choice == "fast" and fast is not None:
            return run_generate_fast(fast, prompt, steps, guidance, seed, n, progress=progress)
        return run_generate(base, prompt, steps, guidance, seed, n, progress=progress)

    def on_model_choice(choice):   # each model's own defaults for steps and guidance
        if choice == "fast" and fast is not None:
            return fast.model.default_steps, fast.model.default_guidance_scale
        return DEFAULT_STEPS, 7.0

    def sdedit_job(editor, prompt, strength, steps, guidance, seed, n, progress=gr.Progress()):
        return run_sdedit(base, editor, prompt, strength, steps, guidance, seed, n, progress=progress)

    def inpaint_job(editor, rect, prompt, steps, guidance, seed, n, progress=gr.Progress()):
        return run_inpaint(base, editor, rect, prompt, steps, guidance, seed, n, progress=progress)

    def anagram_job(p1, p2, view, steps, guidance, seed, best_of, measure, progress=gr.Progress()):
        return run_anagram(base, p1, p2, view, steps, guidance, seed, best_of, measure, progress=progress)

    def hybrid_job(kind, p1, p2, p3, steps, guidance, seed, best_of, measure, fork, progress=gr.Progress()):
        return run_hybrid(base, kind, p1, p2, p3, steps, guidance, seed, best_of, measure, fork, progress=progress)

    # every job that runs the model shares one queue slot pool: `concurrency` jobs at once, the rest wait in order
    job = {"concurrency_id": "model", "concurrency_limit": concurrency}

    def to_canvas(path):  # the upload box is emptied, ready for the next file
        return (upload_to_canvas(den, path) if path else gr.skip()), None

    def on_upload(upload: gr.File, editor: gr.ImageEditor) -> None:
        """An upload is decoded once (after the pixel-limit check) onto the canvas; a bad file gives a message on the
        page and empties the box.  Uploads share the model jobs' queue and slots, so that however many arrive at
        once, at most ``concurrency`` images are decoded at a time."""
        hidden = {"api_visibility": "private", "show_progress": "hidden"}
        placed = upload.upload(to_canvas, upload, [editor, upload], **hidden, **job)
        placed.failure(lambda: None, None, upload, **hidden, queue=False)

    size = f"{den.image_size} px, {'grey' if den.channels == 1 else 'RGB'}"
    with gr.Blocks(title="fundiff", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"## fundiff\nModel: **{den.name}** ({size}, on {den.device}). Jobs run "
                    f"{'one at a time, in order' if concurrency == 1 else f'{concurrency} at a time'}; "
                    "the progress bar shows your place in the queue, then the steps.")
        with gr.Tabs():
            with gr.Tab("Generate", id="generate", elem_id="tab-generate"):
                with gr.Row():
                    with gr.Column():
                        g_prompt = gr.Textbox(value=default_prompt, label="prompt", info=helptext, elem_id="gen-prompt")
                        g_model = gr.Radio(["teacher", "fast"], value="teacher", label="model", visible=fast is not None,
                                           elem_id="gen-model",
                                           info="fast: the distilled mnist-fast, one UNet pass per step (steps 1, 2, 4, "
                                                "8, ...; guidance 1-5); teacher: the study's loop")
                        g_steps = _steps_slider("gen-steps")
                        g_guidance = _guidance_slider()
                        with gr.Row():
                            g_seed = _seed_box(seed)
                            g_n = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="number of images", elem_id="gen-n")
                        g_button = gr.Button("Generate", variant="primary", elem_id="gen-button")
                    with gr.Column():
                        g_out = gr.Image(label="images", type="pil", format="png", interactive=False,
                                         buttons=OUTPUT_BUTTONS, elem_id="gen-output")
                g_inputs = [g_prompt, g_steps, g_guidance, g_seed, g_n, g_model]
                g_model.change(on_model_choice, g_model, [g_steps, g_guidance], api_visibility="private", queue=False)
                g_button.click(generate_job, g_inputs, g_out, api_name="generate", **job)
                g_prompt.submit(generate_job, g_inputs, g_out, api_visibility="private", **job)

            with gr.Tab("SDEdit", id="sdedit", elem_id="tab-sdedit"):
                gr.Markdown(("Draw a digit on the canvas" if mnist else "Draw on the canvas") +
                            " or upload an image (you can draw over it too); it is noised part of the way and "
                            "denoised toward the prompt. More strength = more change.")
                with gr.Row():
                    with gr.Column():
                        s_canvas, s_upload = _editor_with_upload(den, "sdedit", _blank_canvas(den), "canvas",
                                                                 "...or upload an image (PNG, JPEG)", mask=False)
                        s_prompt = gr.Textbox(value=default_prompt, label="prompt", info=helptext, elem_id="sdedit-prompt")
                        s_strength = gr.Slider(0.05, 1.0, value=0.6, step=0.05, label="strength",
                                               info="how far to noise the input (1 = all the way: ignores it)")
                        s_steps = _steps_slider("sdedit-steps")
                        s_guidance = _guidance_slider()
                        with gr.Row():
                            s_seed = _seed_box(seed)
                            s_n = gr.Slider(1, 8, value=2, step=1, label="number of images", elem_id="sdedit-n")
                        with gr.Row():
                            s_clear = gr.Button("Clear canvas")
                            s_button = gr.Button("Run SDEdit", variant="primary", elem_id="sdedit-button")
                    with gr.Column():
                        s_out = gr.Image(label="input, then results", type="pil", format="png", interactive=False,
                                         buttons=OUTPUT_BUTTONS, elem_id="sdedit-output")
                        s_caption = gr.Markdown(elem_id="sdedit-caption")
                on_upload(s_upload, s_canvas)
                s_clear.click(lambda: _editor_value(_blank_canvas(den)), None, s_canvas, api_visibility="private", queue=False)
                s_button.click(sdedit_job, [s_canvas, s_prompt, s_strength, s_steps, s_guidance, s_seed, s_n],
                               [s_out, s_caption], api_name="sdedit", **job)

            with gr.Tab("Inpaint", id="inpaint", elem_id="tab-inpaint"):
                gr.Markdown("Paint over the part of the image to regenerate (or give a rectangle instead); the rest "
                            "is kept. Upload your own image below.")
                with gr.Row():
                    with gr.Column():
                        i_editor, i_upload = _editor_with_upload(den, "inpaint", _default_photo(den), "image: paint the mask",
                                                                 "upload an image (PNG, JPEG)", mask=True)
                        i_rect = gr.Textbox(value="", label="...or a rectangle (used when nothing is painted)",
                                            placeholder="rows,cols in 64-px coordinates, e.g. 2:20,24:42",
                                            elem_id="inpaint-rect")
                        i_prompt = gr.Textbox(value="" if mnist else default_prompt, label="prompt", info=helptext)
                        i_steps = _steps_slider("inpaint-steps")
                        i_guidance = _guidance_slider()
                        with gr.Row():
                            i_seed = _seed_box(seed)
                            i_n = gr.Slider(1, 8, value=2, step=1, label="number of images")
                        i_button = gr.Button("Inpaint", variant="primary", elem_id="inpaint-button")
                    with gr.Column():
                        i_out = gr.Image(label="input, mask, results", type="pil", format="png", interactive=False,
                                         buttons=OUTPUT_BUTTONS, elem_id="inpaint-output")
                        i_caption = gr.Markdown()
                on_upload(i_upload, i_editor)
                i_button.click(inpaint_job, [i_editor, i_rect, i_prompt, i_steps, i_guidance, i_seed, i_n],
                               [i_out, i_caption], api_name="inpaint", **job)

            with gr.Tab("Anagram", id="anagram", elem_id="tab-anagram"):
                gr.Markdown("One image that shows the first prompt, and the second under the view "
                            "(reference 1.8), with the animation from one to the other.")
                with gr.Row():
                    with gr.Column():
                        a_p1 = gr.Textbox(value="6" if mnist else "an oil painting of people around a campfire",
                                          label="prompt 1 (as is)", info=helptext)
                        a_p2 = gr.Textbox(value="9" if mnist else "an oil painting of an old man",
                                          label="prompt 2 (under the view)")
                        views = usable_views(den)
                        a_view = gr.Dropdown(views, value="flip" if mnist else views[0], label="view",
                                             info="what the second prompt is seen through")
                        a_steps = _steps_slider("anagram-steps")
                        a_guidance = _guidance_slider()
                        a_seed = _seed_box(seed)
                        a_best, a_measure = _reading_controls("anagram", mnist)
                        a_button = gr.Button("Make anagram", variant="primary", elem_id="anagram-button")
                        if mnist:   # the report's pairs (docs/illusions.md gives every pair's measured rate)
                            gr.Examples([list(pair) for pair in MNIST_ANAGRAMS], [a_p1, a_p2, a_view],
                                        label="pairs the report shows")
                    with gr.Column():
                        with gr.Row():
                            a_img = gr.Image(label="prompt 1", type="pil", format="png", interactive=False,
                                             buttons=OUTPUT_BUTTONS, elem_id="anagram-image")
                            a_viewed = gr.Image(label="prompt 2 (the view)", type="pil", format="png",
                                                interactive=False, buttons=OUTPUT_BUTTONS, elem_id="anagram-viewed")
                        a_gif = gr.Image(label="animation", type="filepath", interactive=False, buttons=OUTPUT_BUTTONS,
                                         elem_id="anagram-gif")
                        a_caption = gr.Markdown(elem_id="anagram-caption")
                a_button.click(anagram_job, [a_p1, a_p2, a_view, a_steps, a_guidance, a_seed, a_best, a_measure],
                               [a_img, a_viewed, a_gif, a_caption], api_name="anagram", **job)

            with gr.Tab("Hybrid", id="hybrid", elem_id="tab-hybrid"):
                gr.Markdown("Each component of the image (e.g. low / high frequencies) follows its own prompt "
                            "(reference 1.9). 'triple' uses all three prompts.")
                with gr.Row():
                    with gr.Column():
                        h_kind = gr.Dropdown(usable_kinds(den), value="hybrid", label="kind",
                                             info="hybrid: low / high frequencies; triple: three bands; "
                                                  "color: grey / colour; motion: motion blur / the rest")
                        h_p1 = gr.Textbox(value="1" if mnist else "a lithograph of a skull",
                                          label="prompt 1 (low frequencies / first component)", info=helptext)
                        h_p2 = gr.Textbox(value="7" if mnist else "a lithograph of waterfalls",
                                          label="prompt 2 (high frequencies / second component)")
                        h_p3 = gr.Textbox(value="0" if mnist else "a high quality photo",
                                          label="prompt 3 (third component, 'triple' only)")
                        h_steps = _steps_slider("hybrid-steps")
                        h_guidance = _guidance_slider()
                        h_seed = _seed_box(seed)
                        h_best, h_measure = _reading_controls("hybrid", mnist)
                        h_fork = gr.Textbox(value="auto", label="fork at t", elem_id="hybrid-fork",
                                            info=f"auto (MNIST low/high: {FORK_T}), off (the study's loop, composed to the "
                                                 "end), or a timestep: from there each prompt finishes its own band")
                        h_button = gr.Button("Make hybrid", variant="primary", elem_id="hybrid-button")
                        if mnist:
                            gr.Examples([[kind, a, b] for a, b, kind in MNIST_HYBRIDS], [h_kind, h_p1, h_p2],
                                        label="hybrids the report shows")
                    with gr.Column():
                        h_img = gr.Image(label="hybrid image", type="pil", format="png", interactive=False,
                                         buttons=OUTPUT_BUTTONS, elem_id="hybrid-image")
                        h_parts = gr.Gallery(label="components", columns=3, format="png", buttons=OUTPUT_BUTTONS,
                                             elem_id="hybrid-parts")
                        h_caption = gr.Markdown(elem_id="hybrid-caption")
                h_button.click(hybrid_job, [h_kind, h_p1, h_p2, h_p3, h_steps, h_guidance, h_seed, h_best, h_measure,
                                            h_fork],
                               [h_img, h_parts, h_caption], api_name="hybrid", **job)
    demo.queue(default_concurrency_limit=concurrency, max_size=max_queue)
    demo.fundiff_pipeline = base   # the shared model and its thresholding (for tests and embedding apps)
    return demo


def _editor_with_upload(den, tab: str, image, label: str, upload_label: str, mask: bool):
    """A drawing canvas holding ``image`` (``mask``: the brush paints the mask) and an upload box under it."""
    editor = gr.ImageEditor(value=_editor_value(image), label=label, type="numpy", image_mode="RGBA", sources=(),
                            brush=_editor_brush(den, mask=mask), eraser=gr.Eraser(), transforms=(), layers=False,
                            canvas_size=(CANVAS, CANVAS), fixed_canvas=True, height=CANVAS + 150,
                            elem_id=f"{tab}-{'editor' if mask else 'canvas'}")
    upload = gr.File(label=upload_label, file_types=["image"], type="filepath", height=110, elem_id=f"{tab}-upload")
    return editor, upload


def serve(host: str = "127.0.0.1", port: int = 7860, *, model: str = "mnist", max_queue: int = 16,
          concurrency: int = 1, quiet: bool = False, logins: list[tuple[str, str]] | None = None, **kwargs) -> None:
    """Build the app and serve it on http://host:port until interrupted (never a public share link).

    ``logins`` [(user, password), ...] puts gradio's login page in front of the UI (passwords compared in
    constant time).  ``kwargs`` go to :func:`build_app` (``threshold``, ``seed``, and the backend's options)."""
    demo = build_app(model, concurrency=concurrency, max_queue=max_queue, **kwargs)
    demo.launch(server_name=host, server_port=port, share=False, inbrowser=False, show_error=True, quiet=quiet,
                max_file_size=MAX_UPLOAD, auth=check_login(logins) if logins else None,
                auth_message="fundiff: log in with the user name and password the server was started with",
                footer_links=["api", "gradio", "settings"], run_history=False, mcp_server=False)


def check_login(logins: list[tuple[str, str]]):
    """gradio's ``auth`` callable: whether (user, password) is one of ``logins``, compared in constant time."""
    def check(user: str, password: str) -> bool:
        ok = False
        for u, p in logins:   # every pair is compared, so the time does not tell which part was wrong
            ok |= hmac.compare_digest(user.encode(), u.encode()) & hmac.compare_digest(password.encode(), p.encode())
        return ok

    return check

"""An interrupted ``generate`` or ``denoise`` writes nothing: every model call comes before the first file.

The interrupt is simulated deterministically: the model call (``Conditioned.__call__``, what every loop calls) or
the classifier raises KeyboardInterrupt on its Nth call, as SIGTERM / Ctrl-C would there (the CLI turns SIGTERM into
KeyboardInterrupt).  The CLI then says "interrupted; nothing was written", which must be true: no file in --out,
and a folder the command made itself is not left behind (empty).
"""

from __future__ import annotations

import pytest

from fundiff.cli import main
from fundiff.engine.denoiser import Conditioned

MESSAGE = "fundiff: interrupted; nothing was written"

GENERATE = ["generate", "--prompt", "7", "--steps", "1", "2", "--num-images", "1"]   # 1 + 2 model calls
DENOISE = ["denoise", "--stride", "100", "--i-start", "0"]   # 3 one-step, 10 iterative, 1 one-step from the start


def _interrupt_model_call(monkeypatch, n: int | None) -> list[int]:
    """Count the model calls; the ``n``th raises KeyboardInterrupt (None: never)."""
    calls: list[int] = []
    real = Conditioned.__call__

    def call(self, x, t):
        calls.append(t)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(self, x, t)

    monkeypatch.setattr(Conditioned, "__call__", call)
    return calls


def _model_calls(monkeypatch, tmp_path, argv: list[str]) -> int:
    """How many model calls the uninterrupted command makes (and that it writes files, so there is something to lose)."""
    with monkeypatch.context() as m:
        calls = _interrupt_model_call(m, None)
        out = tmp_path / "complete"
        assert main([*argv, "--out", str(out)]) == 0
    assert any(out.iterdir())
    return len(calls)


def _assert_interrupted_and_nothing_written(argv, tmp_path, capsys, calls: list | None = None,
                                           n: int | None = None) -> None:
    """Exit 130 and the message, in a new folder and in one that holds earlier work; ``calls``: the model-call
    count, cleared before each run and checked to have stopped at the ``n``th."""
    new = tmp_path / "new"                     # a folder the command makes: not left behind
    kept = tmp_path / "kept"                   # a folder that was there: exactly what it held before
    kept.mkdir(parents=True, exist_ok=True)
    (kept / "mine.txt").write_text("earlier work")
    for out in (new, kept):
        capsys.readouterr()
        if calls is not None:
            calls.clear()
        assert main([*argv, "--out", str(out)]) == 130
        assert capsys.readouterr().err.strip() == MESSAGE
        if calls is not None:
            assert len(calls) == n   # the interrupt came at the nth model call
    assert not new.exists(), sorted(p.name for p in new.iterdir())
    assert sorted(p.name for p in kept.iterdir()) == ["mine.txt"]
    assert (kept / "mine.txt").read_text() == "earlier work"


def test_generate_interrupted_at_any_model_call_writes_nothing(monkeypatch, tmp_path, capsys):
    """Several step counts: the first one's samples_<N>steps.png used to be written before the next one ran."""
    total = _model_calls(monkeypatch, tmp_path, GENERATE)
    assert total == 3
    for n in range(1, total + 1):
        with monkeypatch.context() as m:
            calls = _interrupt_model_call(m, n)
            _assert_interrupted_and_nothing_written(GENERATE, tmp_path / f"call{n}", capsys, calls, n)


def test_generate_interrupted_in_the_last_classifier_call_writes_nothing(monkeypatch, tmp_path, capsys):
    """The classifier reading the last step count's images is a model call too: it comes before the files."""
    import fundiff.classifier

    real = fundiff.classifier.load_classifier

    def load_classifier(*args, **kwargs):
        net = real(*args, **kwargs)
        calls: list[int] = []

        def classify(x):
            calls.append(1)
            if len(calls) == 2:   # --steps 1 2: the second step count's reading
                raise KeyboardInterrupt
            return net(x)

        return classify

    monkeypatch.setattr(fundiff.classifier, "load_classifier", load_classifier)
    _assert_interrupted_and_nothing_written(GENERATE, tmp_path, capsys)


@pytest.mark.parametrize("where", ["first", "second", "middle", "second_to_last", "last"])
def test_denoise_interrupted_at_any_model_call_writes_nothing(monkeypatch, tmp_path, capsys, where):
    """blur.png and one_step.png used to be written before the iterative loop; iterative.png before the last
    one-step estimate."""
    total = _model_calls(monkeypatch, tmp_path, DENOISE)
    assert total == 3 + 10 + 1
    n = {"first": 1, "second": 2, "middle": total // 2, "second_to_last": total - 1, "last": total}[where]
    with monkeypatch.context() as m:
        calls = _interrupt_model_call(m, n)
        _assert_interrupted_and_nothing_written(DENOISE, tmp_path / "interrupted", capsys, calls, n)


def test_denoise_iterative_loop_interrupted_writes_nothing(monkeypatch, tmp_path, capsys):
    """Interrupted by the loop's step callback (where a progress bar or SIGTERM handler runs), mid-loop."""
    import fundiff.studies.part_a as part_a

    real = part_a.iterative_denoise

    def loop(*args, callback=None, **kwargs):
        def step(i, t, x):
            if i == 5:
                raise KeyboardInterrupt
            if callback is not None:
                callback(i, t, x)

        return real(*args, callback=step, **kwargs)

    monkeypatch.setattr(part_a, "iterative_denoise", loop)
    _assert_interrupted_and_nothing_written(DENOISE, tmp_path, capsys)


def test_denoise_keeps_only_the_shown_states_and_reports_every_step(den, monkeypatch, tmp_path):
    """The figures wait for the end, so the loop keeps only the states iterative.png shows (no whole trajectory,
    which grows with the steps); the progress callback still sees every step."""
    import torch

    import fundiff.studies.part_a as part_a
    from fundiff.engine.inputs import default_image, load_image

    seen: list[tuple[int, int]] = []
    kept: list[bool] = []
    real = part_a.iterative_denoise

    def loop(*args, **kwargs):
        kept.append(kwargs.get("keep_trajectory", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(part_a, "iterative_denoise", loop)
    image = load_image(default_image(den.channels), den.image_size, den.channels)
    res = part_a.run_denoise(den, image, tmp_path / "d", part_a.DenoiseConfig(stride=100, i_start=2),
                             progress=lambda i, t, x: seen.append((i, t)))
    assert kept == [False]
    strided = den.schedule.strided_timesteps(stride=100)
    assert seen == [(i, strided[i]) for i in range(2, len(strided))]
    assert res["iterative"]["steps"] == len(seen)
    assert torch.isfinite(torch.tensor(res["iterative"]["psnr_db"]["iterative"]))
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "blur.png", "comparison.png", "denoise.json", "iterative.png", "one_step.png"]


def _interrupt_nth_figure(monkeypatch, module, n: int) -> None:
    """``module.image_grid``'s ``n``th call in each run raises KeyboardInterrupt: an interrupt after the last model
    call, while the command is writing its files one after another."""
    real, calls = module.image_grid, []

    def grid(*args, **kwargs):
        calls.append(1)
        if len(calls) % n == 0:   # every interrupted run stops at its nth call, so the next run counts afresh
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "image_grid", grid)


def test_interrupted_among_the_writes_keeps_none_of_them(monkeypatch, tmp_path, capsys):
    """blur.png and one_step.png are written, then the interrupt: the CLI removes what this run added."""
    import fundiff.studies.part_a as part_a

    _interrupt_nth_figure(monkeypatch, part_a, 3)
    _assert_interrupted_and_nothing_written(DENOISE, tmp_path, capsys)


def test_interrupted_among_the_writes_names_the_earlier_files_it_replaced(monkeypatch, tmp_path, capsys):
    import fundiff.studies.part_a as part_a

    out = tmp_path / "earlier"
    out.mkdir()
    (out / "blur.png").write_text("an earlier run's figure")
    (out / "mine.txt").write_text("earlier work")
    _interrupt_nth_figure(monkeypatch, part_a, 3)
    capsys.readouterr()
    assert main([*DENOISE, "--out", str(out)]) == 130
    assert capsys.readouterr().err.strip() == (f"fundiff: interrupted; nothing new was kept, but 1 earlier file(s) in "
                                              f"{out} were already replaced: blur.png")
    assert sorted(p.name for p in out.iterdir()) == ["blur.png", "mine.txt"]

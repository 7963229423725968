"""fundiff.pipelines.readings and best-of-N: the classifier's two readings of an illusion, keeping the best of N, and the
shipped readers (the hybrid reader and the noise-aware classifier) measured on real digits."""

from __future__ import annotations

import json

import pytest
import torch

import fundiff
from fundiff.pipelines.readings import anagram_readings, best_of, reading_scores
from helpers import assert_one_line_error


def test_best_of_prefers_right_both_ways_then_confidence():
    right = torch.tensor([False, True, True, False, False, False])
    joint = torch.tensor([0.99, 0.2, 0.6, 0.1, 0.3, 0.2])
    assert best_of(right, joint, 3).tolist() == [2, 4]        # group 1: the right ones only; group 2: none right


@pytest.fixture(scope="module")
def anagram():
    return fundiff.AnagramPipeline.from_pretrained("mnist")


def test_best_of_keeps_the_best_candidates_of_the_same_noise(anagram):
    latents = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    call = dict(prompt=["6", "9"], views=["identity", "flip"], num_inference_steps=8, latents=latents, batch_size=8,
                output_type="pt")
    every = anagram(num_images_per_prompt=8, generator=torch.Generator().manual_seed(0), **call)
    kept = anagram(num_images_per_prompt=2, best_of=4, generator=torch.Generator().manual_seed(0), **call)
    right, joint = reading_scores(anagram_readings(every.samples, every.extras["views"]), [6, 9])
    chosen = best_of(right, joint, 4)
    torch.testing.assert_close(kept.samples, every.samples[chosen])
    r = kept.record
    assert r["best_of"] == 4 and "best_of" not in every.record and r["best_of_reader"] == "the shipped classifier"
    assert r["best_of_kept_both_right"] >= r["best_of_candidates_both_right"]
    assert r["best_of_candidates_both_right"] == pytest.approx(float(right.float().mean()))


@pytest.mark.parametrize("call,fragment", [
    (lambda a: a(["6", ""], best_of=2), "every prompt must name a digit"),
    (lambda a: a(["6", "9"], best_of=0), "best_of must be a whole number in 1..64"),
    (lambda a: a(["6", "9"], num_images_per_prompt=5000, best_of=4), "num_images_per_prompt x best_of"),
    (lambda a: fundiff.HybridPipeline.from_pipe(a)(["1", "7"], "motion", best_of=2), "needs kind 'hybrid'"),
])
def test_best_of_bad_input_is_one_line_before_any_work(anagram, call, fragment, monkeypatch):
    monkeypatch.setattr(anagram.denoiser, "predict", lambda *a, **k: pytest.fail("the model ran"))
    with pytest.raises(fundiff.FundiffError, match=fragment):
        call(anagram)


def test_best_of_on_the_command_line(cli, tmp_path):
    proc = cli("hybrid", "--prompt", "1", "--prompt", "7", "--best-of", "3", "--num-images", "1", "--steps", "8",
               "--out", tmp_path / "h")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "h" / "hybrid.json").read_text())
    assert record["best_of"] == 3 and len(record["best_of_joint_confidence"]) == 1
    assert record["best_of_reader"] == record["reader"] and "hybrid reader" in record["reader"]   # who chose it
    assert_one_line_error(cli("anagram", "--prompt", "6", "--prompt", "", "--best-of", "2", "--out", tmp_path / "a"),
                          "must name a digit")
    assert not (tmp_path / "a").exists()


def test_measure_counts_what_the_classifier_reads_on_its_own_images(anagram, tmp_path):
    """The record's rate is the readings of exactly the images the same call makes, with its Wilson interval."""
    from fundiff.metrics import wilson_interval
    from fundiff.studies.illusions import run_anagram

    rec = run_anagram(anagram, tmp_path / "a", ["6", "9"], views=["identity", "flip"], num_inference_steps=8,
                      num_images=1, seed=4, measure=12)
    same = anagram(["6", "9"], views=["identity", "flip"], num_inference_steps=8, num_images_per_prompt=12,
                   generator=torch.Generator().manual_seed(4), output_type="pt")
    right, _ = reading_scores(anagram_readings(same.samples, same.extras["views"]), [6, 9])
    m = rec["measured"]
    assert (m["n"], m["seed"], m["best_of"], m["both_right"]) == (12, 4, 1, int(right.sum()))
    assert m["wilson95"] == pytest.approx(wilson_interval(m["both_rate"], 12), abs=1e-4)
    assert all(r >= m["both_rate"] for r in m["reading_rates"])   # both right implies each right
    assert "measured" not in run_anagram(anagram, tmp_path / "b", ["6", "9"], num_inference_steps=8, num_images=1)


@pytest.mark.parametrize("call,fragment", [
    (lambda a, out: fundiff.studies.illusions.run_anagram(a, out, ["6", "cat"], measure=4), "unknown class prompt"),
    (lambda a, out: fundiff.studies.illusions.run_anagram(a, out, ["6", ""], measure=4), "measure reads each view"),
    (lambda a, out: fundiff.studies.illusions.run_anagram(a, out, ["6", "9"], measure=-1), "measure must be"),
    (lambda a, out: fundiff.studies.illusions.run_hybrid(fundiff.HybridPipeline.from_pipe(a), out, ["1", "7", "3"],
                                                         kind="triple", measure=4), "needs two components"),
])
def test_measure_bad_input_is_one_line_before_any_work(anagram, call, fragment, monkeypatch, tmp_path):
    import fundiff.studies.illusions  # noqa: F401  (the lambdas reach it as an attribute)

    monkeypatch.setattr(anagram.denoiser, "predict", lambda *a, **k: pytest.fail("the model ran"))
    with pytest.raises(fundiff.FundiffError, match=fragment):
        call(anagram, tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_a_triple_hybrid_on_mnist_writes_its_figure_without_readings(cli, tmp_path):
    """Three components have no far / close reading: the record has no counts (it used to raise ValueError)."""
    proc = cli("hybrid", "--kind", "triple", "--prompt", "1", "--prompt", "7", "--prompt", "3", "--num-images", "1",
               "--steps", "6", "--out", tmp_path / "t")
    assert proc.returncode == 0, proc.stderr
    assert "read_of" not in json.loads((tmp_path / "t" / "hybrid.json").read_text())


def test_measure_on_the_command_line(cli, tmp_path):
    proc = cli("hybrid", "--prompt", "1", "--prompt", "7", "--measure", "6", "--num-images", "1", "--steps", "6",
               "--out", tmp_path / "h")
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "h" / "hybrid.json").read_text())["measured"]
    assert m["n"] == 6 and f"read right both ways: {m['both_right']} of 6 new images" in proc.stdout
    assert_one_line_error(cli("anagram", "--prompt", "6", "--prompt", "9", "--measure", "x", "--out", tmp_path / "a"),
                          "--measure")
    assert not (tmp_path / "a").exists()


def test_an_interrupted_measurement_leaves_no_file(anagram, tmp_path):
    """Every model call (the measurement included) comes before the first file, so Ctrl-C there leaves nothing:
    the CLI's "interrupted; nothing was written" stays true."""
    from fundiff.studies.illusions import run_anagram, run_hybrid

    def interrupt(*_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_anagram(anagram, tmp_path / "a", ["6", "9"], num_inference_steps=4, num_images=1, measure=4,
                    measure_callback=interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_hybrid(fundiff.HybridPipeline.from_pipe(anagram), tmp_path / "h", ["1", "7"], num_inference_steps=4,
                   num_images=1, measure=4, measure_callback=interrupt)
    assert not any((tmp_path / "a").iterdir()) and not any((tmp_path / "h").iterdir())


def test_the_shipped_hybrid_reader_reads_real_hybrids_both_ways_and_does_not_invent_the_second_digit(mnist):
    """Real test digits composed as low(A) + high(B) read right both ways by the hybrid reader (its record: 97% on
    the target set) and far less often by the clean classifier (32%); low(A) + high(A'), two images of A, does not read
    B up close.  The hybrid readings everywhere (best-of, --measure, the report, the web UI) use this reader."""
    from fundiff.classifier import SHIPPED_HYBRID_READER, load_classifier, load_hybrid_reader
    from fundiff.data.mnist import to_float
    from fundiff.engine.decompositions import get_decomposition
    from fundiff.pipelines.readings import hybrid_reader, hybrid_readings, reading_scores
    from fundiff.training.checkpoint import read_metadata

    dec = get_decomposition("hybrid", 28, 1)
    assert hybrid_reader(dec) is load_hybrid_reader()
    assert hybrid_reader(get_decomposition("motion", 28, 1)) is None   # not trained on motion: the clean classifier
    x, y = to_float(mnist.test_images[:2000]) * 2 - 1, mnist.test_labels[:2000]
    g = torch.Generator().manual_seed(0)
    rates = {}
    for a, b in [(1, 7), (0, 1), (3, 8)]:
        pa, pb = x[y == a], x[y == b]
        xa, xa2 = (pa[torch.randint(len(pa), (100,), generator=g)] for _ in range(2))
        xb = pb[torch.randint(len(pb), (100,), generator=g)]
        for name, reader in (("hybrid", load_hybrid_reader()), ("clean", load_classifier())):
            right, _ = reading_scores(hybrid_readings(dec.components(xa)[0] + dec.components(xb)[1], dec), [a, b], reader)
            control, _ = reading_scores(hybrid_readings(dec.components(xa)[0] + dec.components(xa2)[1], dec), [a, b],
                                        reader)
            rates[name] = rates.get(name, 0) + float(right.float().mean()) / 3
            assert control.float().mean() < 0.05, (name, a, b)
    assert rates["hybrid"] > 0.9 and rates["clean"] < 0.5, rates
    record = read_metadata(SHIPPED_HYBRID_READER)
    assert "bench/hybrid_reader.py" in record["fundiff.command"]


def test_the_shipped_noise_aware_classifier_reads_clean_and_lightly_noised_digits(mnist):
    """The balanced reduction's reader: accuracy on 500 test digits at t 0 and 300 (its record says 97%)."""
    from fundiff.classifier import SHIPPED_NOISY_CLASSIFIER, load_noisy_classifier
    from fundiff.data.mnist import to_float
    from fundiff.engine.schedule import Schedule
    from fundiff.training.checkpoint import read_metadata

    net = load_noisy_classifier()
    x0, labels = to_float(mnist.test_images[:500]) * 2 - 1, mnist.test_labels[:500]
    abar = Schedule.squaredcos().alphas_cumprod   # the embedded model's schedule
    g = torch.Generator().manual_seed(0)
    for t in (0, 300):
        a = abar[t]
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * torch.randn(x0.shape, generator=g)
        accuracy = (net(x_t, torch.full((500,), t)).argmax(1) == labels).float().mean().item()
        assert accuracy > 0.93, (t, accuracy)
    record = json.loads(read_metadata(SHIPPED_NOISY_CLASSIFIER)["fundiff.record"])
    assert "bench/classifier_guidance.py" in record["command"] and record["test_accuracy_at_t"]["0"] > 0.95

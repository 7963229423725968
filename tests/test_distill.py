"""fundiff distill and the few-step student: the model, the loss, resume, evaluation counts, the shipped mnist-fast.

Its one-line errors (odd steps, untrained guidance, Part A, a distilled or missing teacher) are in test_bad_input's sweep."""

import json
import signal
from importlib import resources

import pytest
import torch

from fundiff.generate import load_generator
from fundiff.guidance import conditional_prediction
from fundiff.nn import ClassConditionalUNet, ShortcutUNet, TimeConditionalUNet
from fundiff.objectives.distill import ShortcutDistillation, teacher_guided_velocity
from fundiff.training.checkpoint import save_model
from fundiff.training.rng import BatchRandom
from test_training import _popen, _wait_for_checkpoint, assert_same_weights


def tiny_teacher(seed=0, width=4):
    torch.manual_seed(seed)
    teacher = ClassConditionalUNet(1, 10, width).eval()
    for m in teacher.modules():   # non-trivial BatchNorm statistics, so folding and eval mode matter
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return teacher


def save_teacher(path, teacher):
    return save_model(path, teacher, {"objective": {"name": "flow", "p_uncond": 0.1, "time_sampling": "uniform"}})


def batch(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g), torch.rand(n, generator=g)


def test_a_fresh_student_is_its_teacher_at_every_guidance_and_step():
    teacher = tiny_teacher()
    student = ShortcutUNet.from_teacher(teacher).eval()
    x, c, t = batch()
    with torch.no_grad():
        want = teacher(x, c, t)
        for gamma, d in ((1.0, 0.0), (3.0, 0.5), (5.0, 1.0)):
            assert torch.equal(student(x, c, t, gamma, d), want)
    again = ShortcutUNet.from_teacher(teacher).state_dict()   # the new layers are drawn from the seed alone
    assert all(torch.equal(v, again[k]) for k, v in student.state_dict().items())
    with pytest.raises(ValueError, match="class-conditional"):
        ShortcutUNet.from_teacher(TimeConditionalUNet(1, 4))


def test_the_distillation_target_is_the_guided_teacher():
    teacher = tiny_teacher()
    x, c, t = batch()
    gamma = torch.full((len(x),), 3.0)
    with torch.no_grad():
        got = teacher_guided_velocity(teacher, x, c, t, gamma, torch.ones(len(x)))
        guided, nfe = conditional_prediction(teacher, c, 3.0)
        assert nfe == 2
        torch.testing.assert_close(got, guided(x, t), rtol=1e-5, atol=1e-6)
        # a dropped class: the unconditional velocity, whatever gamma
        dropped = teacher_guided_velocity(teacher, x, c, t, gamma, torch.zeros(len(x)))
        torch.testing.assert_close(dropped, conditional_prediction(teacher, None)[0](x, t), rtol=1e-5, atol=1e-6)


def test_self_consistency_target_is_two_half_steps_of_the_student():
    teacher = tiny_teacher()
    student = ShortcutUNet.from_teacher(teacher)
    objective = ShortcutDistillation(teacher, "tiny", levels=3)
    x, c, t = batch(4)
    size = torch.tensor([1.0, 0.5, 0.25, 0.25])
    keep = torch.ones(4)
    student.train()
    target = objective.two_half_steps(student, x, c, t, torch.full((4,), 2.0), size, keep)
    assert student.training, "the bootstrap passes must give the student back in training mode"
    with torch.no_grad():
        student.eval()
        half = size / 2
        d = torch.tensor([0.5, 0.25, 0.0, 0.0])       # the finest half step (2^-3) is d = 0
        s1 = student(x, c, t, 2.0, d, keep)
        s2 = student(x + half.reshape(-1, 1, 1, 1) * s1, c, t + half, 2.0, d, keep)
    torch.testing.assert_close(target, (s1 + s2) / 2)


def test_loss_trains_the_student_only_and_falls():
    teacher = tiny_teacher()
    student = ShortcutUNet.from_teacher(teacher).train()
    objective = ShortcutDistillation(teacher, "tiny", levels=3, guidance_min=1.0, guidance_max=4.0)
    x1 = torch.rand(32, 1, 28, 28)
    labels = torch.arange(32) % 10
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    losses = []
    for step in range(30):
        loss = objective.loss(student, x1, labels, BatchRandom(torch.Generator().manual_seed(step % 3)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(p.grad is None for p in teacher.parameters())
    assert sum(losses[-3:]) < 0.7 * sum(losses[:3]), losses
    cfg = objective.config()
    assert cfg["name"] == "flow" and cfg["distilled"] == "shortcut" and cfg["guidance_range"] == [1.0, 4.0]


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    return save_teacher(tmp_path_factory.mktemp("teacher") / "teacher.safetensors", tiny_teacher())


DISTILL = ["distill", "--batch-size", "16", "--epochs", "2", "--num-train", "320", "--levels", "3", "--seed", "1",
           "--device", "cpu", "--no-progress"]


@pytest.mark.slow
def test_distill_sigkill_then_resume_gives_the_uninterrupted_student(tmp_path, cli, teacher_file):
    full = cli(*DISTILL, "--teacher", teacher_file, "--out", tmp_path / "full")
    assert full.returncode == 0, full.stderr
    out = tmp_path / "run"
    proc = _popen([*DISTILL, "--teacher", str(teacher_file), "--out", str(out), "--checkpoint-interval", "0.2"])
    _wait_for_checkpoint(out, proc, lambda s: 0 < s % 20)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "model.safetensors").exists(), "the kill came too late to test anything"
    resumed = cli(*DISTILL, "--teacher", teacher_file, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(out / "model.safetensors", tmp_path / "full" / "model.safetensors")
    gen = load_generator(out)
    assert gen.is_shortcut and gen.samplers == ("shortcut",) and gen.shortcut_steps == [1, 2, 4]
    assert json.loads((out / "config.json").read_text())["objective"]["teacher"] == str(teacher_file)
    from fundiff.pipelines import SamplePipeline

    sampled = SamplePipeline.from_pretrained(out, device="cpu")("4", num_images_per_prompt=1, num_inference_steps=2)
    assert sampled.record["model_evaluations_per_image"] == 2 and sampled.record["sampler"] == "shortcut"


def test_evaluations_are_counted_by_a_hook_on_the_unet():
    from fundiff.pipelines import SamplePipeline
    from fundiff.studies.few_step import TEACHER_SETTINGS, count_evaluations

    student = SamplePipeline.from_pretrained("mnist-fast", device="cpu")
    teacher = SamplePipeline.from_pretrained("mnist", device="cpu")
    for pipe, steps, sampler, scale, want in ((student, 4, None, None, 4), (student, 1, None, 3.0, 1),
                                              (teacher, 2, "midpoint", 2.0, 8), (teacher, 1, "euler", 1.0, 1)):
        n = 300   # more than one CPU slice of the UNet's batch: slices are not counted twice
        with count_evaluations(pipe.model.model) as counted:
            out = pipe("3", num_images_per_prompt=n, num_inference_steps=steps, sampler=sampler, guidance_scale=scale,
                       output_type="pt", batch_size=n)
        assert counted[0] == want * n, (steps, sampler, scale)
        assert out.record["model_evaluations_per_image"] == want
    assert {s.evaluations for s in TEACHER_SETTINGS} == {1, 2, 4, 8, 28}


def test_shipped_fast_model_loads_samples_and_reads_right():
    from fundiff.metrics import classifier_predictions
    from fundiff.pipelines import SamplePipeline

    assets = resources.files("fundiff") / "assets"
    assert (assets / "mnist_fast.safetensors").stat().st_size <= 3 * 1024 * 1024
    record = json.loads((assets / "mnist_fast.json").read_text())
    assert record["command"].startswith("fundiff distill") and record["evaluate"]["num_images"] == 1000
    pipe = SamplePipeline.from_pretrained("mnist-fast", device="cpu")
    gen = pipe.model
    assert gen.is_shortcut and gen.default_steps <= 8 and gen.source.endswith("mnist_fast.safetensors")
    out = pipe(None, num_images_per_prompt=3, generator=torch.Generator().manual_seed(0), output_type="pt")
    assert out.record["model_evaluations_per_image"] == gen.default_steps
    read, _ = classifier_predictions(out.images)
    assert (read == out.extras["labels"]).float().mean() >= 0.9
    one = pipe("7", num_images_per_prompt=2, num_inference_steps=1, output_type="pt")
    assert one.images.shape == (2, 1, 28, 28) and one.record["model_evaluations_per_image"] == 1


def test_ctrl_c_during_distill_points_to_resume(tmp_path, monkeypatch, capsys):
    import fundiff.distillation as distillation
    from fundiff.cli import main

    def interrupted(out, *args, **kwargs):   # the trainer saves its checkpoint, then re-raises
        raise KeyboardInterrupt

    monkeypatch.setattr(distillation, "distill", interrupted)
    assert main(["distill", "--out", str(tmp_path / "d")]) == 130
    assert capsys.readouterr().err.strip() == ("fundiff: interrupted; the latest checkpoint is saved, rerun with "
                                               "--resume to continue")


def test_distill_flags_reach_the_run_config(tmp_path, monkeypatch):
    import fundiff.distillation as distillation
    from fundiff.cli import main

    seen = {}
    monkeypatch.setattr(distillation, "distill", lambda out, mnist, **kw: seen.update(kw) or (_ for _ in ()).throw(
        KeyboardInterrupt))
    main(["distill", "--out", str(tmp_path / "d"), "--lr-schedule", "cosine", "--lr-final-factor", "0.05", "--lr", "1e-4",
          "--levels", "4", "--default-steps", "8", "--guidance-max", "4"])
    c, o = seen["config"], seen["options"]
    assert (c.lr_schedule, c.lr_final_factor, c.lr, c.ema_decay) == ("cosine", 0.05, 1e-4, 0.999)
    assert (o.levels, o.default_steps, o.guidance_max, o.guidance_min) == (4, 8, 4.0, 1.0)


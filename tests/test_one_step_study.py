"""Study part 1 end to end on a tiny configuration: figures, numbers, and the collapse it measures."""

import json

import pytest
import torch

from fundiff.data import to_float
from fundiff.studies.one_step import SIGMAS, OneStepStudyConfig, _mean_pairwise_mse, psnr, run_one_step_study
from fundiff.training.trainer import select_subset

TINY = OneStepStudyConfig(num_hiddens=4, batch_size=32, lr=1e-2, epochs=2, num_train=384, eval_images=64,
                          device="cpu", checkpoint_interval=0)


@pytest.fixture(scope="module")
def study(mnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    results = run_one_step_study(out, TINY, mnist, progress=False, log=lambda *_: None)
    return out, results


@pytest.mark.slow
def test_writes_every_figure_and_the_numbers(study):
    out, results = study
    for name in ["noising", "denoiser_loss", "denoiser_epoch1", "denoiser_epoch2", "denoiser_ood",
                 "denoiser_ood_psnr", "pure_noise_loss", "pure_noise_epoch1", "pure_noise_epoch2"]:
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["denoiser"]["test_per_epoch"] == results["denoiser"]["test_per_epoch"]
    assert [q["sigma"] for q in on_disk["denoiser"]["ood"]] == list(SIGMAS)
    assert len(on_disk["pure_noise"]["per_epoch"]) == 2


@pytest.mark.slow
def test_denoiser_numbers(study, mnist):
    _, results = study
    d = results["denoiser"]
    ood = {q["sigma"]: q for q in d["ood"]}
    # the denoiser beats its noisy input at the training sigma, and the input gets worse with sigma
    assert ood[0.5]["psnr"] > ood[0.5]["noisy_input"]["psnr"] + 3
    noisy = [q["noisy_input"]["psnr"] for q in d["ood"]]
    assert noisy == sorted(noisy, reverse=True)
    assert ood[0.0]["noisy_input"]["psnr"] == pytest.approx(100.0)  # capped: identical images
    # the epoch-2 test numbers are the OOD row at the training sigma (same model, same noise)
    assert d["test_per_epoch"][-1]["psnr"] == pytest.approx(ood[0.5]["psnr"], abs=1e-4)


@pytest.mark.slow
def test_pure_noise_statistics_match_an_independent_computation(study, mnist):
    _, results = study
    p = results["pure_noise"]
    x = to_float(mnist.train_images[select_subset(60000, 384, 0)]).double()
    assert p["loss_floor_mean_predictor"] == pytest.approx(float(x.var(0, unbiased=False).mean()), rel=1e-5)
    # the network cannot beat the constant mean predictor on average
    assert p["final_epoch_loss"] > 0.9 * p["loss_floor_mean_predictor"]


def test_pairwise_mse_and_psnr():
    torch.manual_seed(0)
    x = torch.rand(7, 1, 5, 5)
    brute = [((x[i] - x[j]) ** 2).mean().item() for i in range(7) for j in range(7) if i != j]
    assert _mean_pairwise_mse(x) == pytest.approx(sum(brute) / len(brute), rel=1e-6)
    a = torch.zeros(1, 1, 4, 4)
    assert psnr(a + 0.1, a).item() == pytest.approx(20.0, abs=1e-4)


@pytest.mark.slow
def test_pure_noise_denoiser_collapses_to_the_mean(mnist, tmp_path):
    """Trained on z = eps, the outputs converge on the training mean image and stop depending on z."""
    config = OneStepStudyConfig(num_hiddens=4, batch_size=64, lr=1e-2, epochs=6, num_train=512,
                                eval_images=64, device="cpu", checkpoint_interval=0)
    from fundiff.studies.one_step import _pure_noise

    p = _pure_noise(tmp_path, config, mnist, False, False, torch.device("cpu"))
    last, ref = p["per_epoch"][-1], p["reference_scales"]
    assert last["mse_to_train_mean"] < 0.2 * ref["test_digits_mse_to_train_mean"]
    assert last["pairwise_mse_between_outputs"] < 0.1 * ref["pairwise_mse_between_test_digits"]

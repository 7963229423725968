"""fundiff.metrics: Frechet distance, class accuracy and the real-data floor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from fundiff.data import to_float
from fundiff.metrics import (
    classifier_fid,
    frechet_distance,
    real_data_floor,
)


def _features_with_exact_moments(mu, var, n, seed):
    """n samples whose sample mean is exactly mu and sample covariance exactly diag(var)."""
    g = np.random.default_rng(seed)
    f = len(mu)
    a = g.standard_normal((n, f))
    a = np.column_stack([np.ones(n), a])
    q, _ = np.linalg.qr(a)  # orthonormal columns; columns 1.. are orthogonal to the ones vector
    q = q[:, 1:]
    return mu + q * np.sqrt((n - 1) * var)


def _shift(images: torch.Tensor, pixels: int) -> torch.Tensor:
    """Move the digits right and down by ``pixels`` (zero fill)."""
    return F.pad(images, (pixels, 0, pixels, 0))[:, :, :28, :28]


def test_frechet_distance_matches_diagonal_closed_form():
    g = np.random.default_rng(0)
    f = 6
    mu_a, mu_b = g.normal(size=f), g.normal(size=f)
    var_a, var_b = g.uniform(0.1, 3, size=f), g.uniform(0.1, 3, size=f)
    feats_a = _features_with_exact_moments(mu_a, var_a, 50, 1)
    feats_b = _features_with_exact_moments(mu_b, var_b, 80, 2)
    np.testing.assert_allclose(np.cov(feats_a, rowvar=False), np.diag(var_a), atol=1e-10)
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    assert frechet_distance(feats_a, feats_b) == pytest.approx(expected, rel=1e-9)
    # torch input gives the same number
    assert frechet_distance(torch.from_numpy(feats_a), torch.from_numpy(feats_b)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_matches_brute_force_full_covariance():
    g = np.random.default_rng(3)
    f = 10
    mix_a, mix_b = g.normal(size=(f, f)), g.normal(size=(f, f))
    feats_a = g.normal(size=(400, f)) @ mix_a + g.normal(size=f)
    feats_b = g.normal(size=(300, f)) @ mix_b + 0.5 * g.normal(size=f)
    mu_a, mu_b = feats_a.mean(0), feats_b.mean(0)
    s_a, s_b = np.cov(feats_a, rowvar=False), np.cov(feats_b, rowvar=False)
    # Tr((S_a S_b)^{1/2}) from the (real, non-negative) eigenvalues of the non-symmetric product
    eig = np.linalg.eigvals(s_a @ s_b)
    tr_covmean = np.sqrt(np.clip(eig.real, 0, None)).sum()
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * tr_covmean
    got = frechet_distance(feats_a, feats_b)
    assert got == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(feats_b, feats_a) == pytest.approx(got, rel=1e-10)  # symmetric


def test_frechet_distance_of_a_set_with_itself_is_zero_also_when_rank_deficient():
    g = np.random.default_rng(4)
    feats = g.normal(size=(300, 8)) @ g.normal(size=(8, 8)) * 3
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-8)
    # rank-deficient covariance (fewer samples than features, dead units): still ~0 and finite
    few = np.column_stack([g.normal(size=(20, 30)), np.zeros((20, 5))])
    assert frechet_distance(few, few) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        frechet_distance(feats[:1], feats)
    with pytest.raises(ValueError):
        frechet_distance(feats, feats[:, :4])


@pytest.mark.slow
def test_real_data_floor_is_below_clearly_wrong_images(mnist):
    n = 500
    floor = real_data_floor(mnist, n)
    assert floor > 0
    assert real_data_floor(mnist, n) == pytest.approx(floor, rel=1e-9)  # seeded
    test = to_float(mnist.test_images[:n])
    shifted = classifier_fid(_shift(test, 6), mnist)
    blurred = classifier_fid(F.avg_pool2d(test, 5, stride=1, padding=2), mnist)
    noise = classifier_fid(torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)), mnist)
    assert 3 * floor < min(shifted, blurred, noise), (floor, shifted, blurred, noise)


def test_wilson_interval_matches_the_textbook_values():
    from fundiff.metrics import wilson_interval

    low, high = wilson_interval(0.5, 100)
    assert (low, high) == (pytest.approx(0.40383, abs=1e-5), pytest.approx(0.59617, abs=1e-5))
    low, high = wilson_interval(1.0, 40)     # all right: the interval still has width, and stays in [0, 1]
    assert high == 1.0 and low == pytest.approx(0.91238, abs=1e-5)
    assert wilson_interval(0.0, 10)[0] == 0.0
    with pytest.raises(ValueError):
        wilson_interval(0.5, 0)


def test_pooled_proportion_adds_the_counts_and_gives_their_wilson_interval():
    from fundiff.metrics import pooled_proportion, wilson_interval

    pooled = pooled_proportion([(4, 20), (5, 20)])
    low, high = wilson_interval(9 / 40, 40)
    assert pooled == {"count": 9, "n": 40, "share": 0.225, "wilson95": [round(low, 4), round(high, 4)]}
    assert pooled_proportion(iter([(48, 100), (7, 20), (49, 100), (10, 20)]))["share"] == round(114 / 240, 4)
    assert pooled_proportion([]) == {"count": 0, "n": 0}

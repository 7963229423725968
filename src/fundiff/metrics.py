r"""Sample-quality metrics for generated MNIST digits: class accuracy and classifier-FID.

Both use one fixed feature network, the small MNIST CNN shipped with fundiff
(:func:`fundiff.classifier.load_classifier`; 99.5% test accuracy, see ``fundiff/assets/mnist_classifier.json``).

**Inputs.**  Images are (N, 1, 28, 28) floats in [0, 1] (values outside are clamped to [0, 1]
first, as when saving a PNG); uint8 (N, 28, 28) or (N, 1, 28, 28) tensors are accepted and divided
by 255.

**Class accuracy** of class-conditional samples: the fraction of images the classifier assigns to
the class they were generated for.  Real test digits score 0.995; random labels 0.1.

**Classifier-FID** (the Frechet Inception Distance of Heusel et al. 2017, with the MNIST classifier's
penultimate layer in place of Inception): fit a Gaussian to the F = 128 penultimate activations
(after the ReLU, the inputs of the final linear layer) of each image set,

    mu = mean of the features,   S = their covariance (1/(n-1) normalisation),

and take the squared 2-Wasserstein (Frechet) distance between the two Gaussians

    FD = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}),

computed in float64 as Tr((S_a S_b)^{1/2}) = sum_i sqrt(lambda_i) over the eigenvalues lambda_i of
the symmetric PSD matrix S_a^{1/2} S_b S_a^{1/2} (same eigenvalues as S_a S_b), with S_a^{1/2} from
an eigendecomposition and tiny negative eigenvalues from rounding clamped to 0.  No scipy.

**Protocol.**  :func:`classifier_fid` compares n generated images against the features of all
10,000 MNIST *test* images (:func:`reference_statistics`, computed once per process).  The FD of a
finite sample is biased upwards, more so for small n, so numbers are only comparable at equal n: report
``classifier_fid(samples, mnist)`` next to ``real_data_floor(mnist, n)``, the score of n real
*training* digits (seeded draw) against the same test reference, i.e. what a perfect generator would
get with the same n.  Classifier-FID values are on this network's scale and are not comparable to
Inception-FID numbers in the literature.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import torch
from torch import nn

from fundiff.data import MNIST, to_float
from fundiff.errors import FundiffError

MAX_PER_CLASS = 6000   # the real-data floor draws 10 x per-class of the 60,000 training images

__all__ = [
    "classifier_predictions",
    "class_accuracy",
    "classifier_features",
    "gaussian_statistics",
    "frechet_distance",
    "frechet_distance_from_statistics",
    "reference_statistics",
    "classifier_fid",
    "real_data_floor",
    "as_images",
]

DEFAULT_BATCH = 256  # faster than 1000 on CPU (the activations stay in cache)

_REFERENCE: dict[tuple[Any, ...], tuple[Any, ...]] = {}
_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------------
# Running the classifier


def _resolve(classifier: nn.Module | None) -> nn.Module:
    if classifier is not None:
        return classifier
    from fundiff.classifier import load_classifier

    return load_classifier()


def as_images(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(N, 1, 28, 28) float32 in [0, 1] from float images (clamped) or uint8 images (/255)."""
    x = torch.as_tensor(images)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"expected MNIST-shaped images (N, 1, 28, 28) or (N, 28, 28), got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return to_float(x[:, 0])
    if not x.is_floating_point():
        raise ValueError(f"expected float or uint8 images, got {x.dtype}")
    return x.detach().to(torch.float32).clamp(0.0, 1.0)


@torch.no_grad()
def _apply(model: nn.Module, images: torch.Tensor | np.ndarray, fn, batch: int) -> torch.Tensor:
    x = as_images(images)
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        outs = [fn(x[i : i + batch].to(device)).cpu() for i in range(0, len(x), batch)]
    finally:
        model.train(was_training)
    if not outs:
        raise ValueError("no images given")
    return torch.cat(outs)


def classifier_predictions(
    images: torch.Tensor | np.ndarray, classifier: nn.Module | None = None, batch: int = DEFAULT_BATCH
) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted classes int64 (N,), class probabilities float32 (N, 10)) of the classifier."""
    model = _resolve(classifier)
    logits = _apply(model, images, model, batch).float()
    probs = logits.softmax(dim=1)
    return logits.argmax(dim=1), probs


def class_accuracy(
    images: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray | int, classifier: nn.Module | None = None
) -> float:
    """Fraction of ``images`` classified as ``labels`` (an (N,) array, or one int for all of them)."""
    preds, _ = classifier_predictions(images, classifier)
    target = torch.as_tensor(labels, dtype=torch.int64)
    if target.dim() == 0:
        target = target.expand(len(preds))
    if target.shape != preds.shape:
        raise ValueError(f"{len(preds)} images but labels of shape {tuple(target.shape)}")
    return float((preds == target).double().mean())


def classifier_features(
    images: torch.Tensor | np.ndarray, classifier: nn.Module | None = None, batch: int = DEFAULT_BATCH
) -> torch.Tensor:
    """The classifier's penultimate activations, float64 (N, F)."""
    model = _resolve(classifier)
    return _apply(model, images, model.features, batch).to(torch.float64)


# --------------------------------------------------------------------------------------------------
# Frechet distance


def _as_features(feats: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    a = feats.detach().cpu().numpy() if isinstance(feats, torch.Tensor) else np.asarray(feats)
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, F) array of features, got shape {a.shape}")
    if a.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples to estimate a covariance, got {a.shape[0]}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return a


def gaussian_statistics(feats: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean (F,), covariance (F, F)) of features (N, F), float64, covariance normalised by N - 1."""
    a = _as_features(feats, "features")
    mu = a.mean(axis=0)
    centered = a - mu
    sigma = centered.T @ centered / (len(a) - 1)
    return mu, sigma


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance_from_statistics(mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray, sigma_b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}) for Gaussians given by mean and covariance."""
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    sigma_a, sigma_b = np.asarray(sigma_a, np.float64), np.asarray(sigma_b, np.float64)
    f = mu_a.shape[0]
    if mu_b.shape != (f,) or sigma_a.shape != (f, f) or sigma_b.shape != (f, f):
        raise ValueError(f"mismatched statistics: {mu_a.shape}, {sigma_a.shape} vs {mu_b.shape}, {sigma_b.shape}")
    root_a = _psd_sqrt(sigma_a)
    m = root_a @ sigma_b @ root_a
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(eig, 0.0, None)).sum())
    diff = mu_a - mu_b
    value = float(diff @ diff) + float(np.trace(sigma_a)) + float(np.trace(sigma_b)) - 2.0 * tr_covmean
    return max(value, 0.0)  # >= 0 exactly; rounding can leave -1e-12


def frechet_distance(feats_a: torch.Tensor | np.ndarray, feats_b: torch.Tensor | np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N_a, F) and (N_b, F); float64."""
    a, b = _as_features(feats_a, "feats_a"), _as_features(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets differ in width: {a.shape[1]} vs {b.shape[1]}")
    return frechet_distance_from_statistics(*gaussian_statistics(a), *gaussian_statistics(b))


# --------------------------------------------------------------------------------------------------
# The protocol: generated images vs the MNIST test split


def _reference(mnist: MNIST, split: str, classifier: nn.Module | None) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    model = _resolve(classifier)
    images, _ = mnist.split(split)
    # The cache holds the model and image tensor themselves, so their ids stay unique while cached.
    key = (id(model), id(images), split)
    with _LOCK:
        hit = _REFERENCE.get(key)
    if hit is not None:
        return hit[2], hit[3], hit[4]
    feats = classifier_features(images, model)
    mu, sigma = gaussian_statistics(feats)
    with _LOCK:
        _REFERENCE[key] = (model, images, feats, mu, sigma)
    return feats, mu, sigma


def reference_statistics(mnist: MNIST, split: str = "test", classifier: nn.Module | None = None) -> torch.Tensor:
    """Classifier features float64 (N, F) of every image of ``split`` (default: the 10,000 test images); cached."""
    return _reference(mnist, split, classifier)[0]


def clear_cache() -> None:
    """Forget cached reference features."""
    with _LOCK:
        _REFERENCE.clear()


def classifier_fid(images: torch.Tensor | np.ndarray, mnist: MNIST, classifier: nn.Module | None = None) -> float:
    """Classifier-FID of ``images`` (N >= 2) against all MNIST test images; compare at equal N only."""
    _, mu_ref, sigma_ref = _reference(mnist, "test", classifier)
    mu, sigma = gaussian_statistics(classifier_features(images, classifier))
    return frechet_distance_from_statistics(mu, sigma, mu_ref, sigma_ref)


def check_per_class(n: int, flag: str) -> int:
    """Images per digit for a measurement: 1..MAX_PER_CLASS, so that its real-data floor can be drawn; else one line."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_PER_CLASS:
        raise FundiffError(f"{flag} must be a whole number in 1..{MAX_PER_CLASS} (the real-data floor draws 10 x that "
                           f"many of MNIST's 60,000 training images), got {n!r}")
    return n


def real_data_floor(mnist: MNIST, n: int, seed: int = 0, classifier: nn.Module | None = None) -> float:
    """Classifier-FID of ``n`` real training images (seeded draw) against the test split.

    What a perfect generator scores with ``n`` samples: the reference point for :func:`classifier_fid`.
    """
    total = len(mnist.train_images)
    if not 2 <= n <= total:
        raise FundiffError(f"the real-data floor needs 2..{total:,} images (MNIST's training set), got {n:,}")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(total, generator=gen)[:n]
    return classifier_fid(to_float(mnist.train_images[idx]), mnist, classifier)


def wilson_interval(share: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion ``share`` measured on ``n`` trials (95% for z = 1.96):
    centre (p + z^2/2n) / (1 + z^2/n), half-width z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n)."""
    if n < 1:
        raise ValueError("wilson_interval needs n >= 1")
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((share * (1 - share) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def pooled_proportion(counts: Any) -> dict[str, Any]:
    """Successes over several measurements of one proportion, given as (k_i, n_i) pairs: {"count": sum k, "n": sum n,
    "share": k / n, "wilson95": its Wilson 95% interval} (shares to 4 places); {"count": 0, "n": 0} when n is 0."""
    pairs = [(int(k), int(n)) for k, n in counts]
    k, n = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
    if not n:
        return {"count": 0, "n": 0}
    low, high = wilson_interval(k / n, n)
    return {"count": k, "n": n, "share": round(k / n, 4), "wilson95": [round(low, 4), round(high, 4)]}

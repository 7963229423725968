"""How fundiff's shipped MNIST classifiers read an illusion: both readings of an anagram or a hybrid, and best-of-N.

An anagram's reading i is ``views[i].view(image)``, meant to show prompt i.  A hybrid is read twice: its
low-pass (the decomposition's own Gaussian, what one sees from afar) should show prompt 1, and the
positive part of its high-pass stretched to [0, 1] (the strokes one sees up close) prompt 2.  Anagrams are read
by the shipped classifier, low/high hybrids by the shipped hybrid reader (:func:`hybrid_reader`): the classifier
was trained on clean digits, and it reads only 32% of real hybrids of test digits both ways, the hybrid reader 97%
(``bench/hybrid_reader.py``); the motion hybrid, which the reader was not trained on, stays with the classifier.
An image
"reads right both ways" when the classifier's top class is the prompt's digit in every reading; its joint
confidence is the product of the classifier's probabilities of those digits.  ``bench/illusions.py``
measures rates with the same readings; :func:`best_of` keeps, of each group of N candidates, the one that
reads right both ways with the highest joint confidence (or the most confident one if none does).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from fundiff.errors import FundiffError


def digit_labels(prompts: Sequence[str], what: str = "best_of", backend: str = "mnist") -> list[int]:
    """The digit each prompt names, for ``what`` (best-of or a measurement) to read with the shipped MNIST
    classifier; a one-line error on another backend or for a prompt that names no digit."""
    from fundiff.prompts import parse_digit_prompt

    if backend != "mnist":
        raise FundiffError(f"{what} reads each image with the shipped MNIST classifier: it needs the MNIST model, "
                           f"not {backend}")
    labels = [parse_digit_prompt(p) for p in prompts]
    if any(label is None for label in labels):
        raise FundiffError(f"{what} reads each view with the MNIST classifier: every prompt must name a digit, got "
                           f"{list(prompts)!r}")
    return labels


def anagram_readings(samples: torch.Tensor, views: Sequence) -> list[torch.Tensor]:
    """The image under each view, (N, 1, 28, 28) in [-1, 1]."""
    return [v.view(samples) for v in views]


def check_readable(decomposition) -> None:
    """A one-line error unless the decomposition has two components (far and close), as the readings need."""
    if len(decomposition.names) != 2:
        raise FundiffError(f"a hybrid is read from afar and up close: that needs two components, and {decomposition.name} "
                           f"has {len(decomposition.names)} ({', '.join(decomposition.names)})")


def reads_with_hybrid_reader(decomposition) -> bool:
    """Whether a hybrid of this decomposition is read by the shipped hybrid reader: only the low/high ("hybrid")
    decomposition it was trained on; another (motion) is read by the shipped classifier (module doc)."""
    return decomposition.name == "hybrid"


def hybrid_reader(decomposition) -> torch.nn.Module | None:
    """The classifier a hybrid's readings are read with: the shipped hybrid reader, or None (the shipped classifier)
    where :func:`reads_with_hybrid_reader` says so."""
    from fundiff.classifier import load_hybrid_reader

    return load_hybrid_reader() if reads_with_hybrid_reader(decomposition) else None


def hybrid_reader_name(decomposition, with_file: bool = True) -> str:
    """Who reads this decomposition's hybrids, as a record (``with_file``) or a caption names it."""
    if reads_with_hybrid_reader(decomposition):
        return "the shipped hybrid reader" + (" (fundiff/assets/mnist_hybrid_reader.safetensors)" if with_file else "")
    return "the shipped classifier"


def readable_digits(pipe, prompts: Sequence[str]) -> list[int] | None:
    """The prompts' digits when the classifier can read this illusion (the MNIST backend, a digit per prompt),
    else None."""
    from fundiff.prompts import parse_digit_prompt

    if pipe.denoiser.name != "mnist":
        return None
    try:
        labels = [parse_digit_prompt(p) for p in prompts]
    except FundiffError:
        return None
    return None if any(label is None for label in labels) else labels


def hybrid_readable(pipe, prompts: Sequence[str], decomposition, reference: Any = None) -> bool:
    """Whether a classifier can read this hybrid's shown images: digit prompts on MNIST (:func:`readable_digits`), made
    from the prompts alone, and two components (from afar, up close)."""
    return reference is None and len(decomposition.names) == 2 and readable_digits(pipe, prompts) is not None


def hybrid_readings(samples: torch.Tensor, decomposition) -> list[torch.Tensor]:
    """From afar (the low-pass) and up close (the high-pass's positive part, stretched to [-1, 1]); a decomposition
    of two components (hybrid, motion), since a reading is a digit seen from afar or up close."""
    check_readable(decomposition)
    low, high = decomposition.components(samples)
    close = high.clamp(min=0)
    close = close / close.flatten(1).amax(1).clamp(min=1e-6).view(-1, 1, 1, 1) * 2 - 1
    return [low, close]


@torch.no_grad()
def reading_probabilities(reading: torch.Tensor, classifier: torch.nn.Module | None = None) -> torch.Tensor:
    """The shipped classifier's (or ``classifier``'s) class probabilities (N, 10) for one reading (N, 1, 28, 28) in
    [-1, 1]."""
    from fundiff.classifier import load_classifier

    return (classifier or load_classifier())(((reading.float().cpu().clamp(-1, 1) + 1) / 2)).softmax(1)


def reading_scores(readings: Sequence[torch.Tensor], labels: Sequence[int],
                   classifier: torch.nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: whether every reading's top class is its label, and the product of the labels' probabilities
    (read by the shipped classifier, or by ``classifier``)."""
    right, joint = None, None
    for reading, label in zip(readings, labels):
        probs = reading_probabilities(reading, classifier)
        ok, p = probs.argmax(1) == label, probs[:, label]
        right = ok if right is None else right & ok
        joint = p if joint is None else joint * p
    return right, joint


def best_of(right: torch.Tensor, joint: torch.Tensor, n: int) -> torch.Tensor:
    """Index of the kept candidate in each consecutive group of ``n``: right both ways first, then most confident."""
    key = (right.float() * 2 + joint).view(-1, n)   # joint <= 1, so any right candidate beats every wrong one
    return key.argmax(1) + torch.arange(key.shape[0]) * n

"""Prompts for the MNIST models: "7", "seven", "a 7", "the digit seven" -> class 7; "" -> unconditional."""

from __future__ import annotations

import re

from fundiff.errors import FundiffError

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_FILLER = {"a", "an", "the", "digit", "number", "of", "handwritten", "photo", "picture", "image"}


def parse_digit_prompt(prompt: str) -> int | None:
    """The class (0-9) a prompt names, or None for the empty (unconditional) prompt."""
    words = [w for w in re.findall(r"[a-z0-9]+", prompt.lower()) if w not in _FILLER]
    if not prompt.strip():
        return None
    if len(words) == 1 and not re.search(r"[-\u2212]\s*\d", prompt):   # "-1" is not the digit 1
        w = words[0]
        if w.isdigit() and len(w) == 1:
            return int(w)
        if w in DIGIT_WORDS:
            return DIGIT_WORDS.index(w)
    raise FundiffError(
        f"unknown class prompt {prompt!r}: the MNIST model knows '0'..'9', 'seven', 'a 7', or '' for unconditional"
    )

"""fundiff.prompts: MNIST's digit prompts."""

from __future__ import annotations

import pytest

from fundiff.errors import FundiffError
from fundiff.prompts import parse_digit_prompt


@pytest.mark.parametrize("prompt,expected", [("7", 7), ("seven", 7), ("a 7", 7), ("the digit Seven", 7), ("0", 0),
                                             ("", None), ("  ", None), ("nine", 9)])
def test_prompts(prompt, expected):
    assert parse_digit_prompt(prompt) == expected


@pytest.mark.parametrize("prompt", ["cat", "17", "7 8", "a photo of a dog"])
def test_unknown_prompts(prompt):
    with pytest.raises(FundiffError, match="unknown class prompt"):
        parse_digit_prompt(prompt)

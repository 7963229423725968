"""The prompts and pairs the report uses, per backend; DeepFloyd mode needs every one of them in its embeddings
(``fundiff embed --report-prompts`` adds them all), since the report loads no text encoder."""

from __future__ import annotations

PHOTO = "a high quality photo"   # the study's weak prompt for DeepFloyd
DEEPFLOYD_PROMPTS_3 = ["a rocket ship", "a photo of a dog", "an oil painting of an old man"]   # 1.5-1.6 and stage II
DEEPFLOYD_EDIT = "a rocket ship"                                                             # text-conditional 1.7.3
DEEPFLOYD_ANAGRAMS = [("an oil painting of an old man", "an oil painting of people around a campfire", "flip"),
                      ("an oil painting of a snowy mountain village", "an oil painting of a horse", "flip"),
                      ("a lithograph of a waterfall", "a lithograph of a skull", "rotate_cw")]
DEEPFLOYD_HYBRIDS = [("a lithograph of a skull", "a lithograph of waterfalls", "hybrid"),
                     ("a watercolor of a panda", "a watercolor of a rocky mountain", "hybrid"),
                     ("a photo of an old man", "a photo of a dog", "hybrid")]
MNIST_ANAGRAMS = [("6", "9", "flip"), ("2", "5", "flip"), ("1", "7", "flip"), ("7", "1", "rotate_cw"),
                  ("3", "8", "rotate_cw"), ("1", "0", "negate")]
MNIST_HYBRIDS = [("1", "7", "hybrid"), ("0", "1", "hybrid"), ("1", "7", "motion")]


def deepfloyd_prompts() -> list[str]:
    """Every prompt a DeepFloyd-mode report encodes, with "" (the null prompt) first."""
    pairs = [p for a, b, _ in DEEPFLOYD_ANAGRAMS + DEEPFLOYD_HYBRIDS for p in (a, b)]
    return list(dict.fromkeys(["", PHOTO, *DEEPFLOYD_PROMPTS_3, DEEPFLOYD_EDIT, *pairs]))

"""The prompts and pairs the report uses, per backend; DeepFloyd mode needs every one of them in its embeddings
(``fundiff embed --report-prompts`` adds them all), since the report loads no text encoder."""

from __future__ import annotations

from fundiff.studies import illusions as _illusions

PHOTO = "a high quality photo"   # the study's weak prompt for DeepFloyd
DEEPFLOYD_PROMPTS_3 = ["a rocket ship", "a photo of a dog", "an oil painting of an old man"]   # 1.5-1.6 and stage II
DEEPFLOYD_EDIT = "a rocket ship"                                                             # text-conditional 1.7.3
DEEPFLOYD_ANAGRAMS = [("an oil painting of an old man", "an oil painting of people around a campfire", "flip"),
                      ("an oil painting of a snowy mountain village", "an oil painting of a horse", "flip"),
                      ("a lithograph of a waterfall", "a lithograph of a skull", "rotate_cw")]
DEEPFLOYD_HYBRIDS = [("a lithograph of a skull", "a lithograph of waterfalls", "hybrid"),
                     ("a watercolor of a panda", "a watercolor of a rocky mountain", "hybrid"),
                     ("a photo of an old man", "a photo of a dog", "hybrid")]
MNIST_ANAGRAMS, MNIST_HYBRIDS = _illusions.MNIST_ANAGRAMS, _illusions.MNIST_HYBRIDS   # the web UI shows them too
# Part A's own inputs (1.7-1.7.3 ask for the test image plus two of your own): bundled sample names
# (fundiff.engine.inputs.sample_names). SDEdit: (input, prompt, folder); a web photo and hand-drawn images (1.7.1).
MNIST_SDEDIT = [("digit-7", "", "sdedit"), ("chelsea", "", "sdedit-photo"), ("hand-2", "", "sdedit-hand-2"),
                ("hand-4", "", "sdedit-hand-4")]
MNIST_SDEDIT_TEXT = [("digit-7", "9"), ("hand-2", "3"), ("hand-5", "6")]   # text-conditional (1.7.3)
MNIST_INPAINT = [("digit-7", "30:64,0:64"), ("hand-2", "0:30,0:64"), ("hand-5", "0:64,32:64")]   # rows, columns at 64 px
DEEPFLOYD_SDEDIT = [("astronaut", PHOTO, "sdedit"), ("chelsea", PHOTO, "sdedit-photo"), ("rocket", PHOTO, "sdedit-photo-2"),
                    ("sketch-house", PHOTO, "sdedit-sketch"), ("sketch-smiley", PHOTO, "sdedit-sketch-2")]
DEEPFLOYD_SDEDIT_TEXT = [("astronaut", DEEPFLOYD_EDIT), ("chelsea", DEEPFLOYD_EDIT), ("coffee", DEEPFLOYD_EDIT)]
DEEPFLOYD_INPAINT = [("astronaut", "2:20,24:42"), ("chelsea", "8:30,16:48"), ("coffee", "30:60,10:54")]


def deepfloyd_prompts() -> list[str]:
    """Every prompt a DeepFloyd-mode report encodes, with "" (the null prompt) first."""
    pairs = [p for a, b, _ in DEEPFLOYD_ANAGRAMS + DEEPFLOYD_HYBRIDS for p in (a, b)]
    return list(dict.fromkeys(["", PHOTO, *DEEPFLOYD_PROMPTS_3, DEEPFLOYD_EDIT, *pairs]))

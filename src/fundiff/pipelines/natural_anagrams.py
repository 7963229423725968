"""Natural anagrams: how many real digits already are an anagram of a pair, the measured predictor of how often an
MNIST anagram works.

Under a view v, N(A/B) counts the 60 000 MNIST training digits x that the shipped classifier reads as A while it
reads v(x) as B; for a view that is its own inverse (flip, mirror, rotate_180) it also counts those read B upright
and A under v, whose views are A/B anagrams.  The table ships in ``fundiff/assets/mnist_natural_anagrams.json``
(made by ``python bench/natural_anagrams.py --save-table``).  Measured over every ordered pair at the anagram
defaults, the pairs the data holds rarely are the ones that fail: under the flip, every pair with N >= 100 but one
reads right both ways in 50% or more of its images, against about half of the pairs below (docs/illusions.md,
"What predicts a pair").  So fundiff says when a pair is rare, and names a view under which it is not.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from typing import Any, Sequence

NATURAL_TABLE = importlib.resources.files("fundiff") / "assets" / "mnist_natural_anagrams.json"
RARE = 100   # N below this: the pairs that fail (docs/illusions.md)


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    return json.loads(NATURAL_TABLE.read_text())


def natural_count(view: str, a: int, b: int) -> int | None:
    """N(a/b) under ``view`` (a view's name, e.g. "flip"), or None when the table does not have it (another view,
    a == b)."""
    counts = _table()["views"].get(view)
    return None if counts is None or f"{a}/{b}" not in counts else int(counts[f"{a}/{b}"])


def natural_record(digits: Sequence[int] | None, views: Sequence[str]) -> dict[str, Any]:
    """``{"natural_anagrams": N}`` for an anagram of two digits (``readings.readable_digits``: MNIST, a digit per
    prompt) whose first view is the identity and whose second is in the table; else ``{}``."""
    names = [str(v).split(":")[0].strip() for v in views]   # a view's name, from a spec or a name
    if digits is None or len(digits) != 2 or len(names) != 2 or names[0] != "identity" or ":" in str(views[1]):
        return {}
    n = natural_count(names[1], *digits)
    return {} if n is None else {"natural_anagrams": n}


def rare_pair_note(digits: Sequence[int] | None, views: Sequence[str]) -> str:
    """One sentence when the pair is rare under its view (N < RARE), naming the table's view under which it is
    commonest when that one is not rare; '' otherwise."""
    n = natural_record(digits, views).get("natural_anagrams")
    if n is None or n >= RARE:
        return ""
    (a, b), view, table = digits, str(views[1]).strip(), _table()
    best = max(table["views"], key=lambda v: (table["views"][v].get(f"{a}/{b}", -1), v))
    other = table["views"][best].get(f"{a}/{b}", 0)
    return (f"A rare pair: {n:,} of the {table['images']:,} MNIST training digits read {a} upright and {b} under "
            f"{view}; pairs under {RARE} read right both ways in 39-50% of their images on average at the defaults, "
            f"the others in 78-86% (docs/illusions.md)." + (f" Under {best}, {other:,} do." if best != view and
                                                          other >= RARE else ""))

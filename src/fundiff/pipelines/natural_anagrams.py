"""Natural anagrams: how many real digits already are an anagram of a pair, the measured predictor of how often an
MNIST anagram works.

Under a view v, N(A/B) counts the 60 000 MNIST training digits x that the shipped classifier reads as A while it
reads v(x) as B, plus the digits y it reads as B while it reads v^-1(y) as A (v^-1(y) is then such an x).  The table
ships in ``fundiff/assets/mnist_natural_anagrams.json`` (``python bench/natural_anagrams.py --save-table``), with each
pair's rate measured at the anagram defaults (``bench/illusions.py``, every ordered pair, 20 seeds a pair) under the
views it has: flip, mirror, rotate_cw and rotate_180.  Pairs the data holds rarely (N < ``RARE``) read right both
ways about half as often as the others (docs/illusions.md, "What predicts a pair").  So when a pair measured under
50%, fundiff says so, says whether it is rare, and names a view under which it measured better.

Under a view that is its own inverse (flip, mirror, rotate_180) A/B and B/A are one illusion, each the view of the
other (``engine.views.is_involution``; bench/anagram_orders.py): N(A/B) = N(B/A), and a pair's rate is the two
orders' measurements pooled (40 images, not 20; the table's rates are at the defaults, which choose by prompt), so
both orders get the same note.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from typing import Any, Sequence

from fundiff.metrics import pooled_proportion

NATURAL_TABLE = importlib.resources.files("fundiff") / "assets" / "mnist_natural_anagrams.json"
RARE = 100   # N below this: a rare pair (docs/illusions.md)


@functools.lru_cache(maxsize=1)
def natural_table() -> dict[str, Any]:
    """The shipped table: ``views[v]`` holds ``natural`` {pair: N}, ``measured`` {pair: {both_rate, n}} and the mean
    rates of its rare and common pairs."""
    return json.loads(NATURAL_TABLE.read_text())


def natural_count(view: str, a: int, b: int) -> int | None:
    """N(a/b) under ``view`` (a view's name, e.g. "flip"), or None when the table does not have it."""
    entry = natural_table()["views"].get(view)
    return None if entry is None or f"{a}/{b}" not in entry["natural"] else int(entry["natural"][f"{a}/{b}"])


VIEWED = {"flip": "flipped", "mirror": "mirrored", "rotate_180": "turned 180 degrees"}   # what the note calls v(x)


def table_rate(view: str, a: int, b: int) -> dict[str, Any] | None:
    """The table's measured rate of a/b under ``view``: {both_right, n, both_rate}, both orders pooled when the view
    is its own inverse (then also "orders": ["a/b", "b/a"]); None when the table has not measured it."""
    entry = natural_table()["views"].get(view)
    if entry is None:
        return None
    pairs = [f"{a}/{b}", f"{b}/{a}"] if entry["involution"] else [f"{a}/{b}"]
    rows = [entry["measured"][p] for p in pairs if p in entry["measured"]]
    if not rows:
        return None
    total = pooled_proportion((round(r["both_rate"] * r["n"]), r["n"]) for r in rows)
    return {"both_right": total["count"], "n": total["n"], "both_rate": total["share"],
            **({"orders": pairs} if len(rows) == 2 else {})}


def percent(share: float) -> str:
    """22.5%, 45%: a share of 40 images to the half percent it is, without a rounding to even."""
    return f"{share * 100:.1f}".rstrip("0").rstrip(".") + "%"


def natural_entry(digits: Sequence[int] | None, views: Sequence[Any]) -> dict[str, Any] | None:
    """For an anagram of two digits (``readings.readable_digits``: MNIST, a digit per prompt) whose views are the
    identity and one the table has: {"pair", "view", "count": N, "measured": ``table_rate``'s (with "orders" when
    both orders are pooled)}; else None."""
    names = [getattr(v, "name", str(v).split(":")[0].strip()) for v in views]   # the table's views take no arguments
    if digits is None or len(digits) != 2 or len(names) != 2 or names[0] != "identity":
        return None
    count = natural_count(names[1], *digits)
    if count is None:
        return None
    return {"pair": f"{digits[0]}/{digits[1]}", "view": names[1], "count": count,
            "measured": table_rate(names[1], *digits)}


def natural_note(entry: dict[str, Any] | None) -> str:
    """One sentence when the pair measured under 50% both right under its view: the rate, whether the data holds
    the pair rarely, and the table's view under which it measured best, when that one reached 50%; '' otherwise."""
    measured = None if entry is None else entry.get("measured")
    if measured is None or measured["both_rate"] >= 0.5:
        return ""
    table, pair, view = natural_table(), entry["pair"], entry["view"]
    a, b = pair.split("/")
    rated = {v: table_rate(v, int(a), int(b)) for v in table["views"]}
    rates = {v: r["both_rate"] for v, r in rated.items() if r is not None}
    best = max(rates, key=lambda v: (rates[v], v))
    count = "none" if entry["count"] == 0 else f"only {entry['count']:,}"
    inverse = view if table["views"][view]["involution"] else f"{view}'s inverse"
    verb = "reads" if entry["count"] == 1 else "read"
    rare = (f": {count} of the {table['images']:,} MNIST training digits (as they are, or under {inverse}) {verb} "
            f"{a} upright and {b} under {view}, a rare pair (docs/illusions.md)" if entry["count"] < RARE else "")
    orders = (f"{b}/{a}'s images, {VIEWED.get(view, 'under ' + view)}, are {pair}'s, so both orders count"
              if "orders" in measured else "")
    where = "" if rare else "docs/illusions.md"
    aside = f" ({'; '.join(x for x in (orders, where) if x)})" if orders or where else ""
    return (f"Measured at the defaults, {pair} under {view} read right both ways in {measured['both_right']} of "
            f"{measured['n']} images, {percent(measured['both_rate'])}{aside}{rare}."
            + (f" Under {best} it read {percent(rates[best])}." if best != view and rates[best] >= 0.5 else ""))

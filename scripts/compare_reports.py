"""Compare two report.json files' numbers, ignoring timings and run folders: `python scripts/compare_reports.py A B`.

Sections are matched by their key; only sections both files have are compared (the others are listed).
Prints every number of A that B changes or lacks (path, A, B), except keys that measure time, and counts B's new
numbers; exit 1 if any of A's differ.
Used to check that a refactoring leaves `fundiff report --quick --seed 0` unchanged.
"""

import json
import sys

TIME_KEYS = ("run_dir", "seconds", "seconds_per_image", "train_seconds", "images_per_second", "elapsed", "wall")


def leaves(x, path=""):
    if isinstance(x, dict):
        for k, v in x.items():
            if any(t in k for t in TIME_KEYS):
                continue
            yield from leaves(v, f"{path}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from leaves(v, f"{path}[{i}]")
    else:
        yield path, x


def numbers(path: str) -> tuple[dict, set]:
    sections = {s["key"]: s["numbers"] for s in json.load(open(path))["sections"]}
    return sections, set(sections)


def main(a: str, b: str) -> int:
    sa, ka = numbers(a)
    sb, kb = numbers(b)
    for only, name in ((ka - kb, a), (kb - ka, b)):
        if only:
            print(f"only in {name}: {', '.join(sorted(only))}")
    la = dict(leaves({k: sa[k] for k in ka & kb}))
    lb = dict(leaves({k: sb[k] for k in ka & kb}))
    diff = [(k, la[k], lb.get(k, "(missing)")) for k in sorted(la) if la[k] != lb.get(k, "(missing)")]
    added = sorted(set(lb) - set(la))
    for k, x, y in diff:
        print(f"{k}: {x!r} != {y!r}")
    print(f"{len(la)} numbers compared, {len(diff)} differ; {len(added)} new in {b}"
          + (f" (e.g. {', '.join(added[:3])})" if added else ""))
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))

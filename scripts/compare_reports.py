"""Compare two report.json files' numbers, ignoring timings and run folders: `python scripts/compare_reports.py A B`.

Prints every differing leaf (path, A, B) except keys that measure time; exit 1 if any differ.
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


def main(a: str, b: str) -> int:
    la = dict(leaves(json.load(open(a))["sections"]))
    lb = dict(leaves(json.load(open(b))["sections"]))
    diff = [(k, la.get(k), lb.get(k)) for k in sorted(set(la) | set(lb)) if la.get(k) != lb.get(k)
            and not ("claims" in k and isinstance(la.get(k), str) and " s " in la.get(k))]  # claims quoting a timing
    for k, x, y in diff:
        print(f"{k}: {x!r} != {y!r}")
    print(f"{len(la)} numbers compared, {len(diff)} differ")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))

"""Draw the bundled "hand-drawn" digits (src/fundiff/assets/samples/hand-*.png), as a mouse drawing would be.

Each digit is a few pen strokes (polylines through control points, the way the study's drawing widget
records them), with a seeded jitter of the points and a round pen 26 px wide (about MNIST's stroke at 28 px), white on black, 256 x 256.
Run from the repository root: python scripts/draw_hand_digits.py
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parents[1] / "src" / "fundiff" / "assets" / "samples"

# strokes in a 0..100 box (x right, y down)
DIGITS = {
    "2": [[(28, 30), (38, 18), (55, 15), (70, 22), (74, 36), (66, 52), (48, 68), (30, 84), (50, 83), (76, 84)]],
    "4": [[(60, 14), (44, 38), (26, 62), (52, 62), (80, 61)], [(62, 36), (62, 60), (61, 88)]],
    "5": [[(72, 16), (40, 16), (36, 46), (52, 42), (68, 48), (74, 62), (66, 78), (48, 84), (30, 76)]],
}


def _smooth(points: list[tuple[float, float]], n: int = 8) -> list[tuple[float, float]]:
    """Catmull-Rom through the control points: a hand's curve, not a polygon."""
    pts = [points[0], *points, points[-1]]
    out = []
    for i in range(1, len(pts) - 2):
        p0, p1, p2, p3 = pts[i - 1], pts[i], pts[i + 1], pts[i + 2]
        for k in range(n):
            t = k / n
            out.append(tuple(0.5 * (2 * b + (-a + c) * t + (2 * a - 5 * b + 4 * c - d) * t * t + (-a + 3 * b - 3 * c + d) * t ** 3)
                             for a, b, c, d in zip(p0, p1, p2, p3)))
    out.append(points[-1])
    return out


def draw(digit: str, seed: int) -> Image.Image:
    rng = random.Random(seed)
    size, pen = 256, 26
    im = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(im)
    for stroke in DIGITS[digit]:
        jittered = [(x + rng.uniform(-2.5, 2.5), y + rng.uniform(-2.5, 2.5)) for x, y in stroke]
        line = [(x * size / 100, y * size / 100) for x, y in _smooth(jittered)]
        d.line(line, fill=255, width=pen, joint="curve")
        for x, y in (line[0], line[-1]):
            d.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=255)
    return im


def main() -> None:
    for k, digit in enumerate(DIGITS):
        draw(digit, seed=k).save(OUT / f"hand-{digit}.png", optimize=True)
        print(OUT / f"hand-{digit}.png")


if __name__ == "__main__":
    main()

"""A 4x4 jigsaw whose pieces are moved and turned (see the package docstring for the construction)."""

from __future__ import annotations

import numpy as np
import torch

from fundiff.engine import animation as anim
from fundiff.engine.views.base import PermutationView, _generator, _hw, _require_square, _rot_perm, _upsample, reference_grid
from fundiff.errors import FundiffError


class JigsawView(PermutationView):
    """A 4x4 jigsaw puzzle: pieces with tabs moved and turned by a seeded permutation (see module doc)."""

    name = "jigsaw"
    params = (("seed", int),)
    pieces_per_side = 4
    tab_offset, tab_radius, neck_half_width = 0.22, 0.17, 0.09

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = int(seed)
        gen = _generator(self.seed)
        self._tab_bits = torch.randint(0, 2, (6,), generator=gen).tolist()
        while True:
            self._orbit_perms = [torch.randperm(4, generator=gen).tolist() for _ in range(4)]
            if any(p != [0, 1, 2, 3] for p in self._orbit_perms):
                break
        self._layout: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def labels(self, g: int) -> torch.Tensor:
        """(g, g) long: the piece (0..15, row-major cell of its body) of every cell of a g x g grid."""
        n = self.pieces_per_side
        if g % n:
            raise FundiffError(f"view jigsaw needs a grid divisible by {n}, got {g}")
        s = g // n
        i = np.arange(g)
        u = (i + 0.5 - g / 2)[None, :]  # x of pixel centres, board centre at 0
        v = (i + 0.5 - g / 2)[:, None]  # y
        lab = (i[:, None] // s) * n + (i[None, :] // s)
        lab = np.broadcast_to(lab, (g, g)).copy()
        for owner, (cx, cy), (x0, x1, y0, y1) in self._tabs(g):
            inside = ((u - cx) ** 2 + (v - cy) ** 2 <= (self.tab_radius * s) ** 2)
            inside |= (u >= x0) & (u <= x1) & (v >= y0) & (v <= y1)
            lab[inside] = owner
        return torch.from_numpy(lab).long()

    def _tabs(self, g: int):
        """(owner cell, knob centre, neck box) of every tab, built orbit by orbit under the quarter turn."""
        n = self.pieces_per_side
        s = g / n
        half = g / 2
        d, hw = self.tab_offset * s, self.neck_half_width * s

        def turn_cell(rc):  # the cell the quarter turn (x, y) -> (-y, x) takes rc to
            r, c = rc
            return (c, n - 1 - r)

        def turn_tab(tab):
            owner, (cx, cy), (x0, x1, y0, y1) = tab
            return turn_cell(owner), (-cy, cx), (-y1, -y0, x0, x1)

        edges = [((r, c), (r, c + 1)) for r in range(n) for c in range(n - 1)]
        edges += [((r, c), (r + 1, c)) for r in range(n - 1) for c in range(n)]
        done: set[frozenset] = set()
        tabs = []
        orbit = 0
        for a, b in edges:
            if frozenset((a, b)) in done:
                continue
            if self._tab_bits[orbit % len(self._tab_bits)]:
                a, b = b, a  # the tab belongs to a and protrudes into b
            orbit += 1
            ny, nx = b[0] - a[0], b[1] - a[1]
            mx = -half + (a[1] + 0.5) * s + nx * s / 2
            my = -half + (a[0] + 0.5) * s + ny * s / 2
            cx, cy = mx + nx * d, my + ny * d
            if nx:
                box = (min(mx, cx), max(mx, cx), my - hw, my + hw)
            else:
                box = (mx - hw, mx + hw, min(my, cy), max(my, cy))
            tab = (a, (cx, cy), box)
            for _ in range(4):
                owner, centre, box = tab
                done.add(frozenset((a, b)))
                tabs.append((owner[0] * n + owner[1], centre, box))
                a, b = turn_cell(a), turn_cell(b)
                tab = turn_tab(tab)
        return tabs

    def layout(self, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(perm, slot piece of each output pixel, quarter turns of each output pixel), flattened."""
        if (h, w) in self._layout:
            return self._layout[(h, w)]
        _require_square(self.name, h, w)
        b, g, _ = reference_grid(self.name, h, w)
        lab_g = self.labels(g)
        # rho[l]: the piece where piece l lands after one quarter turn rot90(., 1)
        rot_lab = torch.rot90(lab_g, 1, dims=(0, 1))
        rho = torch.full((16,), -1, dtype=torch.long)
        rho[rot_lab.flatten()] = lab_g.flatten()
        if not torch.equal(rho[rot_lab.flatten()], lab_g.flatten()) or (rho < 0).any():
            raise AssertionError("jigsaw cut is not symmetric under the quarter turn")
        turns_of_slot = torch.zeros(16, dtype=torch.long)
        seen: set[int] = set()
        orbit = 0
        for base in range(16):
            if base in seen:
                continue
            members = [base]
            for _ in range(3):
                members.append(int(rho[members[-1]]))
            seen.update(members)
            pi = self._orbit_perms[orbit]
            orbit += 1
            for k, slot in enumerate(members):
                turns_of_slot[slot] = (k - pi[k]) % 4
        slots = _upsample(lab_g, b).flatten()
        turns = turns_of_slot[slots]
        perms = torch.stack([_rot_perm(q, h) for q in range(4)])
        perm = perms[turns, torch.arange(h * w)]
        self._layout[(h, w)] = (perm, slots, turns)
        return self._layout[(h, w)]

    def _perm(self, h: int, w: int) -> torch.Tensor:
        return self.layout(h, w)[0]

    def frame(self, image: torch.Tensor, t: float) -> torch.Tensor:
        h, w = _hw(image, self.name)
        perm, slots, turns = self.layout(h, w)
        return anim.pieces_frame(image, perm, slots, turns, t)

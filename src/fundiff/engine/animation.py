"""Animations of visual anagrams: the image at t = 0 turning into its view at t = 1.

Frames live in display space, images (C, H, W) in [0, 1]; a view v acting on the engine's [-1, 1]
images acts on a display image u as u -> (v(2u - 1) + 1) / 2 (the same map for permutations,
u -> 1 - u for negation).  ``view_frames`` samples t_k = k / (n - 1) through the ease-in-out
e(t) = (1 - cos(pi t)) / 2 and asks the view for ``view.frame(image, e(t_k))``.

Helpers the views share (positive angles turn counter-clockwise on screen, like ``torch.rot90``):

* ``rotation_frame``     the image turned about its centre (bilinear ``grid_sample``; exact rot90 at
                         multiples of 90 degrees), corners filled with the background;
* ``squash_frame``       a vertical squash y -> y / cos(pi t): upright, a line at t = 1/2, then
                         mirrored; exactly the upside-down flip at t = 1;
* ``crossfade_frame``    (1 - t) a + t b;
* ``permutation_frame``  every pixel travels on a straight line from its source to its destination
                         and is splatted bilinearly; exactly the image at t = 0 and the view at t = 1;
* ``pieces_frame``       rigid pieces: each piece's centroid travels on a line while the piece turns
                         by t q 90 degrees about it (the jigsaw);
* ``roll_columns_frame`` each column rolled (with wrap-around) by t times its shift (the skew).

``save_animation`` writes the frames as a looping GIF (optionally there and back), atomically.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from fundiff.errors import FundiffError
from fundiff.images import tile
from fundiff.io import write_atomic

BACKGROUND = 0.0  # value of uncovered pixels in moving frames (black, which suits MNIST digits)


def ease_in_out(t: float) -> float:
    """(1 - cos(pi t)) / 2: 0 at 0, 1 at 1, flat at both ends."""
    if t <= 0:
        return 0.0
    if t >= 1:
        return 1.0
    return 0.5 - 0.5 * math.cos(math.pi * t)


MAX_FRAMES = 240   # 10 s at 24 frames a second; every frame is held in memory until the file is written


def check_frames(num_frames: int) -> int:
    """A transition's frame count: a whole number in 2..MAX_FRAMES, else one line."""
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or not 2 <= num_frames <= MAX_FRAMES:
        raise FundiffError(f"an animation needs 2..{MAX_FRAMES} frames, got {num_frames!r}")
    return num_frames


def view_frames(image: torch.Tensor, view, num_frames: int = 24) -> list[torch.Tensor]:
    """``num_frames`` eased frames from ``image`` (C, H, W) in [0, 1] (first) to its view (last)."""
    check_frames(num_frames)
    if image.ndim != 3:
        raise FundiffError(f"view_frames needs one image (C, H, W), got shape {tuple(image.shape)}")
    return [view.frame(image, ease_in_out(k / (num_frames - 1))) for k in range(num_frames)]


def _rot_sincos(angle_degrees: float) -> tuple[float, float]:
    a = math.radians(angle_degrees)
    return math.sin(a), math.cos(a)


def rotation_frame(image: torch.Tensor, angle_degrees: float, fill: float = BACKGROUND) -> torch.Tensor:
    """``image`` (..., H, W) turned counter-clockwise by ``angle_degrees`` about its centre."""
    quarter = angle_degrees / 90.0
    if quarter == round(quarter):
        k = int(round(quarter)) % 4
        if k % 2 == 1 and image.shape[-1] != image.shape[-2]:
            raise FundiffError(f"a quarter turn needs a square image, got {image.shape[-2]}x{image.shape[-1]}")
        return torch.rot90(image, k, dims=(-2, -1)).clone()
    shape = image.shape
    h, w = shape[-2:]
    x = image.reshape(1, -1, h, w) - fill
    s, c = _rot_sincos(angle_degrees)
    # Output point (u, v) (normalised, v down) shows the input at the point turned back by the
    # angle; aspect ratios keep the turn rigid in pixels.
    ar = w / h
    theta = torch.tensor([[[c, -s / ar, 0.0], [s * ar, c, 0.0]]], dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (out + fill).reshape(shape)


def squash_frame(image: torch.Tensor, t: float, fill: float = BACKGROUND, dim: int = -2) -> torch.Tensor:
    """A mirror animated as a squash through a line: scale cos(pi t) along ``dim`` (-2: y, the upside-down flip;
    -1: x, the left-right mirror)."""
    if dim not in (-2, -1):
        raise ValueError(f"squash_frame squashes along dim -2 (y) or -1 (x), not {dim}")
    if t <= 0:
        return image.clone()
    if t >= 1:
        return torch.flip(image, dims=(dim,))
    scale = math.cos(math.pi * t)
    if abs(scale) < 1e-3:
        scale = math.copysign(1e-3, scale)
    shape = image.shape
    h, w = shape[-2:]
    x = image.reshape(1, -1, h, w) - fill
    sx, sy = (1.0, 1.0 / scale) if dim == -2 else (1.0 / scale, 1.0)
    theta = torch.tensor([[[sx, 0.0, 0.0], [0.0, sy, 0.0]]], dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (out + fill).reshape(shape)


def crossfade_frame(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """(1 - t) a + t b, exactly a at t = 0 and b at t = 1."""
    if t <= 0:
        return a.clone()
    if t >= 1:
        return b.clone()
    return (1 - t) * a + t * b


def splat(image: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, fill: float = BACKGROUND) -> torch.Tensor:
    """Forward-warp: pixel i of ``image`` (..., H, W) (flattened order) drawn at (ys[i], xs[i]).

    Bilinear splatting; where the weights w landing on a pixel sum to less than 1 the background
    fills the rest, (sum w v + (1 - sum w) fill), and where they sum to more the values are averaged.
    """
    shape = image.shape
    h, w = shape[-2:]
    vals = image.reshape(-1, h * w)
    ys = ys.to(vals.dtype).flatten()
    xs = xs.to(vals.dtype).flatten()
    y0, x0 = torch.floor(ys), torch.floor(xs)
    fy, fx = ys - y0, xs - x0
    y0, x0 = y0.long(), x0.long()
    acc = torch.zeros_like(vals)
    wsum = torch.zeros(h * w, dtype=vals.dtype)
    for dy, dx, wt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy, xx = y0 + dy, x0 + dx
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w) & (wt > 0)
        idx = (yy * w + xx)[ok]
        acc.index_add_(1, idx, vals[:, ok] * wt[ok])
        wsum.index_add_(0, idx, wt[ok])
    out = (acc + (1 - wsum).clamp(min=0) * fill) / wsum.clamp(min=1)
    return out.reshape(shape)


def _grid_coords(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    j = torch.arange(h * w)
    return (j // w).double(), (j % w).double()


def _gather(image: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """view(x) for a pixel permutation: out.flatten(-2)[j] = x.flatten(-2)[p[j]]."""
    h, w = image.shape[-2:]
    flat = image.reshape(*image.shape[:-2], h * w)
    return flat.index_select(-1, perm.to(image.device)).reshape(image.shape)


def _endpoint(image: torch.Tensor, perm: torch.Tensor, t: float) -> torch.Tensor | None:
    """The exact first (t <= 0) or last (t >= 1) frame of a permutation animation, else None."""
    if t <= 0:
        return image.clone()
    if t >= 1:
        return _gather(image, perm)
    return None


def permutation_frame(image: torch.Tensor, perm: torch.Tensor, t: float, fill: float = BACKGROUND) -> torch.Tensor:
    """Pixels on straight lines from source p[j] to destination j, where view(x)[j] = x[p[j]]."""
    h, w = image.shape[-2:]
    perm = perm.to(torch.long).cpu()
    end = _endpoint(image, perm, t)
    if end is not None:
        return end
    dy, dx = _grid_coords(h, w)
    sy, sx = dy[perm], dx[perm]
    # Output pixel j carries source pixel p[j]; splat in output order, so reorder the values.
    moved = _gather(image, perm)
    return splat(moved, sy + t * (dy - sy), sx + t * (dx - sx), fill)


def pieces_frame(image: torch.Tensor, perm: torch.Tensor, pieces: torch.Tensor, turns: torch.Tensor,
                 t: float, fill: float = BACKGROUND) -> torch.Tensor:
    """Rigid pieces: output pixel j (in piece ``pieces[j]``) comes from p[j] turned by ``turns[j]`` x 90 degrees.

    Each piece's centroid moves on a straight line from its source centroid to its destination
    centroid while the piece turns counter-clockwise by t * turns * 90 degrees about it.
    """
    h, w = image.shape[-2:]
    perm = perm.to(torch.long).cpu()
    end = _endpoint(image, perm, t)
    if end is not None:
        return end
    pieces = pieces.to(torch.long).cpu().flatten()
    dy, dx = _grid_coords(h, w)
    sy, sx = dy[perm], dx[perm]
    n = int(pieces.max()) + 1
    count = torch.zeros(n, dtype=torch.float64).index_add_(0, pieces, torch.ones(h * w, dtype=torch.float64))
    count = count.clamp(min=1)

    def centroid(v: torch.Tensor) -> torch.Tensor:
        return (torch.zeros(n, dtype=torch.float64).index_add_(0, pieces, v) / count)[pieces]

    csy, csx, cdy, cdx = centroid(sy), centroid(sx), centroid(dy), centroid(dx)
    ang = turns.to(torch.float64).cpu().flatten() * (math.pi / 2) * t
    s, c = torch.sin(ang), torch.cos(ang)
    ry, rx = sy - csy, sx - csx
    # counter-clockwise on screen (y points down): (y, x) -> (c y - s x, s y + c x)
    py = csy + t * (cdy - csy) + c * ry - s * rx
    px = csx + t * (cdx - csx) + s * ry + c * rx
    moved = _gather(image, perm)
    return splat(moved, py, px, fill)


def roll_columns_frame(image: torch.Tensor, shifts: torch.Tensor, t: float) -> torch.Tensor:
    """Column i rolled down by t * shifts[i] rows with wrap-around (linear between rows)."""
    shape = image.shape
    h, w = shape[-2:]
    if t <= 0:
        return image.clone()
    d = shifts.to(torch.float64).cpu() * min(t, 1.0)
    src = (torch.arange(h, dtype=torch.float64)[:, None] - d[None, :]).remainder(h)  # (H, W)
    y0 = torch.floor(src)
    frac = (src - y0).to(image.dtype)
    y0 = y0.long() % h
    y1 = (y0 + 1) % h
    cols = torch.arange(w)[None, :].expand(h, w)
    v0 = image[..., y0, cols]
    if t >= 1:
        return v0.clone()
    v1 = image[..., y1, cols]
    return v0 * (1 - frac) + v1 * frac


def save_animation(frames: Sequence[torch.Tensor], path: str | os.PathLike, hold_frames: int = 8,
                   boomerang: bool = True, fps: float = 24.0, min_size: int = 256) -> Path:
    """An animated, looping GIF of ``frames`` ((C, H, W) or (N, C, H, W) in [0, 1]), written atomically.

    The first and last frames are shown ``1 + hold_frames`` frame times; with ``boomerang`` the
    frames play forward and then back (``2 n - 2`` GIF frames for n frames).  Images smaller than
    ``min_size`` pixels are enlarged by an integer factor with nearest-neighbour.  Pillow merges
    consecutive identical frames (adding their durations), e.g. for the identity view.
    A ``.mp4`` path needs the optional extra ``fundiff[video]`` (imageio-ffmpeg).
    """
    if len(frames) == 0:
        raise FundiffError("no frames to save")
    if fps <= 0:
        raise FundiffError(f"fps must be positive, got {fps}")
    if hold_frames < 0:
        raise FundiffError(f"hold_frames must be >= 0, got {hold_frames}")
    batches = [f.unsqueeze(0) if f.ndim == 3 else f for f in frames]
    h, w = batches[0].shape[-2:]
    scale = max(1, math.ceil(min_size / max(h, w)))
    arrays = [tile(b, pad=0 if b.shape[0] == 1 else 2, scale=scale) for b in batches]
    frame_ms = 1000.0 / fps
    durations = [frame_ms] * len(arrays)
    durations[0] += hold_frames * frame_ms
    durations[-1] += hold_frames * frame_ms
    if boomerang and len(arrays) > 2:
        arrays = arrays + arrays[-2:0:-1]
        durations = durations + durations[-2:0:-1]
    path = Path(path)
    if path.suffix.lower() == ".mp4":
        repeats = [max(1, int(round(d / frame_ms))) for d in durations]
        return _save_mp4([a for a, r in zip(arrays, repeats) for _ in range(r)], path, fps)
    durations = [max(10, int(round(d / 10.0)) * 10) for d in durations]  # GIF counts centiseconds
    pics = [Image.fromarray(a) for a in arrays]
    return write_atomic(path, lambda tmp: pics[0].save(
        tmp, format="GIF", save_all=True, append_images=pics[1:], duration=durations, loop=0))


def _save_mp4(arrays, path: Path, fps: float) -> Path:
    """H.264 in an .mp4 through imageio-ffmpeg's bundled ffmpeg (the optional extra ``fundiff[video]``)."""
    try:
        import imageio_ffmpeg  # optional; not a dependency of fundiff
    except ImportError:
        raise FundiffError("writing .mp4 needs imageio-ffmpeg: pip install 'fundiff[video]' (or write a .gif)") from None
    import numpy as np

    h, w = arrays[0].shape[:2]
    even = (h + h % 2, w + w % 2)   # yuv420p wants even sides: pad with the last row / column

    def rgb(a: np.ndarray) -> np.ndarray:
        a = np.stack([a] * 3, -1) if a.ndim == 2 else a
        return np.ascontiguousarray(np.pad(a, ((0, even[0] - h), (0, even[1] - w), (0, 0)), mode="edge"))

    def write(tmp: Path) -> None:
        out = imageio_ffmpeg.write_frames(str(tmp), (even[1], even[0]), fps=fps, pix_fmt_in="rgb24",
                                          output_params=["-f", "mp4"], macro_block_size=1, ffmpeg_log_level="error")
        out.send(None)
        try:
            for a in arrays:
                out.send(rgb(a))
        finally:
            out.close()

    try:
        return write_atomic(path, write)
    except (ValueError, RuntimeError, OSError) as exc:
        raise FundiffError(f"cannot write {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from None

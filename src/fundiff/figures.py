"""Figures as PNG files: labelled image grids and loss curves (matplotlib, Agg backend).

Every figure is written atomically, so a killed run never leaves a half-drawn PNG.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from fundiff.io import write_atomic  # noqa: E402

plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "figure.dpi": 110})


def _to_numpy_image(img: torch.Tensor | np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) in [0, 1] to an (H, W) or (H, W, 3) array clipped to [0, 1]."""
    arr = img.detach().float().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[0] if arr.shape[0] == 1 else np.transpose(arr, (1, 2, 0))
    return np.clip(arr, 0.0, 1.0)


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> Path:
    """Save ``fig`` as PNG atomically and close it."""
    try:
        write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))
    finally:
        plt.close(fig)
    return Path(path)


def image_grid(
    rows: Sequence[Sequence[torch.Tensor | np.ndarray]],
    path: str | os.PathLike,
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str | None = None,
    cell: float = 1.1,
    cell_labels: Sequence[Sequence[str]] | None = None,
) -> Path:
    """A grid of images in [0, 1]; ``rows[r][c]`` is (H, W), (1, H, W) or (3, H, W).

    ``cell_labels[r][c]``, where given, is written under that image (a label that starts with "!" is drawn
    red, without the "!": a reading that is wrong, say).
    """
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    title_h = 0.3 * (title.count("\n") + 1) if title else 0.0   # inches kept free above the grid for the title
    height = cell * n_rows + 0.1 + title_h
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(cell * n_cols + (1.2 if row_labels else 0.2), height), squeeze=False,
    )
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(row):
                ax.imshow(_to_numpy_image(row[c]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            label = cell_labels[r][c] if cell_labels is not None and r < len(cell_labels) and c < len(cell_labels[r]) else ""
            if label:
                wrong = label.startswith("!")
                ax.set_xlabel(label[1:] if wrong else label, fontsize=7, color="red" if wrong else "black", labelpad=1)
            if r == 0 and col_labels is not None and c < len(col_labels):
                ax.set_title(col_labels[c], fontsize=8)
            if c == 0 and row_labels is not None and r < len(row_labels):
                ax.set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 1 - title_h / height))
    return save_figure(fig, path)


def loss_curve(
    losses: Sequence[float],
    path: str | os.PathLike,
    *,
    steps_per_epoch: int | None = None,
    title: str = "training loss",
    floor: float | None = None,
    floor_label: str = "floor",
) -> Path:
    """Per-step loss (log scale) with a moving average and epoch boundaries."""
    losses = np.asarray(losses, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, lw=0.6, alpha=0.45, color="tab:blue", label="per step")
    window = max(1, min(50, len(losses) // 20))
    if window > 1:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, lw=1.6, color="tab:blue", label=f"mean of {window}")
    if steps_per_epoch:
        for e in range(steps_per_epoch, len(losses) + 1, steps_per_epoch):
            ax.axvline(e, color="0.8", lw=0.8, zorder=0)
    if floor is not None:
        ax.axhline(floor, color="tab:red", ls="--", lw=1.0, label=floor_label)
    ax.set_yscale("log")
    ax.set_xlabel("step" + (f" (grey lines: epochs of {steps_per_epoch} steps)" if steps_per_epoch else ""))
    ax.set_ylabel("MSE loss")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return save_figure(fig, path)


def line_plot(
    x: Sequence[float],
    series: dict[str, Sequence[float]],
    path: str | os.PathLike,
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    mark_x: float | None = None,
) -> Path:
    """Simple line plot of one or more series against x."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for name, ys in series.items():
        ax.plot(x, ys, marker="o", label=name)
    if mark_x is not None:
        ax.axvline(mark_x, color="0.6", ls=":", label=f"training sigma = {mark_x:g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)

"""fundiff.figures.image_grid: the grid's images and its per-cell labels (a wrong reading drawn red)."""

import numpy as np
import torch
from PIL import Image

import fundiff.figures as figures


def test_image_grid_writes_a_png_with_each_cell_label_under_its_image(tmp_path, monkeypatch):
    drawn = []
    real_save = figures.save_figure

    def keep(fig, path):
        drawn.append([(ax.get_xlabel(), ax.xaxis.label.get_color()) for ax in fig.axes])
        return real_save(fig, path)

    monkeypatch.setattr(figures, "save_figure", keep)
    rows = [[torch.zeros(1, 28, 28), torch.ones(1, 28, 28)], [torch.full((28, 28), 0.5)]]
    out = figures.image_grid(rows, tmp_path / "grid.png", row_labels=["a", "b"], cell_labels=[["3", "!8"], []])
    with Image.open(out) as img:
        assert img.format == "PNG" and min(img.size) > 50
    labels = drawn[0]
    assert len(labels) == 4                                   # 2 x 2 axes; the missing cell is blank
    assert labels[0] == ("3", "black")
    assert labels[1] == ("8", "red")                          # "!" marks a wrong reading: red, without the "!"
    assert labels[2][0] == "" and labels[3][0] == ""


def test_image_grid_without_cell_labels_draws_none(tmp_path, monkeypatch):
    drawn = []
    real_save = figures.save_figure
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: drawn.append([ax.get_xlabel() for ax in fig.axes])
                        or real_save(fig, path))
    figures.image_grid([[np.zeros((28, 28))]], tmp_path / "one.png")
    assert drawn == [[""]]

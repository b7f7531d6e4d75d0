"""A grid figure of image samples, optionally one row per class with the class name as row title."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from sciffusion.plotting import save_figure

from .data import to_uint8


def _displayable(image: Tensor) -> tuple[np.ndarray, str | None]:
    """uint8 ``[H, W]`` (grey) or ``[H, W, 3|4]`` for matplotlib and its colour map. Two channels
    (grey + alpha) show their grey; more than four show the first channel in grey."""
    pixels = to_uint8(image)
    if pixels.shape[-1] in (3, 4):
        return pixels, None
    return pixels[..., 0], "gray"


def sample_grid(images: Tensor, path: str | Path, *, labels: Tensor | Sequence[int] | None = None,
                class_names: Sequence[str] | None = None, ncols: int | None = None,
                title: str | None = None, dpi: int = 100) -> Path:
    """Write ``images [B, C, H, W]`` in [-1, 1] as one PNG grid at ``path``.

    With ``labels [B]`` each row holds one class (rows in class order, up to ``ncols`` images a row,
    default the largest class count) titled with ``class_names[label]`` (default the label number).
    Without labels the images fill a near-square grid.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"need images [B >= 1, C, H, W], got {tuple(images.shape)}")
    if labels is None:
        ncols = ncols or math.ceil(math.sqrt(len(images)))
        rows = [list(range(i, min(i + ncols, len(images)))) for i in range(0, len(images), ncols)]
        row_titles = [None] * len(rows)
    else:
        labels = torch.as_tensor(labels).flatten().tolist()
        if len(labels) != len(images):
            raise ValueError(f"got {len(labels)} labels for {len(images)} images")
        classes = sorted(set(labels))
        members = {c: [i for i, label in enumerate(labels) if label == c] for c in classes}
        ncols = ncols or max(len(m) for m in members.values())
        rows = [members[c][:ncols] for c in classes]
        row_titles = [str(class_names[c]) if class_names is not None else str(c) for c in classes]
    h, w = images.shape[-2:]
    # 0.6 inch per image along its longer side, whatever its pixel size; 1 inch for row titles.
    cell_w, cell_h = 0.6 * w / max(h, w), 0.6 * h / max(h, w)
    figsize = ((1.0 if labels is not None else 0.0) + ncols * cell_w, (0.3 if title else 0.0) + len(rows) * cell_h)
    fig, axes = plt.subplots(len(rows), ncols, squeeze=False, figsize=figsize)
    for r, (row, row_title) in enumerate(zip(rows, row_titles)):
        for c in range(ncols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(row):
                pixels, cmap = _displayable(images[row[c]])
                ax.imshow(pixels, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
        if row_title is not None:
            axes[r][0].set_ylabel(row_title, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    # Leave the title its 0.3 inch: tight_layout alone lets the suptitle overlap the first row.
    fig.tight_layout(pad=0.2, w_pad=0.1, h_pad=0.1, rect=(0, 0, 1, 1 - (0.3 / figsize[1] if title else 0)))
    return save_figure(fig, path, dpi=dpi)

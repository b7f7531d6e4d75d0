"""Frame grids of clips: one row per clip, its frames left to right (PIL only, no matplotlib)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

GAP = 2  # pixels between frames and rows
LABEL_WIDTH = 64  # left margin for row names


def frame_grid(rows: Sequence[np.ndarray], path: str | Path, *, names: Sequence[str] = (), scale: int | None = None,
               header: str | Path | None = None) -> Path:
    """Write rows of uint8 frames ``[T, H, W, C]`` (C = 1 or 3; others show channel 0) as one PNG, each
    frame enlarged ``scale`` times (default: to at least 64 px); ``names`` label the rows and ``header``
    (an image file, e.g. the given frames of a forecast) is pasted above them."""
    from PIL import Image, ImageDraw

    if not len(rows):
        raise ValueError("no clips to draw")
    t_max = max(len(r) for r in rows)
    h, w = rows[0].shape[1:3]
    scale = scale or max(1, -(-64 // max(h, w)))
    fh, fw = h * scale, w * scale
    margin = LABEL_WIDTH if any(names) else 0
    width = margin + t_max * (fw + GAP) + GAP
    top = Image.open(header).convert("RGB") if header is not None else None
    top_height = top.height + GAP if top is not None else 0
    canvas = Image.new("RGB", (max(width, top.width if top else 0), top_height + len(rows) * (fh + GAP) + GAP),
                       "white")
    if top is not None:
        canvas.paste(top, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, clip in enumerate(rows):
        y = top_height + GAP + i * (fh + GAP)
        if i < len(names) and names[i]:
            draw.text((4, y + fh // 2 - 5), names[i], fill="black")
        for j, frame in enumerate(clip):
            shown = frame if frame.shape[-1] == 3 else np.repeat(frame[..., :1], 3, axis=-1)
            image = Image.fromarray(np.ascontiguousarray(shown), mode="RGB").resize((fw, fh), Image.NEAREST)
            canvas.paste(image, (margin + GAP + j * (fw + GAP), y))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path

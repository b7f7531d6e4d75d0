"""The one step every domain's figures share: write the figure and free it."""
from __future__ import annotations

from pathlib import Path


def save_figure(fig, path: str | Path, *, dpi: int = 100) -> Path:
    """Write the matplotlib figure ``fig`` to ``path`` (creating its folder) and close it, so that
    long runs drawing many figures do not keep them all in memory; returns the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path

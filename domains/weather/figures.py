"""Figures of a forecast: maps of truth, ensemble mean, spread and error, and the Nino 3.4 plume.

Land (NaN) is drawn grey in every map, so a masked point is never mistaken for a value.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from sciffusion.plotting import save_figure

LAND = "0.75"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def forecast_maps(truth: np.ndarray, ensemble: np.ndarray, *, lat: Sequence[float], lon: Sequence[float],
                  path: str | Path, title: str = "", units: str = "") -> Path:
    """Four maps, two by two: truth ``[H, W]``, the mean and the spread (standard deviation) of
    ``ensemble [M, H, W]``, and the error (mean - truth). Truth and mean share a colour scale; the
    error is centred on zero. NaN points are grey."""
    plt = _pyplot()
    truth, ensemble = np.asarray(truth, dtype=float), np.asarray(ensemble, dtype=float)
    if ensemble.ndim != 3 or ensemble.shape[1:] != truth.shape:
        raise ValueError(f"expected truth [H, W] and ensemble [M, H, W], got {truth.shape} and {ensemble.shape}")
    mean, spread = ensemble.mean(0), ensemble.std(0, ddof=1 if len(ensemble) > 1 else 0)
    error = mean - truth
    low, high = np.nanmin([truth, mean]), np.nanmax([truth, mean])
    largest = np.nanmax(np.abs(error)) or 1.0
    panels = [("truth", truth, "viridis", low, high), ("ensemble mean", mean, "viridis", low, high),
              ("spread", spread, "magma", 0.0, np.nanmax(spread) or 1.0),
              ("error (mean - truth)", error, "RdBu_r", -largest, largest)]
    aspect = len(lat) / max(len(lon), 1)
    fig, axes = plt.subplots(2, 2, figsize=(12, 2 * (1.5 + 6 * aspect)), constrained_layout=True)
    for ax, (name, values, cmap, vmin, vmax) in zip(axes.flat, panels):
        colours = plt.get_cmap(cmap).with_extremes(bad=LAND)
        image = ax.pcolormesh(lon, lat, np.ma.masked_invalid(values), cmap=colours, vmin=vmin, vmax=vmax,
                              shading="nearest")
        ax.set_title(name)
        ax.set_xlabel("longitude (degrees east)")
        ax.set_aspect("equal")
        fig.colorbar(image, ax=ax, orientation="horizontal", label=units)
    for ax in axes[:, 0]:
        ax.set_ylabel("latitude (degrees north)")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi=120)


def nino34_plume(members: np.ndarray, observed: np.ndarray, *, lead_time: Sequence[int],
                 path: str | Path, titles: Sequence[str] | None = None, units: str = "") -> Path:
    """The Nino 3.4 plume of each forecast: members (thin), ensemble mean (bold) and the observed
    index (black) against lead time. ``members [I, L, M]`` and ``observed [I, L]`` for ``I`` initial
    times and the ``L`` leads in ``lead_time``; one panel per initial time, four to a row."""
    plt = _pyplot()
    members, observed = np.atleast_3d(np.asarray(members, dtype=float)), np.asarray(observed, dtype=float)
    if members.shape[:2] != observed.shape or members.shape[1] != len(lead_time):
        raise ValueError(f"expected members [I, L={len(lead_time)}, M] and observed [I, L], got "
                         f"{members.shape} and {observed.shape}")
    count = len(members)
    cols = min(count, 4)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.5 * rows), squeeze=False, sharey=True,
                             constrained_layout=True)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    for i, ax in enumerate(axes.flat[:count]):
        lines = ax.plot(lead_time, members[i], color="tab:blue", alpha=0.35, linewidth=0.8)
        lines[0].set_label("members")
        ax.plot(lead_time, members[i].mean(-1), color="tab:blue", linewidth=2.5, label="ensemble mean")
        ax.plot(lead_time, observed[i], color="black", linewidth=2, marker="o", label="observed")
        ax.axhline(0.0, color="0.5", linewidth=0.5)
        ax.set_xlabel("lead time (months)")
        if titles is not None:
            ax.set_title(titles[i])
    for ax in axes[:, 0]:
        ax.set_ylabel(f"Nino 3.4 anomaly {units}".strip())
    axes[0][0].legend(loc="best", fontsize="small")
    return save_figure(fig, path, dpi=120)

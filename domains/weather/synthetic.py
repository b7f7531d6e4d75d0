"""A synthetic store in WeatherBench 2's layout: what the tests and the loader benchmark read.

The store looks like WeatherBench 2's ERA5 Zarr copies: Zarr format 2 with consolidated metadata,
variables named as there (``2m_temperature``, ``geopotential`` ...) with ERA5 units and short
names, dimensions ``(time, [level,] latitude, longitude)``, latitude descending from the north (as
ERA5 ships it; ``ascending=True`` gives WB2's regridded order), pressure levels in hPa, 6-hourly
times and chunks of one time step over the whole grid. Values sit in each variable's usual range
and have a latitude profile, a seasonal cycle (opposite in the two hemispheres), a diurnal cycle
that follows the sun (2 m temperature) and smooth, autocorrelated weather: a few large-scale
patterns whose amplitudes are AR(1) processes in time. Nothing is physics; everything is a
deterministic function of ``seed``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

_G = 9.80665

# name: (units, long_name, short_name, mean(lat [H, 1] radians, level hPa), standard deviation(level))
_Profile = Callable[[np.ndarray, float], np.ndarray]
VARIABLES: dict[str, tuple[str, str, str, _Profile, Callable[[float], float]]] = {
    "2m_temperature": ("K", "2 metre temperature", "t2m",
                       lambda lat, p: 300.0 - 45.0 * np.sin(lat) ** 2, lambda p: 2.0),
    "10m_u_component_of_wind": ("m s**-1", "10 metre U wind component", "u10",
                                lambda lat, p: -5.0 * np.cos(3 * lat), lambda p: 3.0),
    "10m_v_component_of_wind": ("m s**-1", "10 metre V wind component", "v10",
                                lambda lat, p: 0.0 * lat, lambda p: 3.0),
    "mean_sea_level_pressure": ("Pa", "Mean sea level pressure", "msl",
                                lambda lat, p: 101_325.0 + 800.0 * np.cos(2 * lat), lambda p: 800.0),
    "geopotential": ("m**2 s**-2", "Geopotential", "z",
                     lambda lat, p: _G * (7300.0 * np.log(1013.25 / p) - 400.0 * np.sin(lat) ** 2),
                     lambda p: _G * 80.0 * (1000.0 / p) ** 0.5),
    "temperature": ("K", "Temperature", "t",
                    lambda lat, p: 300.0 * (p / 1013.25) ** 0.19 - 40.0 * np.sin(lat) ** 2, lambda p: 3.0),
    "u_component_of_wind": ("m s**-1", "U component of wind", "u",
                            lambda lat, p: 25.0 * (500.0 / p) ** 0.5 * np.cos(lat) * np.sin(2 * lat) ** 2,
                            lambda p: 6.0),
    "v_component_of_wind": ("m s**-1", "V component of wind", "v", lambda lat, p: 0.0 * lat, lambda p: 5.0),
    "specific_humidity": ("kg kg**-1", "Specific humidity", "q",
                          lambda lat, p: 0.015 * np.cos(lat) ** 4 * (p / 1000.0) ** 3 + 1e-5,
                          lambda p: 0.0),  # multiplicative weather, see _field
}
SURFACE = ("2m_temperature", "10m_u_component_of_wind", "10m_v_component_of_wind", "mean_sea_level_pressure")
ATMOSPHERIC = ("geopotential", "temperature", "u_component_of_wind", "v_component_of_wind", "specific_humidity")
#: The benchmark's store: 4 surface variables and 3 at 500 and 850 hPa, 10 channels.
BENCHMARK_VARIABLES = (*SURFACE, "geopotential", "temperature", "specific_humidity")

_PATTERNS = 12  # large-scale patterns per channel
_RHO = 0.95  # lag-one autocorrelation of their amplitudes per 6 hours


def grid(shape: tuple[int, int], *, poles: bool = False, ascending: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes ``[H]`` and longitudes ``[W]`` (degrees) of an equiangular global grid: cell centres
    (``90 - (i + 1/2) 180 / H``, no pole), or with ``poles`` rows from 90 to -90 inclusive (WB2's
    1.5 degree 240x121 and 0.25 degree 1440x721 grids). Longitudes ``j 360 / W`` from 0."""
    h, w = shape
    lat = np.linspace(90.0, -90.0, h) if poles else 90.0 - (np.arange(h) + 0.5) * 180.0 / h
    return (lat[::-1].copy() if ascending else lat), np.arange(w) * 360.0 / w


def _amplitudes(rng: np.random.Generator, steps: int, hours: float) -> np.ndarray:
    """AR(1) amplitudes ``[T, K]`` with unit stationary variance, correlation ``_RHO`` per 6 hours."""
    rho = _RHO ** (hours / 6.0)
    a = np.empty((steps, _PATTERNS))
    a[0] = rng.standard_normal(_PATTERNS)
    noise = rng.standard_normal((steps, _PATTERNS)) * np.sqrt(1 - rho**2)
    for t in range(1, steps):
        a[t] = rho * a[t - 1] + noise[t]
    return a


def _patterns(rng: np.random.Generator, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``_PATTERNS`` smooth fields ``[K, H, W]`` of unit mean square: zonal waves 0-4 times powers of
    sin(latitude), fading towards the poles for waves > 0 so that they stay continuous there."""
    phi, lam = np.deg2rad(lat)[:, None], np.deg2rad(lon)[None, :]
    out = []
    for _ in range(_PATTERNS):
        m, n, phase = rng.integers(0, 5), rng.integers(0, 4), rng.uniform(0, 2 * np.pi)
        field = np.sin(phi) ** n * np.cos(phi) ** min(m, 1) * np.cos(m * lam + phase)
        out.append(field / np.sqrt(np.mean(field**2) + 1e-12))
    return np.stack(out)


class _Channel:
    """One channel's weather: AR(1) amplitudes ``[T, K]`` over all times and patterns ``[K, H, W]``."""

    def __init__(self, name: str, level: float, k: int, *, seed: int, times: pd.DatetimeIndex, lat: np.ndarray,
                 lon: np.ndarray):
        rng = np.random.default_rng([seed, k])
        hours = float((times[1] - times[0]) / pd.Timedelta("1h")) if len(times) > 1 else 6.0
        self.name, self.level, self.lat, self.lon = name, level, lat, lon
        self.amplitudes, self.patterns = _amplitudes(rng, len(times), hours), _patterns(rng, lat, lon)

    def values(self, times: pd.DatetimeIndex, part: slice) -> np.ndarray:
        """The channel at ``times`` (positions ``part`` of the store's times): ``[T, H, W]`` float32."""
        _, _, _, mean, std = VARIABLES[self.name]
        weather = np.einsum("tk,khw->thw", self.amplitudes[part], self.patterns) / np.sqrt(_PATTERNS)
        phi, lam = np.deg2rad(self.lat)[None, :, None], np.deg2rad(self.lon)[None, None, :]
        day = (times.day_of_year.values - 15.0)[:, None, None] / 365.25
        hour = (times.hour.values + times.minute.values / 60.0)[:, None, None] / 24.0
        base = np.broadcast_to(mean(phi[0], self.level), (len(self.lat), len(self.lon)))[None]
        if self.name == "specific_humidity":  # positive: weather and season scale it
            season = 0.3 * np.sin(phi) * np.cos(2 * np.pi * day)
            return (base * np.exp(0.25 * weather + season)).astype(np.float32)
        spread = std(self.level)
        values = base + 0.8 * spread * np.sin(phi) * np.cos(2 * np.pi * day) + spread * weather
        if self.name == "2m_temperature":  # warmest at 14h local solar time
            values = values + 4.0 * np.cos(phi) * np.cos(2 * np.pi * (hour - 14 / 24) + lam)
        return values.astype(np.float32)


def write_synthetic_store(path: str | Path, *, variables: Sequence[str] = BENCHMARK_VARIABLES,
                          levels: Sequence[int] = (500, 850), shape: tuple[int, int] = (64, 128),
                          start: str = "2020-01-01", steps: int = 240, freq: str = "6h", seed: int = 0,
                          poles: bool = False, ascending: bool = False, time_chunk: int = 1,
                          block: int = 64) -> Path:
    """Write a WeatherBench-2-layout Zarr store at ``path`` (replacing one there) and return it.

    ``variables`` (names of :data:`VARIABLES`; those of :data:`ATMOSPHERIC` get every one of
    ``levels``), ``shape`` (latitudes, longitudes; see :func:`grid` for ``poles`` and ``ascending``),
    ``steps`` times every ``freq`` from ``start``, ``time_chunk`` time steps per chunk. Written
    ``block`` time steps at a time, so memory stays small for long stores.
    """
    import xarray as xr

    unknown = [v for v in variables if v not in VARIABLES]
    if unknown:
        raise KeyError(f"no synthetic variable {unknown}; choose among {sorted(VARIABLES)}")
    if steps < 1 or time_chunk < 1:
        raise ValueError(f"steps={steps} and time_chunk={time_chunk} must be at least 1")
    lat, lon = grid(shape, poles=poles, ascending=ascending)
    times = pd.date_range(start, periods=steps, freq=freq)
    levels = [int(p) for p in levels]
    channels = [(name, level) for name in variables for level in (levels if name in ATMOSPHERIC else [None])]
    made = {(name, level): _Channel(name, level or 1000.0, k, seed=seed, times=times, lat=lat, lon=lon)
            for k, (name, level) in enumerate(channels)}
    coords = {"latitude": ("latitude", lat, {"units": "degrees_north", "long_name": "latitude"}),
              "longitude": ("longitude", lon, {"units": "degrees_east", "long_name": "longitude"}),
              "level": ("level", np.array(levels, dtype=np.int64), {"units": "millibars",
                                                                   "long_name": "pressure_level"})}
    path = Path(path)
    for first in range(0, steps, block):
        part = slice(first, min(first + block, steps))
        data_vars = {}
        for name in variables:
            units, long_name, short_name, _, _ = VARIABLES[name]
            attrs = {"units": units, "long_name": long_name, "short_name": short_name}
            if name in ATMOSPHERIC:
                values = np.stack([made[name, p].values(times[part], part) for p in levels], axis=1)
                data_vars[name] = (("time", "level", "latitude", "longitude"), values, attrs)
            else:
                data_vars[name] = (("time", "latitude", "longitude"), made[name, None].values(times[part], part), attrs)
        ds = xr.Dataset(data_vars, coords={**coords, "time": ("time", times[part])},
                        attrs={"title": "synthetic store in the WeatherBench 2 layout", "seed": seed,
                               "source": "sciffusion_domains.weather.synthetic"})
        if first == 0:
            encoding = {name: {"chunks": (time_chunk, *ds[name].shape[1:])} for name in variables}
            encoding["time"] = {"units": "hours since 1959-01-01", "dtype": "int64", "chunks": (max(steps, 1),)}
            ds.to_zarr(path, mode="w", encoding=encoding, zarr_format=2, consolidated=True)
        else:
            ds.to_zarr(path, append_dim="time", zarr_format=2, consolidated=True)
    return path

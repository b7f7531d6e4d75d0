"""What a latitude-longitude grid means: cell areas, periodic longitude, the Nino 3.4 index, the
seasonal cycle.

A regular grid's cells shrink towards the poles as cos(latitude), so every mean over the sphere
weighs each point by it; a grid that goes once round the Earth is periodic in longitude (circular
padding), a regional one is not.
"""
from __future__ import annotations

import numpy as np
import torch
import xarray as xr
from torch import Tensor

#: Nino 3.4: 5S-5N, 170W-120W (190E-240E).
NINO34_LAT = (-5.0, 5.0)
NINO34_LON = (190.0, 240.0)


def latitude_weights(lat: Tensor | np.ndarray) -> Tensor:
    """cos(latitude) ``[H]`` normalised to mean one over the rows, so a weighted mean over a full
    regular grid reads ``(w * x).mean()``. ``lat`` in degrees."""
    w = torch.cos(torch.deg2rad(torch.tensor(np.asarray(lat, dtype=np.float64))))
    w = w.clamp_min(0.0)
    if not w.sum() > 0:
        raise ValueError(f"latitudes {np.asarray(lat).tolist()} all lie at a pole; no area to weigh")
    return w / w.mean()


def area_weights(lat: Tensor | np.ndarray, mask: Tensor) -> Tensor:
    """Weights ``[H, W]`` of each cell in a mean over the valid points: cos(latitude) where ``mask``
    (bool ``[H, W]``, True = a value) holds, zero elsewhere, summing to one."""
    w = latitude_weights(lat).reshape(-1, 1) * mask.to(torch.float64)
    if not w.sum() > 0:
        raise ValueError("the mask leaves no valid point to average over")
    return w / w.sum()


def is_periodic(lon: Tensor | np.ndarray, *, tol: float = 1e-3) -> bool:
    """True when the regular longitudes ``lon [W]`` (degrees) go once round the Earth: W steps of
    the spacing make 360 degrees. Such grids take circular padding in longitude."""
    lon = np.sort(np.mod(np.asarray(lon, dtype=np.float64), 360.0))
    if lon.size < 2:
        return False
    steps = np.diff(np.append(lon, lon[0] + 360.0))
    return bool(np.allclose(steps, steps[0], atol=tol) and abs(steps[0] * lon.size - 360.0) < tol)


def _box(field: xr.DataArray, lat: tuple[float, float], lon: tuple[float, float]) -> xr.DataArray:
    west, east = lon if field.lon.min() >= 0 else ((lon[0] + 180) % 360 - 180, (lon[1] + 180) % 360 - 180)
    box = field.sel(lat=slice(*lat), lon=slice(west, east))
    if box.sizes["lat"] == 0 or box.sizes["lon"] == 0:
        raise ValueError(f"the box {lat} N, {lon} E lies outside the grid ({float(field.lat.min())} to "
                         f"{float(field.lat.max())} N, {float(field.lon.min())} to {float(field.lon.max())} E)")
    return box


def box_mean(field: xr.DataArray, *, lat: tuple[float, float], lon: tuple[float, float]) -> xr.DataArray:
    """The cos(latitude)-weighted mean of ``field [..., lat, lon]`` over a box (degrees north, degrees
    east 0..360; the box is converted for a -180..180 grid), NaN (land) skipped. Keeps other dims."""
    box = _box(field, lat, lon)
    weights = xr.DataArray(np.cos(np.deg2rad(box.lat.values)), coords={"lat": box.lat}, dims="lat")
    return box.weighted(weights).mean(("lat", "lon"), skipna=True)


def nino34(field: xr.DataArray) -> xr.DataArray:
    """The Nino 3.4 box mean (5S-5N, 170W-120W) of a sea-surface temperature ``[..., lat, lon]``.
    Of anomalies, it is the Nino 3.4 index."""
    return box_mean(field, lat=NINO34_LAT, lon=NINO34_LON)


def climatology(field: xr.DataArray, *, period: slice) -> xr.DataArray:
    """The mean seasonal cycle ``[month (1..12), ...]`` of ``field [time, ...]`` over ``period``
    (the training years only, so evaluation years never leak into the reference)."""
    train = field.sel(time=period)
    months = np.unique(train.time.dt.month.values)
    if months.size != 12:
        raise ValueError(f"period {period} covers months {months.tolist()}; a climatology needs all 12")
    return train.groupby("time.month").mean("time")


def anomalies(field: xr.DataArray, clim: xr.DataArray) -> xr.DataArray:
    """``field [time, ...]`` minus the climatology of each time's calendar month."""
    return (field.groupby("time.month") - clim).drop_vars("month")


def cell_area_weights(lat: Tensor | np.ndarray) -> Tensor:
    """The area of each latitude row's cells ``[H]``, normalised to mean one: ``sin(upper) - sin(lower)``
    between the midpoints to the neighbouring rows, the outermost bounds at +-90 degrees (WeatherBench 2's
    ``get_lat_weights``). On an equiangular grid without poles this is cos(latitude) exactly; a pole row
    keeps the area of its half cell, where cos(latitude) gives it none. Any order of ``lat`` (degrees)."""
    lat = np.asarray(lat, dtype=np.float64)
    order = np.argsort(lat)
    if lat.size == 0 or np.any(np.diff(lat[order]) <= 0) or np.abs(lat).max() > 90:
        raise ValueError(f"latitudes {lat.tolist()} must be distinct degrees within [-90, 90]")
    phi = np.deg2rad(lat[order])
    bounds = np.concatenate([[-np.pi / 2], (phi[:-1] + phi[1:]) / 2, [np.pi / 2]])
    area = np.empty_like(phi)
    area[order] = np.sin(bounds[1:]) - np.sin(bounds[:-1])
    return torch.from_numpy(area / area.mean())

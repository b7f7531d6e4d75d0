"""WeatherBench 2's headline scores of gridded forecasts, computed with xarray (and dask when the
inputs are lazy) and returned as an ``xarray.Dataset``: one variable per forecast variable, dimensions
``(metric, lead_time[, level])``, as WeatherBench 2's result files are laid out.

Names follow WeatherBench 2: a forecast has dimensions ``(time, lead_time[, member][, level],
latitude, longitude)`` with ``time`` the initial time and ``lead_time`` a timedelta; the truth has
``(time[, level], latitude, longitude)`` and is read at the valid times ``time + lead_time`` (or at
a ``valid_time`` coordinate ``[time, lead_time]`` where the forecast has one: monthly leads). The
aliases ``init_time``, ``prediction_timedelta``, ``number`` / ``realization``, ``lat`` / ``lon`` are
renamed on the way in. Latitude may run either way: the weights travel with the coordinate.

Every spatial mean is area-weighted with :func:`lat_weights` (cell areas by default, so pole rows
count with their half cells; cos(latitude) on request), normalised to mean one, NaN points (land,
missing) left out. Scores of each initial time are averaged over initial times:

- ``rmse``: ``sqrt(mean_time spatial_mean (mean_member f - o)^2)``, of the ensemble mean;
- ``acc``: ``mean_time [spatial_mean(f' o') / sqrt(spatial_mean(f'^2) spatial_mean(o'^2))]`` with
  anomalies ``f' = f - c``, ``o' = o - c`` from a climatology ``c`` by day of year and hour;
- ``crps``: the fair ensemble CRPS, ``E|X - y| - sum_{i != j} |x_i - x_j| / (2 M (M - 1))`` (Ferro 2014);
- ``spread``: ``sqrt(mean_time spatial_mean var_member(f))`` (unbiased variance, ddof=1), and
  ``spread_skill`` = spread / rmse as WeatherBench 2 reports it; multiply by ``sqrt((M + 1) / M)``
  for the finite-ensemble correction of ``scores.spread_skill_ratio``.

Everything is computed in float64.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

_ALIASES = {"init_time": "time", "prediction_timedelta": "lead_time", "number": "member", "realization": "member",
            "lat": "latitude", "lon": "longitude"}
SPATIAL = ("latitude", "longitude")
WEIGHTINGS = ("cell_area", "cos")


def canonical(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with WeatherBench 2's dimension names (see the module doc)."""
    return ds.rename({old: new for old, new in _ALIASES.items() if old in ds.dims and new not in ds.dims})


def lat_weights(lat: xr.DataArray, *, kind: str = "cell_area") -> xr.DataArray:
    """Weights of each latitude row ``[latitude]``, mean one, on ``lat``'s coordinate (so they align
    whichever way latitude runs): "cell_area" (``grid.cell_area_weights``, WeatherBench 2's) or "cos"
    (``grid.latitude_weights``: cos(latitude), zero at a pole)."""
    from .grid import cell_area_weights, latitude_weights

    if kind not in WEIGHTINGS:
        raise ValueError(f"weighting={kind!r}; choose one of {WEIGHTINGS}")
    weigh = cell_area_weights if kind == "cell_area" else latitude_weights
    return xr.DataArray(weigh(lat.values).numpy(), dims=lat.dims, coords=lat.coords, name="lat_weights")


def spatial_mean(x: xr.DataArray, weights: xr.DataArray) -> xr.DataArray:
    """The weighted mean of ``x`` over latitude and longitude; NaN points are left out of the weights."""
    return x.weighted(weights).mean(SPATIAL, skipna=True)


def climatology(truth: xr.Dataset, *, period: slice) -> xr.Dataset:
    """The mean of ``truth [time, ...]`` over ``period`` by day of year and hour: ``[dayofyear, hour, ...]``
    (WeatherBench 2's layout, without its 61-day smoothing). Use the training years only."""
    train = canonical(truth).sel(time=period)
    if train.sizes["time"] == 0:
        raise ValueError(f"period {period} selects no time steps of the truth ({truth.time.values[0]} to "
                         f"{truth.time.values[-1]})")
    return train.groupby(["time.dayofyear", "time.hour"]).mean()


def crps_fair(ensemble: xr.DataArray, truth: xr.DataArray) -> xr.DataArray:
    """Pointwise fair CRPS of ``ensemble [member, ...]`` against ``truth`` (broadcastable). The pair
    sum uses the sorted members, ``sum_ij |x_i - x_j| = 2 sum_i (2i - M + 1) x_(i)``: O(M log M)."""
    m = ensemble.sizes["member"]
    if m < 2:
        raise ValueError(f"the fair CRPS needs at least 2 members, got {m}")
    if ensemble.chunks is not None:  # the sort needs every member of a point in one chunk
        ensemble = ensemble.chunk(member=-1)
    skill = abs(ensemble - truth).mean("member")
    ordered = xr.apply_ufunc(np.sort, ensemble, input_core_dims=[["member"]], output_core_dims=[["member"]],
                             kwargs={"axis": -1}, dask="parallelized", output_dtypes=[ensemble.dtype])
    ranks = xr.DataArray(2 * np.arange(m) - m + 1.0, dims="member")
    pairs = 2 * (ranks * ordered).sum("member")
    return skill - pairs / (2 * m * (m - 1))


def _check(forecast: xr.Dataset, truth: xr.Dataset) -> None:
    need = {"time", "lead_time", *SPATIAL}
    for name, var in forecast.data_vars.items():
        if not need <= set(var.dims):
            raise ValueError(f"forecast variable {name!r} has dimensions {var.dims}; expected (time, lead_time, "
                             "[member,] [level,] latitude, longitude), time the initial time: rename yours with "
                             "ds.rename(...)")
        if name not in truth.data_vars:
            raise KeyError(f"forecast variable {name!r} is not in the truth, which holds {list(truth.data_vars)}; "
                           "score only variables both have (forecast[[...]])")
    if not np.issubdtype(forecast.lead_time.dtype, np.timedelta64):
        raise ValueError(f"lead_time has dtype {forecast.lead_time.dtype}; give it as timedeltas "
                         "(pd.to_timedelta(hours, unit='h'))")


def _at(da: xr.DataArray, like: xr.DataArray, what: str, **indexers) -> xr.DataArray:
    """``da.sel(**indexers)``, with the grid and levels of ``like``; a missing label names the fix."""
    grid = {d: like[d] for d in (*SPATIAL, "level") if d in like.dims}
    try:  # the indexers' labels (valid times, day of year) are dropped: the forecast's coordinates stay
        return da.sel(**indexers).sel(grid).drop_vars(list(indexers))
    except KeyError as err:
        raise ValueError(f"the {what} lacks labels the forecast needs ({err}); give it the forecast's valid "
                         "times, levels and grid (regrid or select first)") from None


def headline_scores(forecast: xr.Dataset, truth: xr.Dataset, *, climatology: xr.Dataset | None = None,
                    weighting: str = "cell_area") -> xr.Dataset:
    """RMSE, and with ``climatology`` ([dayofyear, hour, ...], :func:`climatology`) ACC, and with two
    members or more the fair CRPS, spread and spread/skill, of every variable of ``forecast`` against
    ``truth``, per lead time (and level): a Dataset ``(metric, lead_time[, level])`` (module doc)."""
    forecast, truth = canonical(forecast), canonical(truth)
    _check(forecast, truth)
    clim = None if climatology is None else canonical(climatology)
    missing = [] if clim is None else [v for v in forecast.data_vars if v not in clim.data_vars]
    if missing:
        raise KeyError(f"the climatology lacks {missing}; compute it from the truth: climatology(truth[{missing}], "
                       "period=<training years>)")
    weights = lat_weights(forecast.latitude, kind=weighting)
    # a valid_time coordinate (io.forecast_to_wb2) is exact where lead_time is nominal (calendar months)
    valid = forecast["valid_time"].reset_coords(drop=True) if "valid_time" in forecast.coords \
        else forecast.time + forecast.lead_time
    members = forecast.sizes.get("member", 1)
    out = {}
    for name, f in forecast.data_vars.items():  # in float64: float32 sums of 1e5 Pa fields lose the errors
        f = f.astype(np.float64)
        o = _at(truth[name], f, "truth", time=valid).astype(np.float64)
        mean = f.mean("member") if "member" in f.dims else f
        scores = {"rmse": np.sqrt(spatial_mean((mean - o) ** 2, weights).mean("time"))}
        if clim is not None:
            c = _at(clim[name], f, "climatology", dayofyear=valid.dt.dayofyear, hour=valid.dt.hour)
            fa, oa = mean - c, o - c
            acc = spatial_mean(fa * oa, weights) / np.sqrt(spatial_mean(fa**2, weights) * spatial_mean(oa**2, weights))
            scores["acc"] = acc.mean("time")
        if members > 1:
            scores["crps"] = spatial_mean(crps_fair(f, o), weights).mean("time")
            variance = f.var("member", ddof=1).where(o.notnull())
            scores["spread"] = np.sqrt(spatial_mean(variance, weights).mean("time"))
            scores["spread_skill"] = scores["spread"] / scores["rmse"].where(scores["rmse"] > 0)  # NaN if perfect
        out[name] = xr.concat(list(scores.values()), dim=xr.DataArray(list(scores), dims="metric", name="metric"))
        out[name].attrs = {k: v for k, v in f.attrs.items() if k in ("units", "long_name", "short_name")}
    ds = xr.Dataset(out).compute()
    ds.attrs.update(weighting=weighting, members=int(members), initial_times=int(forecast.sizes["time"]),
                    first_init=str(forecast.time.values[0]), last_init=str(forecast.time.values[-1]),
                    source="sciffusion_domains.weather.wb2.headline_scores")
    return ds


def write_scores(scores: xr.Dataset, path: str | Path) -> Path:
    """Write :func:`headline_scores` to NetCDF (lead_time in hours)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoding = {"lead_time": {"units": "hours", "dtype": "int64"}} if "lead_time" in scores.coords else {}
    scores.to_netcdf(path, encoding=encoding)
    return path

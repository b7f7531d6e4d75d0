"""WeatherBench 2's headline scores: exact answers on hand-sized arrays (area weights that keep the
poles, latitude in either order, NaN left out), a perfect forecast scores RMSE 0 and ACC 1, the fair
CRPS agrees with the torch one of ``scores``, and the Dataset goes to NetCDF and back."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

xr = pytest.importorskip("xarray")

from sciffusion_domains.weather import wb2  # noqa: E402
from sciffusion_domains.weather.scores import crps_ensemble  # noqa: E402
from sciffusion_domains.weather.synthetic import write_synthetic_store  # noqa: E402

TIMES = pd.date_range("2020-01-01", periods=3, freq="6h")
LEAD = pd.to_timedelta([6], unit="h")


def tiny(truth_rows, forecast_rows) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
    """Truth at latitudes 60 and 0 (descending; cell-area weights 0.5 and 1.5), one longitude, 3 times;
    one forecast from the first time at lead 6 h, members first when ``forecast_rows`` is 2-d; a zero
    climatology, so anomalies are the values."""
    lat, lon = [60.0, 0.0], [0.0]
    truth = np.zeros((3, 2, 1))
    truth[1, :, 0] = truth_rows
    truth_ds = xr.Dataset({"t2m": (("time", "latitude", "longitude"), truth, {"units": "K"})},
                          coords={"time": TIMES, "latitude": lat, "longitude": lon})
    f = np.asarray(forecast_rows, dtype=np.float64)
    dims = ("time", "lead_time", *(("member",) if f.ndim == 2 else ()), "latitude", "longitude")
    forecast = xr.Dataset({"t2m": (dims, f.reshape(1, 1, *f.shape, 1))},
                          coords={"time": TIMES[:1], "lead_time": LEAD, "latitude": lat, "longitude": lon})
    clim = xr.zeros_like(truth_ds.isel(time=0, drop=True)).expand_dims(dayofyear=[1], hour=[0, 6, 12])
    return forecast, truth_ds, clim


def test_deterministic_rmse_and_acc_equal_the_hand_computation():
    forecast, truth, clim = tiny([1.0, 1.0], [3.0, 2.0])
    scores = wb2.headline_scores(forecast, truth, climatology=clim)
    w = np.array([0.5, 1.5])  # sin(90) - sin(30) and sin(30) - sin(-90), mean one
    rmse = math.sqrt((w[0] * 2**2 + w[1] * 1**2) / 2)
    acc = (w[0] * 3 + w[1] * 2) / 2 / math.sqrt((w[0] * 9 + w[1] * 4) / 2 * (w[0] + w[1]) / 2)
    assert scores.metric.values.tolist() == ["rmse", "acc"] and scores.t2m.dims == ("metric", "lead_time")
    assert scores.t2m.sel(metric="rmse").item() == pytest.approx(rmse, abs=1e-12)
    assert scores.t2m.sel(metric="acc").item() == pytest.approx(acc, abs=1e-12)
    cos = wb2.headline_scores(forecast, truth, weighting="cos").t2m.sel(metric="rmse").item()
    c = np.cos(np.deg2rad([60.0, 0.0]))
    assert cos == pytest.approx(math.sqrt((c[0] * 4 + c[1] * 1) / c.sum()), abs=1e-12)
    flipped = wb2.headline_scores(forecast.isel(latitude=[1, 0]), truth.isel(latitude=[1, 0]), climatology=clim)
    xr.testing.assert_allclose(flipped, scores)


def test_ensemble_crps_spread_and_skill_equal_the_hand_computation():
    forecast, truth, clim = tiny([1.0, 1.0], [[3.0, 2.0], [1.0, 2.0]])
    s = wb2.headline_scores(forecast, truth, climatology=clim).t2m
    # members (3, 1) at 60N: E|X-y| = 1, pairs |3-1| / 2 = 1 -> 0; members (2, 2) at the equator: 1 - 0 = 1
    assert s.sel(metric="crps").item() == pytest.approx((0.5 * 0 + 1.5 * 1) / 2, abs=1e-12)
    assert s.sel(metric="rmse").item() == pytest.approx(1.0, abs=1e-12)  # the mean (2, 2) misses by 1 everywhere
    assert s.sel(metric="spread").item() == pytest.approx(math.sqrt(0.5 * 2 / 2), abs=1e-12)  # variance 2 at 60N
    assert s.sel(metric="spread_skill").item() == pytest.approx(math.sqrt(0.5), abs=1e-12)


def test_the_fair_crps_agrees_with_the_torch_estimator():
    rng = np.random.default_rng(0)
    ens, obs = rng.normal(size=(5, 4, 3)), rng.normal(size=(4, 3))
    mine = wb2.crps_fair(xr.DataArray(ens, dims=("member", "y", "x")), xr.DataArray(obs, dims=("y", "x")))
    peer = crps_ensemble(torch.from_numpy(ens), torch.from_numpy(obs), fair=True)
    np.testing.assert_allclose(mine.values, peer.numpy(), atol=1e-12)
    with pytest.raises(ValueError, match="at least 2 members"):
        wb2.crps_fair(xr.DataArray(ens[:1], dims=("member", "y", "x")), xr.DataArray(obs, dims=("y", "x")))


def test_the_poles_count_by_their_cell_area_and_nan_points_are_left_out():
    lat = xr.DataArray([90.0, 0.0, -90.0], dims="latitude", coords={"latitude": [90.0, 0.0, -90.0]})
    cell = wb2.lat_weights(lat).values
    np.testing.assert_allclose(cell, np.array([1 - 0.5**0.5, 2 * 0.5**0.5, 1 - 0.5**0.5]) / (2 / 3))
    assert wb2.lat_weights(lat, kind="cos").values[0] < 1e-12
    forecast, truth, _ = tiny([1.0, 1.0], [3.0, 2.0])
    truth["t2m"][1, 0, 0] = np.nan  # 60N missing: only the equator's error counts
    assert wb2.headline_scores(forecast, truth).t2m.sel(metric="rmse").item() == pytest.approx(1.0)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = write_synthetic_store(tmp_path_factory.mktemp("scores") / "s.zarr", variables=["2m_temperature",
                                 "geopotential"], levels=[500, 850], shape=(7, 12), steps=24, poles=True)
    return xr.open_zarr(path)


def test_a_perfect_forecast_scores_rmse_0_and_acc_1_per_variable_level_and_lead(store, tmp_path):
    leads = pd.to_timedelta([6, 12, 24], unit="h")
    inits = store.time[:8]
    valid = inits + xr.DataArray(leads, dims="lead_time")
    perfect = store.sel(time=valid).drop_vars("time").assign_coords(time=inits.values, lead_time=leads)
    clim = wb2.climatology(store.isel(time=slice(0, 12)), period=slice("2020", "2020")) * 0.999
    ensemble = xr.concat([perfect] * 3, dim="member").rename(member="number")
    scores = wb2.headline_scores(ensemble, store, climatology=clim)
    assert scores.geopotential.dims == ("metric", "lead_time", "level") and scores["2m_temperature"].ndim == 2
    for name in scores.data_vars:
        np.testing.assert_allclose(scores[name].sel(metric=["rmse", "crps", "spread"]), 0.0, atol=1e-6)
        np.testing.assert_allclose(scores[name].sel(metric="acc"), 1.0, atol=1e-9)
    path = wb2.write_scores(scores, tmp_path / "scores.nc")
    with xr.open_dataset(path) as back:
        xr.testing.assert_allclose(back.load(), scores)
        assert back.lead_time.values.tolist() == leads.values.tolist() and back.attrs["members"] == 3


def test_bad_inputs_name_the_fix(store):
    forecast, truth, clim = tiny([1.0, 1.0], [3.0, 2.0])
    with pytest.raises(ValueError, match=r"dimensions \('time', 'latitude', 'longitude'\); expected \(time, lead"):
        wb2.headline_scores(forecast.isel(lead_time=0), truth)
    with pytest.raises(KeyError, match="'t2m' is not in the truth, which holds"):
        wb2.headline_scores(forecast, truth.rename(t2m="tas"))
    late = forecast.assign_coords(lead_time=pd.to_timedelta([48], unit="h"))
    with pytest.raises(ValueError, match="the truth lacks labels the forecast needs"):
        wb2.headline_scores(late, truth)
    with pytest.raises(KeyError, match=r"the climatology lacks \['t2m'\]; compute it from the truth"):
        wb2.headline_scores(forecast, truth, climatology=clim.rename(t2m="tas"))
    with pytest.raises(ValueError, match="weighting='area'; choose one of"):
        wb2.headline_scores(forecast, truth, weighting="area")

"""The forecast entry point's WeatherBench 2 layout (wb2=NAME): reopened from Zarr and NetCDF it is
the in-memory ensemble, and WeatherBench 2's scores of it are the entry point's own."""
from __future__ import annotations

import numpy as np
import pytest
import torch

xr = pytest.importorskip("xarray")

from sciffusion.processes import make_process  # noqa: E402
from sciffusion.registry import make_domain  # noqa: E402
from sciffusion_domains.weather import scores, wb2  # noqa: E402
from sciffusion_domains.weather.forecast import initial_positions, rollout, wb2_dataset, write_outputs  # noqa: E402

EDM = make_process("edm")


def noisy_persistence(x, t, space, cond):
    """A 'model' whose members differ: persistence plus a share of the noisy state."""
    return 0.5 * x / (1 + EDM.sigma(t).reshape(-1, 1, 1, 1) ** 2) + cond["fields"][:, :1]


@pytest.fixture(scope="module")
def forecast():
    domain = make_domain("weather")
    positions = initial_positions(domain, "test", 3, ["2017-11", "2018-02", "2020-12"])
    ensemble = domain.to_physical(rollout(domain, noisy_persistence, EDM, positions, members=3, leads=3, steps=3))
    return domain, ensemble, positions


@pytest.mark.parametrize("name", ["forecast_wb2.zarr", "forecast_wb2.nc"])
def test_the_wb2_file_reopens_as_the_in_memory_forecast(forecast, tmp_path, name):
    domain, ensemble, positions = forecast
    write_outputs(domain, ensemble, positions, tmp_path, maps=False, wb2=name)
    path = tmp_path / name
    ds = xr.open_zarr(path) if name.endswith(".zarr") else xr.open_dataset(path)
    assert list(ds.data_vars) == ["sst"]
    assert ds["sst"].dims == ("time", "prediction_timedelta", "member", "latitude", "longitude")
    assert ds["sst"].shape == (3, 3, 3, 13, 57)
    np.testing.assert_array_equal(ds.sst.values, ensemble[:, :, :, 0].astype(np.float32))  # NaN land included
    times = domain.fields.time.values
    np.testing.assert_array_equal(ds.time.values, times[positions])
    np.testing.assert_array_equal(ds.valid_time.values, times[positions[:, None] + np.arange(1, 4)[None]])
    assert np.issubdtype(ds.prediction_timedelta.dtype, np.timedelta64)
    assert "nominal" in ds.prediction_timedelta.attrs  # calendar months are not one timedelta
    np.testing.assert_array_equal(ds.latitude.values, domain.lat)
    np.testing.assert_array_equal(ds.longitude.values, domain.lon)
    assert ds.sst.attrs.get("units") == domain.variable_attrs()["sst"].get("units")


def test_wb2_scores_of_the_file_are_the_entry_points_own(forecast, tmp_path):
    domain, ensemble, positions = forecast
    truth_fields = domain.fields.isel(channel=0).drop_vars("channel").where(domain.mask[0].numpy())
    truth = xr.Dataset({"sst": truth_fields}).rename(lat="latitude", lon="longitude")
    result = wb2.headline_scores(wb2_dataset(domain, ensemble, positions), truth, weighting="cos")
    for lead in range(3):
        members = torch.as_tensor(ensemble[:, lead, :, 0]).transpose(0, 1).double()
        observed = torch.as_tensor(truth_fields.values[positions + lead + 1])
        own = scores.ensemble_scores(members, observed, climatology=torch.zeros_like(observed), lat=domain.lat)
        assert float(result.sst.sel(metric="rmse")[lead]) == pytest.approx(own["rmse"], rel=1e-6)
        assert float(result.sst.sel(metric="crps")[lead]) == pytest.approx(own["crps_fair"], rel=1e-6)

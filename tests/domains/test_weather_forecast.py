"""Weather forecasts: rollouts feed each member's samples back in the right order, members keep their
own seeds, scoring lines up with the baselines, data assimilation recovers what it observes, and a
tiny model trains, forecasts and scores through the CLI on the packaged data."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

xr = pytest.importorskip("xarray")

from sciffusion.processes import make_process  # noqa: E402
from sciffusion.registry import make_domain  # noqa: E402
from sciffusion.training import load_checkpoint  # noqa: E402
from sciffusion_domains.weather.forecast import (assimilate, initial_positions, main, read_ensemble,  # noqa: E402
                                                 rollout, score, write_outputs)

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
EDM = make_process("edm")


@pytest.fixture(scope="module")
def domain():
    return make_domain("weather")


def newest(x, t, space, cond):
    """A 'model' that forecasts persistence: the newest conditioning state."""
    return cond["fields"][:, :1].clone()


def oldest(x, t, space, cond):
    """A 'model' that forecasts the state before the newest."""
    return cond["fields"][:, 1:2].clone()


def test_rollout_feeds_each_lead_back_as_the_newest_state(domain):
    positions = initial_positions(domain, "test", 3, ["2017-05", "2019-01"])
    states = lambda offset: domain.states(positions + offset)
    persistence = rollout(domain, newest, EDM, positions, members=2, leads=3, steps=2)
    assert persistence.shape == (2, 3, 2, 1, 13, 57)
    for lead in range(3):
        torch.testing.assert_close(persistence[:, lead, 0], states(0))
    flip = rollout(domain, oldest, EDM, positions, members=1, leads=3, steps=2)
    # lead 1 = state t-1; lead 2 conditions on (lead 1, t) -> t; lead 3 on (lead 2, lead 1) -> lead 1
    for lead, offset in ((0, -1), (1, 0), (2, -1)):
        torch.testing.assert_close(flip[:, lead, 0], states(offset))


def test_each_member_has_its_own_seed(domain):
    noisy = lambda x, t, space, cond: 0.5 * x / (1 + EDM.sigma(t).reshape(-1, 1, 1, 1) ** 2) + cond["fields"][:, :1]
    positions = initial_positions(domain, "test", 2, ["2018-03", "2020-07"])
    three = rollout(domain, noisy, EDM, positions, members=3, leads=2, steps=3, batch_size=4)
    two = rollout(domain, noisy, EDM, positions[1:], members=2, leads=2, steps=3, batch_size=64)
    torch.testing.assert_close(three[1:, :, :2], two)
    assert (three[:, :, 0] - three[:, :, 1]).abs().max() > 1e-3
    assert (three[:, :, :, :, ~domain.mask[0]] == 0).all()


def test_scores_line_up_with_the_baselines_on_the_same_initial_times(domain):
    positions = initial_positions(domain, "test", 2)
    assert len(positions) == 58 and str(domain.fields.time.values[positions[0]])[:7] == "2017-01"
    ensemble = domain.to_physical(rollout(domain, newest, EDM, positions, members=2, leads=2, steps=2))
    result = score(domain, ensemble, positions)["sst"]
    assert "note" not in result
    np.testing.assert_allclose(result["model"]["rmse"], result["persistence"]["rmse"], rtol=1e-5)
    np.testing.assert_allclose(result["model"]["crps"], result["persistence"]["crps"], rtol=1e-5)
    np.testing.assert_allclose(result["model"]["acc"], result["persistence"]["acc"], rtol=1e-4)
    np.testing.assert_allclose(result["model"]["nino34_corr"], result["persistence"]["nino34_corr"], rtol=1e-4)
    assert result["model"]["spread_skill"] == [0.0, 0.0]
    assert all(len(h) == 3 and abs(sum(h) - 1) < 1e-9 for h in result["model"]["rank_histogram"])
    for name in ("damped_persistence", "lim"):  # drawn with the model's two members, scored the same way
        assert all(len(h) == 3 for h in result[name]["rank_histogram"]) and len(result[name]["crps_fair"]) == 2


def test_a_written_forecast_reads_back_for_rescoring(domain, tmp_path):
    positions = initial_positions(domain, "test", 2, ["2017-03", "2019-11"])
    ensemble = domain.to_physical(rollout(domain, newest, EDM, positions, members=2, leads=2, steps=2))
    write_outputs(domain, ensemble, positions, tmp_path, maps=False)
    read, read_positions = read_ensemble(domain, tmp_path / "forecast.nc")
    np.testing.assert_array_equal(read_positions, positions)
    np.testing.assert_allclose(read, ensemble, rtol=1e-6)
    assert score(domain, read, read_positions)["sst"]["model"]["rmse"] == \
        pytest.approx(score(domain, ensemble, positions)["sst"]["model"]["rmse"], rel=1e-5)


def test_a_zero_residual_on_the_lim_predictor_forecasts_the_lims_mean_at_every_lead(domain):
    """Mean + residual diffusion wired through the rollout: with a residual denoiser that always
    answers zero, every member is the LIM's mean, fed back lead after lead: G(1)^lead."""
    from sciffusion.residual import ResidualDenoiser
    from sciffusion_domains.weather.baselines import LIMPredictor, LinearInverseModel
    from sciffusion_domains.weather.grid import climatology

    positions = initial_positions(domain, "test", 3, ["2017-05", "2019-12"])
    predictor = LIMPredictor(domain, modes=10)
    zero = ResidualDenoiser(lambda x, t, space, cond: torch.zeros_like(x), predictor, EDM)
    forecast = domain.to_physical(rollout(domain, zero, EDM, positions, members=2, leads=3, steps=2))
    da = domain.fields.isel(channel=0).drop_vars("channel").where(domain.mask[0].numpy())
    clim = torch.as_tensor(climatology(da, period=domain.period("train")).values, dtype=torch.float64)
    month = torch.as_tensor(domain.fields.time.dt.month.values - 1)
    anomalies = torch.as_tensor(da.values, dtype=torch.float64) - clim[month]
    train = np.isin(domain.fields.time.values, domain.fields.time.sel(time=domain.period("train")).values)
    lim = LinearInverseModel.fit(anomalies[train], lat=domain.lat, modes=10)
    for lead in (1, 3):
        expected = clim[month[positions + lead]] + lim.forecast(anomalies[positions], lead=lead).mean
        np.testing.assert_allclose(forecast[:, lead - 1, 1, 0], expected.numpy(), atol=2e-3)
        np.testing.assert_array_equal(forecast[:, lead - 1, 0], forecast[:, lead - 1, 1])


def test_assimilation_recovers_observed_points_on_gaussian_data():
    """N(0, I) data on a masked grid, whose exact denoiser is x / (1 + s^2): the guided posterior is
    exact there, so observed points come back within the observation error and the rest stay N(0, 1)."""
    mask = torch.ones(1, 6, 8, dtype=torch.bool)
    mask[0, :2, :3] = False

    def denoiser(x, t, space, cond):
        s = EDM.sigma(t).to(x).reshape(-1, 1, 1, 1) / EDM.alpha(t).to(x).reshape(-1, 1, 1, 1)
        return space.project(x / EDM.alpha(t).to(x).reshape(-1, 1, 1, 1) / (1 + s**2))

    valid = torch.nonzero(mask.flatten()).flatten()
    points = valid[torch.randperm(len(valid), generator=torch.Generator().manual_seed(0))[:12]]
    y = 2.0 * torch.randn(len(points), generator=torch.Generator().manual_seed(1))
    fields = assimilate(denoiser, EDM, points, y, mask=mask, members=64, noise_std=0.05, steps=32, seed=3)
    assert fields.shape == (64, 1, 6, 8) and (fields[:, ~mask] == 0).all()
    observed = fields.flatten(1)[:, points]
    torch.testing.assert_close(observed.mean(0), y / (1 + 0.05**2), atol=0.05, rtol=0.02)
    others = torch.ones(48, dtype=torch.bool)
    others[points] = False
    others &= mask.flatten()
    assert 0.7 < float(fields.flatten(1)[:, others].std()) < 1.3
    with pytest.raises(ValueError, match="land"):
        assimilate(denoiser, EDM, torch.tensor([0]), y[:1], mask=mask)


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{args[:2]} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.mark.slow
def test_tiny_train_forecast_and_score_through_the_cli(tmp_path):
    run_dir = tmp_path / "run"
    run(["-m", "sciffusion.cli.train", "experiment=weather_tiny", f"hydra.run.dir={run_dir}"], tmp_path)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    stored = load_checkpoint(ckpt)["domain"]["normaliser"]
    sst = make_domain("weather").source.sst.sel(time=slice("1991", "2012")).values
    assert stored["channels"] == ["sst"] and stored["mean"].tolist() == pytest.approx([np.nanmean(sst)])

    out = tmp_path / "forecast"
    # the entry point's main(), in this process: python -m sciffusion_domains.weather.forecast ARGS
    main([f"checkpoint={ckpt}", f"out_dir={out}", "members=2", "leads=2", "steps=2", "inits=[2017-01,2017-02]",
          "observations=20"])
    ds = xr.open_dataset(out / "forecast.nc")
    assert ds.sst.dims == ("init_time", "lead_time", "member", "lat", "lon") and ds.sst.shape == (2, 2, 2, 13, 57)
    assert ds.attrs["Conventions"] == "CF-1.8" and ds.sst.attrs["units"] == "C"
    assert ds.lead_time.attrs["units"] == "months" and ds.lat.attrs["standard_name"] == "latitude"
    assert str(ds.valid_time.values[0, 1])[:7] == "2017-03"
    land = np.isnan(make_domain("weather").source.sst.values[0])
    assert np.isnan(ds.sst.values[..., land]).all() and np.isfinite(ds.sst.values[..., ~land]).all()
    metrics = json.loads((out / "metrics.json").read_text())
    sst_scores = metrics["scores"]["sst"]
    for name in ("model", "persistence", "anomaly_persistence", "climatology", "damped_persistence", "lim"):
        assert len(sst_scores[name]["rmse"]) == 2 and len(sst_scores[name]["crps"]) == 2
    assert {"crps_fair", "spread_skill", "rank_histogram", "acc", "nino34_corr"} <= set(sst_scores["model"])
    assert {"crps_fair", "crps_gaussian", "spread_skill", "nino34_corr"} <= set(sst_scores["lim"])
    assert metrics["assimilation"]["observations"] == 20
    for name in ("nino34_plume.png", "assimilation.png", "maps_sst_2017-01_lead1.png"):
        assert (out / name).stat().st_size > 1000

    samples = tmp_path / "samples"
    run(["-m", "sciffusion.cli.sample", f"checkpoint={ckpt}", "num_samples=2", "steps=2", "+cond.init_time=2018-06",
         f"out_dir={samples}"], tmp_path)
    assert xr.open_dataset(samples / "samples.nc").sst.shape == (2, 13, 57)


def test_forecast_samples_with_the_checkpoints_stored_settings_unless_given():
    from sciffusion_domains.weather.forecast import load_with_settings

    *_, settings = load_with_settings("hadisst_forecast_2step")
    assert (settings.sampler, settings.steps, settings.grid_options) == ("consistency", 2, {"sigma_min": 0.5})
    assert settings.sources["steps"] == "checkpoint sampling_defaults"
    *_, teacher = load_with_settings("hadisst")
    assert (teacher.sampler, teacher.steps, teacher.grid) == ("heun", 12, "karras")
    *_, given = load_with_settings("hadisst", sampler="euler", steps=30)
    assert (given.sampler, given.steps, given.sources["sampler"]) == ("euler", 30, "given")

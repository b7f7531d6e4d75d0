"""Ensemble forecasts, their scores, and data assimilation with a trained weather model.

    python -m sciffusion_domains.weather.forecast checkpoint=RUN/checkpoints/last.ckpt out_dir=DIR \
        members=8 leads=6 [split=test inits=all observations=300 rescore=false]
        [sampler=heun steps=12 grid=karras grid_options.sigma_min=0.4]   # sampling, when not the checkpoint's
        [wb2=forecast_wb2.zarr]   # also the forecast in WeatherBench 2's layout (Zarr, or NetCDF for .nc)

Sampling settings not given come from the checkpoint's stored defaults (its measured best: Heun 12
steps for ``hadisst``, the 2-step consistency sampler for ``hadisst_forecast_2step``), then the
library's; the run prints them and metrics.json records them under "sampling".

From every initial time of ``split`` (the month whose state is the last one known) each member is
rolled out ``leads`` months: the sampled month becomes the newest conditioning state of the next.
Member m of initial time i at lead l starts from its own prior noise, seeded by (seed, i, m, l), so
with a deterministic sampler (heun, euler, dpmpp_2m) a member is the same however the work is
batched. Writes into out_dir:

    forecast.nc        CF-style NetCDF (init_time, lead_time, member, lat, lon), land NaN
    <wb2>              with wb2=NAME: the same ensemble in WeatherBench 2's layout (time, prediction_timedelta,
                       member, latitude, longitude; io.forecast_to_wb2), scored by wb2.headline_scores
    maps_*.png         truth, ensemble mean, spread and error for the first initial time
    nino34_plume.png   the Nino 3.4 plume (SST only)
    assimilation.png   with observations > 0: a field reconstructed from point observations
    metrics.json       by lead: area-weighted RMSE of the ensemble mean, standard and fair CRPS,
                       spread/skill, rank histogram, ACC, Nino 3.4 skill; the same for persistence,
                       anomaly persistence, climatology, damped persistence and a linear inverse
                       model fitted on the training years, on the same initial times
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from sciffusion.guidance import ReconstructionGuidance
from sciffusion.parameterization import Cond, Denoiser
from sciffusion.processes import NoiseProcess
from sciffusion.samplers import sample
from sciffusion.space import DenseSpace
from sciffusion.timesteps import make_grid

from .domain import WeatherDomain, month_vector


@dataclass
class ForecastOptions:
    """Options of the entry point, given as ``key=value``."""

    checkpoint: str = "???"
    out_dir: str = "forecast"
    members: int = 8
    leads: int = 6
    split: str = "test"
    inits: Any = "all"  # "all", or a list of initial months ["2017-06", ...]
    # None: the checkpoint's stored sampling settings (its measured best), then the library's
    sampler: Optional[str] = None
    steps: Optional[int] = None
    grid: Optional[str] = None
    grid_options: dict[str, Any] = field(default_factory=dict)  # keywords of the grid, e.g. {sigma_min: 0.4}
    seed: int = 0
    batch_size: int = 256
    use_ema: bool = True
    observations: int = 300  # point observations for the data-assimilation example; 0 skips it
    obs_noise: float = 0.1  # their error standard deviation, in the normalised units
    maps: bool = True
    rescore: bool = False  # score out_dir/forecast.nc again (after a change in scoring) instead of sampling
    wb2: Optional[str] = None  # a file name under out_dir: also write WeatherBench 2's layout (.zarr: Zarr, else NetCDF)


def load(checkpoint: str | Path, *, use_ema: bool = True) -> tuple[WeatherDomain, Denoiser, NoiseProcess]:
    """The domain (with the normaliser stored in the checkpoint), the denoiser and its process. A
    checkpoint trained on the residual of the LIM's mean (its config's ``residual``) comes back as a
    denoiser of the full state (``sciffusion.residual.ResidualDenoiser``)."""
    return load_with_settings(checkpoint, use_ema=use_ema)[:3]


def load_with_settings(checkpoint: str | Path, *, use_ema: bool = True, sampler: str | None = None,
                       steps: int | None = None, grid: str | None = None, grid_options: dict | None = None):
    """``load``'s (domain, denoiser, process) and the sampling ``Settings``: the given ones over the
    checkpoint's stored defaults (its measured best) over the library's."""
    from sciffusion.api import load as load_model

    model = load_model(checkpoint, use_ema=use_ema)  # also a shipped name: "hadisst"
    if not isinstance(model.domain, WeatherDomain):
        raise ValueError(f"{checkpoint} was trained on domain {model.domain.name!r}, not weather")
    settings = model.settings(sampler=sampler, steps=steps, grid=grid, grid_options=grid_options or None)
    residual = model.config.get("residual")
    if not residual:
        return model.domain, model.denoiser, model.process, settings
    # trained as mean + residual diffusion (experiments/weather/train_residual.py): add the mean back
    from sciffusion.residual import ResidualDenoiser

    from .baselines import LIMPredictor

    if residual.get("predictor") != "lim":
        raise ValueError(f"{checkpoint} was trained on the residual of predictor {residual.get('predictor')!r}; "
                         "only 'lim' is known here")
    predictor = LIMPredictor(model.domain, modes=int(residual["modes"]))
    return model.domain, ResidualDenoiser(model.denoiser, predictor, model.process), model.process, settings


def member_seed(seed: int, position: int, member: int, lead: int) -> int:
    return (((seed * 1_000_003 + position) * 1009 + member) * 101 + lead) % (2**62)


def initial_positions(domain: WeatherDomain, split: str, leads: int, inits: Any = "all") -> np.ndarray:
    """Time positions of the initial months of ``split`` whose ``leads`` months ahead lie in the data
    and whose history precedes them; ``inits`` ("all" or months "YYYY-MM") picks among them."""
    times = domain.fields.time.values
    inside = np.isin(times, domain.fields.time.sel(time=domain.period(split)).values)
    positions = np.flatnonzero(inside)
    positions = positions[(positions + leads < len(times)) & (positions >= domain.history - 1)]
    if inits != "all":
        months = times[positions].astype("datetime64[M]").astype(str)
        wanted = [str(m)[:7] for m in inits]
        unknown = sorted(set(wanted) - set(months))
        if unknown:
            raise ValueError(f"initial months {unknown} are not usable in split {split!r} with {leads} leads "
                             f"({months[0]} to {months[-1]})")
        positions = positions[np.isin(months, wanted)]
    if positions.size == 0:
        raise ValueError(f"split {split!r} has no initial time with {leads} months of data after it")
    return positions


def _history(domain: WeatherDomain, positions: np.ndarray) -> Tensor:
    """Conditioning fields ``[I, history * C (+ history * P), H, W]``: states at p, p-1, ... (newest
    first), then the predictors of those months when the model has any."""
    steps = [domain.states(positions - k) for k in range(domain.history)]
    return torch.cat(steps + ([_predictors(domain, positions, 1)] if domain.predictor_sources else []), dim=1)


def _predictors(domain: WeatherDomain, positions: np.ndarray, lead: int) -> Tensor:
    """Predictor conditions ``[I, history * P, H, W]`` of lead ``lead`` from the initial positions
    ``[I]``: months after the initial one are not known at forecast time, the newest known persists."""
    from .predictors import rollout_positions

    z = domain.predictor_states(rollout_positions(positions, lead, domain.history))  # [I, history, P, H, W]
    return z.flatten(1, 2)


@torch.no_grad()
def rollout(domain: WeatherDomain, denoiser: Denoiser, process: NoiseProcess, positions: np.ndarray, *,
            members: int, leads: int, sampler: str = "heun", steps: int = 12, grid: str = "karras",
            grid_options: dict | None = None, seed: int = 0, batch_size: int = 256,
            sampler_options: dict | None = None) -> Tensor:
    """Normalised ensemble forecasts ``[I, L, M, C, H, W]`` from the initial positions ``[I]``.

    Each lead conditions on the two newest states of its own member: observed ones at first, then
    the member's own samples. A model with predictors sees those of months up to the initial one only
    (``predictors.rollout_positions``). ``grid_options`` are keywords of the time grid ``grid`` (e.g. the
    ``sigma_min`` where a multistep consistency sampler makes its last evaluation). Stochastic
    samplers draw their noise from one generator per chunk of ``batch_size`` rows, seeded by (seed,
    lead, chunk).
    """
    space = domain.space()
    c = len(domain.channels)
    rows = [(i, m) for i in range(len(positions)) for m in range(members)]
    fields = _history(domain, positions).repeat_interleave(members, dim=0)
    month = torch.as_tensor(domain.fields.time.dt.month.values - 1)
    sigma_max = float(process.sigma(torch.tensor(process.t_max, dtype=torch.float64)))
    ts = make_grid(grid, process, steps, **(grid_options or {}))
    out = torch.zeros(len(rows), leads, c, len(domain.lat), len(domain.lon))
    for lead in range(1, leads + 1):
        noise = torch.stack([torch.randn(c, len(domain.lat), len(domain.lon), generator=torch.Generator().manual_seed(
            member_seed(seed, int(positions[i]), m, lead))) for i, m in rows])
        x = space.project(sigma_max * noise)
        vector = month_vector(month[positions[[i for i, _ in rows]] + lead])
        for start in range(0, len(rows), batch_size):
            part = slice(start, start + batch_size)
            cond = {"fields": fields[part], "vector": vector[part]}
            g = torch.Generator().manual_seed(member_seed(seed, lead, start // batch_size, -1))
            out[part, lead - 1] = sample(sampler, denoiser, x[part], ts, process=process, space=space, cond=cond,
                                         generator=g, **(sampler_options or {}))
        states = torch.cat([out[:, lead - 1], fields[:, :(domain.history - 1) * c]], dim=1)
        if domain.predictor_sources and lead < leads:
            states = torch.cat([states, _predictors(domain, positions, lead + 1).repeat_interleave(members, 0)], 1)
        fields = states
    return out.reshape(len(positions), members, leads, c, *out.shape[-2:]).transpose(1, 2)


def assimilate(denoiser: Denoiser, process: NoiseProcess, points: Tensor, y: Tensor, *, mask: Tensor,
               cond: Cond | None = None, members: int = 4, noise_std: float = 0.1, sampler: str = "heun",
               steps: int = 24, grid: str = "karras", seed: int = 0, scale: float = 1.0) -> Tensor:
    """Fields ``[M, C, H, W]`` consistent with point observations, with no retraining.

    ``points [K]`` are flat indices into one sample ``[C, H, W]`` (unmasked entries), ``y [K]`` the
    observed values in the model's normalised units, observed with error ``noise_std``. The
    observation operator A picks those entries; ``ReconstructionGuidance`` turns the denoiser into
    one of p(x | y) (and of p(x | y, previous states) when ``cond`` holds the forecast's conditions,
    each ``[1, ...]``: the forecast is the background of the analysis).
    """
    if not bool(mask.flatten()[points].all()):
        raise ValueError("some observation points fall on masked (land) entries; observe unmasked entries only")
    space = DenseSpace(mask)
    observe = lambda x0: x0.flatten(1)[:, points]
    guided = ReconstructionGuidance(denoiser, observe, y.reshape(1, -1), process, noise_std, scale=scale)
    cond = {k: v.expand(members, *v.shape[1:]) for k, v in (cond or {}).items()}
    g = torch.Generator().manual_seed(seed)
    sigma_max = float(process.sigma(torch.tensor(process.t_max, dtype=torch.float64)))
    x = sigma_max * space.randn_like(torch.zeros(members, *mask.shape), g)
    ts = make_grid(grid, process, steps)
    with torch.no_grad():
        return sample(sampler, guided, x, ts, process=process, space=space, cond=cond, generator=g)


# -- scoring ------------------------------------------------------------------------------------------
def _physical(domain: WeatherDomain, positions: np.ndarray) -> np.ndarray:
    """Observed states ``[N, C, H, W]`` in the data's units, NaN where masked."""
    values = domain.fields.isel(time=np.asarray(positions)).values
    return np.where(domain.mask.numpy(), values, np.nan)


def _index(fields: np.ndarray, domain: WeatherDomain) -> np.ndarray:
    """Nino 3.4 box means ``[...]`` of fields ``[..., H, W]``."""
    import xarray as xr

    from .grid import nino34

    dims = tuple(f"d{k}" for k in range(fields.ndim - 2)) + ("lat", "lon")
    return nino34(xr.DataArray(fields, dims=dims, coords={"lat": domain.lat, "lon": domain.lon})).values


def nino34_inside(domain: WeatherDomain) -> bool:
    from .grid import NINO34_LAT, NINO34_LON

    lon = np.mod(domain.lon, 360.0)
    return (domain.lat.min() <= NINO34_LAT[0] and domain.lat.max() >= NINO34_LAT[1]
            and lon.min() <= NINO34_LON[0] and lon.max() >= NINO34_LON[1])


def score(domain: WeatherDomain, ensemble: np.ndarray, positions: np.ndarray) -> dict[str, Any]:
    """Scores by lead of ``ensemble [I, L, M, C, H, W]`` (data units, NaN land), per channel, next to
    the baselines of ``scores.baseline_scores`` (fitted on the training years, their ensembles of the
    model's size) on the same initial times, all through ``scores.ensemble_scores``."""
    from . import scores
    from .grid import climatology

    leads, members = ensemble.shape[1], ensemble.shape[2]
    lat, times = domain.lat, domain.fields.time.values
    month = domain.fields.time.dt.month.values - 1
    result: dict[str, Any] = {"initial_times": len(positions), "members": members,
                              "first_init": str(times[positions[0]])[:7], "last_init": str(times[positions[-1]])[:7],
                              "leads": list(range(1, leads + 1))}
    index = (lambda fields: _index(fields.numpy(), domain)) if nino34_inside(domain) else None
    for k, channel in enumerate(domain.channels):
        da = domain.fields.isel(channel=k).drop_vars("channel").where(domain.mask[k].numpy())
        clim = climatology(da, period=domain.period("train")).values  # [12, H, W]
        model: dict[str, list] = {}
        for lead in range(1, leads + 1):
            truth = torch.as_tensor(_physical(domain, positions + lead)[:, k])
            members_k = torch.as_tensor(ensemble[:, lead - 1, :, k]).transpose(0, 1)  # [M, I, H, W]
            clim_t = torch.as_tensor(clim[month[positions + lead]])
            for key, value in scores.ensemble_scores(members_k, truth, climatology=clim_t, lat=lat, index=index,
                                                     generator=torch.Generator().manual_seed(lead)).items():
                model.setdefault(key, []).append(value)
        test = domain.fields.time.values[positions]
        baselines = scores.baseline_scores(da, train=domain.period("train"), test=slice(test[0], test[-1]),
                                           leads=range(1, leads + 1), members=max(members, 2))
        if baselines["initial_times"] != len(positions):
            baselines["note"] = f"baselines scored on {baselines['initial_times']} initial times from " \
                                f"{baselines['first_init']} to {baselines['last_init']}, the model on {len(positions)}"
        result[channel] = {"model": model, **{name: baselines[name] for name in scores.BASELINES}}
        result[channel]["lim_modes"] = baselines["lim_modes"]
        if "note" in baselines:
            result[channel]["note"] = baselines["note"]
    return result


# -- the entry point ----------------------------------------------------------------------------------
def wb2_dataset(domain: WeatherDomain, ensemble: np.ndarray, positions: np.ndarray):
    """The ensemble ``[I, L, M, C, H, W]`` (data units) from the initial ``positions [I]`` in
    WeatherBench 2's layout (``io.forecast_to_wb2``), valid times from the domain's time axis."""
    from .io import forecast_to_wb2

    times = domain.fields.time.values
    valid = times[np.asarray(positions)[:, None] + np.arange(1, ensemble.shape[1] + 1)[None]]
    return forecast_to_wb2({c: ensemble[:, :, :, k] for k, c in enumerate(domain.channels)},
                           init_time=times[positions], valid_time=valid, lat=domain.lat, lon=domain.lon,
                           attrs=domain.variable_attrs())


def write_outputs(domain: WeatherDomain, ensemble: np.ndarray, positions: np.ndarray, out_dir: Path, *,
                  maps: bool = True, wb2: str | None = None) -> list[Path]:
    """forecast.nc, with ``wb2`` that file name in WeatherBench 2's layout, the maps of the first
    initial time and the Nino 3.4 plume."""
    from .figures import forecast_maps, nino34_plume
    from .grid import climatology
    from .io import forecast_to_dataset, write_forecast, write_wb2

    times = domain.fields.time.values
    leads = ensemble.shape[1]
    attrs = domain.variable_attrs()
    ds = forecast_to_dataset({c: ensemble[:, :, :, k] for k, c in enumerate(domain.channels)},
                             init_time=times[positions], lead_time=range(1, leads + 1), lat=domain.lat,
                             lon=domain.lon, attrs=attrs)
    written = [write_forecast(ds, out_dir / "forecast.nc")]
    if wb2:
        written.append(write_wb2(wb2_dataset(domain, ensemble, positions), out_dir / wb2))
    if maps:
        first = str(times[positions[0]])[:7]
        for k, c in enumerate(domain.channels):
            for lead in sorted({1, leads}):
                truth = _physical(domain, positions[:1] + lead)[0, k]
                written.append(forecast_maps(truth, ensemble[0, lead - 1, :, k], lat=domain.lat, lon=domain.lon,
                                             path=out_dir / f"maps_{c}_{first}_lead{lead}.png",
                                             title=f"{c}: initial {first}, lead {lead} month(s)",
                                             units=attrs[c].get("units", "")))
    if "sst" in domain.channels and nino34_inside(domain):
        k = domain.channels.index("sst")
        da = domain.fields.isel(channel=k).drop_vars("channel").where(domain.mask[k].numpy())
        clim = climatology(da, period=domain.period("train")).values
        month = domain.fields.time.dt.month.values - 1
        shown = np.unique(np.linspace(0, len(positions) - 1, min(8, len(positions))).round().astype(int))
        targets = positions[shown][:, None] + np.arange(1, leads + 1)[None]  # [I', L]
        anomalies = ensemble[shown][:, :, :, k] - clim[month[targets]][:, :, None]  # [I', L, M, H, W]
        observed = _physical(domain, targets.reshape(-1))[:, k].reshape(*targets.shape, *clim.shape[1:])
        written.append(nino34_plume(_index(anomalies, domain), _index(observed - clim[month[targets]], domain),
                                    lead_time=range(1, leads + 1), path=out_dir / "nino34_plume.png",
                                    titles=[f"initial {str(times[p])[:7]}" for p in positions[shown]],
                                    units=attrs["sst"].get("units", "")))
    return written


def assimilation_example(domain: WeatherDomain, denoiser: Denoiser, process: NoiseProcess, position: int, *,
                         observations: int, noise_std: float, members: int, steps: int, seed: int,
                         out_dir: Path) -> dict[str, float]:
    """Reconstruct the month at ``position`` from ``observations`` random ocean points, with and
    without the previous months as background; RMSE at the unobserved points, in data units."""
    from .figures import forecast_maps
    from .scores import rmse

    g = torch.Generator().manual_seed(seed)
    valid = torch.nonzero(domain.mask.flatten()).flatten()
    points = valid[torch.randperm(len(valid), generator=g)[:observations]]
    truth = domain.states([position])[0]
    y = truth.flatten()[points] + noise_std * torch.randn(len(points), generator=g)
    month = torch.tensor([int(domain.fields.time.dt.month.values[position]) - 1])
    background = {"fields": _history(domain, np.array([position - 1])), "vector": month_vector(month)}
    unobserved = domain.mask.flatten().clone()
    unobserved[points] = False
    truth_phys = torch.as_tensor(np.where(unobserved.reshape(domain.mask.shape).numpy(), domain.to_physical(truth),
                                          np.nan))
    error = lambda fields: float(rmse(torch.as_tensor(domain.to_physical(fields.mean(0))), truth_phys, lat=domain.lat))
    result = {"observations": observations, "noise_std_normalised": noise_std, "members": members,
              "time": str(domain.fields.time.values[position])[:7]}
    for name, cond in (("analysis_no_background", {"drop": torch.ones(1, dtype=torch.bool)}),
                       ("analysis_with_forecast_background", background)):
        analysis = assimilate(denoiser, process, points, y, mask=domain.mask, cond=cond, members=members,
                              noise_std=noise_std, steps=steps, seed=seed)
        result[f"{name}_rmse_unobserved"] = error(analysis)
    forecast = rollout(domain, denoiser, process, np.array([position - 1]), members=members, leads=1, steps=steps,
                       seed=seed)[0, 0]
    result["forecast_only_rmse_unobserved"] = error(forecast)
    channel = domain.channels[0]
    forecast_maps(domain.to_physical(truth)[0], domain.to_physical(analysis)[:, 0], lat=domain.lat, lon=domain.lon,
                  path=out_dir / "assimilation.png", units=domain.variable_attrs()[channel].get("units", ""),
                  title=f"{channel} {result['time']}: analysis from {observations} point observations and the "
                        "previous months")
    return result


def read_ensemble(domain: WeatherDomain, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The ensemble ``[I, L, M, C, H, W]`` of a forecast.nc written by :func:`write_outputs` and the
    time positions ``[I]`` of its initial months in the domain's data."""
    from .io import read_forecast

    ds = read_forecast(path)
    missing = [c for c in domain.channels if c not in ds.data_vars]
    if missing:
        raise ValueError(f"{path} lacks the domain's channels {missing}; it holds {list(ds.data_vars)}")
    times = domain.fields.time.values.astype("datetime64[M]")
    positions = np.searchsorted(times, ds.init_time.values.astype("datetime64[M]"))
    if not np.array_equal(times[np.minimum(positions, len(times) - 1)], ds.init_time.values.astype("datetime64[M]")):
        raise ValueError(f"the initial times of {path} are not all months of the domain's data")
    return np.stack([ds[c].values.astype(np.float64) for c in domain.channels], axis=3), positions


def run(opts: ForecastOptions) -> dict[str, Any]:
    """Forecast, write the files and return what goes into metrics.json."""
    start = time.time()
    out_dir = Path(opts.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    domain, denoiser, process, settings = load_with_settings(
        opts.checkpoint, use_ema=opts.use_ema, sampler=opts.sampler, steps=opts.steps, grid=opts.grid,
        grid_options=opts.grid_options)
    if not opts.rescore:
        print(f"weather forecast: sampling with {settings.describe()}", flush=True)
    if opts.rescore:
        ensemble, positions = read_ensemble(domain, out_dir / "forecast.nc")
        result = {"options": asdict(opts), "scores": score(domain, ensemble, positions),
                  "seconds": round(time.time() - start, 1)}
        (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
        return result
    positions = initial_positions(domain, opts.split, opts.leads, opts.inits)
    forecast = rollout(domain, denoiser, process, positions, members=opts.members, leads=opts.leads,
                       sampler=settings.sampler, steps=settings.steps, grid=settings.grid,
                       grid_options=settings.grid_options, seed=opts.seed, batch_size=opts.batch_size)
    ensemble = domain.to_physical(forecast)
    files = write_outputs(domain, ensemble, positions, out_dir, maps=opts.maps, wb2=opts.wb2)
    result = {"options": asdict(opts), "sampling": settings.describe(), "scores": score(domain, ensemble, positions)}
    if opts.observations:
        result["assimilation"] = assimilation_example(
            domain, denoiser, process, int(positions[0]) + 1, observations=opts.observations,
            noise_std=opts.obs_noise, members=min(opts.members, 4), steps=max(settings.steps, 12), seed=opts.seed,
            out_dir=out_dir)
        files.append(out_dir / "assimilation.png")
    result["seconds"] = round(time.time() - start, 1)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    files.append(out_dir / "metrics.json")
    return result


def parse(argv: Sequence[str]) -> ForecastOptions:
    """``key=value`` arguments (OmegaConf's syntax: lists as [a,b]) into the options."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(OmegaConf.structured(ForecastOptions), OmegaConf.from_dotlist(list(argv)))
    opts = ForecastOptions(**OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))
    if opts.checkpoint == "???":
        raise SystemExit("give checkpoint=PATH (a .ckpt written by sciffusion-train on the weather domain)")
    return opts


def main(argv: Sequence[str] | None = None) -> None:
    opts = parse(sys.argv[1:] if argv is None else argv)
    result = run(opts)
    summary = {c: {k: [round(v, 3) for v in result["scores"][c]["model"][k]] for k in ("rmse", "crps")}
               for c in result["scores"] if isinstance(result["scores"][c], dict) and "model" in result["scores"][c]}
    print(f"weather forecast: wrote {opts.out_dir} in {result['seconds']} s; {json.dumps(summary)}")


if __name__ == "__main__":
    main()

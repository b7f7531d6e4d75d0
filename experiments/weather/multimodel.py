"""A multi-model ensemble of the diffusion members and the LIM (issue #15), as seasonal forecasting
centres (NMME) combine models, and the simple spread fix of inflating the members.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/weather/multimodel.py

Reads the saved 8-member forecasts of ``hadisst_anomaly_dropout`` (anomalies; the training
climatology of each target month is added back, as ``ablations_s5/score_full_field.py`` does) on the
validation (42 initial months 2013-01..2016-06) and test (54, 2017-2021) years, and builds the LIM
forecasts for the same initial months and leads with ``baselines.LinearInverseModel`` (15 EOFs,
fitted on 1991-2012 anomalies from the 1991-2012 climatology, exactly as ``scores.baseline_scores``).
The baselines (and so "best baseline", the lowest 8-member fair CRPS of climatology, damped
persistence and the LIM) are ``scores.baseline_scores`` on the same initial months, as in the README's
tables. Candidates, every parameter chosen per lead by the lowest VALIDATION fair CRPS (or, for
``inflated_ss``, validation spread/skill 1) and applied unchanged to the test years:

- ``diffusion``: the 8 members alone; ``lim``: the LIM's 8 draws (the README's baseline row);
- ``pooled``: the 8 members plus K joint draws of the LIM (``LinearInverseModel.sample``, seeded by
  lead), K in {0, 2, 4, 8, 16, 32}, scored as one ensemble with the fair CRPS;
- ``mixture``: ``w * diffusion + (1 - w) * LIM Gaussian``, w in 0, 0.05, ..., 1, scored exactly
  (``combine.mixture_crps``: fair pair term for the members, closed forms for the Gaussian);
- ``inflated_ss``: the members inflated about their mean by 1 / (validation spread/skill);
- ``inflated_crps``: inflated by the factor in 1.00, 1.02, ..., 2.50 with the lowest validation fair CRPS;
- ``inflated_mixture``: ``inflated_ss``'s members mixed with the LIM Gaussian, w chosen as for ``mixture``.

Writes ``multimodel/val.json`` and ``multimodel/test.json`` next to this script and prints markdown tables;
``multimodel.py tables`` prints them again from the JSON files; ``multimodel.py --out DIR`` writes
the JSON files to DIR instead. ``Period(domain, split, runs=[...])`` pools the members of several
forecasts of the same initial months (``experiments/weather/seeds/seeds.py``: three training seeds).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from sciffusion_domains.weather import combine, scores
from sciffusion_domains.weather.baselines import LinearInverseModel
from sciffusion_domains.weather.domain import HADISST, SPLITS, WeatherDomain
from sciffusion_domains.weather.forecast import _index, read_ensemble
from sciffusion_domains.weather.grid import climatology

HERE = Path(__file__).resolve().parent
RUNS = {"val": HERE / "ablations_s5/hadisst_anomaly_dropout_val", "test": HERE / "ablations_s5/hadisst_anomaly_dropout_test"}
OUT = HERE / "multimodel"
LEADS = list(range(1, 7))
MODES = 15  # as scores.baseline_scores
BASELINE_MEMBERS = 8  # the baselines' draws, as in the session-5 tables
REFERENCES = ("climatology", "damped_persistence", "lim")
POOL_SIZES = (0, 2, 4, 8, 16, 32)
WEIGHTS = combine.linear_grid(0.0, 1.0, 0.05)
FACTORS = combine.linear_grid(1.0, 2.5, 0.02)
CANDIDATES = ("diffusion", "lim", "pooled", "mixture", "inflated_ss", "inflated_crps", "inflated_mixture")


class Period:
    """Truth, the diffusion members, the LIM's Gaussian and its draws for one split, full fields in C."""

    def __init__(self, domain: WeatherDomain, split: str, runs: Sequence[Path] | None = None):
        """``runs``: forecast folders (``forecast.nc``) of the same initial months whose members are
        pooled, in that order (default: ``RUNS[split]``, the session-8 ensemble). The baselines are
        always drawn with ``BASELINE_MEMBERS`` members, so they are the same draws whatever is pooled."""
        runs = [RUNS[split]] if runs is None else [Path(r) for r in runs]
        self.lat = domain.lat
        da = domain.fields.isel(channel=0).drop_vars("channel").where(domain.mask[0].numpy())
        train = domain.period("train")
        clim = torch.as_tensor(climatology(da, period=train).values, dtype=torch.float64)  # [12, H, W]
        states = torch.as_tensor(da.values, dtype=torch.float64)
        month = torch.as_tensor(da.time.dt.month.values - 1)
        anomalies = states - clim[month]
        read = [read_ensemble(domain, run / "forecast.nc") for run in runs]  # [I, L, M, 1, H, W] anomalies
        positions = read[0][1]
        if any(not np.array_equal(p, positions) for _, p in read):
            raise ValueError(f"the forecasts {runs} start from different initial months")
        ensemble = np.concatenate([e for e, _ in read], axis=2)
        self.runs = [str(run) for run in runs]
        times = da.time.values
        self.positions, self.first, self.last = positions, str(times[positions[0]])[:7], str(times[positions[-1]])[:7]
        train_mask = np.isin(times, da.time.sel(time=train).values)
        lim = LinearInverseModel.fit(anomalies[train_mask], lat=self.lat, modes=MODES)
        # the baselines exactly as forecast.score computes them for this forecast's initial months
        self.baselines = scores.baseline_scores(da, train=train, test=slice(times[positions[0]], times[positions[-1]]),
                                                leads=LEADS, members=BASELINE_MEMBERS, modes=MODES)
        assert self.baselines["initial_times"] == len(positions), "baselines and forecast differ in initial months"
        self.truth, self.clim, self.members, self.lim_mean, self.lim_std, self.lim_draws = {}, {}, {}, {}, {}, {}
        initial = anomalies[positions]
        for lead in LEADS:
            clim_t = clim[month[positions + lead]]
            self.clim[lead], self.truth[lead] = clim_t, states[positions + lead]
            self.members[lead] = torch.as_tensor(ensemble[:, lead - 1, :, 0]).transpose(0, 1) + clim_t  # [M, I, H, W]
            f = lim.forecast(initial, lead=lead)
            self.lim_mean[lead], self.lim_std[lead] = clim_t + f.mean, f.std
            g = torch.Generator().manual_seed(1000 + lead)
            self.lim_draws[lead] = clim_t + lim.sample(initial, lead=lead, members=max(POOL_SIZES), generator=g)
        self.index = lambda fields: _index(fields.numpy(), domain)
        # kept for per-initial-month scores (experiments/weather/seeds/seeds.py)
        self.states, self.anomalies, self.train_mask, self.lim, self.months = states, anomalies, train_mask, lim, month

    def fair_crps(self, ensemble: torch.Tensor, lead: int) -> float:
        return float(scores.crps(ensemble, self.truth[lead], lat=self.lat, fair=True))

    def mixture_fair_crps(self, ensemble: torch.Tensor, lead: int, weight: float) -> float:
        pointwise = combine.mixture_crps(ensemble, self.lim_mean[lead], self.lim_std[lead], self.truth[lead],
                                         weight=weight)
        return float(scores.area_mean(pointwise, lat=self.lat))

    def ensemble_scores(self, ensemble: torch.Tensor, lead: int) -> dict:
        out = scores.ensemble_scores(ensemble, self.truth[lead], climatology=self.clim[lead], lat=self.lat,
                                     index=self.index, generator=torch.Generator().manual_seed(lead))
        out["members"] = ensemble.shape[0]
        return out

    def mixture_scores(self, ensemble: torch.Tensor, lead: int, weight: float) -> dict:
        truth, clim_t, lat = self.truth[lead], self.clim[lead], self.lat
        mean, std = self.lim_mean[lead], self.lim_std[lead]
        mix = combine.mixture_mean(ensemble, mean, weight=weight)
        predicted, observed = self.index(mix - clim_t), self.index(truth - clim_t)
        return {"rmse": float(scores.rmse(mix, truth, lat=lat)),
                "crps": float(scores.area_mean(combine.mixture_crps(ensemble, mean, std, truth, weight=weight,
                                                                    fair=False), lat=lat)),
                "crps_fair": self.mixture_fair_crps(ensemble, lead, weight),
                "spread_skill": float(combine.mixture_spread_skill(ensemble, mean, std, truth, weight=weight, lat=lat)),
                "acc": float(scores.anomaly_correlation(mix, truth, climatology=clim_t, lat=lat)),
                "nino34_corr": float(np.corrcoef(predicted, observed)[0, 1]),
                "nino34_rmse": float(np.sqrt(np.mean((predicted - observed) ** 2)))}


def choose(val: Period) -> dict[str, list[float]]:
    """Every candidate's parameter per lead, from the validation years only."""
    chosen: dict[str, list[float]] = {"pool_size": [], "weight": [], "inflation_ss": [], "inflation_crps": [],
                                      "inflated_mixture_weight": []}
    for lead in LEADS:
        members, draws = val.members[lead], val.lim_draws[lead]
        k, _ = combine.best_on_grid(lambda k: val.fair_crps(combine.pool(members, draws[: int(k)]), lead), POOL_SIZES)
        w, _ = combine.best_on_grid(lambda w: val.mixture_fair_crps(members, lead, w), WEIGHTS)
        a_ss = combine.spread_skill_inflation(members, val.truth[lead], lat=val.lat)
        a_crps, _ = combine.best_on_grid(lambda a: val.fair_crps(combine.inflate(members, a), lead), FACTORS)
        inflated = combine.inflate(members, a_ss)
        w_inf, _ = combine.best_on_grid(lambda w: val.mixture_fair_crps(inflated, lead, w), WEIGHTS)
        for key, value in zip(chosen, (int(k), w, round(a_ss, 4), a_crps, w_inf)):
            chosen[key].append(value)
    return chosen


def evaluate(period: Period, chosen: dict[str, list[float]]) -> dict:
    table: dict[str, dict[str, list]] = {name: {} for name in CANDIDATES}
    for i, lead in enumerate(LEADS):
        members = period.members[lead]
        inflated_ss = combine.inflate(members, chosen["inflation_ss"][i])
        rows = {
            "diffusion": period.ensemble_scores(members, lead),
            "lim": {k: period.baselines["lim"][k][i] for k in ("rmse", "crps", "crps_fair", "spread_skill", "acc",
                                                              "nino34_corr", "nino34_rmse", "crps_gaussian")},
            "pooled": period.ensemble_scores(combine.pool(members, period.lim_draws[lead][: chosen["pool_size"][i]]),
                                             lead),
            "mixture": period.mixture_scores(members, lead, chosen["weight"][i]),
            "inflated_ss": period.ensemble_scores(inflated_ss, lead),
            "inflated_crps": period.ensemble_scores(combine.inflate(members, chosen["inflation_crps"][i]), lead),
            "inflated_mixture": period.mixture_scores(inflated_ss, lead, chosen["inflated_mixture_weight"][i]),
        }
        rows["lim"]["members"] = period.baselines["members"]
        for name, row in rows.items():
            for key, value in row.items():
                table[name].setdefault(key, []).append(value)
    best = [min(period.baselines[name]["crps_fair"][i] for name in REFERENCES) for i in range(len(LEADS))]
    which = [min(REFERENCES, key=lambda name: period.baselines[name]["crps_fair"][i]) for i in range(len(LEADS))]
    for name in CANDIDATES:
        table[name]["crps_fair_over_best_baseline"] = [c / b for c, b in zip(table[name]["crps_fair"], best)]
    return {"leads": LEADS, "initial_times": len(period.positions), "first_init": period.first,
            "last_init": period.last, "chosen_on_validation": chosen, "best_baseline_crps_fair": best,
            "best_baseline": which,
            "baselines": {name: {k: period.baselines[name][k] for k in ("crps_fair", "rmse", "spread_skill")}
                          for name in REFERENCES},
            "forecasts": table}


def markdown(result: dict, title: str) -> str:
    lines = [f"**{title}** ({result['initial_times']} initial months {result['first_init']} to {result['last_init']})\n",
             "| lead (months) | " + " | ".join(str(lead) for lead in result["leads"]) + " |",
             "|---" * (len(result["leads"]) + 1) + "|"]
    metrics = (("crps_fair", "fair CRPS", 3), ("crps_fair_over_best_baseline", "fair CRPS / best baseline", 2),
               ("rmse", "RMSE", 3), ("spread_skill", "spread/skill", 2), ("nino34_corr", "Niño 3.4 correlation", 3),
               ("crps", "standard CRPS", 3))
    for key, label, digits in metrics:
        if key == "crps_fair_over_best_baseline":
            lines.append("| fair CRPS, best baseline | " + " | ".join(f"{v:.3f}" for v in result["best_baseline_crps_fair"])
                         + " |")
        for name in CANDIDATES:
            values = result["forecasts"][name][key]
            lines.append(f"| {label}, {name} | " + " | ".join(f"{v:.{digits}f}" for v in values) + " |")
    return "\n".join(lines)


def main(out: Path = OUT) -> None:
    start = time.time()
    domain = WeatherDomain(sources=HADISST, splits=SPLITS, history=2)
    periods = {split: Period(domain, split) for split in ("val", "test")}
    chosen = choose(periods["val"])
    out.mkdir(exist_ok=True)
    for split, period in periods.items():
        result = evaluate(period, chosen)
        result["seconds_total_so_far"] = round(time.time() - start, 1)
        (out / f"{split}.json").write_text(json.dumps(result, indent=1))
        print(markdown(result, TITLES[split]) + "\n")
    print("chosen on validation, by lead:", json.dumps(chosen))
    print(f"wall time {time.time() - start:.1f} s")


TITLES = {"val": "Validation, 2013-2016", "test": "Test, 2017-2021"}

if __name__ == "__main__":
    if sys.argv[1:] == ["tables"]:
        for split in ("val", "test"):
            print(markdown(json.loads((OUT / f"{split}.json").read_text()), TITLES[split]) + "\n")
        print("chosen on validation, by lead:", json.loads((OUT / "val.json").read_text())["chosen_on_validation"])
    elif sys.argv[1:2] == ["--out"]:  # the same run written elsewhere (to check it reproduces multimodel/)
        main(Path(sys.argv[2]))
    else:
        main()

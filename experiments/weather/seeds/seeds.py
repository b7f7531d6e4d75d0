"""Training seeds of ``hadisst_anomaly_dropout`` pooled into one ensemble, the session-8 combinations
applied to the pool, and a moving-block bootstrap of every candidate's fair CRPS over the best
baseline's (issue #15; experiments/weather/README.md, "Training seeds and a bootstrap (session 9)").

    OMP_NUM_THREADS=1 .venv/bin/python experiments/weather/seeds/seeds.py          # writes seeds/{val,test,bootstrap}.json
    .venv/bin/python experiments/weather/seeds/seeds.py tables                     # the tables again from the JSON

Ensembles (8 members per training seed, the same 42 validation and 54 test initial months, forecasts
made as ``ablations_s5/run.sh``'s ``forecast`` but each training seed with its own sampling seed):
``seed0`` (``ablations_s5/hadisst_anomaly_dropout_*``, the session-5/8 forecasts, sampling seed 0),
``seed1`` (``seeds/hadisst_anomaly_dropout_seed1_noise1_*``, sampling seed 1), ``seed2``
(``seeds/hadisst_anomaly_dropout_seed2_*``, sampling seed 2) and ``pool``, their 24 members as one
ensemble (``multimodel.Period(runs=...)``); also ``seed1_noise0`` (training seed 1 forecast with
sampling seed 0, ``seeds/hadisst_anomaly_dropout_seed1_*``) and ``pool_shared_noise`` (seed0 +
seed1_noise0), whose members m share their prior noise. ``--seeds a,b,... OUT`` scores a subset
(a pool only where all of its seeds are in it). Every ensemble goes
through ``multimodel.choose`` on validation and ``multimodel.evaluate`` on both periods, so each has
all session-8 candidates (``diffusion``, ``pooled``, ``mixture``, ``inflated_ss``, ``inflated_crps``,
``inflated_mixture``) with parameters chosen on validation only; ``seed0``'s choices are checked to
equal session 8's (``multimodel/val.json``).

Bootstrap: per initial month, the area-mean fair CRPS of a candidate and of the best baseline of that
lead (the baseline with the lowest fair CRPS over all initial months, held fixed; its 8 draws
reproduced exactly as ``scores.baseline_scores`` draws them, checked against its means), then
``combine.block_bootstrap_ratio`` per lead: circular moving blocks of ``BLOCK`` initial months, 10,000
resamples, 90% percentile intervals; also with ``BLOCK_SENSITIVITY`` months, and the val/test gap
(the test ratio minus the validation ratio, the two resampled independently).
"""
from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import multimodel  # experiments/weather/multimodel.py
from multimodel import LEADS, REFERENCES, Period, choose, evaluate

from sciffusion_domains.weather import combine, scores
from sciffusion_domains.weather.baselines import DampedPersistence
from sciffusion_domains.weather.domain import HADISST, SPLITS, WeatherDomain

SEEDS = {"seed0": HERE.parent / "ablations_s5/hadisst_anomaly_dropout_{split}",    # sampling seed 0
         "seed1": HERE / "hadisst_anomaly_dropout_seed1_noise1_{split}",             # sampling seed 1
         "seed2": HERE / "hadisst_anomaly_dropout_seed2_{split}",                    # sampling seed 2
         # training seed 1 forecast with sampling seed 0: member m starts from seed 0's member-m noise
         "seed1_noise0": HERE / "hadisst_anomaly_dropout_seed1_{split}"}
#: the ensembles pooled: training seeds with independent sampling noise; ``pool_shared_noise`` pools
#: seed 0 with training seed 1 forecast from the same noise, to show what shared noise does
#: (``pool`` holds those of seed0, seed1, seed2 that are scored: all three by default)
POOLS = {"pool": ("seed0", "seed1", "seed2"), "pool_shared_noise": ("seed0", "seed1_noise0")}
MEMBERS = 8
BLOCK = 12  # months; see the README section for why
BLOCK_SENSITIVITY = 6
LEVEL = 0.9
RESAMPLES = 10_000
#: the (ensemble, candidate) pairs bootstrapped against the best baseline
BOOTSTRAP = (("seed0", "diffusion"), ("pool", "diffusion"), ("seed0", "inflated_mixture"),
             ("pool", "inflated_ss"), ("pool", "inflated_mixture"), ("pool_shared_noise", "diffusion"))
PAIRS = (("pool/diffusion", "seed0/diffusion"), ("pool/inflated_mixture", "seed0/inflated_mixture"),
         ("pool_shared_noise/diffusion", "seed0/diffusion"))


def subset(period: Period, members: list[int]) -> Period:
    """The same period with only the given members (one training seed's, or a pool's)."""
    view = copy.copy(period)
    view.members = {lead: m[members] for lead, m in period.members.items()}
    return view


def per_case(period: Period, pointwise: torch.Tensor) -> np.ndarray:
    """Area mean of ``pointwise [I, H, W]`` per initial month ``[I]``; their mean is the all-case area
    mean because the ocean mask is the same every month (checked)."""
    cases = np.array([float(scores.area_mean(pointwise[i], lat=period.lat)) for i in range(pointwise.shape[0])])
    assert np.isclose(cases.mean(), float(scores.area_mean(pointwise, lat=period.lat)), rtol=1e-10, atol=0)
    return cases


def baseline_cases(period: Period) -> dict[str, dict[int, np.ndarray]]:
    """Per-initial-month fair CRPS of climatology, damped persistence and the LIM, with the very draws
    of ``scores.baseline_scores(seed=0)`` (same generator, same order), checked against its means."""
    g = torch.Generator().manual_seed(0)
    positions = torch.as_tensor(period.positions)
    train = period.anomalies[period.train_mask]
    damped = DampedPersistence.fit(train, leads=LEADS)
    initial = period.anomalies[positions]
    out: dict[str, dict[int, np.ndarray]] = {name: {} for name in REFERENCES}
    for lead in LEADS:
        truth, clim_t = period.truth[lead], period.clim[lead]
        for name, model in (("damped_persistence", damped), ("lim", period.lim)):
            draws = clim_t + model.sample(initial, lead=lead, members=multimodel.BASELINE_MEMBERS, generator=g)
            out[name][lead] = per_case(period, scores.crps_ensemble(draws, truth, fair=True))
        out["climatology"][lead] = per_case(period, scores.crps_ensemble(climatology_members(period, lead), truth,
                                                                         fair=True))
        for name in REFERENCES:
            expected = period.baselines[name]["crps_fair"][lead - 1]
            assert np.isclose(out[name][lead].mean(), expected, rtol=1e-9), (name, lead)
    return out


def climatology_members(period: Period, lead: int) -> torch.Tensor:
    """The climatology baseline's members for the period's targets at ``lead``, as ``scores.baseline_scores``
    builds them (``scores.climatology_ensemble`` of the training years' states)."""
    members = scores.climatology_ensemble(period.states[period.train_mask], period.months[period.train_mask], period.months)
    return members[:, torch.as_tensor(period.positions) + lead]


def candidate_cases(period: Period, chosen: dict, lead: int, name: str) -> np.ndarray:
    """Per-initial-month fair CRPS of one candidate of ``multimodel.evaluate`` at ``lead``."""
    i, members, truth = lead - 1, period.members[lead], period.truth[lead]
    mixture = lambda ensemble, w: combine.mixture_crps(ensemble, period.lim_mean[lead], period.lim_std[lead], truth,
                                                       weight=w)
    if name == "diffusion":
        pointwise = scores.crps_ensemble(members, truth, fair=True)
    elif name == "inflated_ss":
        pointwise = scores.crps_ensemble(combine.inflate(members, chosen["inflation_ss"][i]), truth, fair=True)
    elif name == "inflated_mixture":
        pointwise = mixture(combine.inflate(members, chosen["inflation_ss"][i]), chosen["inflated_mixture_weight"][i])
    elif name == "mixture":
        pointwise = mixture(members, chosen["weight"][i])
    else:
        raise ValueError(name)
    return per_case(period, pointwise)


def autocorrelation(x: np.ndarray, lags: int = 12) -> list[float]:
    x = x - x.mean()
    return [round(float(np.sum(x[k:] * x[: len(x) - k]) / np.sum(x * x)), 3) for k in range(1, lags + 1)]


def main(out: Path = HERE) -> None:
    start = time.time()
    domain = WeatherDomain(sources=HADISST, splits=SPLITS, history=2)
    periods = {split: Period(domain, split, runs=[Path(str(path).format(split=split)) for path in SEEDS.values()])
               for split in ("val", "test")}
    print(f"read the forecasts and fitted the baselines: {time.time() - start:.1f} s", flush=True)
    ensembles = {name: list(range(MEMBERS * k, MEMBERS * (k + 1))) for k, name in enumerate(SEEDS)}
    pools = {"pool": tuple(name for name in POOLS["pool"] if name in SEEDS),  # the scored ones of seed0..2
             **{pool: names for pool, names in POOLS.items() if pool != "pool"}}
    for pool, names in pools.items():
        if len(names) > 1 and all(name in SEEDS for name in names):
            ensembles[pool] = [m for name in names for m in ensembles[name]]
    views = {split: {name: subset(p, members) for name, members in ensembles.items()} for split, p in periods.items()}
    chosen = {name: choose(views["val"][name]) for name in ensembles}
    session8 = json.loads((HERE.parent / "multimodel/val.json").read_text())["chosen_on_validation"]
    assert chosen["seed0"] == session8, "seed 0's choices differ from session 8's"
    results = {}
    for split in ("val", "test"):
        folder = lambda name: str(Path(str(SEEDS[name]).format(split=split)).relative_to(HERE.parent))  # noqa: B023
        results[split] = {"ensembles": {name: [folder(n) for n in pools.get(name, (name,))] for name in ensembles},
                          "results": {name: evaluate(views[split][name], chosen[name]) for name in ensembles}}
        print(f"{split} scored: {time.time() - start:.1f} s", flush=True)

    # per-initial-month scores and the bootstrap
    boot: dict = {"block": BLOCK, "block_sensitivity": BLOCK_SENSITIVITY, "level": LEVEL, "resamples": RESAMPLES,
                  "leads": LEADS, "val": {}, "test": {}, "gap_test_minus_val": {}, "autocorrelation": {}}
    cases: dict = {}
    for s, (split, p) in enumerate(periods.items()):
        base = baseline_cases(p)
        best = results[split]["results"]["seed0"]["best_baseline"]
        cases[split] = {"best_baseline": [base[best[i]][lead].tolist() for i, lead in enumerate(LEADS)]}
        for ens, cand in BOOTSTRAP:
            if ens not in views[split]:
                continue
            key = f"{ens}/{cand}"
            view = views[split][ens]
            rows = [candidate_cases(view, chosen[ens], lead, cand) for lead in LEADS]
            for i, lead in enumerate(LEADS):  # the per-case means are the tables' numbers
                assert np.isclose(rows[i].mean(), results[split]["results"][ens]["forecasts"][cand]["crps_fair"][i],
                                  rtol=1e-9), (split, key, lead)
            cases[split][key] = [r.tolist() for r in rows]
            boot[split][key] = {}
            for block in (BLOCK, BLOCK_SENSITIVITY):
                intervals = [combine.block_bootstrap_ratio(rows[i], cases[split]["best_baseline"][i], block=block,
                                                           level=LEVEL, resamples=RESAMPLES, generator=100 * s + lead)
                             for i, lead in enumerate(LEADS)]
                boot[split][key][f"block{block}"] = [r.as_dict() for r in intervals]
                if block == BLOCK:
                    boot[split][key]["_samples"] = [r.samples for r in intervals]
            if split == "test":
                base_rows = cases[split]["best_baseline"]
                boot["autocorrelation"][key] = [autocorrelation(rows[i] - base_rows[i]) for i in range(len(LEADS))]
    boot["pairs"] = {}
    for s, split in enumerate(("val", "test")):  # the seed pool against seed 0 alone, same resampling
        for num_key, den_key in PAIRS:
            if num_key not in cases[split] or den_key not in cases[split]:
                continue
            rows = [combine.block_bootstrap_ratio(cases[split][num_key][i], cases[split][den_key][i], block=BLOCK,
                                                  level=LEVEL, resamples=RESAMPLES, generator=100 * s + lead).as_dict()
                    for i, lead in enumerate(LEADS)]
            boot["pairs"].setdefault(split, {})[f"{num_key} over {den_key}"] = rows
    for ens, cand in BOOTSTRAP:
        key = f"{ens}/{cand}"
        if key not in boot["test"]:
            continue
        gaps = []
        for i in range(len(LEADS)):
            t, v = boot["test"][key]["_samples"][i], boot["val"][key]["_samples"][i]
            d = t - v  # independent resamples of the two periods
            estimate = boot["test"][key][f"block{BLOCK}"][i]["estimate"] - boot["val"][key][f"block{BLOCK}"][i]["estimate"]
            lo, hi = np.quantile(d, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
            gaps.append({"estimate": round(estimate, 4), "low": round(float(lo), 4), "high": round(float(hi), 4)})
        boot["gap_test_minus_val"][key] = gaps
    for split in ("val", "test"):
        for key in boot[split]:
            boot[split][key].pop("_samples")
    boot["seconds"] = round(time.time() - start, 1)
    for split in ("val", "test"):
        results[split]["per_initial_month_crps_fair"] = cases[split]
        (out / f"{split}.json").write_text(json.dumps(results[split], indent=1))
    (out / "bootstrap.json").write_text(json.dumps(boot, indent=1))
    print(tables(out))
    print("chosen on validation:", json.dumps(chosen))
    print(f"wall time {time.time() - start:.1f} s")


ROWS = (("seed0", "diffusion"), ("seed1", "diffusion"), ("seed2", "diffusion"), ("seed1_noise0", "diffusion"),
        ("pool_shared_noise", "diffusion"), ("pool", "diffusion"),
        ("seed0", "inflated_mixture"), ("pool", "pooled"), ("pool", "mixture"), ("pool", "inflated_ss"),
        ("pool", "inflated_mixture"))


def tables(out: Path = HERE) -> str:
    lines = []
    for split, title in (("val", "Validation, 2013-2016"), ("test", "Test, 2017-2021")):
        data = json.loads((out / f"{split}.json").read_text())["results"]
        first = data["seed0"]
        lines += [f"**{title}** ({first['initial_times']} initial months {first['first_init']} to {first['last_init']})\n",
                  "| lead (months) | " + " | ".join(str(lead) for lead in LEADS) + " |", "|---" * (len(LEADS) + 1) + "|"]
        for key, label, digits in (("crps_fair", "fair CRPS", 3), ("crps_fair_over_best_baseline", "fair CRPS / best baseline", 2),
                                   ("rmse", "RMSE", 3), ("spread_skill", "spread/skill", 2),
                                   ("nino34_corr", "Niño 3.4 correlation", 3)):
            if key == "crps_fair":
                lines.append("| fair CRPS, best baseline | " + " | ".join(f"{v:.3f}" for v in first["best_baseline_crps_fair"]) + " |")
            for ens, cand in ROWS:
                if ens not in data:
                    continue
                values = data[ens]["forecasts"][cand][key]
                lines.append(f"| {label}, {ens} {cand} | " + " | ".join(f"{v:.{digits}f}" for v in values) + " |")
        lines.append("")
    boot = json.loads((out / "bootstrap.json").read_text())
    for split in ("test", "val"):
        for block in (boot["block"], boot["block_sensitivity"]):
            lines += [f"**{split}: fair CRPS / best baseline, {int(boot['level'] * 100)}% circular block bootstrap interval "
                      f"(block {block} months, {boot['resamples']} resamples)**\n",
                      "| lead (months) | " + " | ".join(str(lead) for lead in LEADS) + " |", "|---" * (len(LEADS) + 1) + "|"]
            for key, rows in boot[split].items():
                lines.append(f"| {key} | " + " | ".join(f"{r['estimate']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"
                                                       for r in rows[f"block{block}"]) + " |")
            lines.append("")
    lines += [f"**gap: test ratio minus validation ratio, {int(boot['level'] * 100)}% interval (block {boot['block']})**\n",
              "| lead (months) | " + " | ".join(str(lead) for lead in LEADS) + " |", "|---" * (len(LEADS) + 1) + "|"]
    for key, rows in boot["gap_test_minus_val"].items():
        lines.append(f"| {key} | " + " | ".join(f"{r['estimate']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]" for r in rows) + " |")
    for split, pairs in boot["pairs"].items():
        lines += ["", f"**{split}: ratio of fair CRPS, {int(boot['level'] * 100)}% interval (block {boot['block']})**\n",
                  "| lead (months) | " + " | ".join(str(lead) for lead in LEADS) + " |", "|---" * (len(LEADS) + 1) + "|"]
        for key, rows in pairs.items():
            lines.append(f"| {key} | " + " | ".join(f"{r['estimate']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"
                                                   for r in rows) + " |")
    lines += ["", "autocorrelation at lags 1-12 of (candidate - best baseline) per initial month, test:"]
    for key, rows in boot["autocorrelation"].items():
        lines.append(f"  {key}: " + "; ".join(f"lead {lead}: " + " ".join(f"{a:.2f}" for a in row)
                                             for lead, row in zip(LEADS, rows)))
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["tables"]:
        print(tables())
    elif sys.argv[1:2] == ["--seeds"]:  # a subset, written elsewhere: seeds.py --seeds seed0,seed1 OUT_DIR
        SEEDS = {name: SEEDS[name] for name in sys.argv[2].split(",")}
        Path(sys.argv[3]).mkdir(parents=True, exist_ok=True)
        main(Path(sys.argv[3]))
    else:
        main()

"""Side-by-side rows of forecasts scored as full fields (metrics_full_field.json), with the best
baseline of each lead (the lowest fair CRPS of climatology, damped persistence and the LIM):

    python experiments/weather/predictors_winds/compare.py NAME=DIR [NAME=DIR ...]
"""
import json
import sys

REFERENCES = ("climatology", "damped_persistence", "lim")
METRICS = (("crps_fair", "fair CRPS"), ("rmse", "RMSE"), ("spread_skill", "spread/skill"),
           ("nino34_corr", "Niño 3.4 correlation"))


def main(pairs: list[str]) -> None:
    runs = {name: json.load(open(f"{path}/metrics_full_field.json"))["scores"]
            for name, path in (p.split("=", 1) for p in pairs)}
    first = next(iter(runs.values()))
    leads = first["leads"]
    print(f"{first['initial_times']} initial months {first['first_init']} to {first['last_init']}, "
          f"{first['members']} members\n")
    print("| lead (months) | " + " | ".join(map(str, leads)) + " |")
    print("|---" * (len(leads) + 1) + "|")
    fmt = lambda values, digits: " | ".join(f"{v:.{digits}f}" for v in values)
    best = [min(first["sst"][r]["crps_fair"][k] for r in REFERENCES) for k in range(len(leads))]
    for metric, label in METRICS:
        for name, scores in runs.items():
            digits = 2 if metric == "spread_skill" else 3
            print(f"| {label}, {name} | {fmt(scores['sst']['model'][metric], digits)} |")
        if metric == "crps_fair":
            print(f"| fair CRPS, best baseline | {fmt(best, 3)} |")
        if metric == "nino34_corr":
            print(f"| Niño 3.4 correlation, LIM | {fmt(first['sst']['lim']['nino34_corr'], 3)} |")
    for name, scores in runs.items():
        print(f"| fair CRPS / best baseline, {name} | "
              f"{fmt([m / b for m, b in zip(scores['sst']['model']['crps_fair'], best)], 2)} |")
    for name, scores in runs.items():  # the baselines must be the same draws for the ratios to compare
        assert scores["sst"]["lim"]["crps_fair"] == first["sst"]["lim"]["crps_fair"], name


if __name__ == "__main__":
    main(sys.argv[1:])

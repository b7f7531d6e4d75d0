"""Markdown tables of a forecast's metrics.json: python experiments/weather/table.py DIR/metrics.json"""
import json
import math
import sys

FORECASTS = ("model", "persistence", "anomaly_persistence", "climatology", "damped_persistence", "lim")
#: The probabilistic baselines the issue's skill goal compares against (fair CRPS).
REFERENCES = ("climatology", "damped_persistence", "lim")
METRICS = ("crps_fair", "crps", "crps_gaussian", "rmse", "rmse_gaussian", "spread_skill", "acc", "nino34_corr",
           "nino34_corr_gaussian", "nino34_rmse")


def row(name: str, values: list) -> str:
    return f"| {name} | " + " | ".join("" if v is None or math.isnan(v) else f"{v:.3f}" for v in values) + " |"


def tables(path: str) -> str:
    result = json.loads(open(path).read())
    scores = result["scores"]
    leads = scores["leads"]
    lines = [f"{scores['initial_times']} initial times {scores['first_init']} to {scores['last_init']}, "
             f"{scores['members']} members\n"]
    for channel, table in scores.items():
        if not isinstance(table, dict) or "model" not in table:
            continue
        for metric in METRICS:
            shown = [name for name in FORECASTS if table.get(name, {}).get(metric)]
            if not shown:
                continue
            lines.append(f"**{channel} {metric}** by lead (months)\n")
            lines.append("| forecast | " + " | ".join(str(lead) for lead in leads) + " |")
            lines.append("|---" * (len(leads) + 1) + "|")
            lines += [row(name, table[name][metric]) for name in shown]
            lines.append("")
        best = [min(table[name]["crps_fair"][k] for name in REFERENCES) for k in range(len(leads))]
        ratio = [m / b for m, b in zip(table["model"]["crps_fair"], best)]
        lines.append("model fair CRPS / best of climatology, damped persistence and LIM: "
                     + ", ".join(f"{r:.2f}" for r in ratio) + "\n")
        for name in ("model", "damped_persistence", "lim"):
            first, last = table[name]["rank_histogram"][0], table[name]["rank_histogram"][-1]
            lines.append(f"{name} rank histogram lead 1: " + " ".join(f"{v:.3f}" for v in first))
            lines.append(f"\n{name} rank histogram lead {leads[-1]}: " + " ".join(f"{v:.3f}" for v in last) + "\n")
    if "assimilation" in result:
        lines.append("assimilation: " + json.dumps(result["assimilation"]))
    return "\n".join(lines)


if __name__ == "__main__":
    print(tables(sys.argv[1]))

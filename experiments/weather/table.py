"""Markdown tables of a forecast's metrics.json: python experiments/weather/table.py DIR/metrics.json"""
import json
import sys

FORECASTS = ("model", "persistence", "anomaly_persistence", "climatology")


def tables(path: str) -> str:
    result = json.loads(open(path).read())
    scores = result["scores"]
    leads = scores["leads"]
    lines = [f"{scores['initial_times']} initial times {scores['first_init']} to {scores['last_init']}, "
             f"{scores['members']} members\n"]
    for channel, table in scores.items():
        if not isinstance(table, dict) or "model" not in table:
            continue
        for metric in ("rmse", "crps", "acc", "nino34_corr", "nino34_rmse"):
            if not table["model"].get(metric):
                continue
            lines.append(f"**{channel} {metric}** by lead (months)\n")
            lines.append("| forecast | " + " | ".join(str(lead) for lead in leads) + " |")
            lines.append("|---" * (len(leads) + 1) + "|")
            for name in FORECASTS:
                lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in table[name][metric]) + " |")
            lines.append("")
        for metric in ("spread_skill", "crps_fair"):
            lines.append(f"model {metric}: " + ", ".join(f"{v:.2f}" for v in table["model"][metric]) + "\n")
        first, last = table["model"]["rank_histogram"][0], table["model"]["rank_histogram"][-1]
        lines.append("rank histogram lead 1: " + " ".join(f"{v:.3f}" for v in first))
        lines.append(f"\nrank histogram lead {leads[-1]}: " + " ".join(f"{v:.3f}" for v in last) + "\n")
    if "assimilation" in result:
        lines.append("assimilation: " + json.dumps(result["assimilation"]))
    return "\n".join(lines)


if __name__ == "__main__":
    print(tables(sys.argv[1]))

"""The README's tables from the JSON files of search.py and evaluate.py.

    python experiments/grids/table.py experiments/grids/digits_grids.json experiments/grids/digits_scores*.json

Rows by budget, sampler and grid: held-out ODE error (RMS distance per sample to the fine-step
solution, the model's normalised units), the scores and the sampling wall time. A second table lists
every grid's held-out ODE error, scored or not, and the searched grids' noise levels.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    found = json.loads(Path(sys.argv[1]).read_text())
    scores = {k: v for path in sys.argv[2:] for k, v in json.loads(Path(path).read_text())["rows"].items()}
    print("| NFE | sampler | grid | ODE error (held-out) | FD | precision | recall | IS | recognised | seed | s / 100 samples |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in sorted(scores.values(), key=lambda r: (r["nfe"], r["sampler"] != "dpmpp_2m", r["seed"], r["grid"] != "optimised",
                                                      r["metrics"]["fd"])):
        m = row["metrics"]
        sampler = row["sampler"] + (f" order {row['order']}" if row.get("order") else "")
        grid = {"uniform_t_sigma_min": "uniform_t to sigma 0.002"}.get(row["grid"], row["grid"])
        print(f"| {row['nfe']} | {sampler} | {'**optimised**' if grid == 'optimised' else grid} | {row['ode_error']:.3f} "
              f"| {m['fd']:.2f} | {m['precision']:.2f} | {m['recall']:.2f} | {m['inception_score']:.2f} "
              f"| {100 * m['class_accuracy']:.1f}% | {row['seed']} | {100 * row['sample_s'] / row['num']:.0f} |")
    print()
    print("| NFE | sampler | searched grid: scaled sigmas | search s | ODE error, calibration / held-out: "
          "optimised | karras | uniform_log_snr | uniform_t | uniform_t to sigma 0.002 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, by_sampler in found["budgets"].items():
        for sampler, entry in by_sampler.items():
            errors = entry["ode_error"]
            order = entry["sampler_options"].get("order")
            suffix = "" if order is None else f" order {order}"
            cells = []
            for grid in ("optimised", "karras", "uniform_log_snr", "uniform_t", "uniform_t_sigma_min"):
                e = errors[grid if grid == "optimised" else grid + suffix]
                cells.append(f"{e['calibration']:.3f} / {e['heldout']:.3f}")
            sigmas = ", ".join(f"{s:.3g}" for s in entry["scaled_sigmas"])
            print(f"| {n} | {sampler}{suffix} | {sigmas}, 0 | {entry['search_s']:.0f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

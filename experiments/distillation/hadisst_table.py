"""The table of the distilled HadISST forecast model against its teacher, from the forecast runs'
metrics.json files under experiments/distillation/hadisst_scores/ (test years, 8 members, 6 leads),
then, if hadisst_grids.py has run, its table of time grids on the first test initial months.

    python experiments/distillation/hadisst_table.py
"""
from __future__ import annotations

import json
from pathlib import Path

SCORES = Path(__file__).resolve().parent / "hadisst_scores"
ROWS = [("teacher (shipped default)", "heun", 12, 23, "teacher_heun_12"),
        ("teacher", "dpmpp_2m", 4, 4, "teacher_dpmpp_2m_4"),
        ("teacher", "dpmpp_2m", 2, 2, "teacher_dpmpp_2m_2"),
        ("consistency distillation", "consistency", 1, 1, "cd_1_sigma0.3"),
        ("consistency distillation", "consistency (sigma_min 0.3)", 2, 2, "cd_2_sigma0.3"),
        ("**consistency distillation (shipped)**", "consistency (sigma_min 0.5)", 2, 2, "cd_2_sigma0.5"),
        ("consistency distillation", "consistency (sigma_min 0.3)", 4, 4, "cd_4_sigma0.3"),
        ("consistency distillation", "consistency (sigma_min 0.5)", 4, 4, "cd_4_sigma0.5")]


def model(folder: str) -> dict[str, list[float]]:
    return json.loads((SCORES / folder / "metrics.json").read_text())["scores"]["sst"]["model"]


def main() -> None:
    teacher = model("teacher_heun_12")["crps_fair"]
    print("| model | sampler | steps | NFE | fair CRPS, leads 1-6 | mean | worst lead / teacher | RMSE, leads 1-6 "
          "| spread/skill, leads 1-6 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, sampler, steps, nfe, folder in ROWS:
        if not (SCORES / folder / "metrics.json").is_file():
            continue
        m = model(folder)
        ratio = max(a / b for a, b in zip(m["crps_fair"], teacher))
        fmt = lambda values, d=3: " / ".join(f"{v:.{d}f}" for v in values)
        print(f"| {name} | {sampler} | {steps} | {nfe} | {fmt(m['crps_fair'])} | {sum(m['crps_fair']) / 6:.4f} "
              f"| {ratio:.3f} | {fmt(m['rmse'])} | {fmt(m['spread_skill'], 2)} |")

    grids = SCORES / "grids.json"
    if grids.is_file():
        found = json.loads(grids.read_text())
        teacher = json.loads((SCORES / "teacher_heun_12_first12.json").read_text())["crps_fair"]
        print(f"\n{found['initial_months']} initial months; teacher Heun 12 (23 NFE): mean fair CRPS "
              f"{sum(teacher) / 6:.4f}\n")
        print("| NFE (UniPC) | grid | ODE error (RMS, calibration) | fair CRPS, leads 1-6 | mean | worst lead / teacher |")
        print("|---|---|---|---|---|---|")
        for row in found["rows"]:
            ratio = max(a / b for a, b in zip(row["crps_fair"], teacher))
            crps = " / ".join(f"{v:.3f}" for v in row["crps_fair"])
            print(f"| {row['nfe']} | {row['grid']} | {row['ode_error']:.3f} | {crps} | {sum(row['crps_fair']) / 6:.4f} "
                  f"| {ratio:.3f} |")


if __name__ == "__main__":
    main()

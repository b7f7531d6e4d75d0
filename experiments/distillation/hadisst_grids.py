"""grid=optimised against fixed grids on the shipped HadISST forecast model, scored by fair CRPS.

    OMP_NUM_THREADS=1 python experiments/distillation/hadisst_grids.py OUT.json [inits] [evaluations]

For each budget (5, 10, 20 NFE of UniPC, one evaluation a step) a grid is searched
(``sciffusion.grids.optimise_model_grid``) on 32 validation-year conditions, then the forecasts of the
first ``inits`` test initial months (8 members, 6 leads, the forecast entry point's seeds) are sampled
on the optimised grid, on Karras and on uniform log-SNR, and scored like the forecast entry point.
"""
from __future__ import annotations

import json
import sys
import time

import sciffusion
from sciffusion.grids import optimise_model_grid
from sciffusion_domains.weather.forecast import initial_positions, load, rollout, score

CHECKPOINT = "domains/weather/weights/hadisst_forecast.ckpt"


def main() -> None:
    out, inits = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 12
    evaluations = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    domain, denoiser, process = load(CHECKPOINT)
    positions = initial_positions(domain, "test", 6)[:inits]
    rows = []
    for nfe in (5, 10, 20):
        model = sciffusion.load(CHECKPOINT)
        start = time.time()
        found = optimise_model_grid(model, nfe, sampler="unipc", num_samples=32, cond={"split": "val"},
                                    evaluations=evaluations, reference_steps=200)
        search_s = time.time() - start
        grids = {"optimised": {"grids": {str(nfe): found.times}}, "karras": {}, "uniform_log_snr": {}}
        for grid, options in grids.items():
            forecast = rollout(domain, denoiser, process, positions, members=8, leads=6, sampler="unipc",
                               steps=nfe, grid=grid, grid_options=options,
                               sampler_options=found.sampler_options if grid == "optimised" else None)
            model_scores = score(domain, domain.to_physical(forecast), positions)["sst"]["model"]
            row = {"nfe": nfe, "grid": grid, "crps_fair": model_scores["crps_fair"], "rmse": model_scores["rmse"],
                   "spread_skill": model_scores["spread_skill"], "ode_error": found.error if grid == "optimised"
                   else found.fixed_errors.get(grid), "search_s": round(search_s, 1), "times": found.times,
                   "sampler_options": found.sampler_options}
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("nfe", "grid", "ode_error")}),
                  round(sum(row["crps_fair"]) / 6, 4), flush=True)
            with open(out, "w") as f:
                json.dump({"initial_months": inits, "members": 8, "leads": 6, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()

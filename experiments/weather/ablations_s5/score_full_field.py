"""Score a forecast of a model trained on anomalies (domain.anomalies=true) as full fields, against
the same baselines as the shipped model: the training climatology of each target month is added back
to forecast.nc and the ensemble goes through forecast.score on the full-field domain.

    python experiments/weather/ablations_s5/score_full_field.py CHECKPOINT FORECAST_DIR

writes FORECAST_DIR/metrics_full_field.json (table.py reads it). The model's scores are those of
metrics.json (every score is shift-invariant); the baselines' random draws are then exactly those of
the shipped model's runs (the LIM's EOFs, fitted on anomalies of anomalies, can flip sign and so
draw other members).
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

from sciffusion_domains.weather.domain import WeatherDomain
from sciffusion_domains.weather.forecast import load, read_ensemble, score


def main(checkpoint: str, out_dir: str) -> None:
    start = time.time()
    anomalies, _, _ = load(checkpoint)
    if not anomalies.anomalies:
        raise SystemExit(f"{checkpoint} was trained on full fields; its metrics.json already scores them")
    full = WeatherDomain(sources=anomalies.sources, splits=anomalies.splits, history=anomalies.history,
                         longitude=anomalies.longitude, monthly=anomalies.monthly)
    ensemble, positions = read_ensemble(anomalies, Path(out_dir) / "forecast.nc")  # [I, L, M, C, H, W]
    clim = (full.fields - anomalies.fields).values  # [T, C, H, W]: each time's monthly climatology
    leads = np.arange(1, ensemble.shape[1] + 1)
    ensemble = ensemble + clim[positions[:, None] + leads[None]][:, :, None]
    result = {"checkpoint": checkpoint, "forecast": str(Path(out_dir) / "forecast.nc"),
              "scores": score(full, ensemble, positions), "seconds": round(time.time() - start, 1)}
    (Path(out_dir) / "metrics_full_field.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(*sys.argv[1:])

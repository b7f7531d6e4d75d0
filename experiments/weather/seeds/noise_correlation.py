"""Correlation, over initial months, points and members, of member m's deviation from its ensemble
mean in two forecasts of the same initial months, for the same member index m and for m against
member m - 1 (whose expected correlation is -1/(M-1) = -0.14 for independent members of M = 8).

    .venv/bin/python experiments/weather/seeds/noise_correlation.py A_DIR B_DIR [...]   # forecast folders, pairs against A

forecast.py seeds member m's prior noise by (sampling seed, initial month, m, lead): two checkpoints
forecast with the same sampling seed start member m from the same noise.
"""
import sys

import numpy as np
import xarray as xr


def deviations(folder: str) -> np.ndarray:
    x = xr.open_dataset(f"{folder}/forecast.nc").sst.values  # [I, L, M, H, W] anomalies
    return x - x.mean(2, keepdims=True)


def corr(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


if __name__ == "__main__":
    a = deviations(sys.argv[1])
    for other in sys.argv[2:]:
        b = deviations(other)
        for lead in range(a.shape[1]):
            same, shifted = corr(a[:, lead], b[:, lead]), corr(a[:, lead], np.roll(b[:, lead], 1, axis=1))
            print(f"{sys.argv[1]} vs {other} lead {lead + 1}: same member {same:.3f}, member m vs m-1 {shifted:.3f}")

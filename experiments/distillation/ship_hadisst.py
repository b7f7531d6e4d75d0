"""Ship the distilled HadISST forecast model (``experiments/distillation/ship.py`` with its name).

    python experiments/distillation/ship_hadisst.py RUN/checkpoints/last.ckpt
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ship import ship  # noqa: E402

if __name__ == "__main__":
    ship("hadisst_forecast_2step", sys.argv[1])

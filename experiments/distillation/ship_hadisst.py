"""Ship the distilled HadISST forecast model: the student's run checkpoint reduced to what sampling needs
(``training.for_sampling``), with its domain state completed as for the other shipped checkpoints
(the weather grid and recent windows: it forecasts without the data) and its measured sampling settings.

    python experiments/distillation/ship_hadisst.py RUN/checkpoints/last.ckpt

The settings come from ``sciffusion.shipped.SHIPPED["hadisst_forecast_2step"]``.
"""
from __future__ import annotations

import sys

from sciffusion import shipped
from sciffusion.cli import build
from sciffusion.training import for_sampling, load_checkpoint, save_checkpoint

NAME = "hadisst_forecast_2step"
TARGET = "domains/weather/weights/hadisst_forecast_2step.ckpt"


def main() -> None:
    state = load_checkpoint(sys.argv[1])
    entry = shipped.SHIPPED[NAME]
    domain = build.build_domain(state["config"])
    domain.load_state_dict(state.get("domain", {}))
    state = dict(state, domain=domain.state_dict(), sampling_defaults=dict(entry.best, measured=entry.measured))
    save_checkpoint(for_sampling(state), TARGET)
    print(f"{NAME}: step {state['step']} -> {TARGET}")


if __name__ == "__main__":
    main()

"""Ship a distilled model: the student's run checkpoint reduced to what sampling needs
(``training.for_sampling``), with its domain state completed as for the other shipped checkpoints (it
samples without the data) and its measured sampling settings from ``sciffusion.shipped.SHIPPED[NAME]``.

    python experiments/distillation/ship.py NAME RUN/checkpoints/last.ckpt

writes ``domains/<package>/weights/<file>`` of that entry (NAME: hadisst_forecast_2step, spoken_digits_2step).
"""
from __future__ import annotations

import sys
from pathlib import Path

from sciffusion import shipped
from sciffusion.cli import build
from sciffusion.training import for_sampling, load_checkpoint, save_checkpoint


def ship(name: str, checkpoint: str) -> Path:
    entry = shipped.SHIPPED[name]
    target = Path("domains") / entry.package / "weights" / entry.file
    state = load_checkpoint(checkpoint)
    domain = build.build_domain(state["config"])
    domain.load_state_dict(state.get("domain", {}))
    state = dict(state, domain=domain.state_dict(), sampling_defaults=dict(entry.best, measured=entry.measured))
    save_checkpoint(for_sampling(state), target)
    print(f"{name}: step {state['step']} -> {target} ({target.stat().st_size / 1e6:.1f} MB)")
    return target


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    ship(sys.argv[1], sys.argv[2])

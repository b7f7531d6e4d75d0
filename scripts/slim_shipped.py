"""Reduce every shipped checkpoint to what sampling needs (``sciffusion.training.for_sampling``: the
config, the domain's state, the EMA weights and the sampling settings), dropping the optimiser,
schedule and RNG states that only resuming a run uses; the sampled weights do not change.

    python scripts/slim_shipped.py
"""
from __future__ import annotations

import torch

from sciffusion import shipped
from sciffusion.training import for_sampling, load_checkpoint, save_checkpoint


def main() -> None:
    for name, entry in sorted(shipped.SHIPPED.items()):
        path = entry.path()
        if path is None:
            continue
        state = load_checkpoint(path)
        slim = for_sampling(state)
        assert all(torch.equal(slim["ema"]["module"][k], v) for k, v in state["ema"]["module"].items())
        before = path.stat().st_size
        save_checkpoint(slim, path)
        print(f"{name}: {path.name} {before / 1e6:.1f} -> {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

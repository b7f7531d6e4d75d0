"""Reduce every shipped checkpoint to what sampling needs (``sciffusion.training.for_sampling``: the
config, the domain's state, the EMA weights and the sampling settings), dropping the optimiser,
schedule and RNG states that only resuming a run uses; the sampled weights do not change. With
``--half`` the weights are stored in float16 as well (``for_sampling(half=True)``; each weight rounded by
at most 2^-11 of itself; what that changes in the samples: ``benchmarks/half_weights.py``).

    python scripts/slim_shipped.py [--half]
"""
from __future__ import annotations

import argparse

import torch

from sciffusion import shipped
from sciffusion.training import for_sampling, load_checkpoint, save_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--half", action="store_true", help="store the weights in float16")
    args = parser.parse_args()
    for name, entry in sorted(shipped.SHIPPED.items()):
        path = entry.path()
        if path is None:
            continue
        state = load_checkpoint(path)
        slim = for_sampling(state, half=args.half)
        for key, value in state["ema"]["module"].items():  # the same weights, or each within float16's rounding
            assert torch.allclose(slim["ema"]["module"][key].to(value.dtype), value, rtol=2**-11, atol=1e-7), key
        before = path.stat().st_size
        save_checkpoint(slim, path)
        print(f"{name}: {path.name} {before / 1e6:.1f} -> {path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

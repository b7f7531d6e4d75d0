"""Copy a qm9_joint run's checkpoint into the package as a shipped model: the EMA weights, the config,
the domain state (atom-count histogram, class frequencies) and the sampling settings that measured
best, without the optimiser, schedule and RNG states that only resuming needs (half the size).

    python experiments/molecules/joint/ship.py RUN_DIR OUT.ckpt --sampler ddpm --steps 100 [--cfg-scale 2] --measured "..." [--fp32]

The weights are stored in float16 (half again; loading casts them back) unless ``--fp32``.

The run's own ``checkpoints/last.ckpt`` stays the resumable one.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sciffusion.training import for_sampling, load_checkpoint, save_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("out")
    parser.add_argument("--sampler", default="ddpm")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--grid", default="uniform_t")
    parser.add_argument("--categorical", default="posterior")
    parser.add_argument("--cfg-scale", type=float, default=None, help="classifier-free guidance by default (conditional models)")
    parser.add_argument("--measured", default="")
    parser.add_argument("--fp32", action="store_true", help="store the weights in float32 (twice the file)")
    args = parser.parse_args()
    state = load_checkpoint(Path(args.run) / "checkpoints" / "last.ckpt")
    shipped = for_sampling(state, half=not args.fp32)
    shipped["sampling_defaults"] = {"sampler": args.sampler, "steps": args.steps, "grid": args.grid,
                                    "guidance": None if args.cfg_scale is None else {"name": "cfg", "scale": args.cfg_scale},
                                    "sampler_options": {"categorical": args.categorical},
                                    "measured": args.measured}
    save_checkpoint(shipped, Path(args.out))
    print(f"{args.out}: step {state['step']}, {Path(args.out).stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

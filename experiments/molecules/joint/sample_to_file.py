"""Sample a qm9_joint checkpoint at several step counts and save the molecules as plain tensors, to
score later on another machine (``score_file.py``): a GPU machine without RDKit samples, the CPU
machine with RDKit scores.

    python experiments/molecules/joint/sample_to_file.py CKPT OUT.pt --steps 20 50 100 200 500 --num 500

Settings as ``curve.py``: DDPM on positions, the exact ancestral (posterior) step on atoms, charges
and bonds, uniform time grid, seed 0. Records the wall time of each step count; the file is rewritten after each.
"""
from __future__ import annotations

import argparse
import time

import torch

import sciffusion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, nargs="+", default=[20, 50, 100, 200, 500])
    parser.add_argument("--num", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    model = sciffusion.load(args.checkpoint, device=args.device)
    runs = []
    for steps in args.steps:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        molecules = model.sample(args.num, sampler="ddpm", steps=steps, grid="uniform_t", guidance="none",
                                 sampler_options={"categorical": "posterior"}, batch_size=args.batch_size,
                                 seed=0, progress=False, verbose=False)
        seconds = time.perf_counter() - start
        runs.append({"steps": steps, "seconds": seconds, "device": str(args.device),
                     "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
                     "molecules": [{key: m[key] for key in ("pos", "z", "charge", "edge_index", "bond_order")}
                                   for m in molecules]})
        print(f"{steps} steps: {args.num} molecules in {seconds:.1f} s", flush=True)
        # after each step count: a run cut short still leaves what it finished
        torch.save({"checkpoint": args.checkpoint, "step": model.step, "runs": runs}, args.out)


if __name__ == "__main__":
    main()

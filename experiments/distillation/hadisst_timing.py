"""Wall time per ensemble member of the HadISST forecast: the teacher and the distilled student, in one
process, on the same initial months, one thread, rows batched as in the forecast entry point.

    OMP_NUM_THREADS=1 python experiments/distillation/hadisst_timing.py STUDENT.ckpt [inits] [repeats]

A member is one 6-month rollout (6 samples). Prints one JSON line per setting; the minimum over
``repeats`` runs is kept, as the machine is shared.
"""
from __future__ import annotations

import json
import sys
import time

import torch

from sciffusion_domains.weather.forecast import initial_positions, load, rollout

TEACHER = "domains/weather/weights/hadisst_forecast.ckpt"


def main() -> None:
    student = sys.argv[1]
    inits, repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 12, int(sys.argv[3]) if len(sys.argv) > 3 else 3
    torch.set_num_threads(1)
    settings = [(TEACHER, "heun", 12, {}), (student, "consistency", 1, {}),
                (student, "consistency", 2, {"sigma_min": float(sys.argv[4]) if len(sys.argv) > 4 else 0.4}),
                (student, "consistency", 4, {"sigma_min": float(sys.argv[4]) if len(sys.argv) > 4 else 0.4})]
    for checkpoint, sampler, steps, grid_options in settings:
        domain, denoiser, process = load(checkpoint)
        positions = initial_positions(domain, "test", 6)[:inits]
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            rollout(domain, denoiser, process, positions, members=8, leads=6, sampler=sampler, steps=steps,
                    grid_options=grid_options)
            best = min(best, time.perf_counter() - start)
        members = len(positions) * 8
        print(json.dumps({"checkpoint": checkpoint, "sampler": sampler, "steps": steps, "members": members,
                          "seconds": round(best, 2), "ms_per_member": round(1000 * best / members, 1)}), flush=True)


if __name__ == "__main__":
    main()

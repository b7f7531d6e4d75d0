"""Wall time per spoken-digit sample: the teacher at its default (DPM-Solver++(2M), 25 Karras steps,
classifier-free guidance 2: two network evaluations a step) and the progressively distilled students
(DDIM, 1/2/4 steps, no guidance), in one process, one thread, batch 100, decoding to spectrograms
included. The minimum over ``repeats`` runs is kept, as the machine is shared.

    OMP_NUM_THREADS=1 python experiments/distillation/spoken_digits_timing.py [repeats]

Prints one JSON line per setting.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

import sciffusion

RUNS = Path("experiments/distillation/spoken_pd")


def settings() -> list[tuple[str, str, dict]]:
    rows = [("teacher, CFG 2", "spoken_digits",
             dict(sampler="dpmpp_2m", steps=25, grid="karras", guidance={"name": "cfg", "scale": 2.0}))]
    for steps in (1, 2, 4):
        ckpt = RUNS / f"pd_{steps}" / "checkpoints" / "last.ckpt"
        if ckpt.exists():
            rows.append((f"student pd_{steps}", str(ckpt), dict(sampler="ddim", steps=steps, grid="uniform_t")))
    return rows


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    torch.set_num_threads(1)
    for name, source, kwargs in settings():
        model = sciffusion.load(source)
        model.sample(10, batch_size=10, progress=False, verbose=False, **kwargs)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            model.sample(100, batch_size=100, progress=False, verbose=False, **kwargs)
            best = min(best, time.perf_counter() - start)
        print(json.dumps({"model": name, **{k: v for k, v in kwargs.items() if k != "guidance"},
                          "guidance": kwargs.get("guidance"), "ms_per_sample": round(1000 * best / 100, 2)}), flush=True)


if __name__ == "__main__":
    main()

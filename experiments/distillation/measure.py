"""The toy distillation table (README.md): teachers at 1-4 and 20-50 steps against their distilled students
at 1, 2 and 4 steps, every sample set scored against the exact three-mode mixture.

    python experiments/distillation/measure.py      # after run_toy.sh; prints the table, writes results.json

Scores, on 4000 samples from the same seed: sliced 2-Wasserstein distance to 4000 exact draws (128 fixed
projections; the distance between two exact sample sets, its Monte Carlo floor, is printed), mean and
covariance errors (``sciffusion.testing.moment_errors``), the largest gap of the mode weights, and the
wall time per sample on one CPU thread.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

import sciffusion
from sciffusion.testing import gaussian_mixture_2d, mode_weights, moment_errors

RUNS = Path(__file__).parent / "runs"
N = 4000
TARGET = gaussian_mixture_2d()
PROJECTIONS = torch.nn.functional.normalize(torch.randn(128, 2, generator=torch.Generator().manual_seed(0),
                                                        dtype=torch.float64), dim=1)
# (label, run, sampler, steps, grid, grid_options, NFE)
ROWS = [
    ("teacher v/vp_cosine, DDIM", "teacher_vp", "ddim", (1, 2, 4, 32), "uniform_t", {}, lambda n: n),
    ("teacher v/vp_cosine, Heun", "teacher_vp", "heun", (25,), "karras", {}, lambda n: 2 * n - 1),
    ("progressive distillation, DDIM", ("pd_1", "pd_2", "pd_4"), "ddim", (1, 2, 4), "uniform_t", {}, lambda n: n),
    ("teacher EDM, DDIM", "teacher_edm", "ddim", (1, 2, 4, 32), "karras", {}, lambda n: n),
    ("teacher EDM, Heun", "teacher_edm", "heun", (2, 25), "karras", {}, lambda n: 2 * n - 1),
    ("consistency distillation", "cd", "consistency", (1, 2, 4), "karras", {"sigma_min": 2.0}, lambda n: n),
    ("easy consistency tuning", "ect", "consistency", (1, 2, 4), "karras", {"sigma_min": 2.0}, lambda n: n),
    ("teacher flow matching, Euler", "teacher_flow", "euler", (1, 2, 4, 50), "uniform_t", {}, lambda n: n),
    ("reflow (2-rectified flow), Euler", "reflow", "euler", (1, 2, 4), "uniform_t", {}, lambda n: n),
]


def sliced_w2(a: torch.Tensor, b: torch.Tensor) -> float:
    pa, pb = (torch.sort(x.double() @ PROJECTIONS.T, dim=0).values for x in (a, b))
    return float(((pa - pb) ** 2).mean().sqrt())


def score(x: torch.Tensor, exact: torch.Tensor) -> dict[str, float]:
    mean_err, cov_err = moment_errors(x, TARGET)
    gap = float((mode_weights(x, TARGET) - TARGET.weights).abs().max())
    return {"sliced_w2": sliced_w2(x, exact), "mean_error": mean_err, "cov_error": cov_err, "mode_weight_gap": gap}


def main() -> None:
    torch.set_num_threads(1)
    exact = TARGET.sample(N, torch.Generator().manual_seed(123))[0]
    floor = sliced_w2(TARGET.sample(N, torch.Generator().manual_seed(7))[0], exact)
    results = []
    print(f"| model | sampler | steps | NFE | sliced W2 | mean err | cov err | mode gap | us/sample |\n|---|---|---|---|---|---|---|---|---|")
    for label, run, sampler, steps_list, grid, grid_options, nfe in ROWS:
        for k, steps in enumerate(steps_list):
            name = run if isinstance(run, str) else run[k]
            model = sciffusion.load(RUNS / name / "checkpoints" / "last.ckpt")
            start = time.perf_counter()
            objects = model.sample(N, sampler=sampler, steps=steps, grid=grid, grid_options=grid_options or None,
                                   batch_size=N, progress=False, verbose=False, guidance="none")
            seconds = time.perf_counter() - start
            scores = score(torch.as_tensor(np.stack(objects)), exact)
            row = {"model": label, "run": name, "sampler": sampler, "steps": steps, "nfe": nfe(steps), **scores,
                   "us_per_sample": 1e6 * seconds / N}
            results.append(row)
            print(f"| {label} | {sampler} | {steps} | {row['nfe']} | {scores['sliced_w2']:.3f} | {scores['mean_error']:.3f} | "
                  f"{scores['cov_error']:.3f} | {scores['mode_weight_gap']:.3f} | {row['us_per_sample']:.1f} |", flush=True)
    print(f"\nsliced W2 between two exact sample sets (Monte Carlo floor): {floor:.3f}")
    (Path(__file__).parent / "results.json").write_text(json.dumps({"floor_sliced_w2": floor, "rows": results}, indent=1))


if __name__ == "__main__":
    main()

"""Where the mixture gap at 50-100 NFE comes from (issue #14): our samplers on a grid uniform in t that
ends at sigma_min = 0.01 (t = 1/1000, like diffusers' trailing spacing with its last non-zero sigma)
and then steps to t = 0, against the exact probability-flow map of table (a) of benchmarks/samplers.py
(same target, start points and map). Prints the RMS error to that map per sampler and NFE.

    .venv/bin/python benchmarks/sampler_final_step.py      # ~2 minutes on one thread
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import samplers as bench  # noqa: E402  (benchmarks/samplers.py: the process, grids and start points)

from sciffusion.samplers import SAMPLERS  # noqa: E402
from sciffusion.space import DenseSpace  # noqa: E402
from sciffusion.testing import gaussian_mixture_2d  # noqa: E402

F64 = torch.float64
CANDIDATES = [("unipc", dict(order=2, variant="bh1")), ("unipc", dict(order=3, variant="bh1")),
              ("ipndm", dict(order=3)), ("ipndm", dict(order=4)), ("deis", dict(order=3, form="x0"))]


def main() -> None:
    torch.set_num_threads(1)
    target, n = gaussian_mixture_2d(), 4000
    x = bench.exact_start(target, n, seed=0)
    exact = SAMPLERS["dpmpp_2m"](target.denoiser(bench.PROCESS), x, bench.GRIDS["logsnr"](4000),
                                 process=bench.PROCESS, space=DenseSpace())
    t_min = 1.0 / bench.N_TRAIN
    print(f"grid: uniform in t from 1 to {t_min} (sigma {float(bench.PROCESS.scaled_sigma(torch.tensor(t_min))):.4f}), then 0")
    print("| NFE | " + " | ".join(f"{name}-{opts['order']}" for name, opts in CANDIDATES) + " |")
    print("|---" * (len(CANDIDATES) + 1) + "|")
    for nfe in (20, 50, 100):
        ts = torch.cat([torch.linspace(1.0, t_min, nfe, dtype=F64), torch.zeros(1, dtype=F64)])
        cells = []
        for name, opts in CANDIDATES:
            out = SAMPLERS[name](target.denoiser(bench.PROCESS), x, ts, process=bench.PROCESS, space=DenseSpace(), **opts)
            cells.append(f"{float(((out - exact) ** 2).sum(1).mean().sqrt()):.3g}")
        print(f"| {nfe} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()

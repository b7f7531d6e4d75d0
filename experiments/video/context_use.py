"""How much a forecaster trained with given frames uses them: the denoiser's x0 error on the frames to
forecast, with the clip's own given frames, another clip's, and none (``cond["drop"]``), at several noise
levels, on test clips. A model that uses its context has a clearly lower error with the true frames at
high noise, where the noisy clip itself says little.

    python experiments/video/context_use.py CHECKPOINT [--clips 32] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json

import torch

import sciffusion
from sciffusion.space import DenseSpace


def context_use(checkpoint: str, *, clips: int = 32, sigmas=(40.0, 4.0, 1.0, 0.4, 0.1), seed: int = 0) -> dict:
    model = sciffusion.load(checkpoint)
    domain, process = model.domain, model.process
    if not domain.given_frames:
        raise ValueError(f"{checkpoint} was not trained with given frames (domain.given_frames)")
    test = domain.dataset("test")
    x0 = domain.encode(torch.stack([test[i][0] for i in range(clips)]))
    conditions = {"true": domain.given_condition(x0),
                  "another clip's": domain.given_condition(x0[torch.roll(torch.arange(clips), 1)]),
                  "none": {**domain.given_condition(x0), "drop": torch.ones(clips, dtype=torch.bool)}}
    k = domain.given_frames
    last_given = x0[:, :, k - 1:k]
    out = {"checkpoint": checkpoint, "clips": clips, "given_frames": k,
           "hold_last_given_mse": ((last_given - x0[:, :, k:]) ** 2).mean().item(), "by_sigma": {}}
    generator = torch.Generator().manual_seed(seed)
    for sigma in sigmas:
        t = process.t_from_scaled_sigma(torch.full((clips,), sigma, dtype=torch.float64)).float()
        noise = torch.randn(x0.shape, generator=generator)
        view = (-1, 1, 1, 1, 1)
        x = process.marginal(x0, noise, process.alpha(t).float().view(view), process.sigma(t).float().view(view))
        row = {}
        with torch.no_grad():
            for name, cond in conditions.items():
                error = (model.denoiser(x, t, DenseSpace(), cond) - x0)[:, :, k:] ** 2
                row[name] = {"mse": error.mean().item(),
                             "mse_per_lead": [round(v, 4) for v in error.mean(dim=(0, 1, 3, 4)).tolist()]}
        out["by_sigma"][str(sigma)] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    result = context_use(args.checkpoint, clips=args.clips)
    text = json.dumps(result, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(f"hold the last given frame: mse {result['hold_last_given_mse']:.4f}")
    for sigma, row in result["by_sigma"].items():
        print(f"sigma {sigma:>5}: " + ", ".join(f"{name} {v['mse']:.4f}" for name, v in row.items()))


if __name__ == "__main__":
    main()

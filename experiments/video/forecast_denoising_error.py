"""How much a forecaster's denoiser knows about the frames it makes, noise level by noise level: the mean
squared error of its denoised estimate of the new frames of held-out Moving-MNIST windows (the given frames
as its condition), against the errors of persistence and of the optical-flow extrapolation as forecasts of
the same frames. At the top noise level the denoiser's estimate is its forecast mean, so the error there is
the model's skill as a deterministic forecaster; lower levels show how much the noisy frames add.

    python experiments/video/forecast_denoising_error.py --checkpoints moving_digits RUN/checkpoints/last.ckpt \
        --out experiments/video/moving_digits_extrapolated_context/denoising_error.json

Same windows, same noise for every checkpoint (seeded); the noise levels are EDM's scaled sigmas.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

import sciffusion
from sciffusion.space import DenseSpace
from sciffusion_domains.video.extrapolation import extrapolated_context

SIGMAS = (0.1, 0.5, 1.0, 2.0, 5.0, 80.0)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", nargs="+", required=True, help="shipped names or checkpoint files")
    parser.add_argument("--windows", type=int, default=48, help="test-split windows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="a JSON file for the table")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    domain = sciffusion.load(args.checkpoints[0]).domain
    test = domain.dataset("test")
    clips = domain.encode(torch.stack([test[i][0] for i in range(args.windows)]))
    cond = domain.given_condition(clips)
    k = domain.given_frames
    new = clips[:, :, k:]
    noise = torch.randn(clips.shape, generator=torch.Generator().manual_seed(args.seed))

    def error(guess: torch.Tensor) -> list[float]:  # per lead
        return [round(((guess[:, :, i] - new[:, :, i]) ** 2).mean().item(), 5) for i in range(new.shape[2])]

    rows = {"persistence": error(clips[:, :, k - 1:k].expand_as(new)),
            "extrapolation": error(extrapolated_context(cond["frames"], cond["frame_mask"])[:, :, k:])}
    table = {"references (per lead)": rows, "denoiser (per scaled sigma, all leads)": {}}
    for name in args.checkpoints:
        model = sciffusion.load(name)
        denoiser, process = model.denoiser.eval(), model.process
        errors = {}
        for sigma in SIGMAS:
            t = process.t_from_scaled_sigma(torch.full((len(clips),), sigma, dtype=torch.float64)).float()
            x = process.alpha(t)[:, None, None, None, None] * (clips + sigma * noise)
            with torch.no_grad():
                out = denoiser(x, t, DenseSpace(), cond)
            errors[str(sigma)] = round(((out[:, :, k:] - new) ** 2).mean().item(), 5)
        table["denoiser (per scaled sigma, all leads)"][name] = errors
        print(name, errors, flush=True)
    print(json.dumps(table, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"command": "python " + " ".join(sys.argv), **table}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])

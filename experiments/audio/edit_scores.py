"""How well a checkpoint fills gaps and continues clips, on held-out voices.

For each of the first ``--clips`` test clips: regenerate the frames in the gap (``--gap`` seconds,
default the middle of the word) or after ``--keep`` seconds (continuation), with the model told
nothing about the digit (unconditional; ``--told`` gives it the true digit), then score
  * the error on the regenerated frames against the truth (RMSE of the log-mel magnitude in dB,
    floored 80 dB below the clip's loudest bin), and
  * how often the shipped classifier still recognises the true digit in the whole edited clip,
next to two fills that use no model: silence, and linear interpolation across the gap (for
continuation: holding the last known frame).

    python experiments/audio/edit_scores.py --checkpoint domains/audio/weights/spoken_digits.ckpt --clips 50 [--tasks gap]
"""
from __future__ import annotations

import argparse
import json
import math
import time

import torch
from tqdm import tqdm

import sciffusion
from sciffusion.training import SamplingOptions, generate
from sciffusion_domains.audio.inverse import edit, edited_frames

DB = 20 / math.log(10)  # natural-log magnitude to dB


def load(checkpoint: str):
    model = sciffusion.load(checkpoint)  # EMA weights, the domain with its state
    return model.domain, model.denoiser, model.process


def clipped_db(x: torch.Tensor, domain, like: torch.Tensor | None = None, top_db: float = 80.0) -> torch.Tensor:
    """Normalised spectrograms [N, bins, frames] as dB, floored ``top_db`` below the loudest bin of
    the true clip (``like``, the truth, sets the floor for every estimate of that clip), as
    ``librosa.amplitude_to_db`` does: differences in near-silence do not swamp the score."""
    db = domain.normalizer.decode(x) * DB
    ref = domain.normalizer.decode(like if like is not None else x) * DB
    return db.maximum(ref.amax(dim=(1, 2), keepdim=True) - top_db)


def baseline(x: torch.Tensor, edited: torch.Tensor, kind: str, floor: torch.Tensor) -> torch.Tensor:
    """Fill the edited frames of ``x`` [bins, frames] with silence or by interpolation/holding."""
    out = x.clone()
    if kind == "silence":
        out[:, edited] = floor
        return out
    idx = edited.nonzero()[:, 0]
    first, last = int(idx[0]), int(idx[-1])
    left = x[:, first - 1]
    right = x[:, last + 1] if last + 1 < x.shape[1] else left  # continuation: hold the last frame
    w = torch.linspace(0, 1, len(idx) + 2)[1:-1]
    out[:, edited] = left[:, None] * (1 - w) + right[:, None] * w
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--gap", type=float, nargs=2, default=(0.35, 0.6))
    parser.add_argument("--keep", type=float, default=0.4)
    parser.add_argument("--tasks", nargs="+", default=["gap", "continue"], choices=["gap", "continue"])
    parser.add_argument("--methods", nargs="+", default=["reconstruction", "replace"])
    parser.add_argument("--told", action="store_true", help="tell the model the true digit (cond.label) "
                                                             "instead of filling unconditionally")
    parser.add_argument("--sampler", default="dpmpp_2m")
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args()
    torch.set_num_threads(1)
    domain, model, process = load(args.checkpoint)
    audio, labels = domain.waveforms("test")
    audio, labels = audio[:args.clips], labels[:args.clips]
    truth = domain.encode(audio.numpy())[:, 0]
    classifier = domain.classifier()
    floor = domain.normalizer.encode(torch.full((1, domain.spec.n_bins, 1), math.log(domain.spec.floor)))[0]
    options = SamplingOptions(sampler=args.sampler, steps=args.steps, grid="karras", batch_size=1, seed=0)
    results = {}
    tasks = {"gap": ("gap", *args.gap), "continue": ("continue", args.keep, None)}
    for name in args.tasks:
        task, start, end = tasks[name]
        edited = edited_frames(domain, task, start, end)
        fills = {kind: torch.stack([baseline(x, edited, kind, floor) for x in truth]) for kind in ("silence", "interpolate")}
        for method in args.methods:
            started, filled = time.time(), []
            for k in tqdm(range(len(truth)), desc=f"{name} {method}"):
                guided = edit(model, process=process, domain=domain, input=f"test:{k}", task=task, start=start,
                              end=end, method=method, unconditional=not args.told)
                request = {"label": int(labels[k])} if args.told else {"unconditional": True}
                x = generate(domain, guided, process, 1, options=options, cond_request=request)[0]
                filled.append(x.x[0, 0])
            fills[method] = torch.stack(filled)
            fills[method + "_seconds_per_clip"] = (time.time() - started) / len(truth)
        row = {}
        for kind, x in fills.items():
            if kind.endswith("seconds_per_clip"):
                row[kind] = x
                continue
            error_db = (clipped_db(x, domain, like=truth) - clipped_db(truth, domain))[:, :, edited]
            with torch.no_grad():
                predicted = classifier(x[:, None]).argmax(1)
            row[kind] = {"rmse_db": error_db.pow(2).mean().sqrt().item(),
                         "digit_recognised": (predicted == labels).float().mean().item()}
        with torch.no_grad():
            row["untouched"] = {"digit_recognised": (classifier(truth[:, None]).argmax(1) == labels).float().mean().item()}
        results[name] = {"span_seconds": [start, end if end is not None else domain.seconds],
                         "frames": int(edited.sum()), **row}
    print(json.dumps({"checkpoint": args.checkpoint, "clips": len(truth), "told_the_digit": args.told,
                      "sampler": args.sampler,
                      "steps": args.steps, **results}, indent=2))


if __name__ == "__main__":
    main()

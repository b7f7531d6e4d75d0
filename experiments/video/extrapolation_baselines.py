"""Which optical flow makes the strongest extrapolation reference for Moving-MNIST forecasts: persistence,
and the last given frame carried along the flow between the last two given frames
(``sciffusion_domains.video.extrapolation``) with TV-L1 and with iterative Lucas-Kanade at several window
radii, scored by the judge and the clip statistics of ``evaluate_moving_digits.py`` (the same test and
reference clips), plus the RMSE to the true frames at leads 1, 3, 6 and 12.

    python experiments/video/extrapolation_baselines.py --out experiments/video/moving_digits_extrapolation

Writes ``scores.json`` and ``scores.md``; under a minute on one CPU thread.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from skimage.registration import optical_flow_ilk, optical_flow_tvl1
from sciffusion_domains.video import extrapolation as extrapolating
from sciffusion_domains.video import judge as judging
from sciffusion_domains.video.metrics import clip_metrics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_moving_digits import REFERENCE_START, persistence  # noqa: E402

FLOWS = {"tvl1": lambda previous, last: np.stack(optical_flow_tvl1(last, previous))}
FLOWS.update({f"lucas_kanade_r{r}": (lambda r: lambda previous, last: np.stack(optical_flow_ilk(last, previous, radius=r)))(r)
              for r in (3, 5, 7, 9)})
SHOWN = ("frame_fd", "video_fd", "identity_kept", "digits_recognised", "motion_ratio", "std_ratio")
LEADS = (1, 3, 6, 12)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--reference", type=int, default=256)
    parser.add_argument("--given", type=int, default=4)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    judge = judging.load_judge(32)
    reference, _ = judging.real_clips("train", args.reference, size=32, frames=args.frames, seed=args.seed,
                                      start=REFERENCE_START)
    test, digits = judging.real_clips("test", args.samples, size=32, frames=args.frames, seed=args.seed)
    rows = {"real_test": (test, 0), "persistence": (persistence(test, args.given), args.given)}
    for name, flow in FLOWS.items():
        rows[name] = (extrapolating.extrapolation(test, args.given, flow=flow), args.given)
    scores = {}
    for name, (clips, given) in rows.items():
        judged = judging.judge_metrics(clips, reference, given_digits=digits, given_frames=given, judge=judge)
        stats = clip_metrics(clips.numpy(), reference.numpy())
        error = ((clips[:, :, args.given:] - test[:, :, args.given:]) ** 2).mean(dim=(0, 1, 3, 4)).sqrt()
        scores[name] = {**{k: float({**judged, **stats}[k]) for k in SHOWN},
                        **{f"rmse_lead{lead}": float(error[lead - 1]) for lead in LEADS if lead <= len(error)}}
    columns = list(next(iter(scores.values())))
    table = [f"Moving MNIST forecasts of {args.frames - args.given} frames from {args.given}, {args.samples} test clips "
             f"against {args.reference} real training-split clips (RMSE in [-1, 1] pixel units)", "",
             "| row | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    table += [f"| {name} | " + " | ".join(f"{value:.3f}" for value in row.values()) + " |" for name, row in scores.items()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scores.md").write_text("\n".join(table) + "\n")
    command = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    (out / "scores.json").write_text(json.dumps({"command": command, "settings": vars(args), "scores": scores},
                                                indent=1) + "\n")
    print("\n".join(table))
    return scores


if __name__ == "__main__":
    main()

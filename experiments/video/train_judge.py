"""Train the Moving-MNIST judge (``sciffusion_domains.video.judge``): the frame classifier and the clip
classifier, on clips of the training split generated from a fixed seed, scored on the test split (other
digit images, other trajectories). Writes the weights to
``domains/video/weights/moving_digits_judge_<size>px.pt`` (or ``--weights``) and the accuracies to
``experiments/video/judge/accuracy_<size>px.json``.

    nice -n 10 python experiments/video/train_judge.py --size 32      # the shipped judge (~10 CPU minutes)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from sciffusion_domains.video import judge as judging

OUT = Path(__file__).parent / "judge"
REPO = Path(__file__).resolve().parents[2]


def shown_path(path: Path) -> str:
    """``path`` relative to the repository where it lies inside it (no machine-specific prefix in the JSON)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=32, help="frame size (32: 14-px digits, 64: 28-px)")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip")
    parser.add_argument("--train-clips", type=int, default=6000, help="training clips generated once")
    parser.add_argument("--test-clips", type=int, default=500)
    parser.add_argument("--frame-steps", type=int, default=2400)
    parser.add_argument("--clip-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", type=Path, help="default: domains/video/weights/moving_digits_judge_<size>px.pt")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for accuracy_<size>px.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.time()
    clips, digits = judging.real_clips("train", args.train_clips, size=args.size, frames=args.frames, seed=args.seed)
    test, test_digits = judging.real_clips("test", args.test_clips, size=args.size, frames=args.frames, seed=args.seed)
    generated = time.time()
    print(f"generated {len(clips)} train and {len(test)} test clips in {generated - started:.0f} s", flush=True)
    frame = judging.train_frame_classifier(clips, digits, steps=args.frame_steps, seed=args.seed)
    frame_done = time.time()
    clip = judging.train_clip_classifier(clips, digits, steps=args.clip_steps, seed=args.seed, init=frame)
    clip_done = time.time()
    given = sys.argv[1:] if argv is None else argv
    meta = {"size": args.size, "frames": args.frames, "num_digits": 2, "train_clips": args.train_clips,
            "test_clips": args.test_clips, "frame_steps": args.frame_steps, "clip_steps": args.clip_steps,
            "seed": args.seed, "threshold": judging.THRESHOLD, "temporal_kinds": list(judging.TEMPORAL_KINDS),
            "command": " ".join(["python experiments/video/train_judge.py", *given])}
    judge = judging.Judge(frame, clip, meta)
    accuracy = judging.judge_accuracy(judge, test, test_digits, seed=args.seed)
    judge.meta["test_accuracy"] = accuracy
    path = judge.save(args.weights or judging.weights_path(args.size))
    seconds = {"generate": round(generated - started, 1), "frame_classifier": round(frame_done - generated, 1),
               "clip_classifier": round(clip_done - frame_done, 1), "total": round(time.time() - started, 1)}
    result = {**meta, "test_accuracy": accuracy, "seconds": seconds, "weights": shown_path(path),
              "weights_kB": round(path.stat().st_size / 1e3, 1),
              "parameters": {"frame": sum(p.numel() for p in frame.parameters()),
                             "clip": sum(p.numel() for p in clip.parameters())}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"accuracy_{args.size}px.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"test_accuracy": accuracy, "seconds": seconds, "weights_kB": result["weights_kB"]}, indent=1))
    return result


if __name__ == "__main__":
    main()

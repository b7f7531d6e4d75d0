"""One point of the learning curve of a running (or finished) qm9_joint run: snapshot its last
checkpoint, sample and score it with sciffusion-evaluate, and append a row to curve.jsonl.

    python experiments/molecules/joint/curve.py [RUN_DIR] [--num 200] [--steps 100]

Training hours are summed from the run's own log (``log_every`` steps / steps_per_s per record), so
pauses between sessions do not count. Samples: DDPM on positions with the exact ancestral step on
atoms, charges and bonds, uniform time grid, scored against the first 1,000 test molecules.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def training_hours(metrics: Path, until: int | None = None) -> tuple[int, float]:
    """(last logged step, hours of training up to it), from the log's steps/s; ``until`` stops at a step."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("kind") == "train" and r.get("steps_per_s")
            and (until is None or r["step"] <= until)]
    hours, previous = 0.0, 0
    for r in rows:
        hours += (r["step"] - previous) / r["steps_per_s"] / 3600
        previous = r["step"]
    return previous, hours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", default="experiments/molecules/qm9_joint_cpu")
    parser.add_argument("--num", type=int, default=200)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--sampler", default="ddpm")
    parser.add_argument("--categorical", default="posterior", help="the categorical step: posterior or euler")
    args = parser.parse_args()
    run = Path(args.run)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "snapshot.ckpt"
        shutil.copy(run / "checkpoints" / "last.ckpt", ckpt)
        step, hours = training_hours(run / "metrics.jsonl")
        import torch

        step = int(torch.load(ckpt, map_location="cpu", weights_only=True)["step"])
        out = run / "curve" / f"step_{step}_{args.sampler}{args.steps}_{args.categorical}"
        start = time.perf_counter()
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run([sys.executable, "-m", "sciffusion.cli.evaluate", f"checkpoint={ckpt}", f"num_samples={args.num}",
                        f"sampler={args.sampler}", f"steps={args.steps}", "grid=uniform_t", "batch_size=100",
                        f"sampler_options.categorical={args.categorical}", "reference_limit=1000", "save_samples=true",
                        f"out_dir={out}"], check=True, env=env)
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    row = {"step": step, "train_hours": round(hours, 3), "sampler": args.sampler, "categorical": args.categorical,
           "sampling_steps": args.steps,
           "num_samples": args.num, "eval_seconds": round(time.perf_counter() - start), **metrics}
    with open(run / "curve.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()

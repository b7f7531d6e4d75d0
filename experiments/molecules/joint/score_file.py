"""Score molecules saved by ``sample_to_file.py`` (sampled elsewhere, e.g. on a GPU machine without
RDKit) exactly as ``curve.py`` scores its own samples, and append one row per step count to the run's
``curve.jsonl``.

    python experiments/molecules/joint/score_file.py SAMPLES.pt RUN_DIR --note "..."

The metrics are the domain's (``sciffusion-evaluate``'s), against the first 1,000 test molecules.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch_geometric.data import Data

import sciffusion

from curve import training_hours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples")
    parser.add_argument("run", nargs="?", default="experiments/molecules/qm9_joint_cpu")
    parser.add_argument("--note", default="", help="where the samples and the weights come from")
    parser.add_argument("--model", default="domains/molecules/weights/qm9_joint_cpu.ckpt",
                        help="any qm9_joint checkpoint of the same domain (its domain scores)")
    args = parser.parse_args()
    saved = torch.load(args.samples, weights_only=True)
    model = sciffusion.load(args.model)
    reference = model.domain.reference("test", limit=1000)
    run = Path(args.run)
    _, hours = training_hours(run / "metrics.jsonl", until=int(saved["step"]))
    for r in saved["runs"]:
        start = time.perf_counter()
        molecules = [Data(**m) for m in r["molecules"]]
        metrics = model.domain.metrics(molecules, reference)
        row = {"step": int(saved["step"]), "train_hours": round(hours, 3), "sampler": "ddpm",
               "categorical": "posterior", "sampling_steps": r["steps"], "num_samples": len(molecules),
               "eval_seconds": round(time.perf_counter() - start), "sample_seconds": round(r["seconds"], 2),
               "sample_device": r["device_name"], "note": args.note, **metrics}
        with open(run / "curve.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        print(r["steps"], {k: round(v, 3) for k, v in metrics.items() if "stability" in k or "validity" in k})


if __name__ == "__main__":
    main()

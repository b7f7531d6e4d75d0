"""``make demo``: train the toy domain through the same code path as ``sciffusion-train``, sample it
as ``sciffusion-sample`` does, and score it as ``sciffusion-evaluate`` does, into ``demo_output/``.

    python -m sciffusion.demo [--out demo_output] [--steps 1500]

Takes well under a minute on two CPU cores.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from .cli import sample, train

TRAIN = ["experiment=toy_edm", "train.batch_size=256", "train.log_every=100", "train.save_every=500",
         "train.warmup=100", "optim.lr=2e-3"]
SAMPLE = ["num_samples=2000", "sampler=heun", "steps=24", "batch_size=1000"]


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_output", help="output folder (replaced)")
    parser.add_argument("--steps", type=int, default=1000, help="training steps")
    args = parser.parse_args(argv)
    # The toy network is too small to gain from intra-op threads, and on a busy machine their
    # spin-waiting makes each step many times slower.
    torch.set_num_threads(1)
    out = Path(args.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()

    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        train_cfg = compose("train", overrides=TRAIN + [f"train.steps={args.steps}"])
        ckpt = out / "run" / "checkpoints" / "last.ckpt"
        sample_cfg = compose("sample", overrides=SAMPLE + [f"checkpoint={ckpt}", f"out_dir={out}"])
    print(f"training the toy domain (2-D Gaussian mixture, EDM) for {args.steps} steps into {out / 'run'}")
    train.run(train_cfg, out / "run")

    opts = OmegaConf.to_container(sample_cfg, resolve=True)
    domain, objects = sample.draw(opts)
    files = sample.write(domain, objects, out)
    metrics = domain.metrics(objects, domain.reference("test"))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"\ndone in {time.perf_counter() - start:.0f} s. Look at:")
    for path in files + [out / "metrics.json", out / "run" / "metrics.jsonl"]:
        print(f"  {path}")
    print("moment errors vs the exact mixture: mean {mean_error:.3f}, covariance {cov_error:.3f}; "
          "largest mode-weight gap {mode_weight_gap:.3f}".format(**metrics))
    return out


if __name__ == "__main__":
    main()

"""``sciffusion-train``: train a model on a registered domain; see conf/train.yaml.

    sciffusion-train experiment=toy_flow train.steps=500
    torchrun --nproc_per_node=4 -m sciffusion.cli.train domain=images hydra.run.dir=runs/a
    sciffusion-train --multirun optim.lr=1e-3,3e-4

Writes into Hydra's run directory: config.yaml, checkpoints/last.ckpt (and step_*.ckpt with
train.keep_every), metrics.jsonl, tensorboard/ and samples/ (with train.sample_every).
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from . import build
from .schema import CONFIG_MODULE
from ..training import NonFiniteLossError, Trainer, distributed, seed_everything


def run(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Train with a composed config into ``run_dir``; returns the last log record."""
    plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    seed_everything(plain["train"]["seed"])  # the initial weights too must not depend on the process
    parts = build.build(plain)
    run_dir = Path(run_dir)
    trainer = Trainer(domain=parts.domain, model=parts.model, process=parts.process, loss=parts.loss,
                      optimizer=parts.optimizer, run_dir=run_dir, options=build.train_options(plain),
                      sampling=build.sampling_options(plain), config=plain)
    if trainer.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(plain))
    try:
        return trainer.fit()
    finally:
        distributed.teardown()


@hydra.main(config_path=CONFIG_MODULE, config_name="train", version_base="1.3")
def app(cfg: DictConfig) -> None:
    try:
        record = run(cfg, HydraConfig.get().runtime.output_dir)
    except NonFiniteLossError as err:
        print(f"sciffusion-train: {err}", file=sys.stderr)
        sys.exit(1)
    if record:
        print(f"sciffusion-train: done, final loss {record['loss']:.4g}; outputs in {HydraConfig.get().runtime.output_dir}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

"""``sciffusion-train``: train a model on a registered domain; see conf/train.yaml.

    sciffusion-train experiment=toy_flow train.steps=500
    torchrun --nproc_per_node=4 -m sciffusion.cli.train domain=images hydra.run.dir=runs/a
    sciffusion-train --multirun optim.lr=1e-3,3e-4

Writes into Hydra's run directory: config.yaml, checkpoints/last.ckpt (and step_*.ckpt with
train.keep_every), metrics.jsonl, tensorboard/ and samples/ (with train.sample_every). Rerun in the
same run directory (hydra.run.dir) to resume; a different config stops with the keys that differ
(see sciffusion.training.resume), before anything in the folder is rewritten.
"""
from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from . import build
from .errors import reported
from .experiments import check_experiments
from .schema import CONFIG_MODULE
from ..training import Trainer, distributed, seed_everything

HYDRA_SUBDIR = ".hydra"  # Hydra's records of the run, written here once the run may start (conf/train.yaml)


def save_hydra_records(cfg: DictConfig, run_dir: Path) -> None:
    """What Hydra writes into ``.hydra/`` (the composed config, Hydra's own and the overrides), written
    after the resume check so that a rejected rerun leaves the run's records as they were."""
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    folder = run_dir / HYDRA_SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (folder / "hydra.yaml").write_text(OmegaConf.to_yaml({"hydra": hydra_cfg}))
    (folder / "overrides.yaml").write_text(OmegaConf.to_yaml(hydra_cfg.overrides.task))


def command_line_keys() -> list[str] | None:
    """The config keys the command line set ("train.steps=5", "+cond.x=1", "~key" give "train.steps",
    "cond.x", "key"; "domain=qm9" gives the group "domain"); None outside a Hydra app."""
    if not HydraConfig.initialized():
        return None
    return [override.split("=", 1)[0].lstrip("+~") for override in HydraConfig.get().overrides.task]


def run(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Train with a composed config into ``run_dir``; returns the last log record."""
    plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    seed_everything(plain["train"]["seed"])  # the initial weights too must not depend on the process
    parts = build.build(plain)
    run_dir = Path(run_dir)
    trainer = Trainer(domain=parts.domain, model=parts.model, process=parts.process, loss=parts.loss,
                      optimizer=parts.optimizer, run_dir=run_dir, options=build.train_options(plain),
                      sampling=build.sampling_options(plain), config=plain, given=command_line_keys())
    with distributed.process_group_closed_at_end():
        trainer.restore()  # may refuse a checkpoint trained with another config: before writing anything
        if trainer.rank == 0 and not trainer.finished:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(plain))
            save_hydra_records(cfg, run_dir)
        return trainer.fit()


@hydra.main(config_path=CONFIG_MODULE, config_name="train", version_base="1.3")
def app(cfg: DictConfig) -> None:
    with reported("sciffusion-train", out_dir=HydraConfig.get().runtime.output_dir, hydra_subdir=HYDRA_SUBDIR):
        record = run(cfg, HydraConfig.get().runtime.output_dir)
    if record:
        print(f"sciffusion-train: done, final loss {record['loss']:.4g}; outputs in {HydraConfig.get().runtime.output_dir}")


def main() -> None:
    import sys

    with reported("sciffusion-train"):  # before Hydra: its error for a file without the header is obscure
        check_experiments(sys.argv[1:])
    app()
    distributed.end_finished_rank()  # after the rank has left its process group: see there why


if __name__ == "__main__":
    main()

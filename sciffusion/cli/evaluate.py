"""``sciffusion-evaluate``: sample from a checkpoint and score against the domain's reference split.

    sciffusion-evaluate checkpoint=outputs/toy/RUN/checkpoints/last.ckpt num_samples=2000 out_dir=eval/toy

Writes out_dir/metrics.json: the domain's metrics plus what produced them. In a --multirun
(``sampler=heun,euler``) each job writes into its own sub-folder named by its swept overrides
(out_dir/sampler=heun/metrics.json; see sweep.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .sample import draw, write
from .errors import reported
from .schema import CONFIG_MODULE
from .sweep import output_dir
from ..training import distributed


@hydra.main(config_path=CONFIG_MODULE, config_name="evaluate", version_base="1.3")
def app(cfg: DictConfig) -> None:
    opts = OmegaConf.to_container(cfg, resolve=True)  # a missing value is reported by draw
    out = Path(output_dir(opts["out_dir"]))
    with reported("sciffusion-evaluate", out_dir=out):
        with distributed.process_group_closed_at_end():
            evaluate(opts, out)


def evaluate(opts: dict, out: Path) -> None:
    """Sample, score against the reference split and write ``out/metrics.json`` (rank 0)."""
    domain, objects = draw(opts)
    if distributed.world()[0] != 0:
        return
    reference = domain.reference(opts["reference_split"], limit=opts["reference_limit"])
    result = {"checkpoint": str(opts["checkpoint"]), "num_samples": len(objects),
              "sampler": opts["sampler"], "steps": opts["steps"], "reference_split": opts["reference_split"],
              "metrics": domain.metrics(objects, reference)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    if opts["save_samples"]:
        write(domain, objects, out, figure=opts["figure"])
    print(f"sciffusion-evaluate: wrote {out / 'metrics.json'}")


def main() -> None:
    app()
    distributed.end_finished_rank()  # after the rank has left its process group: see there why


if __name__ == "__main__":
    main()

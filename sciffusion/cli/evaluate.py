"""``sciffusion-evaluate``: sample from a checkpoint and score against the domain's reference split.

    sciffusion-evaluate checkpoint=outputs/toy/RUN/checkpoints/last.ckpt num_samples=2000 out_dir=eval/toy

Writes out_dir/metrics.json: the domain's metrics plus what produced them.
"""
from __future__ import annotations

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .sample import draw, write
from .schema import CONFIG_MODULE
from ..training import distributed


@hydra.main(config_path=CONFIG_MODULE, config_name="evaluate", version_base="1.3")
def app(cfg: DictConfig) -> None:
    opts = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    try:
        domain, objects = draw(opts)
        if distributed.world()[0] == 0:
            reference = domain.reference(opts["reference_split"], limit=opts["reference_limit"])
            result = {"checkpoint": str(opts["checkpoint"]), "num_samples": len(objects),
                      "sampler": opts["sampler"], "steps": opts["steps"], "reference_split": opts["reference_split"],
                      "metrics": domain.metrics(objects, reference)}
            out = Path(opts["out_dir"])
            out.mkdir(parents=True, exist_ok=True)
            (out / "metrics.json").write_text(json.dumps(result, indent=2))
            if opts["save_samples"]:
                write(domain, objects, out, figure=opts["figure"])
            print(f"sciffusion-evaluate: wrote {out / 'metrics.json'}")
    finally:
        distributed.teardown()


def main() -> None:
    app()


if __name__ == "__main__":
    main()

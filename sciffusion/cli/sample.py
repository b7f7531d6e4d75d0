"""``sciffusion-sample``: draw samples from a trained checkpoint; see conf/sample.yaml.

    sciffusion-sample checkpoint=outputs/toy/RUN/checkpoints/last.ckpt num_samples=1000 sampler=heun \
        steps=32 out_dir=samples/toy
    sciffusion-sample checkpoint=digits num_samples=20 out_dir=samples/digits   # a shipped checkpoint, its
                                                                                # measured-best settings
    torchrun --nproc_per_node=2 -m sciffusion.cli.sample checkpoint=... out_dir=...   # same samples

Writes the domain's native files and figure.png into out_dir (in a --multirun, into a sub-folder per
job named by its swept overrides: see sweep.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from . import checks
from .errors import reported
from .schema import CONFIG_MODULE
from .sweep import output_dir
from ..api import load
from ..domain import Domain
from ..training import decode_all, distributed


def draw(opts: dict[str, Any]) -> tuple[Domain, list[Any]]:
    """Load ``opts["checkpoint"]`` (``sciffusion.load``), draw ``opts["num_samples"]`` samples (sharded
    over ranks) and return the domain and the decoded samples (on every rank). Settings not given
    come from the checkpoint (``sciffusion.settings``); ``opts`` gets the ones used, which are printed."""
    checks.no_missing({"checkpoint": opts["checkpoint"]})
    model = load(opts["checkpoint"], use_ema=opts["use_ema"])
    chosen = model.settings(sampler=opts["sampler"], steps=opts["steps"], grid=opts["grid"],
                            guidance=opts.get("guidance"), sampler_options=opts["sampler_options"] or None,
                            grid_options=opts["grid_options"] or None)
    checks.check_sampling({**opts, "sampler": chosen.sampler, "guidance": chosen.guidance}, model.config, model.domain)
    device = distributed.pick_device(opts["device"])
    distributed.setup(device)
    model.to(device)
    opts.update(sampler=chosen.sampler, steps=chosen.steps, grid=chosen.grid)
    if distributed.world()[0] == 0:
        print(f"sampling {opts['num_samples']} with {chosen.describe()}", flush=True)
    batches = model.draw(opts["num_samples"], chosen, cond=opts["cond"], seed=opts["seed"],
                         batch_size=opts["batch_size"], progress=opts.get("progress", True))
    return model.domain, decode_all(model.domain, batches)


def write(domain: Domain, objects: list[Any], out_dir: str | Path, *, figure: bool = True) -> list[Path]:
    """Rank 0 writes the native files (and the figure); returns the written paths."""
    if distributed.world()[0] != 0:
        return []
    out_dir = Path(out_dir)
    files = domain.save(objects, out_dir)
    if figure:
        files.append(domain.figure(objects, out_dir / "figure.png"))
    return files


@hydra.main(config_path=CONFIG_MODULE, config_name="sample", version_base="1.3")
def app(cfg: DictConfig) -> None:
    opts = OmegaConf.to_container(cfg, resolve=True)  # a missing value is reported by draw, after the guidance check
    out_dir = output_dir(opts["out_dir"])
    with reported("sciffusion-sample", out_dir=out_dir):
        with distributed.process_group_closed_at_end():
            domain, objects = draw(opts)
            files = write(domain, objects, out_dir, figure=opts["figure"])
    if files:
        print(f"sciffusion-sample: {len(objects)} samples; wrote {len(files)} files to {out_dir}")


def main() -> None:
    app()
    distributed.end_finished_rank()  # after the rank has left its process group: see there why


if __name__ == "__main__":
    main()

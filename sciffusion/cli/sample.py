"""``sciffusion-sample``: draw samples from a trained checkpoint; see conf/sample.yaml.

    sciffusion-sample checkpoint=outputs/toy/RUN/checkpoints/last.ckpt num_samples=1000 sampler=heun \
        steps=32 out_dir=samples/toy
    torchrun --nproc_per_node=2 -m sciffusion.cli.sample checkpoint=... out_dir=...   # same samples

Writes the domain's native files and figure.png into out_dir (in a --multirun, into a sub-folder per
job named by its swept overrides: see sweep.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from . import build, checks
from .errors import reported
from .schema import CONFIG_MODULE
from .sweep import output_dir
from ..domain import Domain
from ..training import SamplingOptions, decode_all, distributed, generate, load_checkpoint


def draw(opts: dict[str, Any]) -> tuple[Domain, list[Any]]:
    """Load ``opts["checkpoint"]``, draw ``opts["num_samples"]`` samples (sharded over ranks) and
    return the domain and the decoded samples (on every rank)."""
    checks.no_missing({"checkpoint": opts["checkpoint"]})
    state = load_checkpoint(opts["checkpoint"])
    parts = build.build(state["config"], domain_state=state.get("domain", {}))  # absent in old checkpoints
    checks.check_sampling(opts, state["config"], parts.domain)
    weights = state["ema"]["module"] if opts["use_ema"] else state["model"]
    parts.model.load_state_dict(weights)
    device = distributed.pick_device(opts["device"])
    distributed.setup(device)
    model = parts.model.to(device).eval()
    denoiser = build.guided(model, opts.get("guidance"), parts.process, parts.domain)
    sampling = SamplingOptions(sampler=opts["sampler"], steps=opts["steps"], grid=opts["grid"],
                               grid_options=opts["grid_options"], options=opts["sampler_options"],
                               batch_size=opts["batch_size"], seed=opts["seed"])
    batches = generate(parts.domain, denoiser, parts.process, opts["num_samples"], options=sampling,
                       device=device, cond_request=opts["cond"])
    return parts.domain, decode_all(parts.domain, batches)


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
        try:
            domain, objects = draw(opts)
            files = write(domain, objects, out_dir, figure=opts["figure"])
        finally:
            distributed.teardown()
    if files:
        print(f"sciffusion-sample: {len(objects)} samples; wrote {len(files)} files to {out_dir}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

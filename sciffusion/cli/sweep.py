"""Where each job of a ``--multirun`` of ``sciffusion-sample`` / ``sciffusion-evaluate`` writes.

One folder ``out_dir`` for every job would have each job overwrite the previous one's files, so in
a multirun each job writes into ``out_dir/<its swept overrides>`` (``out_dir/sampler=heun,steps=8``):
conf/sample.yaml and conf/evaluate.yaml set ``hydra.sweep.subdir: ${sciffusion_job_dir:}``. Told
otherwise, it does not: when ``out_dir`` is itself swept, or ``hydra.sweep.subdir=...`` is given.
"""
from __future__ import annotations

import re
import sys

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

RESOLVER = "sciffusion_job_dir"


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def swept_keys(argv: list[str]) -> set[str] | None:
    """The keys swept on the command line ``argv`` (``sampler=a,b``, ``range(...)``...), or None when it
    cannot be read (another launcher's process)."""
    args = [a for a in argv if "=" in a and not a.startswith("-")]
    try:
        return {o.get_key_element() for o in OverridesParser.create().parse_overrides(args) if o.is_sweep_override()}
    except Exception:  # noqa: BLE001 - not our command line: fall back to every override
        return None


def job_dir_name(job_overrides: list[str], swept: set[str] | None) -> str:
    """The sub-folder of a job: its swept overrides (all but ``out_dir`` when the sweep is unknown),
    joined by commas, with path separators replaced; empty when ``out_dir`` itself is swept."""
    if swept is not None and "out_dir" in swept:
        return ""
    chosen = [o for o in job_overrides if (_key(o) in swept if swept else _key(o) != "out_dir")
              and not _key(o).startswith("hydra.")]
    return re.sub(r"[/\\]+", "_", ",".join(chosen)).strip("._") or "job"


def job_dir() -> str:
    """The resolver: this job's sub-folder name."""
    return job_dir_name(list(HydraConfig.get().overrides.task), swept_keys(sys.argv[1:]))


def register() -> None:
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, job_dir)


def output_dir(out_dir: str) -> str:
    """Where an app writes: ``out_dir``, or in a multirun this job's own folder (see the module doc)."""
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return HydraConfig.get().runtime.output_dir
    return out_dir

"""Typed schemas of the app configs (typos and wrong types fail before any work starts) and the
search-path plugin that finds domain config folders."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import MISSING, DictConfig

from . import sweep
from ..training import SamplingOptions, TrainOptions

CONFIG_MODULE = "pkg://sciffusion.conf"


class DomainSearchPath(SearchPathPlugin):
    """Appends ``file://<plugin>/conf`` for every importable domain plugin (broken ones only warn)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from ..registry import config_dirs

        for name, folder in config_dirs().items():
            search_path.append(provider=f"sciffusion-domain-{name}", path=f"file://{folder}")


def _open_dict() -> DictConfig:
    """An empty node that accepts new keys (``cond.label=3`` without Hydra's ``+``): its keys belong
    to the domain or the sampler, which check them themselves."""
    return DictConfig({}, flags={"struct": False})


@dataclass
class TrainApp:
    domain: Any = MISSING
    network: Any = field(default_factory=lambda: _open_dict())
    process: Any = MISSING
    parameterization: Any = MISSING
    loss: Any = MISSING
    optim: Any = MISSING
    train: TrainOptions = field(default_factory=TrainOptions)
    sampling: SamplingOptions = field(default_factory=SamplingOptions)


@dataclass
class SampleApp:
    """Options of ``sciffusion-sample``; ``cond`` goes to the domain's ``condition()``. ``domain`` only
    exists to be refused: sampling rebuilds the domain from the checkpoint (see checks.py)."""

    checkpoint: str = MISSING  # a .ckpt file, a save_pretrained folder or a shipped name (digits, qm9...)
    out_dir: str = "samples"
    num_samples: int = 64
    # None: not given, so the checkpoint's sampling_defaults apply, then its training config's
    # sampling, then heun / 32 / karras (sciffusion.settings); guidance=none turns a stored guidance off,
    # and guidance.scale=3 alone (no guidance=NAME) changes the stored guidance's scale
    sampler: Optional[str] = None
    steps: Optional[int] = None
    grid: Optional[str] = None
    grid_options: Any = field(default_factory=lambda: _open_dict())
    sampler_options: Any = field(default_factory=lambda: _open_dict())
    batch_size: int = 256
    seed: int = 0
    cond: Any = field(default_factory=lambda: _open_dict())
    guidance: Any = field(default_factory=lambda: _open_dict())  # empty: not given
    domain: Any = field(default_factory=lambda: _open_dict())
    use_ema: bool = True
    device: str = "auto"
    figure: bool = True
    progress: bool = True  # a tqdm bar of sampler steps


@dataclass
class EvaluateApp(SampleApp):
    """``sciffusion-sample``'s options plus the reference split the metrics compare with."""

    num_samples: int = 1024
    reference_split: str = "test"
    reference_limit: Optional[int] = None
    save_samples: bool = False


def register() -> None:
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainApp)
    store.store(name="sample_schema", node=SampleApp)
    store.store(name="evaluate_schema", node=EvaluateApp)
    Plugins.instance().register(DomainSearchPath)
    sweep.register()

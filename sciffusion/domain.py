"""The Domain interface: everything that knows what the data *is*.

The core (processes, losses, samplers, the training loop) sees only tensors, a ``Space`` and a
condition dict. A domain plugin turns its field's files into such batches and back:

    dataset(split)            -> torch Dataset of items (anything ``collate`` understands)
    collate(items)            -> Batch(x, space, cond)
    network(**options)        -> nn.Module  net(x, t [B], space, cond) -> prediction
    condition(n, generator)   -> cond dict for n new samples (labels, properties; {} if none)
    template(n, generator, cond) -> (x_like, space): the shape of n new samples
    decode(x, space, cond)    -> list of native objects (arrays, images, molecules, datasets)
    state_dict() / load_state_dict(state) -> what sampling needs from the data (normalisers...)
    save(objects, out_dir)    -> list of written files (NPY, PNG, WAV, SDF, NetCDF...)
    figure(objects, path)     -> the written figure
    metrics(samples, reference) -> dict of floats

A plugin subclasses ``Domain``, registers the class under the entry-point group
``sciffusion.domains`` (see ``registry``) and ships a Hydra config folder ``conf/`` next to its
module, holding at least ``domain/<name>.yaml``. Heavy libraries (RDKit, librosa, xarray) are
imported inside methods, never at module level, so listing domains stays cheap.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from .parameterization import Cond
from .space import Space, require_space
from .state import State, state_to


def cache_dir(*parts: str) -> Path:
    """Where domains cache what they derive from their data (renderings, simulations, statistics):
    ``$SCIFFUSION_CACHE/<parts>`` if the variable is set, else ``~/.cache/sciffusion/<parts>``."""
    import os

    return Path(os.environ.get("SCIFFUSION_CACHE", Path.home() / ".cache" / "sciffusion"), *parts)


@dataclass
class Batch:
    """One training batch: ``x`` (dense ``[B, ...]``, graph rows ``[N, F]``, or a ``dict`` of named
    parts with a ``PartsSpace``), its ``space`` and the conditions ``cond`` (each ``[B, ...]``)."""

    x: State
    space: Space
    cond: Cond = field(default_factory=dict)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "Batch":
        """The batch on ``device``; ``dtype`` converts floating tensors only."""
        return Batch(state_to(self.x, device, dtype), space_to(self.space, device),
                     {k: state_to(v, device, dtype) for k, v in self.cond.items()})

    def __len__(self) -> int:
        return self.space.batch_size(self.x)


def space_to(space: Space, device: torch.device | str) -> Space:
    """The same space with its tensors (mask, weights, batch) on ``device``: ``Space.to``."""
    return require_space(space, "space_to").to(device)


def check_condition_request(domain: "Domain", request: dict[str, Any]) -> None:
    """Raise naming the condition when ``request`` holds one that ``domain.condition`` does not take
    (``cond.num_atoms`` on a domain without atoms), instead of a ``TypeError`` or silence. A
    ``condition`` with ``**request`` checks its own keys."""
    params = inspect.signature(domain.condition).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    taken = [name for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "generator"]
    unknown = sorted(set(request) - set(taken))
    if unknown:
        works = ", ".join(f"cond.{name}" for name in taken) or "no condition"
        raise ValueError(f"{', '.join(f'cond.{name}' for name in unknown)}: the {domain.name!r} domain has no such "
                         f"condition; it takes {works}")


class Domain:
    """Base class of domain plugins. ``name`` is the name under which the plugin registers and the
    option that selects it (``domain=<name>``). Options from ``domain/<name>.yaml`` arrive as
    keyword arguments of ``__init__``."""

    name: ClassVar[str] = ""
    #: The ``pip`` extra that installs this domain's libraries (named in import-failure warnings).
    extra: ClassVar[str | None] = None

    @classmethod
    def config_dir(cls) -> Path | None:
        """The plugin's Hydra config folder: ``conf/`` beside the module that defines the class."""
        folder = Path(inspect.getfile(cls)).parent / "conf"
        return folder if folder.is_dir() else None

    def dataset(self, split: str) -> Dataset:
        """The items of ``split`` ("train", "val" or "test")."""
        raise NotImplementedError(f"domain {self.name!r} does not provide a dataset")

    def collate(self, items: Sequence[Any]) -> Batch:
        """Batch a list of dataset items."""
        raise NotImplementedError(f"domain {self.name!r} does not provide collate()")

    def network(self, **options: Any) -> nn.Module:
        """The default network, ``net(x, t [B], space, cond) -> prediction shaped like x``."""
        raise NotImplementedError(f"domain {self.name!r} has no default network; set network._target_")

    def condition(self, num_samples: int, *, generator: torch.Generator | None = None,
                  **request: Any) -> Cond:
        """Conditions for ``num_samples`` new samples; ``request`` comes from the command line
        (``cond.label=3``). Unconditional domains return ``{}``."""
        if request:
            raise ValueError(f"domain {self.name!r} is unconditional; remove the conditions {sorted(request)}")
        return {}

    def template(self, num_samples: int, *, generator: torch.Generator | None = None,
                 cond: Cond | None = None) -> tuple[Tensor, Space]:
        """A tensor shaped like ``num_samples`` new samples (its values are ignored) and their space:
        the image size, atom counts drawn from the data's histogram, the grid."""
        raise NotImplementedError(f"domain {self.name!r} does not provide template()")

    def decode(self, x: Tensor, space: Space, cond: Cond | None = None) -> list[Any]:
        """Turn a batch of samples into the field's native objects, one per sample; ``cond`` holds
        the conditions they were drawn with (e.g. the requested labels), for naming and metrics."""
        raise NotImplementedError(f"domain {self.name!r} does not provide decode()")

    def save(self, objects: Sequence[Any], out_dir: Path) -> list[Path]:
        """Write decoded samples in the field's file formats; returns the written files."""
        raise NotImplementedError(f"domain {self.name!r} does not provide save()")

    def figure(self, objects: Sequence[Any], path: Path) -> Path:
        """Draw decoded samples into one figure file at ``path``."""
        raise NotImplementedError(f"domain {self.name!r} does not provide figure()")

    def reference(self, split: str = "test", limit: int | None = None) -> list[Any]:
        """Decoded data of ``split`` (at most ``limit`` items), what ``metrics`` compares samples with."""
        data = self.dataset(split)
        n = len(data) if limit is None else min(limit, len(data))
        batch = self.collate([data[i] for i in range(n)])
        return self.decode(batch.x, batch.space, batch.cond)

    def state_dict(self) -> dict[str, Any]:
        """What the domain learned from its data and needs again at sampling time (normalisation
        statistics, spectrogram settings, atom-count histograms), as tensors and plain values.
        The training loop stores it in every checkpoint; the apps restore it before sampling."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned; domains without state accept only ``{}``."""
        if state:
            raise ValueError(f"domain {self.name!r} keeps no state but the checkpoint holds {sorted(state)}")

    def prepare_process(self, process: Any) -> None:
        """Fill in what a noise process needs from the data, such as the class marginals of a
        categorical part with a marginal prior (``JointProcess``); keep it in ``state_dict`` so that
        sampling needs no data. Called when the apps build a process; nothing by default."""

    def metrics(self, samples: Sequence[Any], reference: Sequence[Any]) -> dict[str, float]:
        """The field's own measures of how well ``samples`` match ``reference``."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

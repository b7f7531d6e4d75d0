"""Finds domain plugins through the entry-point group ``sciffusion.domains``.

Built-in domains (``sciffusion_domains.*``) register through the same group as third-party packages:

    [project.entry-points."sciffusion.domains"]
    toy = "sciffusion_domains.toy:ToyDomain"

Nothing is imported until a domain is asked for, so ``import sciffusion`` never pulls in RDKit,
librosa or xarray. A plugin that fails to import is skipped with a warning naming the extra to
install; asking for it by name raises that same message as an ``ImportError``.
"""
from __future__ import annotations

import warnings
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from .domain import Domain

GROUP = "sciffusion.domains"


class DomainImportWarning(UserWarning):
    """A registered domain plugin could not be imported."""


def entry_points_by_name() -> dict[str, EntryPoint]:
    """Registered domain names and their entry points, without importing anything."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    """Sorted names of all registered domains (importable or not)."""
    return sorted(entry_points_by_name())


def _install_hint(ep: EntryPoint, error: BaseException) -> str:
    # Built-in domains live in sciffusion's own distribution, with one extra per domain.
    dist = ep.dist.name if ep.dist is not None else ("sciffusion" if ep.value.startswith("sciffusion_domains.") else None)
    missing = getattr(error, "name", None)
    what = f"the module {missing!r} is missing" if missing else str(error)
    fix = f"install its extra: pip install '{dist}[{ep.name}]'" if dist else "install the package that provides it"
    return f"domain plugin {ep.name!r} ({ep.value}) failed to import: {what}; {fix}"


def load_class(name: str) -> type[Domain]:
    """The Domain subclass registered as ``name``; raises listing the available names if unknown."""
    eps = entry_points_by_name()
    if name not in eps:
        raise KeyError(f"unknown domain {name!r}; available domains: {', '.join(sorted(eps)) or 'none'} "
                       f"(a plugin registers under the entry-point group {GROUP!r} and must be pip-installed)")
    return _load(eps[name])


def _load(ep: EntryPoint) -> type[Domain]:
    """Import the class ``ep`` names; an import failure names the extra to install."""
    name = ep.name
    try:
        cls = ep.load()
    except ImportError as err:
        raise ImportError(_install_hint(ep, err)) from err
    if not (isinstance(cls, type) and issubclass(cls, Domain)):
        raise TypeError(f"the entry point {name!r} = {ep.value!r} must name a subclass of sciffusion.domain.Domain, "
                        f"got {cls!r}")
    return cls


def make_domain(name: str, **options: Any) -> Domain:
    """Instantiate the domain registered as ``name`` with its options."""
    return load_class(name)(**options)


def loadable() -> dict[str, type[Domain]]:
    """Every domain class that imports; the others are skipped with a ``DomainImportWarning``."""
    found = {}
    # one listing, loaded as listed: a package uninstalled meanwhile fails to import and is skipped, where
    # listing the names and then looking each up again raised an unknown-domain KeyError
    for name, ep in sorted(entry_points_by_name().items()):
        try:
            found[name] = _load(ep)
        except (ImportError, TypeError) as err:
            warnings.warn(str(err), DomainImportWarning, stacklevel=2)
    return found


def config_dirs() -> dict[str, Path]:
    """The Hydra config folders of every importable domain, by name."""
    return {name: d for name, cls in loadable().items() if (d := cls.config_dir()) is not None}

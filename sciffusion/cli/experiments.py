"""Experiment files (``experiment=NAME``) checked before Hydra composes them.

An experiment file overrides options at the top level (``train.steps``, ``defaults: - override
/domain: ...``), so it must begin with the header line ``# @package _global_``. Without it Hydra
nests the file under ``experiment`` and fails with "Key 'experiment' not in 'TrainApp'" or "Could
not override 'process@experiment.process'", which say nothing of the missing line: this check does.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

HEADER = "# @package _global_"
_PACKAGE = re.compile(r"#\s*@package\s+(\S+)")


def experiment_file(name: str, extra: Sequence[Path] = ()) -> Path | None:
    """The file ``experiment/<name>.yaml`` as Hydra finds it: the core's ``conf/``, each domain
    plugin's ``conf/`` folder (see ``registry.config_dirs``), then ``extra`` folders (from
    ``hydra.searchpath``); None when there is none."""
    import sciffusion.conf

    from ..registry import config_dirs

    folders = [Path(sciffusion.conf.__file__).parent, *config_dirs().values(), *extra]
    for folder in folders:
        path = folder / "experiment" / f"{name}.yaml"
        if path.is_file():
            return path
    return None


def declared_package(path: Path) -> str | None:
    """The ``# @package`` of a config file: only comment lines at its top count, as for Hydra."""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return None
        match = _PACKAGE.match(stripped)
        if match:
            return match.group(1)
    return None


def check_experiment_file(path: Path) -> None:
    """Raise naming the file and the line to add when ``path`` is not a ``_global_`` package."""
    package = declared_package(path)
    if package != "_global_":
        found = f"it declares '# @package {package}'" if package else "its first lines do not say so"
        raise ValueError(f"{path}: an experiment file overrides options at the top level and must begin with the "
                         f"line '{HEADER}' ({found}); without it Hydra nests its keys under 'experiment' and "
                         "cannot compose the config")


def _parse(overrides: Sequence[str]) -> list:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create().parse_overrides([o for o in overrides if not o.startswith("-")])
    except Exception:  # noqa: BLE001 - a malformed override is Hydra's to report
        return []


def search_folders(overrides: Sequence[str]) -> list[Path]:
    """The local folders (``file://``) that a ``hydra.searchpath=[...]`` override adds."""
    folders = []
    for override in _parse(overrides):
        if override.key_or_group.lstrip("+~") == "hydra.searchpath" and isinstance(override.value(), list):
            folders += [Path(str(v)[len("file://"):]) for v in override.value() if str(v).startswith("file://")]
    return folders


def experiment_names(overrides: Sequence[str]) -> list[str]:
    """The experiments that command-line ``overrides`` select (``experiment=a`` or a sweep ``a,b``)."""
    names = []
    for override in _parse(overrides):
        if override.key_or_group.lstrip("+~") != "experiment" or override.value() is None:
            continue
        if override.is_sweep_override():
            names.extend(str(v) for v in override.sweep_string_iterator())
        else:
            names.append(override.get_value_element_as_str())
    return names


def check_experiments(overrides: Sequence[str]) -> None:
    """Check the file of every experiment that ``overrides`` select (unknown names are Hydra's to report)."""
    extra = search_folders(overrides)
    for name in experiment_names(overrides):
        path = experiment_file(name, extra)
        if path is not None:
            check_experiment_file(path)

"""Sampling options that would do nothing, or the wrong thing, stop with a one-line ``ValueError``
naming the option and what would work: a ``domain.*`` override (sampling rebuilds the domain from the
checkpoint), a guidance made for another domain, classifier-free guidance on a model that cannot use it,
a guidance option its factory does not take, and a required option never given."""
from __future__ import annotations

import inspect
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from omegaconf import OmegaConf

from ..domain import Domain

MISSING = "???"  # what OmegaConf's to_container leaves for a mandatory value never given
CFG_TARGET = "sciffusion.guidance.ClassifierFreeGuidance"


def flat(options: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf of nested dicts (an empty dict has none)."""
    if isinstance(options, dict):
        for key, value in options.items():
            yield from flat(value, f"{prefix}.{key}" if prefix else str(key))
    elif prefix:
        yield prefix, options


def no_domain_overrides(opts: dict[str, Any], config: dict[str, Any]) -> None:
    """A ``domain.*`` option at sample time would be ignored: say so, with the checkpoint's value."""
    given = list(flat(opts.get("domain") or {}, "domain"))
    if not given:
        return
    kept = config.get("domain", {})
    shown = ", ".join(f"{key}={value} (the checkpoint has {_lookup(kept, key.split('.')[1:])})" for key, value in given)
    raise ValueError(f"{shown}: sampling rebuilds the domain from the checkpoint's config and would ignore it; "
                     "remove it, or train a run with it (train.init_from=CHECKPOINT starts one from these weights)")


def _lookup(options: dict[str, Any], keys: list[str]) -> Any:
    for key in keys:
        if not isinstance(options, dict) or key not in options:
            return "no such option"
        options = options[key]
    return options


def no_missing(opts: dict[str, Any]) -> None:
    """Every mandatory value (``???`` in a config, e.g. ``guidance.input``) was given."""
    missing = [key for key, value in flat(opts) if value == MISSING]
    if missing:
        raise ValueError(f"missing option {', '.join(missing)}: pass it on the command line "
                         f"({' '.join(f'{key}=...' for key in missing)})")


def _guidance_targets(folder: Path | None) -> dict[str, str]:
    """Guidance config name -> its ``_target_`` in ``folder`` (a domain's ``conf/guidance`` or the core's)."""
    found = {}
    for path in sorted(folder.glob("*.yaml")) if folder is not None and folder.is_dir() else []:
        node = OmegaConf.to_container(OmegaConf.load(path))
        node = node.get("guidance", node) if isinstance(node, dict) else {}
        if isinstance(node, dict) and isinstance(node.get("_target_"), str):
            found[path.stem] = node["_target_"]
    return found


def general_guidance_dir() -> Path:
    """The core's guidance configs (``sciffusion.conf``'s ``guidance/``: cfg), usable with every domain."""
    import sciffusion.conf

    return Path(next(iter(sciffusion.conf.__path__))) / "guidance"


@lru_cache(maxsize=1)
def guidances_by_domain() -> dict[str, dict[str, str]]:
    """Every importable domain's own guidance configs (name -> ``_target_``)."""
    from ..registry import config_dirs

    return {name: _guidance_targets(folder / "guidance") for name, folder in config_dirs().items()}


def guidance_fits(guidance: dict[str, Any] | None, domain_name: str) -> None:
    """A guidance shipped by one domain's plugin (``guidance=fragment``) is only for that plugin's domains."""
    target = (guidance or {}).get("_target_")
    by_domain = guidances_by_domain()
    owners = sorted(name for name, targets in by_domain.items() if target in targets.values())
    if not owners or domain_name in owners:
        return
    names = sorted({name for targets in by_domain.values() for name, t in targets.items() if t == target})
    usable = sorted({*_guidance_targets(general_guidance_dir()), *by_domain.get(domain_name, {})})
    raise ValueError(f"guidance={' or '.join(names)} ({target}) is made for the domain(s) {', '.join(owners)}, "
                     f"not for this checkpoint's domain {domain_name!r}; its guidances are "
                     f"{', '.join(f'guidance={name}' for name in usable)}")


def cfg_has_an_effect(guidance: dict[str, Any] | None, config: dict[str, Any], domain: Domain) -> None:
    """Classifier-free guidance needs a conditional model trained with condition dropout: on an
    unconditional one the guided samples are the unguided ones, bit for bit. A domain says whether it
    has conditions to drop with ``droppable_conditions`` (e.g. a forecaster's given frames), else with
    ``conditional``; one with neither attribute is taken as conditional."""
    if (guidance or {}).get("_target_") != CFG_TARGET:
        return
    if not getattr(domain, "droppable_conditions", getattr(domain, "conditional", True)):
        raise ValueError(f"guidance=cfg does nothing here: this checkpoint's {domain.name!r} domain is unconditional, "
                         "so guided and unguided samples are identical; drop guidance=cfg, or train a conditional "
                         "model with loss.cond_dropout > 0 (e.g. experiment=toy_cfg)")
    dropout = (config.get("loss") or {}).get("cond_dropout", 0.0)
    if not dropout:
        raise ValueError(f"guidance=cfg needs a model trained with loss.cond_dropout > 0, this checkpoint has "
                         f"loss.cond_dropout={dropout} (its unconditional prediction was never trained); drop "
                         "guidance=cfg, or train with loss.cond_dropout=0.1")


def guidance_options_known(guidance: dict[str, Any] | None) -> None:
    """Every option of the guidance is a parameter of its factory: ``guidance.scael=3`` (the command
    line's empty guidance node takes any key) must not fail deep inside the guidance, or not at all."""
    if not isinstance(guidance, dict) or "_target_" not in guidance:
        return
    from hydra.utils import get_object

    try:
        parameters = inspect.signature(get_object(guidance["_target_"])).parameters
    except (ImportError, AttributeError, ValueError, TypeError):
        return  # a target that cannot be found is reported when it is built
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    taken = [name for name, p in parameters.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    unknown = [key for key in guidance if not key.startswith("_") and key not in taken]
    if unknown:
        options = [name for name in taken[1:] if name not in ("process", "domain")]  # [0]: the denoiser
        raise ValueError(f"{', '.join(f'guidance.{key}' for key in unknown)}: not an option of "
                         f"{guidance['_target_']}; its options are {', '.join(options) or 'none'}")


def sampler_fits(sampler: str | None, config: dict[str, Any]) -> None:
    """``sampler=consistency`` jumps to the model's x0 estimate and renoises: right for a consistency
    model, wrong (blurred, mode-averaged samples) for a denoiser trained any other way."""
    target = str((config.get("parameterization") or {}).get("_target_", ""))
    if sampler == "consistency" and not target.endswith("ConsistencyPrecond"):
        raise ValueError("sampler=consistency needs a consistency model (a checkpoint trained with "
                         "loss=distill_consistency or loss=distill_consistency_training); this checkpoint's "
                         f"parameterization is {target or 'unknown'}: choose another sampler (e.g. sampler=heun)")


def not_a_residual_model(config: dict[str, Any]) -> None:
    """A model of the residual of a predictor's mean (``sciffusion.residual``) samples only residuals
    unless the tool that knows the predictor adds the mean back."""
    residual = config.get("residual")
    if residual:
        tool = "python -m sciffusion_domains.weather.forecast checkpoint=..." if residual.get("predictor") == "lim" \
            else "sciffusion.residual.ResidualDenoiser with its predictor"
        raise ValueError(f"this checkpoint models the residual of the {residual.get('predictor')!r} predictor's mean; "
                         f"plain sampling would give residuals, not fields: sample it with {tool}")


def check_sampling(opts: dict[str, Any], config: dict[str, Any], domain: Domain) -> None:
    """All of the above, before any guidance is built or any sample drawn."""
    not_a_residual_model(config)
    sampler_fits(opts.get("sampler"), config)
    no_domain_overrides(opts, config)
    guidance_fits(opts.get("guidance"), config["domain"]["name"])
    guidance_options_known(opts.get("guidance"))
    no_missing(opts)
    cfg_has_an_effect(opts.get("guidance"), config, domain)

"""Which sampler, steps, grid and guidance a sampling run uses.

Every setting comes from the first of: what the user gave (the command line or ``Model.sample``), the
checkpoint's ``sampling_defaults`` (the settings that measured best for it; see ``shipped``), the
``sampling`` section of its training config, and the library's defaults (Heun, 32 steps, Karras
grid, no guidance). ``describe`` says which value came from where. A sampler's options travel with
its sampler and a grid's with its grid: they apply only where the sampler (grid) is theirs.

Guidance is given as ``None`` (not given), ``"none"``/``False`` (none, even where the checkpoint has
one), a core guidance config's name (``"cfg"``), ``{"name": "cfg", "scale": 3}``, a Hydra config
with ``_target_`` (what ``sciffusion-sample guidance=...`` composes), a float (the CFG scale) or a
callable ``denoiser -> denoiser``. Options alone (``{"scale": 3}``, ``sciffusion-sample
guidance.scale=3``) change the checkpoint's stored guidance; an empty dict is no guidance given.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from omegaconf import OmegaConf

LIBRARY = {"sampler": "heun", "steps": 32, "grid": "karras", "guidance": None}
NAMED = ("sampler", "steps", "grid")
NO_GUIDANCE = "none"  # conf/guidance/none.yaml composes {"none": true}
LAYERS = ("given", "checkpoint sampling_defaults", "training config", "library default")


@dataclass
class Settings:
    sampler: str
    steps: int
    grid: str
    grid_options: dict[str, Any] = field(default_factory=dict)
    sampler_options: dict[str, Any] = field(default_factory=dict)
    guidance: dict[str, Any] | Callable | None = None  # a Hydra ``_partial_`` config, a callable, or None
    sources: dict[str, str] = field(default_factory=dict)  # setting -> the layer it came from

    def describe(self) -> str:
        """One line: the settings and where each came from."""
        options = "".join(f" {k}={v}" for k, v in self.sampler_options.items() if k != "callback")
        text = f"sampler={self.sampler}{options} steps={self.steps} grid={self.grid} guidance={guidance_name(self.guidance)}"
        return f"{text} ({describe_sources(self.sources)})"


def describe_sources(sources: dict[str, str]) -> str:
    """``{setting: where it came from}`` grouped by where: ``"given: steps; checkpoint: sampler, grid"``."""
    by_layer: dict[str, list[str]] = {}
    for key, layer in sources.items():
        by_layer.setdefault(layer, []).append(key)
    return "; ".join(f"{layer}: {', '.join(keys)}" for layer, keys in by_layer.items())


def guidance_name(guidance: Any) -> str:
    if guidance is None:
        return "none"
    if callable(guidance) and not isinstance(guidance, dict):
        return getattr(guidance, "__name__", type(guidance).__name__)
    target = str(guidance.get("_target_", "?")).rsplit(".", 1)[-1]
    shown = {k: v for k, v in guidance.items() if k in ("scale", "input", "method", "task")}
    return target + ("(" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")" if shown else "")


def is_no_guidance(guidance: Any) -> bool:
    return guidance is False or guidance == NO_GUIDANCE or guidance == {NO_GUIDANCE: True}


def guidance_config(guidance: Any) -> dict[str, Any] | Callable | None:
    """The guidance as a Hydra ``_partial_`` config (or a callable), None for none; see the module doc."""
    if guidance is None or is_no_guidance(guidance):
        return None
    if callable(guidance) and not isinstance(guidance, dict):
        return guidance
    if isinstance(guidance, (int, float)) and not isinstance(guidance, bool):
        return {**named_guidance("cfg"), "scale": float(guidance)}
    if isinstance(guidance, str):
        return named_guidance(guidance)
    if isinstance(guidance, dict):
        if "_target_" in guidance:
            return dict(guidance)
        if "name" in guidance:
            options = {k: v for k, v in guidance.items() if k != "name"}
            return {**named_guidance(guidance["name"]), **options}
    raise ValueError(f"guidance={guidance!r} is not a guidance; give a name ('cfg'), {{'name': 'cfg', 'scale': 3}}, "
                     "a config with _target_, a CFG scale, a callable denoiser -> denoiser, or 'none'")


def named_guidance(name: str) -> dict[str, Any]:
    """A core guidance config (``conf/guidance/<name>.yaml``) as a plain dict."""
    from .cli.checks import general_guidance_dir

    path = general_guidance_dir() / f"{name}.yaml"
    if name == NO_GUIDANCE or not path.is_file():
        known = sorted(p.stem for p in general_guidance_dir().glob("*.yaml") if p.stem != NO_GUIDANCE)
        raise ValueError(f"guidance={name!r}: no such core guidance; by name Python takes {', '.join(known)}; a "
                         "domain's guidance (inpaint, gap, fragment...) is given as a config with _target_ or "
                         "through sciffusion-sample guidance=<name>")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def layers(defaults: dict[str, Any] | None, config: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The checkpoint's layers in order: its ``sampling_defaults`` and its training config's ``sampling``."""
    sampling = dict((config or {}).get("sampling") or {})
    if "options" in sampling:
        sampling["sampler_options"] = sampling.pop("options")
    return [dict(defaults or {}), sampling]


def resolve(given: dict[str, Any], defaults: dict[str, Any] | None = None,
            config: dict[str, Any] | None = None) -> Settings:
    """The settings of a run: ``given`` (None = not given) over the checkpoint's layers and the library."""
    stack = [dict(given)] + layers(defaults, config) + [LIBRARY]
    values, sources = {}, {}
    for key in NAMED:
        layer = next(i for i, values_ in enumerate(stack) if values_.get(key) is not None)
        values[key], sources[key] = stack[layer][key], LAYERS[layer]
    for key, owner in (("sampler_options", "sampler"), ("grid_options", "grid")):
        # options belong to their sampler (grid): given ones always apply, stored ones only to the same one
        chosen = next((s.get(key) for i, s in enumerate(stack)
                       if s.get(key) and (i == 0 or s.get(owner) == values[owner])), None)
        values[key] = dict(chosen or {})
    guidance, sources["guidance"] = _chosen_guidance(given.get("guidance"), defaults or {})
    return Settings(**values, guidance=guidance_config(guidance), sources=sources)


def _is_options_only(guidance: Any) -> bool:
    """A dict that names no guidance (no ``_target_``, ``name`` or ``none``): options of the stored one."""
    return isinstance(guidance, dict) and not {"_target_", "name", NO_GUIDANCE} & set(guidance)


def _is_cfg(guidance: Any) -> bool:
    return isinstance(guidance, dict) and guidance.get("_target_") == named_guidance("cfg")["_target_"]


def _chosen_guidance(given: Any, defaults: dict[str, Any]) -> tuple[Any, str]:
    """The guidance of a run and the layer it came from: the given one; the given options over the
    checkpoint's guidance (so that ``guidance.scale=3`` keeps the stored guidance and its other
    options); the checkpoint's choice, none included; else none."""
    if isinstance(given, dict) and not given:  # what the command line composes when no guidance is given
        given = None
    if given is None:
        if "guidance" in defaults:
            return defaults["guidance"], LAYERS[1]
        return None, LAYERS[3]
    stored = lambda: guidance_config(defaults.get("guidance"))  # noqa: E731 (read only when options need it)
    if isinstance(given, (int, float)) and not isinstance(given, bool) and _is_cfg(stored()):
        given = {"scale": float(given)}  # a CFG scale for a stored CFG keeps its other options
    if not _is_options_only(given):
        return given, LAYERS[0]
    if not isinstance(stored(), dict):
        options = " ".join(f"guidance.{k}={v}" for k, v in given.items())
        raise ValueError(f"{options} given without a guidance, and this checkpoint stores none to apply it to; "
                         f"name one too, e.g. guidance=cfg {options} (in Python guidance={{'name': 'cfg', ...}})")
    return {**stored(), **given}, f"{LAYERS[0]} over {LAYERS[1]}"

"""When a run may continue from a checkpoint, and starting a new run from a checkpoint's weights.

A run continues (``train.resume``) only with the configuration it was trained with. Options that
change neither the model nor the optimisation may differ between the two (``MAY_CHANGE``); any other
difference stops the run with the differing keys and the ways out, instead of training EDM weights as
flow matching. ``train.init_from`` is the explicit way to start a *new* run from trained weights.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .checkpoint import CheckpointError

#: Options a resumed run may change (dotted paths; a trailing ".*" covers a whole group). The length of
#: the run, how often it logs, saves and samples, where the progress goes, how data is fetched, the
#: device, and where it resumes from. With a decaying learning-rate schedule a new ``train.steps``
#: stretches the rest of the schedule to the new length.
MAY_CHANGE = (
    "train.steps", "train.log_every", "train.save_every", "train.keep_every", "train.sample_every",
    "train.sample_count", "train.progress", "train.tensorboard", "train.num_workers", "train.device",
    "train.resume", "sampling.*",
)


class ConfigMismatchError(CheckpointError):
    """A run folder's checkpoint was trained with another configuration than the one given now."""


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as {dotted.path: value}; lists and other values are leaves."""
    if not isinstance(config, dict) or (prefix and not config):
        return {prefix: config}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def may_change(key: str) -> bool:
    return any(key == k or (k.endswith(".*") and key.startswith(k[:-1])) for k in MAY_CHANGE)


_ABSENT = object()


def _default_on_one_side(a: Any, b: Any) -> bool:
    return (a is _ABSENT and b is None) or (a is None and b is _ABSENT)


def _given(key: str, given: Sequence[str]) -> bool:
    return any(key == g or key.startswith(g + ".") for g in given)


def config_changes(old: dict[str, Any], new: dict[str, Any], *,
                   given: Sequence[str] | None = None) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (old value, new value)} for every option that differs and may not change on resume.
    A key present on one side only shows as ``<absent>`` on the other; absent and None are the same
    (an option added since the checkpoint was written, left at its default). With ``given`` (the keys
    set on the command line), a key absent from the old config and not given is an option added since
    the run started, at the value this version gives it: not a change (``added_options`` lists them)."""
    a, b = flatten(old), flatten(new)
    changes = {}
    for key in sorted(a.keys() | b.keys()):
        before, after = a.get(key, _ABSENT), b.get(key, _ABSENT)
        if before != after and not may_change(key) and not _default_on_one_side(before, after):
            if before is _ABSENT and given is not None and not _given(key, given):
                continue
            changes[key] = (before, after)
    return changes


def added_options(old: dict[str, Any], new: dict[str, Any], given: Sequence[str]) -> dict[str, Any]:
    """{dotted key: value} of the options ``new`` has, ``old`` lacks and the command line did not set."""
    a, b = flatten(old), flatten(new)
    return {key: value for key, value in b.items()
            if key not in a and value is not None and not may_change(key) and not _given(key, given)}


def _show(value: Any) -> str:
    return "<absent>" if value is _ABSENT else repr(value) if isinstance(value, str) else str(value)


def describe_changes(changes: dict[str, tuple[Any, Any]], *, limit: int = 8) -> str:
    """``key: old -> new, ...`` on one line (the first ``limit``, then how many more)."""
    shown = [f"{key}: {_show(a)} -> {_show(b)}" for key, (a, b) in list(changes.items())[:limit]]
    more = len(changes) - limit
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def check_resumable(checkpoint: dict[str, Any], config: dict[str, Any], path: str | Path, *,
                    given: Sequence[str] | None = None) -> dict[str, Any]:
    """Raise ``ConfigMismatchError`` unless ``config`` may continue the run of ``checkpoint`` (read from
    ``path``). Nothing to compare (a Trainer used without a config) passes. ``given`` are the keys set
    on the command line (the CLI passes them): options added to the library since the run started and
    not given are accepted at their current values and returned, so the caller can say so."""
    stored = checkpoint.get("config") or {}
    if not stored or not config:
        return {}
    changes = config_changes(stored, config, given=given)
    if changes:
        raise ConfigMismatchError(
            f"not resuming {path}: it was trained with another config ({describe_changes(changes)}). "
            "To continue that run, rerun with its options (its config.yaml); to start afresh in this folder "
            "pass train.resume=null (this overwrites it); for a separate run choose a new folder "
            "(hydra.run.dir=NEW); to start a new run from its weights pass train.init_from=" f"{path}")
    return added_options(stored, config, given) if given is not None else {}


def load_weights(model, ema, checkpoint: dict[str, Any], config: dict[str, Any], path: str | Path, *,
                 new_parameters: bool = False) -> list[str]:
    """Copy a checkpoint's model and EMA weights into ``model`` and ``ema`` (a new run: the optimiser,
    step, schedule and the EMA's warm-up start afresh). A network that does not fit names the options
    that differ from the checkpoint's. With ``new_parameters`` the model may have parameters the
    checkpoint lacks (e.g. a property embedding added to an unconditional network before fine-tuning
    it as a conditional one): they keep their initial values and their names are returned. Every
    parameter the checkpoint has must still fit exactly."""
    missing = _missing_keys(model, checkpoint["model"]) if new_parameters else []
    try:
        _load(model, checkpoint["model"], missing)
        _load(ema.module, checkpoint["ema"]["module"], missing)
    except RuntimeError as err:
        stored = checkpoint.get("config") or {}
        changes = {k: v for k, v in config_changes(stored, config).items()
                   if k.split(".")[0] in ("network", "domain", "parameterization")}
        first = " ".join(str(err).split("\n\t")[1:3]) or str(err).splitlines()[0]
        why = f"the network options differ ({describe_changes(changes)})" if changes else first
        hint = ("" if new_parameters or "Missing key" not in first else
                "; to fine-tune a larger network whose extra parameters start afresh, pass train.init_new_parameters=true")
        raise ConfigMismatchError(f"train.init_from={path}: its weights do not fit this model: {why}; "
                                  f"use the checkpoint's network and domain options (its config){hint}") from None
    return missing


def _missing_keys(model, stored: dict[str, Any]) -> list[str]:
    return [name for name in model.state_dict() if name not in stored]


def _load(module, stored: dict[str, Any], allowed_missing: list[str]) -> None:
    """``load_state_dict`` that lets exactly ``allowed_missing`` be absent and nothing else differ."""
    result = module.load_state_dict(stored, strict=not allowed_missing)
    if allowed_missing:
        unexpected, missing = list(result.unexpected_keys), sorted(set(result.missing_keys) - set(allowed_missing))
        if unexpected or missing:
            raise RuntimeError(f"Error(s) in loading state_dict:\n\tUnexpected key(s): {unexpected}\n\t"
                               f"Missing key(s): {missing}")

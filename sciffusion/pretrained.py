"""A model folder in the ecosystem's safe format, beside the resumable training checkpoint:

    folder/model.safetensors    the denoiser's weights (the EMA weights a checkpoint samples with)
    folder/domain.safetensors   the tensors of the domain's state (normalisers, histograms, masks)
    folder/config.json          readable: the training config, the domain state (tensors named by
                                {"__tensor__": key} into domain.safetensors), the sampling defaults

Nothing in the folder is pickled, so loading it never runs code from the files. Written file by file
atomically (a temporary file renamed over the target).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT, VERSION = "sciffusion-pretrained", 1
WEIGHTS, DOMAIN, CONFIG = "model.safetensors", "domain.safetensors", "config.json"
TENSOR = "__tensor__"


def _safetensors():
    try:
        import safetensors.torch
    except ImportError as err:
        raise ImportError("model folders need safetensors: pip install safetensors") from err
    return safetensors.torch


def split_tensors(value: Any, tensors: dict[str, torch.Tensor], key: str = "") -> Any:
    """``value`` with every tensor moved into ``tensors`` (under its dotted key) and replaced by
    ``{"__tensor__": key}``; tuples become lists."""
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().cpu().clone().contiguous()
        return {TENSOR: key}
    if isinstance(value, dict):
        return {str(k): split_tensors(v, tensors, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [split_tensors(v, tensors, f"{key}.{i}") for i, v in enumerate(value)]
    return value


def join_tensors(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of ``split_tensors``."""
    if isinstance(value, dict):
        if set(value) == {TENSOR}:
            return tensors[value[TENSOR]]
        return {k: join_tensors(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [join_tensors(v, tensors) for v in value]
    return value


def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's file is private; the folder is for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_pretrained(model, folder: str | Path) -> Path:
    """Write ``model`` (a ``sciffusion.api.Model``) into ``folder``; returns the folder."""
    st = _safetensors()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().cpu().clone().contiguous() for k, v in model.denoiser.state_dict().items()}
    domain_tensors: dict[str, torch.Tensor] = {}
    domain_state = split_tensors(model.domain.state_dict(), domain_tensors)
    config = {"format": FORMAT, "version": VERSION, "domain": model.domain.name, "step": model.step,
              "source": model.source, "config": model.config, "sampling_defaults": model.sampling_defaults,
              "domain_state": domain_state}
    text = json.dumps(config, indent=2)  # before any file is written: a value JSON cannot hold fails here
    _atomic(folder / WEIGHTS, lambda tmp: st.save_file(weights, tmp, metadata={"format": FORMAT}))
    _atomic(folder / DOMAIN, lambda tmp: st.save_file(domain_tensors, tmp, metadata={"format": FORMAT}))
    _atomic(folder / CONFIG, lambda tmp: Path(tmp).write_text(text + "\n"))
    return folder


def load_pretrained(folder: str | Path, *, device: torch.device | str = "cpu"):
    """The ``sciffusion.api.Model`` saved in ``folder`` by ``save_pretrained``."""
    from .api import build_model
    from .training import CheckpointError

    folder = Path(folder)
    missing = [name for name in (CONFIG, WEIGHTS, DOMAIN) if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"{folder} is not a model folder: {', '.join(missing)} missing; write one with "
                              "model.save_pretrained(folder), or pass a .ckpt file")
    try:
        meta = json.loads((folder / CONFIG).read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{folder / CONFIG} is not valid JSON ({err}); write the folder again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{folder / CONFIG} is not a sciffusion model config (no format: {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{folder} has model-folder version {meta.get('version')}, this sciffusion reads {VERSION}")
    st = _safetensors()
    try:
        weights, domain_tensors = st.load_file(folder / WEIGHTS), st.load_file(folder / DOMAIN)
    except Exception as err:  # safetensors raises its own SafetensorError for a damaged file
        raise CheckpointError(f"{folder}: a safetensors file is truncated or corrupt ({err}); write the folder "
                              "again") from None
    return build_model(meta["config"], weights, domain_state=join_tensors(meta["domain_state"], domain_tensors),
                       sampling_defaults=meta.get("sampling_defaults"), source=str(folder), step=meta.get("step"),
                       device=device)

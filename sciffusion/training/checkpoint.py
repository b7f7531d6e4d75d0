"""Checkpoints that lose nothing: written atomically, read with ``weights_only=True``.

A checkpoint is a dict of tensors and plain Python values only (no pickled objects), so loading it
never runs code from the file:

    format, version        "sciffusion-checkpoint", 1
    step                   optimiser steps taken
    model, ema             state dicts of the denoiser and of its moving average
    optimizer, schedule, scaler   their state dicts
    rng                    torch (CPU and every CUDA device), numpy and python states; the noise
                           generators are reseeded from (seed, step, micro-batch) and need none
    data                   the data-order position {epoch, batch}
    config                 the resolved run configuration (nested dicts)
"""
from __future__ import annotations

import os
import pickle
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT, VERSION = "sciffusion-checkpoint", 1


class CheckpointError(RuntimeError):
    """A file that is not a readable sciffusion checkpoint."""


class CorruptCheckpointError(CheckpointError):
    """A file that ends early or is not a torch archive at all (a crash mid-copy, a disk filling up)."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, flushed to disk,
    then renamed over the target, so a crash leaves either the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, "version": VERSION, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


#: What a shipped checkpoint keeps: sampling needs the config, the domain's state, the EMA weights and
#: the measured sampling settings; the optimiser, schedule, scaler, data order and RNG states only
#: serve resuming and would triple its size.
SHIPPED_KEYS = ("format", "version", "step", "config", "domain", "sampling_defaults")


def for_sampling(state: dict[str, Any], *, half: bool = False) -> dict[str, Any]:
    """A checkpoint reduced to what sampling needs (``SHIPPED_KEYS``), its EMA weights also stored as
    the model's (one copy on disk: the tensors are shared). It still starts new runs
    (``train.init_from``); resuming needs the run's own checkpoint. ``half=True`` stores the weights'
    float32 tensors as float16 (``half_weights``), and those of every network the domain's state embeds
    (``half_embedded``): half the file."""
    slim = {key: state[key] for key in SHIPPED_KEYS if key in state}
    ema = state["ema"]
    module = half_weights(ema["module"]) if half else ema["module"]
    if half and "domain" in slim:
        slim["domain"] = half_embedded(slim["domain"])
    slim["model"] = module
    slim["ema"] = {"decay": ema["decay"], "num_updates": ema["num_updates"], "module": module}
    return slim


def half_weights(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``weights`` with float32 tensors stored as float16, the others (integers, float64) as they are.

    For files that only sample: loading casts them back (``load_state_dict`` copies into the float32
    parameters), and float16's 11-bit mantissa rounds each weight by at most 2^-11 of itself, which moves
    a network's output far less than its own sampling noise (measured per shipped model:
    ``benchmarks/half_weights.py``). A weight beyond float16's range (65504) would become inf: refused."""
    out = {}
    for key, value in weights.items():
        if torch.is_tensor(value) and value.dtype == torch.float32:
            if value.numel() and value.abs().max() > torch.finfo(torch.float16).max:
                raise ValueError(f"weight {key} holds {value.abs().max().item():.3g}, beyond float16's range; "
                                 "store this checkpoint in float32 (half=False)")
            value = value.to(torch.float16)
        out[key] = value
    return out


def is_embedded_network(value: Any) -> bool:
    """Whether ``value`` is a network a domain's state embeds: ``{"options": {...}, "weights": state_dict}``
    (what ``sciffusion.latent.autoencoder_state`` writes for a latent domain's autoencoder)."""
    return (isinstance(value, dict) and set(value) == {"options", "weights"} and isinstance(value["options"], dict)
            and isinstance(value["weights"], dict) and all(torch.is_tensor(v) for v in value["weights"].values()))


def half_embedded(state: Any) -> Any:
    """``state`` (a domain's) with the weights of every embedded network (``is_embedded_network``, at any
    depth) in float16; everything else, statistics and data included, as it is. The input is not changed."""
    if is_embedded_network(state):
        return dict(state, weights=half_weights(state["weights"]))
    if isinstance(state, dict):
        return {key: half_embedded(value) for key, value in state.items()}
    return state


def _reason(err: BaseException) -> str:
    """What went wrong, in PyTorch's words minus its advice (retrying with ``weights_only=False`` or
    allow-listing classes runs code from the file: wrong for a file of unknown origin)."""
    text = str(err)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return f"it holds a pickled {found.group(1)} object"
    found = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\n|$)", text, flags=re.S)
    if found:
        return f"its pickle needs more than tensors and plain values ({' '.join(found.group(1).split())})"
    if isinstance(err, pickle.UnpicklingError):
        return "its pickle needs more than tensors and plain values"
    if isinstance(err, EOFError) or not text:
        return "the file is empty or ends early"
    return text.split(". ")[0].strip().rstrip(".")


def safe_load(path: str | Path, *, what: str = "checkpoint", fix: str = "",
              map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with errors a user can act on: a ``CheckpointError`` that
    names the file, what is wrong with it and ``fix`` (what to pass instead). Every file of tensors
    the library reads from a user (checkpoints, predictors, classifiers) goes through here."""
    path = Path(path)
    fix = f"; {fix}" if fix else ""
    if not path.is_file():
        raise CheckpointError(f"no {what} at {path}{fix}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{path} cannot be loaded safely: {_reason(err)}; it was not written by sciffusion "
                              f"and is not loaded, since unpickling it could run code from the file{fix}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CorruptCheckpointError(f"{path} is not a readable {what} (truncated or corrupt: {_reason(err)}){fix}") from None


def numbered_checkpoints(folder: str | Path) -> list[Path]:
    """The numbered checkpoints (``step_*.ckpt``, written with ``train.keep_every``) in ``folder``, oldest first."""
    folder = Path(folder)
    return sorted(folder.glob("step_*.ckpt")) if folder.is_dir() else []


def _alternatives(path: Path) -> str:
    """Which other checkpoints the folder of ``path`` holds, for an error about ``path``."""
    others = [p for p in numbered_checkpoints(path.parent) if p != path]
    if not others:
        return f"{path.parent} holds no numbered checkpoints (step_*.ckpt, written with train.keep_every)"
    names = ", ".join(p.name for p in others[-3:])
    return f"the numbered checkpoints beside it are {names} (the newest is {others[-1]})"


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; raises ``CheckpointError`` naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; pass the path of a .ckpt file, e.g. RUN_DIR/checkpoints/last.ckpt")
    try:
        state = safe_load(path, map_location=map_location)
    except CorruptCheckpointError as err:
        raise CorruptCheckpointError(f"{err}; {_alternatives(path)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        keys = sorted(state)[:8] if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is not a sciffusion checkpoint (found {keys}); "
                              "point checkpoint= at a file written by sciffusion-train")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {state.get('version')}, this sciffusion reads {VERSION}")
    return state


def rng_state() -> dict[str, Any]:
    """The global random states of torch (CPU, CUDA), numpy and python, as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and python's global generators (before building a model: its initial weights)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` captured (generator states are CPU byte tensors whatever device the
    checkpoint was loaded to)."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]][:torch.cuda.device_count()])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))

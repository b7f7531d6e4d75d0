"""Forecasting and interpolation of clips through the core's inpainting on the time axis.

Some frames of one clip are known and the rest are drawn from an unconditional (or class-dropped)
model given them:

    task=forecast     the first ``given`` frames are known, the later ones generated
    task=interpolate  every ``every``-th frame (0, every, 2 every, ...) and the last frame are known

``method`` picks the core guidance: ``replace`` (the default: ``Inpainting``, known frames pasted into
every x0 estimate and exactly into the result) or ``reconstruction`` / ``dps`` (posterior sampling of
y = the known frames, which follow the observation only approximately).

    sciffusion-sample checkpoint=CKPT guidance=forecast guidance.input=test:0 guidance.given=4 out_dir=DIR
    sciffusion-sample checkpoint=CKPT guidance=forecast guidance.task=interpolate guidance.every=4 \\
        guidance.input=clip.npy out_dir=DIR

``input`` is ``test:K`` (the K-th test clip of the domain's data) or a ``.npy`` clip ``[C, T, H, W]``
in data units (what ``save`` writes) or ``[T, H, W]``. Into ``out_dir`` go ``input.npy``,
``known_frames.json`` and ``observation.png`` (the input's frames, unknown ones grey), which the
domain's figure shows above the samples.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sciffusion.parameterization import Denoiser
from sciffusion.processes import NoiseProcess
from sciffusion_domains.dense.inverse import METHODS, known_values_guidance

from .domain import OBSERVATION, VideoDomain

TASKS = ("forecast", "interpolate")


def known_frames(frames: int, *, task: str, given: int = 4, every: int = 4) -> Tensor:
    """bool ``[T]``, True on the known frames of ``task`` (see the module docstring)."""
    if task not in TASKS:
        raise ValueError(f"unknown guidance.task {task!r}; choose one of {TASKS}")
    known = torch.zeros(frames, dtype=torch.bool)
    if task == "forecast":
        if not 0 < given < frames:
            raise ValueError(f"task=forecast needs 0 < guidance.given < {frames} (the clip's frames), got {given}")
        known[:given] = True
    else:
        if not 1 < every < frames:
            raise ValueError(f"task=interpolate needs 1 < guidance.every < {frames}, got {every}")
        known[::every] = True
        known[-1] = True
    return known


def read_input(domain: VideoDomain, input: str) -> Tensor:
    """The clip ``[1, C, T, H, W]`` in data units: ``test:K`` or a ``.npy`` file."""
    shape = domain.shape
    if input.startswith("test:"):
        test, index = domain.dataset("test"), int(input.split(":", 1)[1])
        if not 0 <= index < len(test):
            raise ValueError(f"guidance.input=test:K needs K in 0..{len(test) - 1}, got {index}")
        return test[index][0][None].float()
    if not Path(input).is_file():
        raise FileNotFoundError(f"guidance.input={input!r} is neither a .npy file nor test:K; give the clip to "
                                "continue")
    clip = torch.from_numpy(np.load(input)).float()
    clip = clip[None] if clip.dim() == 3 else clip
    if tuple(clip.shape) != shape:
        raise ValueError(f"guidance.input={input!r} holds a clip of shape {tuple(clip.shape)}; the model's clips are "
                         f"[C, T, H, W] = {shape} (a [T, H, W] array is read as one channel)")
    return clip[None]


def forecast(denoiser: Denoiser, *, process: NoiseProcess, domain: VideoDomain, input: str,
             task: str = "forecast", given: int = 4, every: int = 4, method: str = "replace",
             noise_std: float = 0.0, scale: float = 1.0, zeta: float = 1.0, data_var: float = 0.5,
             unconditional: bool = True, out_dir: str | None = None):
    """The guided denoiser that generates the unknown frames of ``input`` (see the module docstring)."""
    if method not in METHODS:
        raise ValueError(f"unknown guidance.method {method!r}; choose one of {METHODS}")
    clip = read_input(domain, input)
    known = known_frames(clip.shape[2], task=task, given=given, every=every)
    mask = known[None, None, :, None, None]  # [1, 1, T, 1, 1], broadcast over channels and pixels
    observed = torch.where(mask, domain.encode(clip), torch.zeros(()))
    _write(out_dir, domain, clip, known, task=task, input=input)
    return known_values_guidance(denoiser, process, observed, mask, method=method, noise_std=noise_std,
                                 scale=scale, zeta=zeta, data_var=data_var, unconditional=unconditional)


def _write(out_dir: str | None, domain: VideoDomain, clip: Tensor, known: Tensor, **what) -> None:
    """Rank 0 writes the input and what the model is given."""
    from sciffusion.training import distributed

    from .figures import frame_grid

    if out_dir is None or distributed.world()[0] != 0:
        return
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "input.npy", clip[0].numpy())
    (folder / "known_frames.json").write_text(json.dumps({**what, "known": known.nonzero().flatten().tolist(),
                                                          "frames": len(known)}, indent=2))
    shown = domain.decode(domain.encode(clip), None)[0].pixels.copy()
    shown[~known.numpy()] = 128
    frame_grid([shown], folder / OBSERVATION, names=["given"])


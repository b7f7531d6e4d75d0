"""Inverse problems on clips through the core's guidance: forecasting and interpolation (inpainting
on the time axis), super-resolution in space and time, and assimilation of sparse point observations.

Each is an observation y = A(x0) + N(0, noise_std^2) of one clip, and each factory below wraps a
trained denoiser in the core's posterior guidance for it (``sciffusion.guidance``; no sampler of its
own), so every sampler draws clips x0 ~ p(x0 | y). All work in the model's units (float clips are
standardised per channel, so ``noise_std`` is in standard deviations; 8-bit clips are in [-1, 1]).

Forecasting and interpolation (``forecast``, ``guidance=forecast``): some frames of one clip are known
and the rest are drawn from an unconditional (or class-dropped) model given them:

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

Super-resolution (``superres``, ``guidance=video_superres``): A averages each ``time_factor`` x
``factor`` x ``factor`` block of the clip (``pool_clip``): ``factor`` pools every frame in space,
``time_factor`` averages groups of consecutive frames (a slow camera's exposure, or a field stored as
time means; keeping every k-th frame instead is interpolation, ``guidance=forecast
guidance.task=interpolate``). Trailing frames / rows / columns that fill no block are not observed.
Block averaging has A A^T = I / n (n = time_factor factor^2), so the guidance runs with A' = sqrt(n) A,
y' = sqrt(n) y, noise' = sqrt(n) noise_std, as ``ReconstructionGuidance`` asks (the images domain's
super-resolution does the same in space).

    sciffusion-sample checkpoint=CKPT guidance=video_superres guidance.input=test:0 guidance.factor=4 out_dir=DIR
    sciffusion-sample checkpoint=CKPT guidance=video_superres guidance.input=low.npy guidance.degrade=false \
        guidance.factor=2 guidance.time_factor=2 out_dir=DIR

``degrade=true`` (default) pools the full-size clip ``input`` (``test:K`` or ``.npy``) and adds
``noise_std`` noise (seeded by ``seed``); ``degrade=false`` reads ``input`` as the low-resolution clip
itself, a ``.npy`` ``[C, T / time_factor, H / factor, W / factor]`` in data units.

Assimilation (``assimilate``, ``guidance=video_assimilate``): point observations, each entry of the
clip observed or not, with error ``noise_std``: a seeded random ``fraction`` of the pixels of every
frame (each frame its own pixels, all channels at a pixel: a station), or ``every`` (a regular grid,
every ``every``-th pixel in both directions of every frame). The guidance is the one the weather
domain assimilates with, ``ReconstructionGuidance`` with A selecting the observed entries (here by a
mask, ``known_values_guidance``; ``method=replace`` pastes the observed values, exact for
noise_std=0).

    sciffusion-sample checkpoint=CKPT guidance=video_assimilate guidance.input=test:0 guidance.fraction=0.05 \
        guidance.noise_std=0.1 out_dir=DIR
    sciffusion-sample checkpoint=CKPT guidance=video_assimilate guidance.input=obs.npy guidance.degrade=false ...

``every``, when given, replaces ``fraction``. ``degrade=true`` observes the clip ``input`` here;
``degrade=false`` reads ``input`` as the observations, a ``.npy`` clip in data units with NaN at the
unobserved entries.

Both write into ``out_dir``: ``input.npy`` (the full clip, with degrade=true), ``observation.npy``
(y in data units: the low-resolution clip, or the clip with NaN where unobserved), for assimilation
``observation_mask.npy`` (bool ``[C, T, H, W]``, True = observed), ``observation.json`` (the settings)
and ``observation.png`` (what the model is given: blocks enlarged, unobserved pixels grey), which the
domain's figure shows above the samples.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sciffusion.guidance import device_of
from sciffusion.parameterization import Denoiser
from sciffusion.processes import NoiseProcess
from sciffusion_domains.dense.inverse import METHODS, known_values_guidance, posterior_guidance

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


# -- super-resolution --------------------------------------------------------------------------------
def pool_clip(x: Tensor, factor: int = 1, time_factor: int = 1) -> Tensor:
    """Average pooling ``[B, C, T, H, W] -> [B, C, T // time_factor, H // factor, W // factor]``: the mean
    of each block of ``time_factor`` frames x ``factor`` x ``factor`` pixels (trailing frames, rows and
    columns that fill no block are dropped)."""
    return F.avg_pool3d(x, (time_factor, factor, factor))


def unpool_clip(y: Tensor, factor: int, time_factor: int, shape: tuple[int, int, int]) -> tuple[Tensor, Tensor]:
    """For showing a pooled clip: ``y [B, C, t, h, w]`` enlarged by repetition to ``shape = (T, H, W)``,
    and bool ``[T, H, W]``, False on the trailing frames / pixels no block covers (filled with 0)."""
    big = y.repeat_interleave(time_factor, 2).repeat_interleave(factor, 3).repeat_interleave(factor, 4)
    pad = (0, shape[2] - big.shape[4], 0, shape[1] - big.shape[3], 0, shape[0] - big.shape[2])
    covered = torch.zeros(shape, dtype=torch.bool)
    covered[:big.shape[2], :big.shape[3], :big.shape[4]] = True
    return F.pad(big, pad), covered


def pooled_shape(shape: tuple[int, ...], factor: int, time_factor: int) -> tuple[int, int, int, int]:
    """``(C, T, H, W)`` -> the shape of its pooled clip, checked to keep at least one block."""
    integers = int(factor) == factor and int(time_factor) == time_factor
    if not integers or min(factor, time_factor) < 1 or factor * time_factor == 1:
        raise ValueError(f"super-resolution needs integer guidance.factor >= 1 and guidance.time_factor >= 1, not "
                         f"both 1 (got factor={factor}, time_factor={time_factor})")
    c, t, h, w = shape
    factor, time_factor = int(factor), int(time_factor)
    if t < time_factor or h < factor or w < factor:
        raise ValueError(f"guidance.factor={factor} / time_factor={time_factor} leave no block of the clip's "
                         f"{t} frames of {h}x{w}; use smaller ones")
    return c, t // time_factor, h // factor, w // factor


def superres(denoiser: Denoiser, *, process: NoiseProcess, domain: VideoDomain, input: str, factor: int = 2,
             time_factor: int = 1, method: str = "reconstruction", noise_std: float = 0.02, scale: float = 1.0,
             zeta: float = 1.0, data_var: float = 0.5, unconditional: bool = True, degrade: bool = True,
             seed: int = 0, out_dir: str | None = None):
    """The guided denoiser of clips whose block averages (``pool_clip``) match the observation (see the
    module docstring)."""
    _posterior_method(method)
    low_shape = pooled_shape(domain.shape, factor, time_factor)
    if degrade:
        clip = read_input(domain, input)
        y = _noisy(pool_clip(domain.encode(clip), factor, time_factor), noise_std, seed)
    else:
        clip, y = None, domain.encode(_read_array(input, low_shape, what=f"the low-resolution clip (factor={factor}, "
                                                                          f"time_factor={time_factor})"))
    shown, covered = unpool_clip(y, factor, time_factor, domain.shape[1:])
    _write_observation(out_dir, domain, clip, y, shown, covered, task="superres", input=input, factor=factor,
                       time_factor=time_factor, noise_std=noise_std, degrade=degrade, seed=seed)
    root = math.sqrt(factor * factor * time_factor)  # A A^T = I / root^2 for block means: rescale to A A^T = I
    y_d = root * y.to(device_of(denoiser))
    return posterior_guidance(denoiser, process, lambda x: root * pool_clip(x, factor, time_factor), y_d,
                              method=method, noise_std=root * noise_std, scale=scale, zeta=zeta, data_var=data_var,
                              unconditional=unconditional)


# -- assimilation ------------------------------------------------------------------------------------
def observation_mask(shape: tuple[int, ...], *, fraction: float | None = None, every: int | None = None,
                     seed: int = 0) -> Tensor:
    """bool ``[C, T, H, W]``, True on the observed entries: every ``every``-th pixel in both directions
    (from the first) of every frame when ``every`` is given, else a random ``fraction`` of the pixels of
    every frame (``round(fraction H W)``, at least one, drawn per frame from ``seed``); all channels at
    an observed pixel."""
    c, t, h, w = shape
    if fraction is None and every is None:
        raise ValueError("give guidance.fraction (a random fraction of the pixels of each frame observed) or "
                         "guidance.every (every every-th pixel observed, a regular grid)")
    pixels = torch.zeros(t, h * w, dtype=torch.bool)
    if every is None:
        if not 0 < fraction <= 1:
            raise ValueError(f"guidance.fraction is the fraction of observed pixels per frame, in (0, 1]; "
                             f"got {fraction}")
        count = max(1, round(fraction * h * w))
        g = torch.Generator().manual_seed(seed)
        for frame in pixels:
            frame[torch.randperm(h * w, generator=g)[:count]] = True
        pixels = pixels.reshape(t, h, w)
    else:
        if int(every) != every or every < 1:
            raise ValueError(f"guidance.every is a positive integer (every every-th pixel observed), got {every}")
        pixels = pixels.reshape(t, h, w)
        pixels[:, ::int(every), ::int(every)] = True
    return pixels[None].expand(c, t, h, w).clone()


def assimilate(denoiser: Denoiser, *, process: NoiseProcess, domain: VideoDomain, input: str,
               fraction: float | None = 0.1, every: int | None = None, noise_std: float = 0.05,
               method: str = "reconstruction", scale: float = 1.0, zeta: float = 1.0, data_var: float = 0.5,
               unconditional: bool = True, degrade: bool = True, seed: int = 0, out_dir: str | None = None):
    """The guided denoiser of clips consistent with sparse noisy point observations (see the module
    docstring)."""
    if method not in METHODS:
        raise ValueError(f"unknown guidance.method {method!r}; choose one of {METHODS}")
    if noise_std < 0:
        raise ValueError(f"guidance.noise_std must be >= 0, got {noise_std}")
    if degrade:
        clip = read_input(domain, input)
        mask = observation_mask(domain.shape, fraction=fraction, every=every, seed=seed)
        g = torch.Generator().manual_seed(seed + 1)  # the noise does not move with the mask's draws
        values = domain.encode(clip) + noise_std * torch.randn(clip.shape, generator=g)
    else:
        clip, given = None, _read_array(input, domain.shape, what="the observations (NaN where unobserved)", nan=True)
        mask = torch.isfinite(given[0])
        if not mask.any():
            raise ValueError(f"guidance.input={input!r} holds no finite value: nothing is observed")
        values = domain.encode(torch.nan_to_num(given))
    observed = torch.where(mask[None], values, torch.zeros(()))
    shown_mask = mask[0]  # the figure shows channel 0: a station observes all channels of its pixel
    _write_observation(out_dir, domain, clip, observed, observed, shown_mask, mask=mask, task="assimilate",
                       input=input, fraction=fraction if degrade and every is None else None,
                       every=every if degrade else None,
                       noise_std=noise_std, degrade=degrade, seed=seed, observed=int(mask.sum()),
                       entries=mask.numel())
    return known_values_guidance(denoiser, process, observed, mask[None], method=method, noise_std=noise_std,
                                 scale=scale, zeta=zeta, data_var=data_var, unconditional=unconditional)


# -- shared plumbing ---------------------------------------------------------------------------------
def _posterior_method(method: str) -> None:
    if method not in ("reconstruction", "dps"):
        raise ValueError(f"guidance.method={method!r}: super-resolution guides with reconstruction or dps "
                         "(replace pastes known entries, and block averages are none)")


def _noisy(y: Tensor, noise_std: float, seed: int) -> Tensor:
    if noise_std < 0:
        raise ValueError(f"guidance.noise_std must be >= 0, got {noise_std}")
    return y + noise_std * torch.randn(y.shape, generator=torch.Generator().manual_seed(seed))


def _read_array(path: str, shape: tuple[int, ...], *, what: str, nan: bool = False) -> Tensor:
    """``[1, *shape]`` from a ``.npy`` file in data units (``[T, H, W]`` is read as one channel)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"guidance.input={path!r} is not a file; with guidance.degrade=false give {what} "
                                f"as a .npy of shape {tuple(shape)}")
    array = torch.from_numpy(np.load(path)).float()
    array = array[None] if array.dim() == 3 else array
    if tuple(array.shape) != tuple(shape):
        raise ValueError(f"guidance.input={path!r} holds an array of shape {tuple(array.shape)}; {what} of this model "
                         f"is [C, T, H, W] = {tuple(shape)} (a [T, H, W] array is read as one channel)")
    if not nan and not torch.isfinite(array).all():
        raise ValueError(f"guidance.input={path!r} holds NaN or infinite values; {what} must be finite")
    return array[None]


def _in_data_units(domain: VideoDomain, x: Tensor) -> Tensor:
    """The model's units back to data units, not clipped (observations may leave the data's range)."""
    stats = domain.statistics()
    if stats is None:
        return x
    mean, std = stats
    return x * std[:, None, None, None] + mean[:, None, None, None]


def _write_observation(out_dir: str | None, domain: VideoDomain, clip: Tensor | None, y: Tensor, shown: Tensor,
                       shown_mask: Tensor, *, mask: Tensor | None = None, **what) -> None:
    """Rank 0 writes ``input.npy`` (``clip``, data units, if given), ``observation.npy`` (y in data units;
    NaN where ``mask`` is False), ``observation_mask.npy`` (``mask``), ``observation.json`` (``what``) and
    ``observation.png``: ``shown`` (model units, the clip's shape) with the pixels off ``shown_mask``
    ``[T, H, W]`` grey."""
    from sciffusion.training import distributed

    from .figures import frame_grid

    if out_dir is None or distributed.world()[0] != 0:
        return
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if clip is not None:
        np.save(folder / "input.npy", clip[0].numpy())
    values = _in_data_units(domain, y)[0]
    if mask is not None:
        values = torch.where(mask, values, torch.full((), float("nan")))
        np.save(folder / "observation_mask.npy", mask.numpy())
    np.save(folder / "observation.npy", values.numpy())
    (folder / "observation.json").write_text(json.dumps(what, indent=2))
    pixels = domain.decode(shown, None)[0].pixels.copy()
    pixels[~shown_mask.numpy()] = 128
    frame_grid([pixels], folder / OBSERVATION, names=["observed"])

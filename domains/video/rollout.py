"""Autoregressive rollout: clips longer than the model's window, one window at a time.

A model draws windows of T frames. Given the first k frames of a clip, each window is drawn with its
first k frames known (the last k frames of the clip so far) and its first ``new_frames`` new frames
(default all T - k) are appended, until the clip holds ``frames`` frames (any number, past T). Fewer new
frames a window keep every frame at a short lead from known ones, for a model whose use of the given
frames fades with the lead, at the cost of more windows. The known frames are passed the way the
model was trained for them:

    conditioning  a model trained with ``domain.given_frames = k`` gets them as cond["frames"]
    inpainting    any other model generates them under the core's ``Inpainting`` guidance on the time
                  axis (``method`` as in ``guidance=forecast``: replace, reconstruction or dps)

The clip returned keeps the given frames exactly; window w draws its noise from a generator seeded by
(seed, w), so a rollout is reproducible and its windows are independent draws.
"""
from __future__ import annotations

import torch
from torch import Tensor
from tqdm.auto import tqdm

from sciffusion.guidance import device_of
from sciffusion.parameterization import Denoiser
from sciffusion.processes import NoiseProcess
from sciffusion.space import DenseSpace
from sciffusion.timesteps import make_grid
from sciffusion_domains.dense.inverse import known_values_guidance

from .domain import VideoDomain


@torch.no_grad()
def rollout(denoiser: Denoiser, process: NoiseProcess, domain: VideoDomain, given: Tensor, *, frames: int,
            sampler: str = "heun", steps: int = 20, grid: str = "karras", seed: int = 0, method: str = "replace",
            progress: bool = False, cond: dict[str, Tensor] | None = None, new_frames: int | None = None) -> Tensor:
    """Clips ``[B, C, frames, H, W]`` in data units that start with ``given [B, C, k, H, W]`` (data units).

    ``k`` must be the model's ``given_frames`` when it was trained with them; otherwise any
    ``0 < k < T``. Each window adds ``new_frames`` frames (``1..T - k``, default ``T - k``); ``B`` clips are drawn together (repeat a start
    to draw an ensemble). ``cond`` adds conditions every window is given, e.g. ``{"vector": [B, 1]}`` (the
    viscosity, ``domain.condition(B, viscosity=NU)``) for a model trained on ``domain.viscosities``."""
    from sciffusion.samplers import prior_sample, sample

    c, window, h, w = domain.shape
    if given.dim() != 5 or tuple(given.shape[1:2] + given.shape[3:]) != (c, h, w):
        raise ValueError(f"given frames must be [B, C, k, H, W] with (C, H, W) = {(c, h, w)}, got {tuple(given.shape)}")
    k = given.shape[2]
    if domain.given_frames and k != domain.given_frames:
        raise ValueError(f"this model was trained on {domain.given_frames} given frames; pass that many, got {k}")
    if not 0 < k < window:
        raise ValueError(f"need 0 < given frames < {window} (the model's window), got {k}")
    if frames < k:
        raise ValueError(f"a rollout of {frames} frames cannot keep {k} given frames")
    new_frames = window - k if new_frames is None else new_frames
    if not 0 < new_frames <= window - k:
        raise ValueError(f"new_frames must be in 1..{window - k} (the window {window} less the {k} given), got {new_frames}")
    if domain.conditional and domain.given_frames:
        raise ValueError("rollout of a class-conditional forecaster is not supported: cond['drop'] would drop the "
                         "given frames with the class; train it with domain.conditional=false")
    device = device_of(denoiser)
    extra = {key: value.to(device) for key, value in (cond or {}).items()}
    clip = domain.encode(given.float()).to(device)
    known = torch.zeros(window, dtype=torch.bool, device=device)
    known[:k] = True
    ts = make_grid(grid, process, steps)
    space = DenseSpace()
    windows = range(-(-(frames - k) // new_frames))
    for index in tqdm(windows, desc="rollout windows", disable=not progress):
        observed = torch.zeros(len(clip), c, window, h, w, device=device)
        observed[:, :, :k] = clip[:, :, -k:]
        if domain.given_frames:
            guided, window_cond = denoiser, {**extra, **domain.given_condition(observed)}
        else:
            mask = known[None, None, :, None, None]
            guided = known_values_guidance(denoiser, process, observed, mask, method=method, noise_std=0.0,
                                           scale=1.0, zeta=1.0, data_var=0.5, unconditional=domain.conditional)
            window_cond = dict(extra)
        generator = torch.Generator(device).manual_seed(seed * 1_000_003 + index)
        x = prior_sample(process, observed, space=space, generator=generator)
        x0 = sample(sampler, guided, x, ts, process=process, space=space, cond=window_cond, generator=generator)
        clip = torch.cat([clip, x0[:, :, k:k + new_frames]], dim=2)
    out = domain.to_data(clip[:, :, :frames].cpu())
    out[:, :, :k] = given.float()  # the given frames exactly, not their encode/decode round trip
    return out

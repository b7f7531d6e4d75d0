"""Optical-flow extrapolation: the classical nowcast of a moving field, as a forecast and a warm start.

The motion between a clip's last two known frames is estimated as a dense optical flow (iterative
Lucas-Kanade as implemented by scikit-image, the flow pySTEPS nowcasts with by default), and the last frame is carried along it at constant
velocity: new frame ``a`` is the last frame read back ``a`` flow steps upstream, each step taken from
where the one before ended (semi-Lagrangian backtracking, the way precipitation nowcasting extrapolates
radar echoes, e.g. pySTEPS). Each new frame is one interpolation of the last known frame, not a warp of
a warp, so shapes blur once, not ``a`` times.

It is a reference a forecaster has to beat (persistence with motion), and a start for a rollout window
(``rollout(..., start_from="extrapolation")``): its new frames start as this extrapolation under noise
instead of as copies of the last frame.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

# scikit-image (the video extra) is imported where the flow is estimated and applied, so that the video
# networks can name BOUNDARIES and build without it

# Lucas-Kanade window half-width: of 3, 5, 7 and 9 on 64 Moving-MNIST test clips at 32x32, 7 gave the
# lowest video FD (20.0; 25.8 at 3, TV-L1 25.3): experiments/video/moving_digits_extrapolation/
RADIUS = 7
BOUNDARIES = ("edge", "wrap")  # scikit-image's warp modes for a bounded and a periodic domain


def flow_between(previous: np.ndarray, last: np.ndarray, radius: int = RADIUS) -> np.ndarray:
    """The flow ``[2, H, W]`` (rows, columns) with ``last(r) ~ previous(r + flow(r))``: minus the
    displacement that brought the content at ``r`` from ``previous`` to ``last``, fitted on windows of
    ``2 * radius + 1`` pixels."""
    from skimage.registration import optical_flow_ilk

    return np.stack(optical_flow_ilk(last, previous, radius=radius))


def mean_flow(frames: np.ndarray, before: int, latest: int,
              flow: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """The flow of one frame step ``[2, H, W]`` from frame ``before`` to frame ``latest`` of ``frames
    [C, T, H, W]``: the mean of each channel's (one motion for all channels), divided by the frames between."""
    return np.mean([(flow or flow_between)(frames[channel, before], frames[channel, latest])
                    for channel in range(frames.shape[0])], axis=0) / (latest - before)


def extrapolate_frames(clips: Tensor, known: int, count: int, *, boundary: str = "edge",
                       flow: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> Tensor:
    """``count`` frames ``[B, C, count, H, W]`` after the first ``known`` frames of ``clips [B, C, T, H, W]``
    (``known >= 2``): the last known frame carried along the flow between the last two. The flow is the
    mean of each channel's (one motion for all channels). Read from outside the frame, ``boundary="edge"``
    holds the edge (a bounded box such as Moving MNIST's), ``"wrap"`` wraps around (a periodic domain)."""
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary={boundary!r}: give one of {', '.join(BOUNDARIES)}")
    if clips.dim() != 5:
        raise ValueError(f"clips must be [B, C, T, H, W], got {tuple(clips.shape)}")
    if not 2 <= known <= clips.shape[2]:
        raise ValueError(f"extrapolation needs 2 or more known frames (the motion between the last two), got {known}")
    values = clips.detach().to("cpu", torch.float64).numpy()
    b, c, _, h, w = values.shape
    out = np.empty((b, c, count, h, w))
    for i in range(b):
        out[i] = carry(values[i, :, known - 1], mean_flow(values[i], known - 2, known - 1, flow), count, boundary)
    return torch.from_numpy(out).to(clips.device, clips.dtype)


def carry(frame: np.ndarray, motion: np.ndarray, count: int, boundary: str = "edge") -> np.ndarray:
    """``frame [C, H, W]`` carried 1, ..., ``count`` steps along ``motion [2, H, W]`` (the flow of one
    step, as ``flow_between`` gives it): ``[C, count, H, W]``, each step backtracked from where the one
    before ended."""
    from skimage.transform import warp

    c, h, w = frame.shape
    grid = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij")).astype(np.float64)
    out = np.empty((c, count, h, w))
    displacement = np.zeros_like(motion)
    for a in range(count):
        # one more flow step backwards from where the last step ended (semi-Lagrangian backtracking)
        coords = grid + displacement
        displacement = displacement + np.stack([warp(component, coords, order=1, mode=boundary, preserve_range=True)
                                                for component in motion])
        coords = grid + displacement
        for channel in range(c):
            out[channel, a] = warp(frame[channel], coords, order=1, mode=boundary, preserve_range=True)
    return out


def extrapolation(clips: Tensor, given: int, *, boundary: str = "edge", flow: Callable | None = None) -> Tensor:
    """``clips [B, C, T, H, W]`` with every frame after the first ``given`` replaced by their extrapolation."""
    out = clips.clone()
    out[:, :, given:] = extrapolate_frames(clips, given, clips.shape[2] - given, boundary=boundary, flow=flow)
    return out


def extrapolated_context(given: Tensor, mask: Tensor, *, boundary: str = "edge") -> Tensor:
    """What a forecaster knows at each frame, moved on: ``given [B, C, T, H, W]`` with every frame not
    known (``mask [B, T]`` False) replaced by the latest known frame before it carried along the flow
    between the two latest known frames, scaled to one frame (``(t - s) / (s - s')`` of it for frame t,
    latest known s, the one before s'). Frames with fewer than two known before them hold the latest
    known (the first known before any), as ``held_frames`` does; a clip with none known is zeros.
    Known frames are themselves. A network's context at frames it has to make (``context_extrapolation``
    of the video UNet): continuing the motion is then a local correction rather than a displacement the
    network has to measure and apply itself."""
    from sciffusion_domains.dense.networks.spacetime_dit import held_frames

    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary={boundary!r}: give one of {', '.join(BOUNDARIES)}")
    if given.dim() != 5 or mask.shape != given.shape[:1] + given.shape[2:3]:
        raise ValueError(f"given must be [B, C, T, H, W] and mask [B, T], got {tuple(given.shape)} and {tuple(mask.shape)}")
    out = held_frames(given, mask).detach().to("cpu", torch.float64).numpy()
    values = given.detach().to("cpu", torch.float64).numpy()
    known = mask.detach().cpu().numpy().astype(bool)
    for i in range(given.shape[0]):
        positions = np.flatnonzero(known[i])
        if len(positions) < 2:
            continue
        # the frames each pair of consecutive known frames (s', s) continues: those after s up to the next known
        ends = list(positions[2:]) + [given.shape[2]]
        for before, latest, end in zip(positions[:-1], positions[1:], ends):
            count = end - latest - 1
            if count <= 0:
                continue
            out[i, :, latest + 1:end] = carry(values[i, :, latest], mean_flow(values[i], before, latest), count, boundary)
    return torch.from_numpy(out).to(given.device, given.dtype)

"""Inverse problems on images from the command line: inpainting, super-resolution and denoising.

Each is an observation y = A(x0) + N(0, noise_std^2) of one image, and each factory below wraps a
trained denoiser in the core's posterior guidance for it (``sciffusion.guidance``), so that every
sampler draws reconstructions x0 ~ p(x0 | y):

    inpainting        A(x) = x on the known pixels (``mask`` marks the missing ones)
    super-resolution  A(x) = average pooling by ``factor``
    denoising         A(x) = x

``method`` picks the guidance: ``reconstruction`` (``ReconstructionGuidance``, the default), ``dps``
(``DiffusionPosteriorSampling`` with step ``zeta``) or, for inpainting only, ``replace``
(``Inpainting``: known pixels pasted into every x0 estimate). y has a batch axis of 1 and broadcasts
over the samples, so all samples reconstruct the same image.

The factories are what the shipped configs ``guidance=inpaint|superres|denoise`` instantiate (with
``_partial_``: the CLI passes the denoiser and the process):

    sciffusion-sample checkpoint=CKPT guidance=inpaint guidance.input=digit.png guidance.mask=center out_dir=DIR

``input`` is a clean image that is degraded here (``degrade=true``, the default: good for demos and
for measuring), or the observation itself (``degrade=false``: a low-resolution image of size H/factor
for super-resolution, a noisy image for denoising, the image with its missing pixels for inpainting).
Into ``out_dir`` they write ``observation.png`` (what the model is given, upsampled or with missing
pixels grey; the images domain puts it first in figure.png), ``observation.npy`` (y, float
``[C, h, w]``), ``input.png`` and, for inpainting, ``mask.png`` (white = missing).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sciffusion.guidance import device_of
from sciffusion.parameterization import Denoiser
from sciffusion.processes import NoiseProcess

from sciffusion_domains.dense.inverse import METHODS, known_values_guidance, posterior_guidance  # noqa: F401  (also re-exported)

from . import data as image_data

MASKS = ("center", "box", "random")


# -- masks -------------------------------------------------------------------------------------------
def box_mask(height: int, width: int, box: Sequence[int]) -> Tensor:
    """bool ``[1, 1, H, W]``, True (missing) inside ``box = (top, left, box_height, box_width)``."""
    if len(box) != 4 or min(box) < 0:
        raise ValueError(f"box must be [top, left, height, width] with non-negative entries, got {list(box)}")
    top, left, h, w = (int(v) for v in box)
    if h == 0 or w == 0 or top + h > height or left + w > width:
        raise ValueError(f"box {list(box)} is empty or leaves the {height}x{width} image")
    mask = torch.zeros(1, 1, height, width, dtype=torch.bool)
    mask[..., top:top + h, left:left + w] = True
    return mask


def center_mask(height: int, width: int) -> Tensor:
    """The central box of half the height and half the width missing."""
    h, w = max(height // 2, 1), max(width // 2, 1)
    return box_mask(height, width, ((height - h) // 2, (width - w) // 2, h, w))


def random_mask(height: int, width: int, fraction: float, *, seed: int = 0) -> Tensor:
    """A ``fraction`` of the pixels missing, chosen with ``seed`` (the same pixels in every channel)."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction of missing pixels must be in (0, 1), got {fraction}")
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 1, height, width, generator=g) < fraction


def make_mask(mask: str, height: int, width: int, *, box: Sequence[int] | None = None, fraction: float = 0.5,
              seed: int = 0) -> Tensor:
    """bool ``[1, 1, H, W]`` (True = missing) from ``center``, ``box``, ``random`` or an image file
    whose white (> 50% grey) pixels are the missing ones, resized to H x W if needed."""
    if mask == "center":
        return center_mask(height, width)
    if mask == "box":
        if box is None:
            raise ValueError("mask=box needs guidance.box=[top,left,height,width]")
        return box_mask(height, width, box)
    if mask == "random":
        return random_mask(height, width, fraction, seed=seed)
    if not Path(mask).is_file():
        raise FileNotFoundError(f"mask {mask!r} is neither one of {MASKS} nor an image file")
    grey = image_data.read_image(mask, channels=1, size=(height, width))
    return (grey > 0)[None]


# -- observation operators -------------------------------------------------------------------------
def downsample(x: Tensor, factor: int) -> Tensor:
    """Average pooling ``[B, C, H, W] -> [B, C, H // factor, W // factor]`` (trailing rows and
    columns that do not fill a block are not observed)."""
    return F.avg_pool2d(x, factor)


def upsample(y: Tensor, factor: int, size: tuple[int, int]) -> Tensor:
    """Nearest-neighbour enlargement of ``y`` back to ``size`` (for showing a low-resolution image)."""
    big = y.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
    return F.pad(big, (0, size[1] - big.shape[-1], 0, size[0] - big.shape[-2]), value=-1.0)


# -- shared plumbing ---------------------------------------------------------------------------------
def _read(path: str, channels: int | None, size: Sequence[int] | None = None) -> Tensor:
    if not Path(path).is_file():
        raise FileNotFoundError(f"guidance.input={path!r} is not a file; give the image to reconstruct")
    return image_data.read_image(path, channels=channels, size=tuple(size) if size else None)[None]


def _noisy(y: Tensor, noise_std: float, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return y + noise_std * torch.randn(y.shape, generator=g)


def _write(out_dir: str | None, y: Tensor, **images: Tensor) -> None:
    """Rank 0 writes ``<name>.png`` for each image ``[1, C, H, W]`` and y ``[1, C, h, w]`` as
    ``observation.npy``."""
    from sciffusion.training import distributed

    if out_dir is None or distributed.world()[0] != 0:
        return
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "observation.npy", y[0].numpy())
    for name, image in images.items():
        image_data.save_png(image[0], folder / f"{name}.png")


# -- the three problems ------------------------------------------------------------------------------
def inpaint(denoiser: Denoiser, *, process: NoiseProcess, domain=None, input: str, mask: str = "center",
            box: Sequence[int] | None = None, fraction: float = 0.5, mask_seed: int = 0,
            method: str = "reconstruction", noise_std: float = 0.0, scale: float = 1.0, zeta: float = 1.0,
            data_var: float = 0.5, unconditional: bool = True, degrade: bool = True, seed: int = 0,
            channels: int | None = None, out_dir: str | None = None):
    """Fill the ``mask`` pixels of ``input`` (see ``make_mask``). ``method=replace`` pastes the known
    pixels into each x0 estimate; the others condition on them as y = A(x) with A keeping the known
    pixels. ``unconditional`` drops the class of a class-conditional model."""
    image = _read(input, channels)
    missing = make_mask(mask, *image.shape[-2:], box=box, fraction=fraction, seed=mask_seed)
    known = ~missing
    observed = torch.where(known, _noisy(image, noise_std, seed) if degrade else image, image.new_zeros(()))
    _write(out_dir, observed, input=image, observation=observed, mask=missing.float() * 2 - 1)
    return known_values_guidance(denoiser, process, observed, known, method=method, noise_std=noise_std,
                                 scale=scale, zeta=zeta, data_var=data_var, unconditional=unconditional)


def superres(denoiser: Denoiser, *, process: NoiseProcess, domain=None, input: str, factor: int = 2,
             method: str = "reconstruction", noise_std: float = 0.02, scale: float = 1.0, zeta: float = 1.0,
             data_var: float = 0.5, unconditional: bool = True, degrade: bool = True, seed: int = 0,
             size: Sequence[int] | None = None, channels: int | None = None, out_dir: str | None = None):
    """Images whose ``factor`` x ``factor`` block averages match ``input``'s (``degrade=true``) or equal
    the low-resolution ``input`` itself (``degrade=false``; then ``size=[H, W]`` is the output size,
    default ``factor`` times the input's)."""
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    image = _read(input, channels)
    if degrade:
        full = tuple(image.shape[-2:])
        y = _noisy(downsample(image, factor), noise_std, seed)
    else:
        full = tuple(size) if size else (image.shape[-2] * factor, image.shape[-1] * factor)
        y = image
    _write(out_dir, y, input=image, observation=upsample(y, factor, full).clamp(-1, 1))
    # Block averaging has A A^T = I / factor^2, while the guidance's variance r_t^2 + noise_std^2 is
    # that of an A with orthonormal rows: guide with A' = factor A, y' = factor y, noise' = factor noise.
    y_d = factor * y.to(device_of(denoiser))
    return posterior_guidance(denoiser, process, lambda x: factor * downsample(x, factor), y_d, method=method,
                              noise_std=factor * noise_std, scale=scale, zeta=zeta, data_var=data_var,
                              unconditional=unconditional)


def denoise(denoiser: Denoiser, *, process: NoiseProcess, domain=None, input: str, noise_std: float = 0.3,
            method: str = "reconstruction", scale: float = 1.0, zeta: float = 1.0, data_var: float = 0.5,
            unconditional: bool = True, degrade: bool = True, seed: int = 0, channels: int | None = None,
            out_dir: str | None = None):
    """Clean images given ``input`` with N(0, noise_std^2) noise (added here when ``degrade=true``)."""
    image = _read(input, channels)
    y = _noisy(image, noise_std, seed) if degrade else image
    _write(out_dir, y, input=image, observation=y.clamp(-1, 1))
    y_d = y.to(device_of(denoiser))
    return posterior_guidance(denoiser, process, lambda x: x, y_d, method=method, noise_std=noise_std, scale=scale,
                              zeta=zeta, data_var=data_var, unconditional=unconditional)

"""Posterior guidance for an observation y = A(x0) + noise of dense samples, shared by the images
domain's inverse problems and the audio domain's gap filling, and open to plugins: ``METHODS`` names
the choices of ``guidance.method``, ``posterior_guidance`` builds the core's guidance for one.
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor

from sciffusion.guidance import DiffusionPosteriorSampling, DropCondition, Inpainting, ReconstructionGuidance, device_of
from sciffusion.parameterization import Denoiser
from sciffusion.processes import NoiseProcess

METHODS = ("reconstruction", "dps", "replace")


def posterior_guidance(denoiser: Denoiser, process: NoiseProcess, observe: Callable[[Tensor], Tensor], y: Tensor,
                       *, method: str, noise_std: float, scale: float, zeta: float, data_var: float,
                       unconditional: bool):
    """The core's posterior guidance for y = observe(x0) + noise: ``reconstruction``
    (``ReconstructionGuidance``) or ``dps``; ``unconditional`` drops a conditional model's class.
    Shared by the images domain's inverse problems and the audio domain's gap filling."""
    if method not in METHODS:
        raise ValueError(f"unknown guidance.method {method!r}; choose one of {METHODS}")
    if unconditional:
        denoiser = DropCondition(denoiser)
    if method == "dps":
        return DiffusionPosteriorSampling(denoiser, observe, y, process, zeta=zeta)
    return ReconstructionGuidance(denoiser, observe, y, process, noise_std, scale=scale, data_var=data_var)


def known_values_guidance(denoiser: Denoiser, process: NoiseProcess, observed: Tensor, known: Tensor, *,
                          method: str, noise_std: float, scale: float, zeta: float, data_var: float,
                          unconditional: bool):
    """Guidance towards samples that keep the ``known`` entries (a boolean mask broadcasting over the
    state) of ``observed``: ``replace`` pastes them into every x0 estimate (``Inpainting``; exact), the
    other ``METHODS`` guide with y = mask * x0 + noise. Both tensors move to the denoiser's device.
    Shared by image inpainting, the audio domain's gap filling and video forecasting/interpolation."""
    device = device_of(denoiser)
    known_d, observed_d = known.to(device), observed.to(device)
    if method == "replace":
        return Inpainting(DropCondition(denoiser) if unconditional else denoiser, observed_d, known_d)
    return posterior_guidance(denoiser, process, lambda v: v * known_d, observed_d, method=method,
                              noise_std=noise_std, scale=scale, zeta=zeta, data_var=data_var,
                              unconditional=unconditional)

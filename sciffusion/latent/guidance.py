"""Guidance that lives in data space, for a model whose samples are latents: the observation is taken
through the decoder (latent DPS; Rout et al. 2023, "Solving linear inverse problems provably via
posterior sampling with latent diffusion models", and Chung et al. 2023 for DPS itself).

A latent z (scaled by the autoencoder's ``scale_factor``, so unit variance) decodes to x = dec(z / scale);
an observation y = A(x) + N(0, noise_std^2) of x is y = M(z) + noise with M = A o dec o (1 / scale);
a classifier of clean data guides through dec and the Tweedie estimate (``decoded_classifier_guidance``).
The core's ``ReconstructionGuidance`` / ``DiffusionPosteriorSampling`` then guide with M exactly as
with any observation operator: the gradient of the data-space residual goes back through the
decoder and through the Tweedie estimate z0_hat = D(z_t) by one vector-Jacobian product. When the
decoder is linear and the latents Gaussian, reconstruction guidance is the exact posterior
(tested); otherwise it is the usual Gaussian approximation of p(z0 | z_t).

Reconstruction guidance's variance r_t^2 M M^T is taken as r_t^2 ``gram`` I: exact when
M M^T = gram I (an orthogonal decoder up to a scale, observed by a selection), and the average
eigenvalue otherwise, which ``estimate_gram`` measures at a latent.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ..guidance import ClassifierGuidance, DiffusionPosteriorSampling, DropCondition, ReconstructionGuidance
from ..parameterization import Cond, Denoiser
from ..processes import NoiseProcess
from ..space import Space

METHODS = ("reconstruction", "dps")
DataLogLikelihood = Callable[[Tensor, Cond], Tensor]  # log p(y | x0) [B] of data x0 [B, ...] and the conditions


class DecodedObservation:
    """``M(z) = A(decoder(z / scale_factor))``: a data-space observation operator seen from latents.
    ``decoder`` maps unscaled latents ``[B, ...]`` to data ``[B, ...]`` differentiably (a
    ``KLAutoencoder``'s ``decode``, or any map); ``observe`` is A; ``gain`` multiplies the result."""

    def __init__(self, decoder: Callable[[Tensor], Tensor], observe: Callable[[Tensor], Tensor], *,
                 scale_factor: float = 1.0, gain: float = 1.0):
        if not scale_factor > 0:
            raise ValueError(f"scale_factor must be > 0, got {scale_factor}")
        self.decoder, self.observe, self.scale_factor, self.gain = decoder, observe, float(scale_factor), float(gain)

    def __call__(self, z: Tensor) -> Tensor:
        return self.gain * self.observe(self.decoder(z / self.scale_factor))


def estimate_gram(operator: Callable[[Tensor], Tensor], z: Tensor, *, probes: int = 8,
                  generator: torch.Generator | None = None) -> float:
    """The mean eigenvalue of J J^T, J the Jacobian of ``operator`` at latents ``z`` [B, ...]:
    trace(J J^T) / m from Hutchinson's estimate E_v |J^T v|^2 with v ~ N(0, I_m) (m = observed entries
    per sample), averaged over the batch and ``probes`` draws."""
    z = z.detach().requires_grad_(True)
    with torch.enable_grad():
        out = operator(z)
        total = 0.0
        for _ in range(probes):
            v = torch.randn(out.shape, generator=generator, dtype=out.dtype, device=out.device)
            (vjp,) = torch.autograd.grad(out, z, v, retain_graph=True)
            total += float((vjp**2).sum())
    return total / (probes * out.numel())


def latent_posterior_guidance(denoiser: Denoiser, process: NoiseProcess, *, decoder: Callable[[Tensor], Tensor],
                              observe: Callable[[Tensor], Tensor], y: Tensor, scale_factor: float = 1.0,
                              method: str = "reconstruction", noise_std: float = 0.0, gram: float = 1.0,
                              scale: float = 1.0, zeta: float = 1.0, data_var: float = 1.0,
                              unconditional: bool = False):
    """Posterior guidance of a latent model for a data-space observation y = A(x0) + N(0, noise_std^2):
    ``reconstruction`` (``ReconstructionGuidance`` on M = A o dec o (1 / scale), with M M^T taken as
    ``gram`` I) or ``dps`` (``DiffusionPosteriorSampling`` on M, step ``zeta``). ``data_var`` is the
    latents' variance (1 for latents scaled by the data's 1 / std). ``unconditional`` drops a
    conditional model's class. The sampler runs in latent space; decode its samples as usual."""
    if method not in METHODS:
        raise ValueError(f"unknown latent guidance method {method!r}; choose one of {METHODS}")
    if not gram > 0:
        raise ValueError(f"gram (the mean eigenvalue of M M^T) must be > 0, got {gram}; estimate it with "
                         "estimate_gram(DecodedObservation(...), z)")
    if unconditional:
        denoiser = DropCondition(denoiser)
    if method == "dps":
        operator = DecodedObservation(decoder, observe, scale_factor=scale_factor)
        return DiffusionPosteriorSampling(denoiser, operator, y, process, zeta=zeta)
    # M M^T = gram I: guide with M / sqrt(gram), whose rows are orthonormal, and y, noise_std likewise
    gain = 1 / math.sqrt(gram)
    operator = DecodedObservation(decoder, observe, scale_factor=scale_factor, gain=gain)
    return ReconstructionGuidance(denoiser, operator, gain * y, process, gain * noise_std, scale=scale,
                                  data_var=data_var)


def decoded_classifier_guidance(denoiser: Denoiser, process: NoiseProcess, *, decoder: Callable[[Tensor], Tensor],
                                log_likelihood: DataLogLikelihood, scale_factor: float = 1.0, scale: float = 1.0,
                                interval: tuple[float, float] | None = None) -> ClassifierGuidance:
    """Classifier guidance of a latent model by a data-space classifier ``log_likelihood(x0, cond) -> [B]``
    (log p(y | x0) of clean data, e.g. a metrics classifier's log-softmax at the requested label), taken
    through the Tweedie estimate and the decoder (universal guidance's forward term, Bansal et al. 2023;
    DPS's treatment of a clean-data likelihood, Chung et al. 2023):

        log p(y | z_t) ~ log p(y | x0 = decoder(D(z_t) / scale_factor)),

    its gradient in z_t a vector-Jacobian product through the classifier, the decoder and the denoiser,
    added to the score by ``ClassifierGuidance`` (``scale``, ``interval`` as there)."""

    def log_p(z: Tensor, t: Tensor, space: Space, cond: Cond) -> Tensor:
        return log_likelihood(decoder(denoiser(z, t, space, cond) / scale_factor), cond)

    return ClassifierGuidance(denoiser, log_p, process, scale=scale, interval=interval)

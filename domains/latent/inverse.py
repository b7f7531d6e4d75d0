"""The base domain's inverse problems (the images domain's inpainting, super-resolution, denoising) on a
latent checkpoint, through the decoder:

    sciffusion-sample checkpoint=LATENT.ckpt guidance=decoded_inpaint guidance.input=digit.png out_dir=DIR

``decoded`` calls the base domain's guidance factory (``problem``, with every option of its config) to
read the observation, the operator A and the noise it builds in data space, then guides the latent model
with the same observation taken through the decoder (``LatentDomain.posterior_guidance``: reconstruction
guidance or DPS on M = A o decoder o (1 / scale), M M^T's mean eigenvalue measured). ``data_var`` is the
latents' variance (1: they are scaled to unit variance), not the pixels'.
"""
from __future__ import annotations

import inspect
from typing import Any

from hydra.utils import get_object

from sciffusion.guidance import DiffusionPosteriorSampling, DropCondition, ReconstructionGuidance
from sciffusion.parameterization import Denoiser
from sciffusion.processes import NoiseProcess


def decoded(denoiser: Denoiser, *, process: NoiseProcess, domain, problem: str, data_var: float = 1.0,
            gram: float | str = "auto", **options: Any):
    """The latent guidance for the data-space problem ``problem`` (the dotted path of a base-domain
    guidance factory, e.g. ``sciffusion_domains.images.inverse.inpaint``) with its ``options``."""
    if not hasattr(domain, "posterior_guidance"):
        raise ValueError(f"guidance through the decoder needs a latent checkpoint; this one's domain is "
                         f"{domain.name!r}: use the base domain's own guidance (e.g. guidance=inpaint)")
    factory = get_object(problem)
    parameters = inspect.signature(factory).parameters
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        taken = [name for name in parameters if name not in ("denoiser", "process", "domain")]
        raise ValueError(f"{', '.join(f'guidance.{key}' for key in unknown)}: not an option of {problem}; its options "
                         f"are {', '.join(taken)}")
    if options.get("method") == "replace":
        raise ValueError("guidance.method=replace pastes known pixels into the estimate, which a latent model does not "
                         "have; use method=reconstruction or method=dps")
    data_space = factory(denoiser, process=process, domain=domain.base, **options)
    if not isinstance(data_space, ReconstructionGuidance):
        raise ValueError(f"{problem} built a {type(data_space).__name__}, not an observation y = A(x) + noise; only "
                         "reconstruction guidance and DPS go through the decoder")
    dps = isinstance(data_space, DiffusionPosteriorSampling)
    settings = {"method": "dps", "zeta": data_space.zeta} if dps else {"scale": data_space.scale, "data_var": data_var}
    return domain.posterior_guidance(denoiser, process, observe=data_space.observe, y=data_space.y,
                                     noise_std=data_space.noise_std, gram=gram,
                                     unconditional=isinstance(data_space.denoiser, DropCondition), **settings)

"""Samplers: stateless functions that run a denoiser down a time grid.

Every sampler has the signature
    sampler(denoiser, x, ts, *, process, space=None, cond=None, generator=None, callback=None, **options)
where ``x`` is the state at ts[0] (e.g. from ``prior_sample``), ``ts`` a grid from
``sciffusion.timesteps`` (float64, strictly decreasing, ending at t = 0), ``generator`` drives every
random draw (through ``space.randn_like``, so graph data and masks work) and ``callback`` receives
``{"i", "t", "t_next", "x", "x0_hat"}`` after every step. The last step returns x0_hat.
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor

from ..parameterization import Denoiser
from ._common import CountedDenoiser, Grid, count_evaluations, prior_sample
from .ddim import ddim, ddpm
from .dpm_solver import dpmpp_2m, dpmpp_2m_sde
from .ode import euler, heun, ode
from .sde import euler_maruyama, predictor_corrector
from .unipc import unipc

SAMPLERS: dict[str, Callable[..., Tensor]] = {
    "ddim": ddim,
    "ddpm": ddpm,
    "euler": euler,
    "heun": heun,
    "dpmpp_2m": dpmpp_2m,
    "dpmpp_2m_sde": dpmpp_2m_sde,
    "unipc": unipc,
    "euler_maruyama": euler_maruyama,
    "predictor_corrector": predictor_corrector,
    "ode": ode,
}


def sample(name: str, denoiser: Denoiser, x: Tensor, ts: Tensor, **kwargs) -> Tensor:
    """Run the sampler called ``name`` (a key of ``SAMPLERS``) with keyword options ``kwargs``."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    return SAMPLERS[name](denoiser, x, ts, **kwargs)


__all__ = [
    "CountedDenoiser", "Grid", "SAMPLERS", "count_evaluations", "ddim", "ddpm", "dpmpp_2m", "dpmpp_2m_sde",
    "euler", "euler_maruyama", "heun", "ode", "predictor_corrector", "prior_sample", "sample", "unipc",
]

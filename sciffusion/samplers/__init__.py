"""Samplers: stateless functions that run a denoiser down a time grid.

Every sampler has the signature
    sampler(denoiser, x, ts, *, process, space, cond=None, generator=None, callback=None, **options)
where ``space`` is required (``DenseSpace()`` for plain ``[B, ...]`` tensors; a missing one is a
one-line TypeError naming the sampler, ``space.require_space``), ``x`` is the state at ts[0] (e.g.
from ``prior_sample``), ``ts`` a grid from ``sciffusion.timesteps`` (float64, strictly decreasing,
ending at t = 0), ``generator`` drives every random draw (through ``space.randn_like``, so graph data
and masks work) and ``callback`` receives ``{"i", "t", "t_next", "x", "x0_hat"}`` after every step.
The last step returns x0_hat.
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor

from ..parameterization import Denoiser
from ._common import CountedDenoiser, Grid, count_evaluations, prior_sample
from .ddim import ddim, ddpm
from .deis import deis
from .dpm_solver import dpmpp_2m, dpmpp_2m_sde
from .joint import sample_joint
from .ipndm import ipndm
from .ode import euler, heun, ode
from .sa_solver import sa_solver
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
    "deis": deis,
    "ipndm": ipndm,
    "sa_solver": sa_solver,
    "euler_maruyama": euler_maruyama,
    "predictor_corrector": predictor_corrector,
    "ode": ode,
}

# The consistency models' multistep sampler lives with their training (sciffusion.distill); it needs
# SAMPLERS to exist, so it is imported after it.
from ..distill.consistency import sample_consistency as consistency  # noqa: E402

SAMPLERS["consistency"] = consistency


def sample(name: str, denoiser: Denoiser, x: Tensor | dict[str, Tensor], ts: Tensor, **kwargs):
    """Run the sampler called ``name`` (a key of ``SAMPLERS``) with keyword options ``kwargs``; a
    ``dict`` state goes to ``sample_joint`` with ``name`` driving its continuous part."""
    if isinstance(x, dict):  # a state with several parts: the continuous part runs sampler `name`
        return sample_joint(denoiser, x, ts, sampler=name, **kwargs)
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    return SAMPLERS[name](denoiser, x, ts, **kwargs)


__all__ = [
    "CountedDenoiser", "Grid", "SAMPLERS", "count_evaluations", "ddim", "ddpm", "deis", "dpmpp_2m", "dpmpp_2m_sde",
    "euler", "euler_maruyama", "heun", "ipndm", "ode", "predictor_corrector", "prior_sample", "sa_solver", "sample", "sample_joint",
    "unipc",
]

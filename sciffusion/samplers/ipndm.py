"""iPNDM (Zhang & Chen 2023, sec. 4.2 and app. "improved PNDM"): PNDM's linear multistep on eps_hat
without its Runge-Kutta warm-up, in the variance-exploding view y = x / alpha at noise level
rho = sigma / alpha, where the probability-flow ODE is dy/drho = eps_hat. A step is Euler's (which is
DDIM) with eps_hat replaced by the Adams-Bashforth combination of the last p estimates,
    y_s = y_t + (rho_s - rho_t) sum_j c_{p,j} eps_{t_j},
with the fixed-step coefficients c_{p,j} whatever the grid's spacing (as k-diffusion's ``sample_ipndm``
in ComfyUI and the DEIS repository do); the order ramps up 1, 2, 3, 4 on the first steps.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..parameterization import Cond, Denoiser
from ..processes import NoiseProcess
from ..space import Space
from ._common import Callback, denoise, finish, report, setup

# Adams-Bashforth coefficients of orders 1-4, newest estimate first (Hairer et al., Table III.1.1)
ADAMS_BASHFORTH = {
    1: (1.0,),
    2: (3 / 2, -1 / 2),
    3: (23 / 12, -16 / 12, 5 / 12),
    4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
}


@torch.no_grad()
def ipndm(denoiser: Denoiser, x: Tensor, ts: Tensor, *, process: NoiseProcess, space: Space | None = None,
          cond: Cond | None = None, order: int = 4, generator: torch.Generator | None = None,
          callback: Callback | None = None) -> Tensor:
    """iPNDM of ``order`` 1-4 (default 4, the paper's): one evaluation per step; the last step, to
    sigma = 0, returns x0_hat. Order 1 is DDIM. ``generator`` is unused.

    Shapes: ``x`` any ``[B, ...]`` state at ts[0]; returns x0_hat at t = 0, shaped like ``x``.
    """
    if order not in ADAMS_BASHFORTH:
        raise ValueError(f"order must be 1, 2, 3 or 4, got {order!r}")
    grid, space, cond = setup(process, ts, space, cond, "ipndm")
    eps_history: list[Tensor] = []  # newest first
    for i in range(grid.steps - 1):
        x0_hat = denoise(denoiser, x, grid.t[i], space, cond)
        eps_history = [(x - grid.alpha[i] * x0_hat) / grid.sigma[i]] + eps_history[:order - 1]
        coefficients = ADAMS_BASHFORTH[len(eps_history)]
        eps_ab = sum(c * eps for c, eps in zip(coefficients, eps_history))
        y = x / grid.alpha[i] + (grid.scaled_sigma[i + 1] - grid.scaled_sigma[i]) * eps_ab
        x = space.project(grid.alpha[i + 1] * y)
        report(callback, i, grid, x, x0_hat)
    return finish(denoiser, x, grid, space, cond, callback)

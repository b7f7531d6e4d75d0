"""DDIM and DDPM ancestral sampling for any process (Song et al. 2021a; Ho et al. 2020).

For s < t the forward transition is x_t = alpha_{t|s} x_s + sigma_{t|s} z with
    alpha_{t|s} = alpha_t / alpha_s,   sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2
(Kingma et al. 2021, eq. 2-4), and the posterior q(x_s | x_t, x0) has variance
sigma_{t|s}^2 sigma_s^2 / sigma_t^2. DDIM keeps the marginals and injects eta times that much noise.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..parameterization import Cond, Denoiser
from ..processes import NoiseProcess
from ..space import Space, require_space
from ._common import Callback, add_noise, denoise, finish, report, setup, sqrt_clamped


@torch.no_grad()
def ddim(denoiser: Denoiser, x: Tensor, ts: Tensor, *, process: NoiseProcess, space: Space | None = None,
         cond: Cond | None = None, eta: float = 0.0, generator: torch.Generator | None = None,
         callback: Callback | None = None) -> Tensor:
    """DDIM (Song et al. 2021a, eq. 12 and 16) from x at ts[0] down the grid ``ts`` to t = 0.

    eta = 0 is the deterministic DDIM, which is Euler's method on the probability-flow ODE in the
    variance-exploding view (x / alpha against sigma / alpha); eta = 1 is DDPM ancestral sampling
    with the posterior variance. x: the batch ``[B, ...]`` (or graph rows); returns x0 samples.
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0 (0 = deterministic DDIM, 1 = DDPM), got {eta}")
    grid, space, cond = setup(process, ts, space, cond, "ddim")
    for i in range(grid.steps - 1):
        a_t, s_t, a_s, s_s = grid.alpha[i], grid.sigma[i], grid.alpha[i + 1], grid.sigma[i + 1]
        x0_hat = denoise(denoiser, x, grid.t[i], space, cond)
        eps_hat = (x - a_t * x0_hat) / s_t
        var_ts = s_t**2 - (a_t / a_s) ** 2 * s_s**2  # sigma_{t|s}^2, Kingma et al. 2021, eq. 4
        std = eta * s_s / s_t * sqrt_clamped(var_ts)  # Song et al. 2021a, eq. 16
        mean = a_s * x0_hat + sqrt_clamped(s_s**2 - std**2) * eps_hat  # Song et al. 2021a, eq. 12
        x = add_noise(mean, std, space, generator)
        report(callback, i, grid, x, x0_hat)
    return finish(denoiser, x, grid, space, cond, callback)


def ddpm(denoiser: Denoiser, x: Tensor, ts: Tensor, *, process: NoiseProcess, space: Space | None = None,
         cond: Cond | None = None, generator: torch.Generator | None = None,
         callback: Callback | None = None) -> Tensor:
    """DDPM ancestral sampling (Ho et al. 2020, Alg. 2) with the posterior variance
    ("fixed_small") on any grid: DDIM with eta = 1."""
    return ddim(denoiser, x, ts, process=process, space=require_space(space, "ddpm"), cond=cond, eta=1.0,
                generator=generator, callback=callback)

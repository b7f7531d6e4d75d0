"""DPM-Solver++(2M) and its SDE variant (Lu et al. 2022b), multistep in lambda = log(alpha / sigma)
with the data prediction x0_hat. With h = lambda_s - lambda_t for a step t -> s, the exact
solution of the probability-flow ODE is
    x_s = (sigma_s / sigma_t) x_t + sigma_s int_{lambda_t}^{lambda_s} e^lambda x0_hat dlambda
(Lu et al. 2022b, eq. 9); the solvers approximate x0_hat in that integral by a linear function
through the current and previous estimates."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..parameterization import Cond, Denoiser
from ..processes import NoiseProcess
from ..space import Space, require_space
from ._common import Callback, add_noise, denoise, finish, report, setup


def _multistep_estimate(x0_hat: Tensor, x0_prev: Tensor | None, h: float, h_prev: float) -> Tensor:
    """D = (1 + 1/(2r)) x0_hat - 1/(2r) x0_prev, r = h_prev / h (Lu et al. 2022b, Alg. 2); x0_hat on
    the first step, where there is no previous estimate."""
    if x0_prev is None:
        return x0_hat
    r = h_prev / h
    return x0_hat + (x0_hat - x0_prev) / (2 * r)


def dpmpp_2m(denoiser: Denoiser, x: Tensor, ts: Tensor, *, process: NoiseProcess, space: Space | None = None,
             cond: Cond | None = None, generator: torch.Generator | None = None,
             callback: Callback | None = None) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2, eq. 9: x_s = (sigma_s / sigma_t) x_t - alpha_s
    (e^{-h} - 1) D): second order from the second step on, first order on the first step and on the
    last (to sigma = 0, where it returns x0_hat). Best on a grid uniform in log-SNR or Karras's. One
    evaluation per step. It is ``dpmpp_2m_sde`` with eta = 0, which draws no noise."""
    return dpmpp_2m_sde(denoiser, x, ts, process=process, space=require_space(space, "dpmpp_2m"), cond=cond,
                        eta=0.0, generator=generator, callback=callback)


@torch.no_grad()
def dpmpp_2m_sde(denoiser: Denoiser, x: Tensor, ts: Tensor, *, process: NoiseProcess, space: Space | None = None,
                 cond: Cond | None = None, eta: float = 1.0, s_noise: float = 1.0,
                 generator: torch.Generator | None = None, callback: Callback | None = None) -> Tensor:
    """SDE-DPM-Solver++(2M) (Lu et al. 2022b, sec. 5; midpoint form of k-diffusion's
    ``sample_dpmpp_2m_sde`` and diffusers' "sde-dpmsolver++"). Each step t -> s solves the reverse SDE
    exactly for a linear x0_hat, contracting by e^{-eta h} and refilling the lost variance:
        x_s = (sigma_s / sigma_t) e^{-eta h} x_t + alpha_s (1 - e^{-(1 + eta) h}) D
              + sigma_s sqrt(1 - e^{-2 eta h}) s_noise z.
    eta = 0 is DPM-Solver++(2M); eta = 1 (default) is the reverse SDE.
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0 (0 = the ODE solver dpmpp_2m), got {eta}")
    grid, space, cond = setup(process, ts, space, cond, "dpmpp_2m_sde")
    x0_prev, h_prev = None, 0.0
    for i in range(grid.steps - 1):
        x0_hat = denoise(denoiser, x, grid.t[i], space, cond)
        h = grid.lam[i + 1] - grid.lam[i]
        d = _multistep_estimate(x0_hat, x0_prev, h, h_prev)
        mean = grid.sigma[i + 1] / grid.sigma[i] * math.exp(-eta * h) * x - grid.alpha[i + 1] * math.expm1(-(1 + eta) * h) * d
        x = add_noise(mean, grid.sigma[i + 1] * math.sqrt(-math.expm1(-2 * eta * h)) * s_noise, space, generator)
        x0_prev, h_prev = x0_hat, h
        report(callback, i, grid, x, x0_hat)
    return finish(denoiser, x, grid, space, cond, callback)

"""Samplers of the reverse-time SDE (Song et al. 2021, eq. 6)
    dx = [f x - g^2 score] dt + g dw,   f = d_alpha / alpha,   g^2 = d(sigma^2)/dt - 2 f sigma^2,
with score = (alpha x0_hat - x) / sigma^2, the drift and diffusion of the forward SDE whose marginals
are x_t = alpha x0 + sigma eps (Kingma et al. 2021, appendix A)."""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from ..parameterization import Cond, Denoiser
from ..space import Space
from ..processes import NoiseProcess
from ._common import Callback, Grid, add_noise, denoise, finish, report, setup, sqrt_clamped


def _score(x: Tensor, x0_hat: Tensor, grid: Grid, i: int) -> Tensor:
    """grad log p_t(x) = (alpha x0_hat - x) / sigma^2 (Tweedie's formula) at grid time i."""
    return (grid.alpha[i] * x0_hat - x) / grid.sigma[i] ** 2


def _euler_maruyama_step(x: Tensor, x0_hat: Tensor, grid: Grid, i: int, space: Space,
                         generator: torch.Generator | None) -> Tensor:
    """One Euler-Maruyama step of the reverse SDE from t_i to t_{i+1} (dt < 0)."""
    dt = grid.t[i + 1] - grid.t[i]
    f = grid.d_alpha[i] / grid.alpha[i]
    g_sq = 2 * grid.sigma[i] * grid.d_sigma[i] - 2 * f * grid.sigma[i] ** 2
    drift = f * x - g_sq * _score(x, x0_hat, grid, i)
    return add_noise(x + drift * dt, sqrt_clamped(-g_sq * dt), space, generator)


def _reverse_diffusion_step(x: Tensor, x0_hat: Tensor, grid: Grid, i: int, space: Space,
                            generator: torch.Generator | None) -> Tensor:
    """Song et al. 2021's reverse-diffusion predictor (their eq. 46) for the discrete forward step
    x_t = alpha_{t|s} x_s + sigma_{t|s} z: x_s = x_t - (alpha_{t|s} - 1) x_t + sigma_{t|s}^2 score
    + sigma_{t|s} z."""
    alpha_ts = grid.alpha[i] / grid.alpha[i + 1]
    var_ts = grid.sigma[i] ** 2 - alpha_ts**2 * grid.sigma[i + 1] ** 2
    mean = (2 - alpha_ts) * x + var_ts * _score(x, x0_hat, grid, i)
    return add_noise(mean, sqrt_clamped(var_ts), space, generator)


PREDICTORS = {"euler_maruyama": _euler_maruyama_step, "reverse_diffusion": _reverse_diffusion_step}


@torch.no_grad()
def euler_maruyama(denoiser: Denoiser, x: Tensor, ts: Tensor, *, process: NoiseProcess, space: Space | None = None,
                   cond: Cond | None = None, generator: torch.Generator | None = None,
                   callback: Callback | None = None) -> Tensor:
    """Euler-Maruyama on the reverse SDE (Song et al. 2021, sec. 4.1); the last step returns x0_hat.
    First order in law, so it needs more steps than the ODE solvers."""
    grid, space, cond = setup(process, ts, space, cond, "euler_maruyama")
    for i in range(grid.steps - 1):
        x0_hat = denoise(denoiser, x, grid.t[i], space, cond)
        x = _euler_maruyama_step(x, x0_hat, grid, i, space, generator)
        report(callback, i, grid, x, x0_hat)
    return finish(denoiser, x, grid, space, cond, callback)


@torch.no_grad()
def predictor_corrector(denoiser: Denoiser, x: Tensor, ts: Tensor, *, process: NoiseProcess,
                        space: Space | None = None, cond: Cond | None = None,
                        predictor: Literal["reverse_diffusion", "euler_maruyama"] = "reverse_diffusion",
                        corrector_steps: int = 1, snr: float = 0.16, generator: torch.Generator | None = None,
                        callback: Callback | None = None) -> Tensor:
    """Predictor-corrector sampling (Song et al. 2021, Alg. 1, 4 and 5): at each grid time,
    ``corrector_steps`` Langevin steps x <- x + e score + sqrt(2 e) z with e = 2 (snr |z| / |score|)^2,
    then one predictor step to the next time. As in Song et al.'s code, |z| and |score| are batch
    means of per-sample norms: per-sample ratios explode in low dimension wherever the score
    vanishes (at every mode), but a sample's step then depends on its batch. Langevin with a finite
    step is biased; snr around 0.01-0.05 suits low-dimensional data, 0.16 is Song et al.'s for VE
    images. (1 + corrector_steps) evaluations per step, one on the last step, which returns x0_hat.
    """
    if predictor not in PREDICTORS:
        raise ValueError(f"unknown predictor {predictor!r}; choose one of {sorted(PREDICTORS)}")
    if corrector_steps < 0 or snr <= 0:
        raise ValueError(f"need corrector_steps >= 0 and snr > 0, got {corrector_steps} and {snr}")
    step = PREDICTORS[predictor]
    grid, space, cond = setup(process, ts, space, cond, "predictor_corrector")
    for i in range(grid.steps - 1):
        for _ in range(corrector_steps):
            score = _score(x, denoise(denoiser, x, grid.t[i], space, cond), grid, i)
            z = space.randn_like(x, generator)
            ratio = space.sum(z**2).sqrt().mean() / space.sum(score**2).sqrt().mean()
            size = 2 * (snr * float(ratio)) ** 2  # Song et al. 2021, Alg. 5
            x = space.project(x + size * score + math.sqrt(2 * size) * z)
        x0_hat = denoise(denoiser, x, grid.t[i], space, cond)
        x = step(x, x0_hat, grid, i, space, generator)
        report(callback, i, grid, x, x0_hat)
    return finish(denoiser, x, grid, space, cond, callback)

"""Solvers of the probability-flow ODE dx/dt = d_alpha x0_hat + d_sigma eps_hat (Song et al. 2021):
Euler in the process's own time, EDM's Heun with stochastic churn in the variance-exploding view,
and an adaptive Runge-Kutta solver from torchdiffeq."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..parameterization import Cond, Denoiser, velocity_from_denoised
from ..processes import NoiseProcess
from ..space import Space
from ._common import Callback, add_noise, denoise, finish, report, setup


@torch.no_grad()
def euler(denoiser: Denoiser, x: Tensor, ts: Tensor, *, process: NoiseProcess, space: Space | None = None,
          cond: Cond | None = None, generator: torch.Generator | None = None,
          callback: Callback | None = None) -> Tensor:
    """Euler's method in t on the probability-flow ODE, whose velocity is the flow-matching target
    (Lipman et al. 2023). On the linear interpolant this is rectified-flow / flow-matching sampling.
    Where alpha and sigma are linear in t (EDM, the linear interpolant) it coincides with DDIM(eta=0).
    ``generator`` is accepted for a uniform signature and unused."""
    grid, space, cond = setup(process, ts, space, cond, "euler")
    for i in range(grid.steps - 1):
        x0_hat = denoise(denoiser, x, grid.t[i], space, cond)
        v_hat = velocity_from_denoised(x, x0_hat, grid.alpha[i], grid.sigma[i], grid.d_alpha[i], grid.d_sigma[i])
        x = space.project(x + (grid.t[i + 1] - grid.t[i]) * v_hat)
        report(callback, i, grid, x, x0_hat)
    return finish(denoiser, x, grid, space, cond, callback)


@torch.no_grad()
def heun(denoiser: Denoiser, x: Tensor, ts: Tensor, *, process: NoiseProcess, space: Space | None = None,
         cond: Cond | None = None, s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = math.inf,
         s_noise: float = 1.0, generator: torch.Generator | None = None,
         callback: Callback | None = None) -> Tensor:
    """EDM's stochastic sampler (Karras et al. 2022, Alg. 2), for any process.

    It works on y = x / alpha at noise level s = sigma / alpha, where the ODE is dy/ds = eps_hat.
    Noise levels s in [s_tmin, s_tmax] are first raised to s_hat = (1 + gamma) s,
    gamma = min(s_churn / N, sqrt 2 - 1), by adding fresh noise (churn; time t_hat =
    ``process.t_from_scaled_sigma(s_hat)``, which must stay where the process is defined). Then
    a Heun step to the next level. The last step, to t = 0, is Euler, i.e. returns x0_hat.
    s_churn = 0 (default) is the deterministic Heun sampler, 2N - 1 evaluations for N steps.
    """
    grid, space, cond = setup(process, ts, space, cond, "heun")
    gamma_max = min(s_churn / grid.steps, math.sqrt(2) - 1)
    for i in range(grid.steps - 1):
        s_cur, s_next, t_next, a_next = grid.scaled_sigma[i], grid.scaled_sigma[i + 1], grid.t[i + 1], grid.alpha[i + 1]
        gamma = gamma_max if s_tmin <= s_cur <= s_tmax else 0.0
        s_hat = s_cur * (1 + gamma)  # Alg. 2, line 5
        t_hat = grid.t[i] if gamma == 0 else float(process.t_from_scaled_sigma(torch.tensor(s_hat, dtype=torch.float64)))
        a_hat = grid.alpha[i] if gamma == 0 else float(process.alpha(torch.tensor(t_hat, dtype=torch.float64)))
        y_hat = add_noise(x / grid.alpha[i], s_noise * math.sqrt(s_hat**2 - s_cur**2), space, generator)  # line 6
        x0_hat = denoise(denoiser, a_hat * y_hat, t_hat, space, cond)
        d = (y_hat - x0_hat) / s_hat  # line 7
        y_next = y_hat + (s_next - s_hat) * d  # line 8
        x0_next = denoise(denoiser, a_next * y_next, t_next, space, cond)
        d_next = (y_next - x0_next) / s_next  # line 10
        y_next = y_hat + (s_next - s_hat) * (0.5 * d + 0.5 * d_next)  # line 11
        x = space.project(a_next * y_next)
        report(callback, i, grid, x, x0_hat)
    return finish(denoiser, x, grid, space, cond, callback)


@torch.no_grad()
def ode(denoiser: Denoiser, x: Tensor, ts: Tensor, *, process: NoiseProcess, space: Space | None = None,
        cond: Cond | None = None, rtol: float = 1e-5, atol: float = 1e-5, method: str = "dopri5",
        generator: torch.Generator | None = None, callback: Callback | None = None) -> Tensor:
    """The probability-flow ODE in t integrated by an adaptive solver (torchdiffeq ``odeint``,
    Dormand-Prince 5(4) by default) from ts[0] to ts[-2], then a final denoising step to t = 0.

    The solver picks its own steps to meet ``rtol``/``atol``; count them with
    ``count_evaluations``. The interior grid times are only where the callback reports; with a
    callback, x0_hat there costs one extra evaluation per time. ``generator`` is unused.
    """
    from torchdiffeq import odeint

    grid, space, cond = setup(process, ts, space, cond, "ode")

    def velocity(t: Tensor, y: Tensor) -> Tensor:
        t = t.to(torch.float64)
        x0_hat = denoiser(y, y.new_full((space.batch_size(y),), float(t)), space, cond)
        coefficients = (process.alpha(t), process.sigma(t), process.d_alpha(t), process.d_sigma(t))
        return space.project(velocity_from_denoised(y, x0_hat, *(float(c) for c in coefficients)))

    times = torch.tensor(grid.t[:-1], dtype=x.dtype, device=x.device)
    # landing a step on t_end keeps the solver's stages from overshooting it towards t < 0
    options = {"step_t": times[-1:]} if method in ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun") else None
    states = odeint(velocity, x, times, rtol=rtol, atol=atol, method=method, options=options) if len(times) > 1 else x[None]
    if callback is not None:
        for i in range(1, len(times)):
            report(callback, i - 1, grid, states[i], denoise(denoiser, states[i], grid.t[i], space, cond))
    return finish(denoiser, space.project(states[-1]), grid, space, cond, callback)

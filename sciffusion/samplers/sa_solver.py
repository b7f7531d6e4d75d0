"""SA-Solver (Xue et al. 2023, "SA-Solver: Stochastic Adams Solver for Fast Sampling of Diffusion
Models"): a multistep predictor-corrector in lambda = log(alpha / sigma) with the data prediction x0_hat,
for the reverse SDE whose noise is scaled by tau (tau = 0: the probability-flow ODE).

A step t -> s with h = lambda_s - lambda_t and a = 1 + tau^2 is the exact solution of that SDE for
x0_hat a polynomial in lambda (Xue et al. 2023, sec. 4, the variance-controlled SDE in data prediction):
    x_s = e^{-tau^2 h} (sigma_s / sigma_t) x_t
          + a sigma_s e^{-tau^2 lambda_s} int_{lambda_t}^{lambda_s} e^{a lambda} x0_hat dlambda
          + sigma_s sqrt(1 - e^{-2 tau^2 h}) z,   z ~ N(0, I).
With x0_hat the Lagrange polynomial through estimates x0_j at nodes lambda_j, the integral is
sum_j w_j x0_j, and in v = a lambda the weights are DEIS's exponential-polynomial ones
(``exp_poly_weights``), so that the update reads
    x_s = e^{-tau^2 h} (sigma_s / sigma_t) x_t + alpha_s e^{-a h} sum_j W_j x0_j + sigma_s sqrt(1 - e^{-2 tau^2 h}) z,
    W_j = int_0^{a h} e^u L_j(u) du   (nodes a (lambda_j - lambda_t)).
SA-Predictor of order p (Adams-Bashforth): the nodes are the current and p - 1 previous estimates.
SA-Corrector of order c (Adams-Moulton): once x0_hat at s is known, the same step is re-run from x_t
with s and the c - 1 latest nodes before it (t, ...) and the same z. That evaluation is the one the next
predictor needs, so the corrector costs no extra evaluation: one per step, NFE = number of steps.
With two nodes, the weight of the divided difference D = (x0_a - x0_b) / (lambda_a - lambda_b) is
a alpha_s h^2 / 2 instead of the exact a alpha_s (a h - 1 + e^{-a h}) / a^2: an O(h^3) change that
keeps the order, like UniPC's B(h) = h, as diffusers' ``SASolverScheduler`` does for few-step sampling.
The predictor of order 1 with tau = 0 is a DDIM step.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..parameterization import Cond, Denoiser
from ..processes import NoiseProcess
from ..space import Space
from ._common import Callback, Grid, denoise, finish, report, setup
from .deis import exp_poly_weights

PREDICTOR_ORDERS = (1, 2, 3)
CORRECTOR_ORDERS = (1, 2, 3, 4)


def _step(grid: Grid, i: int, x: Tensor, nodes: list[tuple[float, Tensor]], tau: float, z: Tensor | None) -> Tensor:
    """x at t_{i+1} from x at t_i, with x0_hat the polynomial in lambda through ``nodes``
    ((lambda_j, x0_j), newest first) and noise ``z`` (None when tau = 0)."""
    a, h = 1 + tau**2, grid.lam[i + 1] - grid.lam[i]
    weights = exp_poly_weights([a * lam for lam, _ in nodes], a * grid.lam[i], a * grid.lam[i + 1])
    integral = sum(w * x0 for w, (_, x0) in zip(weights, nodes))
    decay = math.exp(-tau**2 * h) * grid.sigma[i + 1] / grid.sigma[i]
    out = decay * x + grid.alpha[i + 1] * math.exp(-a * h) * integral
    if len(nodes) == 2:  # D's exact weight a alpha_s (a h + e^{-a h} - 1) / a^2 becomes a alpha_s h^2 / 2
        (lam_a, x0_a), (lam_b, x0_b) = nodes
        exact = (a * h + math.expm1(-a * h)) / a**2
        out = out + a * grid.alpha[i + 1] * (h * h / 2 - exact) * (x0_a - x0_b) / (lam_a - lam_b)
    if z is not None:
        out = out + grid.sigma[i + 1] * math.sqrt(-math.expm1(-2 * tau**2 * h)) * z
    return out


@torch.no_grad()
def sa_solver(denoiser: Denoiser, x: Tensor, ts: Tensor, *, process: NoiseProcess, space: Space | None = None,
              cond: Cond | None = None, predictor_order: int = 3, corrector_order: int = 4, tau: float = 0.0,
              generator: torch.Generator | None = None, callback: Callback | None = None) -> Tensor:
    """SA-Solver (Xue et al. 2023) with data prediction: an SA-Predictor of ``predictor_order`` 1-3
    and an SA-Corrector of ``corrector_order`` 1-4 (default 3 and 4: order 4 from the fourth step
    on), one evaluation per step (the corrector at t_{i+1} reuses the evaluation there at the predicted
    state, as diffusers' ``SASolverScheduler`` does), so NFE = ``len(ts) - 1``. Orders ramp up on the
    first steps and down on the last as that scheduler does (``lower_order_final``): on the step
    from t_i the predictor has order min(p, n - i, i + 1) and the corrector min(c, n - i + 1, i + 2),
    n = len(ts) - 1. The last step, to sigma = 0, returns x0_hat at the predicted state.
    ``tau`` > 0 samples the reverse SDE with noise scale tau (fresh noise from ``generator`` each step,
    reused by that step's corrector); tau = 0 (default) is the probability-flow ODE and draws nothing.
    The callback's ``x`` is the predicted state at t_{i+1} (where the denoiser is called next).

    Shapes: ``x`` any ``[B, ...]`` state at ts[0]; returns x0_hat at t = 0, shaped like ``x``.
    """
    if predictor_order not in PREDICTOR_ORDERS:
        raise ValueError(f"predictor_order must be 1, 2 or 3, got {predictor_order!r}")
    if corrector_order not in CORRECTOR_ORDERS:
        raise ValueError(f"corrector_order must be 1, 2, 3 or 4, got {corrector_order!r}")
    if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau >= 0):
        raise ValueError(f"tau must be a number >= 0 (0 = the probability-flow ODE), got {tau!r}")
    tau = float(tau)
    grid, space, cond = setup(process, ts, space, cond, "sa_solver")
    n = grid.steps
    x0: dict[int, Tensor] = {}
    x_start, z = x, None  # state the last predictor started from, and its noise
    for i in range(n - 1):
        x0[i] = denoise(denoiser, x, grid.t[i], space, cond)
        if i > 0:  # SA-Corrector of the step t_{i-1} -> t_i, now that x0_hat at t_i is known
            c = min(corrector_order, n - i + 2, i + 1)
            x = space.project(_step(grid, i - 1, x_start, [(grid.lam[j], x0[j]) for j in range(i, i - c, -1)], tau, z))
        p = min(predictor_order, n - i, i + 1)
        z = space.randn_like(x, generator) if tau > 0 else None
        x_start = x
        x = space.project(_step(grid, i, x, [(grid.lam[j], x0[j]) for j in range(i, i - p, -1)], tau, z))
        report(callback, i, grid, x, x0[i])
        x0.pop(i + 1 - max(predictor_order, corrector_order), None)
    return finish(denoiser, x, grid, space, cond, callback)

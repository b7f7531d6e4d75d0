"""DEIS (Zhang & Chen 2023): a multistep exponential integrator that fits a polynomial through the
last p estimates and integrates the probability-flow ODE's linear part exactly.

Two forms of the same exact solution of a step t -> s:
- "eps" (the paper's, and diffusers' ``DEISMultistepScheduler`` with "logrho"): in the
  variance-exploding view y = x / alpha at noise level rho = sigma / alpha the ODE is dy/drho = eps_hat,
      y_s = y_t + int_{rho_t}^{rho_s} eps_hat drho = y_t + int_{v_t}^{v_s} e^v eps_hat dv,   v = log rho,
  with eps_hat a polynomial in v through the previous estimates (Zhang & Chen 2023, eq. 14, "log-rho");
- "x0": the data prediction in lambda = log(alpha / sigma),
      x_s = (sigma_s / sigma_t) x_t + sigma_s int_{lambda_t}^{lambda_s} e^lambda x0_hat dlambda
  (Lu et al. 2022b, eq. 9), with x0_hat a polynomial in lambda (a multistep DPM-Solver++ of order p).
Both integrals are sum_j w_j f_j with w_j = int e^v L_j(v) dv over the Lagrange basis L_j, computed
exactly (``exp_poly_weights``).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..parameterization import Cond, Denoiser
from ..processes import NoiseProcess
from ..space import Space
from ._common import Callback, denoise, finish, report, setup

FORMS = ("eps", "x0")


def exp_poly_weights(nodes: list[float], start: float, end: float) -> list[float]:
    """w_j = int_start^end e^(v - start) L_j(v) dv, L_j the Lagrange basis polynomial of ``nodes``
    (L_j(nodes[k]) = [j == k]): the weights of the exact integral of e^v times the polynomial through
    the values at ``nodes``. They solve sum_j w_j u_j^k = m_k = int_0^H e^u u^k du (u = v - start,
    H = end - start), k < len(nodes); m_0 = e^H - 1, m_k = H^k e^H - k m_{k-1}."""
    big_h = end - start
    moments = [math.expm1(big_h)]
    for k in range(1, len(nodes)):
        moments.append(big_h**k * math.exp(big_h) - k * moments[-1])
    if len(nodes) == 1:
        return moments
    u = [node - start for node in nodes]
    vandermonde = torch.tensor([[u_j**k for u_j in u] for k in range(len(nodes))], dtype=torch.float64)
    return torch.linalg.solve(vandermonde, torch.tensor(moments, dtype=torch.float64)).tolist()


@torch.no_grad()
def deis(denoiser: Denoiser, x: Tensor, ts: Tensor, *, process: NoiseProcess, space: Space | None = None,
         cond: Cond | None = None, order: int = 3, form: str = "eps", generator: torch.Generator | None = None,
         callback: Callback | None = None) -> Tensor:
    """DEIS-p (Zhang & Chen 2023): p-step exponential integrator, one evaluation per step. The order
    ramps up from 1 on the first step and down on the last steps (the last, to sigma = 0, returns
    x0_hat), as diffusers' ``DEISMultistepScheduler`` with ``lower_order_final`` does below 15
    steps. ``form="eps"`` is that scheduler's log-rho DEIS ("tAB" in eps), ``form="x0"`` the same
    integrator on the data prediction in lambda. Order 1 is DDIM in both forms. ``generator`` is unused.

    Shapes: ``x`` any ``[B, ...]`` state at ts[0]; returns x0_hat at t = 0, shaped like ``x``.
    """
    if order not in (1, 2, 3):
        raise ValueError(f"order must be 1, 2 or 3, got {order!r}")
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS} (the polynomial is in eps_hat or in x0_hat), got {form!r}")
    grid, space, cond = setup(process, ts, space, cond, "deis")
    history: list[tuple[float, Tensor]] = []  # (node, estimate) of the last `order` steps, newest first
    for i in range(grid.steps - 1):
        x0_hat = denoise(denoiser, x, grid.t[i], space, cond)
        p = min(order, i + 1, grid.steps - i)
        if form == "eps":
            node, value = math.log(grid.scaled_sigma[i]), (x - grid.alpha[i] * x0_hat) / grid.sigma[i]
        else:
            node, value = grid.lam[i], x0_hat
        history = [(node, value)] + history[:order - 1]
        used = history[:p]
        if form == "eps":  # y_s = y_t + rho_t sum_j w_j eps_j, w over v = log rho
            weights = exp_poly_weights([n for n, _ in used], node, math.log(grid.scaled_sigma[i + 1]))
            y = x / grid.alpha[i] + grid.scaled_sigma[i] * sum(w * v for w, (_, v) in zip(weights, used))
            x = space.project(grid.alpha[i + 1] * y)
        else:  # x_s = (sigma_s / sigma_t) x_t + sigma_s e^{lambda_t} sum_j w_j x0_j, w over lambda
            weights = exp_poly_weights([n for n, _ in used], node, grid.lam[i + 1])
            scale = grid.sigma[i + 1] * grid.alpha[i] / grid.sigma[i]
            x = space.project(grid.sigma[i + 1] / grid.sigma[i] * x + scale * sum(w * v for w, (_, v) in zip(weights, used)))
        report(callback, i, grid, x, x0_hat)
    return finish(denoiser, x, grid, space, cond, callback)

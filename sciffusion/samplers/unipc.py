"""UniPC (Zhao et al. 2023): a multistep predictor, UniP, and a corrector, UniC, in lambda = log(alpha / sigma)
with the data prediction x0_hat. A step t -> s with h = lambda_s - lambda_t starts from the exact solution
    x_s = (sigma_s / sigma_t) x_t + sigma_s int_{lambda_t}^{lambda_s} e^lambda x0_hat dlambda
(Lu et al. 2022b, eq. 9). Expanding x0_hat in lambda around lambda_t, the k-th derivative enters with
the weight alpha_s h^{k+1} phi_{k+1}(-h), phi_1(z) = (e^z - 1) / z, phi_{k+1}(z) = (phi_k(z) - 1/k!) / z.
UniPC replaces the derivatives by divided differences of earlier estimates x0_j at lambda_j,
    D_m = (x0_m - x0_t) / r_m,   r_m = (lambda_m - lambda_t) / h,
and writes every update of order p as
    x_s = (sigma_s / sigma_t) x_t - alpha_s (e^{-h} - 1) x0_t - alpha_s B(-h) sum_m rho_m D_m,
with rho solving sum_m rho_m r_m^(q-1) = q! (-h) phi_{q+1}(-h) / B(-h), q = 1..(number of points)
(Zhao et al. 2023, Thm. 3.1 for UniC and its UniP counterpart, sec. 3; their appendix gives this
data-prediction form). UniP-p uses the p - 1 previous estimates and is order p; UniC re-runs the same
step once x0_s is known, adding it as the point r = 1 (p points, order p + 1, and no extra evaluation:
x0_s is the estimate the next predictor needs anyway). B(z) = z is "bh1", B(z) = e^z - 1 is "bh2".
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..parameterization import Cond, Denoiser
from ..processes import NoiseProcess
from ..space import Space
from ._common import Callback, Grid, denoise, finish, report, setup

VARIANTS = ("bh1", "bh2")


def _weights(rs: list[float], h: float, variant: str) -> list[float]:
    """rho with sum_m rho_m r_m^(q-1) = b_q = q! z phi_{q+1}(z) / B(z), z = -h, q = 1..len(rs)
    (Zhao et al. 2023, Thm. 3.1). With a single point (UniP-2, UniC-1) rho = b_1 + O(h) keeps the
    order, since rho multiplies B D = O(h^2); there the method takes the limit 1/2, as the authors'
    code and diffusers do, which makes UniP-2 with bh2 exactly DPM-Solver++(2M)."""
    if len(rs) == 1:
        return [0.5]
    z = -h
    big_b = z if variant == "bh1" else math.expm1(z)
    z_phi = math.expm1(z) / z - 1  # z phi_2(z); then z phi_{q+1}(z) = z phi_q(z) / z - 1/q!
    b = []
    for q in range(1, len(rs) + 1):
        b.append(math.factorial(q) * z_phi / big_b)
        z_phi = z_phi / z - 1 / math.factorial(q + 1)
    r_powers = torch.tensor([[r**q for r in rs] for q in range(len(rs))], dtype=torch.float64)
    return torch.linalg.solve(r_powers, torch.tensor(b, dtype=torch.float64)).tolist()


def _step(grid: Grid, i: int, x: Tensor, x0: dict[int, Tensor], points: list[int], variant: str,
          x0_new: Tensor | None = None) -> Tensor:
    """One UniPC update from t_i to t_{i+1}, from state x at t_i. ``points`` are the earlier grid
    indices whose estimates x0[j] enter as divided differences; ``x0_new`` (the corrector) adds
    x0_hat at t_{i+1} as the point r = 1."""
    h = grid.lam[i + 1] - grid.lam[i]
    rs = [(grid.lam[j] - grid.lam[i]) / h for j in points]
    diffs = [(x0[j] - x0[i]) / r for j, r in zip(points, rs)]
    if x0_new is not None:
        rs, diffs = rs + [1.0], diffs + [x0_new - x0[i]]
    out = grid.sigma[i + 1] / grid.sigma[i] * x - grid.alpha[i + 1] * math.expm1(-h) * x0[i]  # DDIM / order 1
    if diffs:
        big_b = -h if variant == "bh1" else math.expm1(-h)
        correction = sum(rho * d for rho, d in zip(_weights(rs, h, variant), diffs))
        out = out - grid.alpha[i + 1] * big_b * correction
    return out


@torch.no_grad()
def unipc(denoiser: Denoiser, x: Tensor, ts: Tensor, *, process: NoiseProcess, space: Space | None = None,
          cond: Cond | None = None, order: int = 2, variant: str = "bh2", corrector: bool = True,
          generator: torch.Generator | None = None, callback: Callback | None = None) -> Tensor:
    """UniPC-p (Zhao et al. 2023) with data prediction: UniP-p predictor and UniC corrector, one
    evaluation per step. The order ramps up from 1 on the first step and down to 1 on the last (to
    sigma = 0, where it returns x0_hat), as diffusers' ``UniPCMultistepScheduler`` with
    ``lower_order_final`` does. The corrector at t_{i+1} uses the evaluation made there at the
    predicted state, so the callback's ``x`` is that predicted state (where the denoiser is called
    next); the corrected state is what the following step starts from. With ``corrector=False``,
    order 2 and "bh2" this is DPM-Solver++(2M). ``generator`` is unused.

    Shapes: ``x`` any ``[B, ...]`` state at ts[0]; returns x0_hat at t = 0, shaped like ``x``.
    """
    if order not in (1, 2, 3):
        raise ValueError(f"order must be 1, 2 or 3, got {order!r}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS} (B(h) = h or e^h - 1), got {variant!r}")
    grid, space, cond = setup(process, ts, space, cond, "unipc")
    x0: dict[int, Tensor] = {}
    x_start, previous_order = x, 0  # state the last predictor started from, and its order
    for i in range(grid.steps - 1):
        x0[i] = denoise(denoiser, x, grid.t[i], space, cond)
        if corrector and i > 0:  # UniC-p after UniP-p: one order more (Zhao et al. 2023, Thm. 3.1)
            x = space.project(_step(grid, i - 1, x_start, x0, list(range(i - 2, i - 1 - previous_order, -1)),
                                    variant, x0_new=x0[i]))
        p = min(order, i + 1, grid.steps - i)  # warm-up and lower order at the end
        x_start, previous_order = x, p
        x = space.project(_step(grid, i, x, x0, list(range(i - 1, i - p, -1)), variant))
        x0.pop(i - order, None)
        report(callback, i, grid, x, x0[i])
    return finish(denoiser, x, grid, space, cond, callback)

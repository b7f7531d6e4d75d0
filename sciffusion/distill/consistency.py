"""Consistency models: a function f(x_t, t) that maps every point of a probability-flow trajectory to
its end x0, so that one evaluation samples (Song et al. 2023), trained either by distillation from a
teacher's ODE steps or directly from data (consistency training; easy consistency tuning, Geng et al.
2024, starting from a diffusion model's weights), and sampled by ``consistency`` in 1 to a few steps.

    parameterization: ConsistencyPrecond        f = c_skip(s) x/alpha + c_out(s) F(c_in x/alpha, c_noise)
    loss: ConsistencyDistillationLoss            d(f(x_t_n+1), sg f(teacher step to t_n))
    loss: ConsistencyTrainingLoss                d(f(x0 + t z), sg f(x0 + r z)),  r -> t over training
    sampler=consistency (sample_consistency)     x0 = f(x, t_0); x = alpha_i x0 + sigma_i z; x0 = f(x, t_i) ...

The target network is the student itself under stop-gradient (the EMA rate mu = 0 of improved
consistency training, Song & Dhariwal 2023, and of ECT), which keeps every state of the run in the
Trainer's checkpoint, so that a resumed run continues exactly.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..parameterization import Cond, Denoiser, EDMPrecond
from ..processes import NoiseProcess
from ..samplers._common import Callback, add_noise, denoise, finish, report, setup
from ..space import Space
from ..timesteps import karras
from .progressive import grid_index
from .teacher import Teacher, TeacherSource, loss_inputs, ode_step


class ConsistencyPrecond(EDMPrecond):
    """The consistency function's parametrisation (Song et al. 2023, App. C), for any process: EDM's
    preconditioning (``EDMPrecond``: the network sees x / alpha at noise level s = sigma / alpha) with
        c_skip = sd^2 / ((s - s_min)^2 + sd^2),   c_out = sd (s - s_min) / sqrt(s^2 + sd^2),
    so that f(x, s_min) = x exactly (the boundary condition). With ``sigma_min = 0`` it is EDMPrecond
    itself, whose weights (``train.init_from``) it takes unchanged in every case: the same c_in and c_noise.
    """

    def __init__(self, net, process: NoiseProcess, sigma_data: float = 0.5, sigma_min: float = 0.002):
        super().__init__(net, process, sigma_data)
        self.sigma_min = sigma_min

    def coefficients(self, s: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        sd, gap = self.sigma_data, s - self.sigma_min
        c_skip = sd**2 / (gap**2 + sd**2)
        c_out = sd * gap / (s**2 + sd**2).sqrt()
        c_in = 1 / (s**2 + sd**2).sqrt()
        return c_skip, c_out, c_in, s.log() / 4


@torch.no_grad()
def sample_consistency(denoiser: Denoiser, x: Tensor, ts: Tensor, *, process: NoiseProcess, space: Space | None = None,
                cond: Cond | None = None, generator: torch.Generator | None = None,
                callback: Callback | None = None) -> Tensor:
    """Multistep consistency sampling (Song et al. 2023, Alg. 1) from x at ts[0] down the grid ``ts``:
    x0_hat = f(x, t_0), then at each later time t_i (before the final 0) fresh noise
    x = alpha_i x0_hat + sigma_i z and x0_hat = f(x, t_i). ``steps`` evaluations for a grid of
    ``steps`` steps; one step is f(x, t_max). The grid's last noise level before 0 is where the
    last evaluation happens: keep it well above the data's noise floor (e.g. ``grid=karras
    grid_options.sigma_min=0.8``, Song et al.'s 2-step time for sigma_data = 0.5), else its step adds little."""
    grid, space, cond = setup(process, ts, space, cond, "sample_consistency")
    for i in range(grid.steps - 1):
        x0_hat = space.project(denoise(denoiser, x, grid.t[i], space, cond))
        x = add_noise(grid.alpha[i + 1] * x0_hat, grid.sigma[i + 1], space, generator)
        report(callback, i, grid, x, x0_hat)
    return finish(denoiser, x, grid, space, cond, callback)


def distance(a: Tensor, b: Tensor, space: Space, metric: str, c: float) -> Tensor:
    """d(a, b) [B] from the per-sample mean squared difference m: m ("l2"), or the pseudo-Huber
    sqrt(m + c^2) - c (Song & Dhariwal 2023, sec. 3.3; their c = 0.00054 sqrt(dim) on the norm is
    c = 0.00054 on the root mean square used here)."""
    m = space.average((a - b) ** 2)
    if metric == "l2":
        return m
    if metric == "pseudo_huber":
        return (m + c**2).sqrt() - c
    raise ValueError(f"unknown consistency metric {metric!r}; choose 'l2' or 'pseudo_huber'")


def _scaled_sigma(process: NoiseProcess, t: Tensor) -> Tensor:
    return process.sigma(t) / process.alpha(t)


class ConsistencyDistillationLoss:
    """Consistency distillation (Song et al. 2023, Alg. 2): on the Karras grid of N noise levels
    s_1 = sigma_min < ... < s_N = sigma_max, draw n in 1..N-1, x_{n+1} = alpha x0 + sigma z at s_{n+1},
    x_hat_n = one teacher ODE step (``solver``: "heun", the paper's, or "ddim") to s_n, and return
        lambda_n d(f(x_{n+1}, s_{n+1}), sg f(x_hat_n, s_n))  [B]
    with ``weighting`` "inverse_gap" (1 / (s_{n+1} - s_n)) and ``metric`` "pseudo_huber", the improvements of
    Song & Dhariwal 2023 (on the toy mixture they reach in 1500 steps what "uniform" and "l2", the 2023
    paper's, miss after 3000), or those. ``cond_dropout`` drops the condition of teacher and student alike.
    ``model`` is the student consistency function
    (``ConsistencyPrecond``, whose ``sigma_min`` should be this one)."""

    def __init__(self, process: NoiseProcess, *, teacher: TeacherSource = None, steps: int = 18,
                 sigma_min: float = 0.002, sigma_max: float | None = 80.0, rho: float = 7.0, solver: str = "heun",
                 metric: str = "pseudo_huber", huber_c: float = 0.00054, weighting: str = "inverse_gap",
                 teacher_guidance: Any = None, cond_dropout: float = 0.0):
        if steps < 2:
            raise ValueError(f"loss.steps (the number of noise levels N) must be at least 2, got {steps}")
        if weighting not in ("uniform", "inverse_gap"):
            raise ValueError(f"unknown weighting {weighting!r}; choose 'uniform' or 'inverse_gap'")
        if solver not in ("heun", "ddim"):
            raise ValueError(f"unknown teacher solver {solver!r}; choose 'heun' or 'ddim'")
        self.process, self.solver, self.metric, self.huber_c, self.weighting = process, solver, metric, huber_c, weighting
        self.cond_dropout = cond_dropout
        self.teacher = Teacher(teacher, process=process, guidance=teacher_guidance)
        self.levels = karras(process, steps, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho)[:-1]  # t_N > ... > t_1

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """The upper times t_{n+1} [n], n uniform in 1..N-1."""
        device = torch.device("cpu") if generator is None else generator.device
        k = torch.randint(len(self.levels) - 1, (n,), generator=generator, device=device)
        return self.levels.to(device)[k]

    def __call__(self, model, x0: Tensor, *, space: Space | None = None, cond: Cond | None = None,
                 t: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        space, cond, t = loss_inputs(self, x0, space, cond, t, generator)
        levels = self.levels.to(x0.device)
        k = grid_index(levels[:-1], t, "consistency distillation")
        t, s = levels[k], levels[k + 1]
        x0 = space.project(x0)
        fit = lambda v: space.per_sample(v.to(x0.dtype), x0)  # noqa: E731
        x_t = fit(self.process.alpha(t)) * x0 + fit(self.process.sigma(t)) * space.randn_like(x0, generator)
        t, s32 = t.to(x0.dtype), s.to(x0.dtype)
        with torch.no_grad():
            teacher = self.teacher.denoiser(x0.device)
            self.teacher.same_process()
            x_s = ode_step(teacher, x_t, t, s32, process=self.process, space=space, cond=cond, solver=self.solver)
            target = model(x_s, s32, space, cond)
        loss = distance(model(x_t, t, space, cond), target, space, self.metric, self.huber_c)
        if self.weighting == "inverse_gap":
            loss = loss / (_scaled_sigma(self.process, levels[k]) - _scaled_sigma(self.process, levels[k + 1])).to(loss)
        return loss


class ConsistencyTrainingLoss:
    """Easy consistency tuning / training (Geng et al. 2024, ECT): no teacher; the same noise z at two
    noise levels s > r of the variance-exploding view,
        d(f(x0 + s z, s), sg f(x0 + r z, r)) / (s - r)   [B]   (f(., 0) = x0 exactly),
    with log s ~ N(p_mean, p_std^2) and r / s = max(0, 1 - n(s) / q^a), n(s) = 1 + k sigmoid(-b s), where
    the stage a = floor(stages * step / steps) grows over the run (``set_progress``): stage 0 is r = 0,
    the diffusion loss, and each stage shrinks the gap by q. Started from a diffusion model's weights
    (``train.init_from``) it is consistency tuning, from scratch consistency training."""

    def __init__(self, process: NoiseProcess, *, p_mean: float = -1.1, p_std: float = 2.0, q: float = 2.0,
                 stages: int = 8, k: float = 8.0, b: float = 1.0, metric: str = "l2", huber_c: float = 0.00054,
                 cond_dropout: float = 0.0):
        if q <= 1 or stages < 1:
            raise ValueError(f"need q > 1 and stages >= 1, got q={q}, stages={stages}")
        self.process, self.p_mean, self.p_std, self.q, self.stages = process, p_mean, p_std, q, stages
        self.k, self.b, self.metric, self.huber_c, self.cond_dropout = k, b, metric, huber_c, cond_dropout
        self.stage = 0

    def set_progress(self, step: int, total: int) -> None:
        """Called by the Trainer before each step: the stage of the gap schedule at ``step`` of ``total``."""
        self.stage = min(self.stages - 1, self.stages * step // max(total, 1))

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        device = torch.device("cpu") if generator is None else generator.device
        s = torch.exp(self.p_mean + self.p_std * torch.randn(n, generator=generator, dtype=torch.float64, device=device))
        return self.process.t_from_scaled_sigma(s).clamp(max=self.process.t_max)

    def gap_ratio(self, s: Tensor) -> Tensor:
        """r / s [B] at the current stage (Geng et al. 2024, sec. 3, with their sigmoid n(t))."""
        n = 1 + self.k * torch.sigmoid(-self.b * s)
        return (1 - n / self.q**self.stage).clamp(min=0)

    def __call__(self, model, x0: Tensor, *, space: Space | None = None, cond: Cond | None = None,
                 t: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        space, cond, t = loss_inputs(self, x0, space, cond, t, generator)
        t = t.to(device=x0.device, dtype=torch.float64)
        s = _scaled_sigma(self.process, t)
        s_r = s * self.gap_ratio(s)
        at_data = s_r == 0  # f(x0, 0) = x0: the target needs no evaluation there
        r = torch.where(at_data, t, self.process.t_from_scaled_sigma(s_r.clamp(min=1e-12)))
        x0 = space.project(x0)
        z = space.randn_like(x0, generator)
        fit = lambda v: space.per_sample(v.to(x0.dtype), x0)  # noqa: E731
        x_t = fit(self.process.alpha(t)) * x0 + fit(self.process.sigma(t)) * z
        x_r = fit(self.process.alpha(r)) * x0 + fit(self.process.sigma(r)) * z
        with torch.no_grad():
            target = torch.where(fit(at_data.double()) > 0, x0, model(x_r, r.to(x0.dtype), space, cond))
        loss = distance(model(x_t, t.to(x0.dtype), space, cond), target, space, self.metric, self.huber_c)
        return loss / (s - s_r).to(loss)

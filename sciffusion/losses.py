"""Denoising score matching and flow matching as one per-sample loss.

For a network predicting target T, the loss at time t is

    w(t) * mean_i (T_hat - T)_i^2,      w(t) = lambda(t) / scale_T(t)^2,

where lambda(t) is the chosen weighting *on x0 errors* and scale_T = |dT/dx0| at fixed x_t, so
that every weighting means the same thing whatever the network predicts (Kingma & Gao 2023 write
all common losses this way). "uniform" is the plain MSE of the network's own target: DDPM's
simple loss for eps, the v-loss for v, flow matching for velocity on the linear interpolant.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .parameterization import Coefficients, Cond, edm_loss_weight
from .processes import NoiseProcess
from .space import Space, require_space

DROP = "drop"  # cond[DROP] ([B] bool): these samples' conditions are dropped (classifier-free guidance)
SELF_COND = "self_cond"  # cond[SELF_COND]: the previous x0 estimate, for self-conditioning (Chen et al. 2022)


def _snr(c: Coefficients) -> Tensor:
    return (c.alpha / c.sigma) ** 2


WEIGHTINGS: dict[str, Callable[..., Tensor]] = {
    "x0": lambda c, **_: torch.ones_like(c.alpha),
    "snr": lambda c, **_: _snr(c),  # = uniform on eps errors (Ho et al. 2020)
    "min_snr": lambda c, *, gamma=5.0, **_: torch.clamp(_snr(c), max=gamma),  # Hang et al. 2023
    "v": lambda c, **_: (c.alpha**2 + c.sigma**2) ** 2 / c.sigma**2,  # = uniform on v errors
    "edm": lambda c, *, sigma_data=0.5, **_: edm_loss_weight(c.sigma / c.alpha, sigma_data),  # Karras 2022 eq. 8
}


def _device(generator: torch.Generator | None) -> torch.device:
    return torch.device("cpu") if generator is None else generator.device


def sample_time_uniform(n: int, process: NoiseProcess, generator=None, *, t_min: float = 1e-5, **_) -> Tensor:
    u = torch.rand(n, generator=generator, dtype=torch.float64, device=_device(generator))
    return t_min + (process.t_max - t_min) * u


def sample_time_log_normal(n: int, process: NoiseProcess, generator=None, *, p_mean: float = -1.2,
                           p_std: float = 1.2, **_) -> Tensor:
    """log(sigma / alpha) ~ N(p_mean, p_std^2) (Karras et al. 2022, sec. 5)."""
    log_sigma = p_mean + p_std * torch.randn(n, generator=generator, dtype=torch.float64, device=_device(generator))
    return process.t_from_log_snr(-2 * log_sigma).clamp(max=process.t_max)


def sample_time_logit_normal(n: int, process: NoiseProcess, generator=None, *, mean: float = 0.0,
                             std: float = 1.0, **_) -> Tensor:
    """t = sigmoid(N(mean, std^2)) (Esser et al. 2024, SD3, sec. 3.1)."""
    t = torch.sigmoid(mean + std * torch.randn(n, generator=generator, dtype=torch.float64, device=_device(generator)))
    return t.clamp(max=process.t_max)


def sample_time_beta(n: int, process: NoiseProcess, generator=None, *, a: int = 1, b: int = 2, **_) -> Tensor:
    """t ~ Beta(a, b) for whole a, b: the a-th smallest of a + b - 1 uniforms (exact, and driven by
    ``generator`` so training stays reproducible). With t = 0 data, Beta(1, 2) leans towards the data
    end: SemlaFlow's Beta(2, 1) in flow time (Irwin et al. 2024)."""
    if int(a) != a or int(b) != b or a < 1 or b < 1:
        raise ValueError(f"the beta time law takes whole a, b >= 1, got a={a}, b={b}")
    u = torch.rand(n, int(a + b - 1), generator=generator, dtype=torch.float64, device=_device(generator))
    return torch.sort(u, dim=1).values[:, int(a) - 1].clamp(1e-5, process.t_max)


TIME_SAMPLERS = {
    "beta": sample_time_beta,
    "uniform": sample_time_uniform,
    "log_normal": sample_time_log_normal,
    "logit_normal": sample_time_logit_normal,
}


def _choose(table: dict, name: str, what: str):
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; choose one of {sorted(table)}")
    return table[name]


def drop_condition(cond: Cond, batch_size: int, p: float, generator=None, device=None) -> Cond:
    """Mark a random fraction ``p`` of samples as unconditional (condition dropout for CFG)."""
    if not cond or p <= 0:
        return cond
    drop = torch.rand(batch_size, generator=generator, device=device) < p
    if DROP in cond:
        drop = drop | cond[DROP]
    return {**cond, DROP: drop}


class DiffusionLoss:
    """Per-sample denoising loss for any process, target, weighting and time distribution.

    ``model`` is anything with ``.target`` and ``.predict(x_t, t, space, cond)`` returning its
    prediction of that target (``ModelDenoiser``, ``EDMPrecond``). Returns the loss ``[B]``.
    Masked entries (``DenseSpace(mask=...)``) are zeroed before noising and do not count;
    ``DenseSpace(weights=...)`` makes the per-sample mean a weighted one (see ``DenseSpace``).
    ``coupling`` pairs data with noise (``sciffusion.couplings``: minibatch or equivariant OT).
    ``self_condition``: the probability that a step first computes the model's own x0 estimate
    (no gradient) and passes it in ``cond["self_cond"]``; sample with ``SelfConditioning``.
    """

    def __init__(self, process: NoiseProcess, *, weighting: str = "uniform", time_distribution: str = "uniform",
                 cond_dropout: float = 0.0, weighting_options: dict | None = None,
                 time_options: dict | None = None, coupling: str = "independent", self_condition: float = 0.0):
        if weighting != "uniform":
            _choose(WEIGHTINGS, weighting, "loss weighting")
        _choose(TIME_SAMPLERS, time_distribution, "training time distribution")
        if not 0 <= cond_dropout < 1:
            raise ValueError(f"cond_dropout is a probability in [0, 1), got {cond_dropout}")
        self.process, self.weighting, self.time_distribution = process, weighting, time_distribution
        self.cond_dropout = cond_dropout
        self.weighting_options = dict(weighting_options or {})
        self.time_options = dict(time_options or {})
        if not 0 <= self_condition <= 1:
            raise ValueError(f"self_condition is a probability in [0, 1], got {self_condition}")
        self.self_condition = self_condition
        from .couplings import get_coupling

        self.coupling = get_coupling(coupling)

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return TIME_SAMPLERS[self.time_distribution](n, self.process, generator, **self.time_options)

    def weight(self, model, t: Tensor) -> Tensor:
        """w(t) [B] applied to the mean squared error of the model's own target."""
        if self.weighting == "uniform":
            return torch.ones_like(t)
        p = self.process
        c = Coefficients(p.alpha(t), p.sigma(t), p.d_alpha(t), p.d_sigma(t))
        lam = WEIGHTINGS[self.weighting](c, **self.weighting_options)
        return lam / model.target.x0_error_scale(c) ** 2

    def __call__(self, model, x0: Tensor, *, space: Space | None = None, cond: Cond | None = None,
                 t: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        space = require_space(space, type(self).__name__)
        batch = space.batch_size(x0)
        if t is None:
            t = self.sample_time(batch, generator)
        t = t.to(device=x0.device, dtype=torch.float64)
        x0 = space.project(x0)
        eps = self.coupling(x0, space.randn_like(x0, generator), space)
        c = Coefficients.at(self.process, t.to(x0.dtype), x0, space)
        x_t = c.alpha * x0 + c.sigma * eps
        target = model.target.from_x0_eps(x0, eps, c)
        cond = drop_condition(cond or {}, batch, self.cond_dropout, generator, x0.device)
        if self.self_condition and float(torch.rand((), generator=generator, device=_device(generator))) < self.self_condition:
            with torch.no_grad():  # Chen et al. 2022: the network's own estimate, without gradient
                cond = {**cond, SELF_COND: model(x_t, t.to(x0.dtype), space, cond).detach()}
        out = model.predict(x_t, t.to(x0.dtype), space, cond)
        if out.shape != target.shape:
            raise ValueError(f"the network returned shape {tuple(out.shape)} for data of shape {tuple(target.shape)}; "
                             "it must predict a tensor shaped like its input")
        # per-sample mean over counted entries; weighted where the space carries quadrature weights
        # (e.g. cos(latitude) on a lat-lon grid), so the loss is an area mean like the metrics
        sq = (out - target) ** 2
        mse = space.average(sq)
        return self.weight(model, t).to(mse) * mse


def score_matching_loss(process: NoiseProcess, **kwargs) -> DiffusionLoss:
    """Denoising score matching (Vincent 2011; Song et al. 2021); pair with an eps, v or score model."""
    return DiffusionLoss(process, **kwargs)


def flow_matching_loss(process: NoiseProcess | None = None, **kwargs) -> DiffusionLoss:
    """Conditional flow matching (Lipman et al. 2023): the uniform loss of a velocity model, by default on
    the linear interpolant with logit-normal times."""
    from .processes import LinearInterpolant

    kwargs.setdefault("time_distribution", "logit_normal")
    return DiffusionLoss(process or LinearInterpolant(), **kwargs)

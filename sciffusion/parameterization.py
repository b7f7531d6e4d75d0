"""What the network predicts, exact conversions between targets, and denoiser wrappers.

With x_t = alpha x0 + sigma eps (see ``processes``), a network may predict
    eps       the noise                                   (Ho et al. 2020)
    x0        the clean data
    v         alpha eps - sigma x0                        (Salimans & Ho 2022)
    velocity  d_alpha x0 + d_sigma eps = dx_t/dt          (flow matching, Lipman et al. 2023)
    score     grad log p_t(x_t) = -eps / sigma            (Song et al. 2021)
Each target is a small class with ``from_x0_eps`` (the training target) and ``to_x0_eps`` (the
estimates a sampler needs). Coefficients arrive already broadcast onto the data.

Everything downstream speaks one protocol, the *denoiser*:
    denoiser(x_t [shaped like the batch], t [B], space, cond: dict) -> x0_hat [shaped like x_t]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from torch import Tensor, nn

from .processes import NoiseProcess
from .space import Space, require_space

Cond = dict[str, Tensor]


class Denoiser(Protocol):
    def __call__(self, x: Tensor, t: Tensor, space: Space, cond: Cond) -> Tensor: ...


@dataclass(frozen=True)
class Coefficients:
    """alpha, sigma and their time derivatives at t, broadcast onto the data."""

    alpha: Tensor
    sigma: Tensor
    d_alpha: Tensor
    d_sigma: Tensor

    @classmethod
    def at(cls, process: NoiseProcess, t: Tensor, x: Tensor, space: Space) -> "Coefficients":
        fit = lambda v: space.per_sample(v, x)
        return cls(fit(process.alpha(t)), fit(process.sigma(t)), fit(process.d_alpha(t)), fit(process.d_sigma(t)))


def x0_from_eps(x: Tensor, eps: Tensor, c: Coefficients) -> Tensor:
    return (x - c.sigma * eps) / c.alpha


def eps_from_x0(x: Tensor, x0: Tensor, c: Coefficients) -> Tensor:
    return (x - c.alpha * x0) / c.sigma


class Target:
    """A prediction target: the map between (x0, eps) and what the network outputs."""

    name: str

    def from_x0_eps(self, x0: Tensor, eps: Tensor, c: Coefficients) -> Tensor:
        raise NotImplementedError

    def to_x0_eps(self, out: Tensor, x: Tensor, c: Coefficients) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def x0_error_scale(self, c: Coefficients) -> Tensor:
        """|d target / d x0| at fixed x_t, so that ||out - target||^2 = scale^2 ||x0_hat - x0||^2."""
        raise NotImplementedError


class EpsTarget(Target):
    name = "eps"

    def from_x0_eps(self, x0, eps, c):
        return eps

    def to_x0_eps(self, out, x, c):
        return x0_from_eps(x, out, c), out

    def x0_error_scale(self, c):
        return c.alpha / c.sigma


class X0Target(Target):
    name = "x0"

    def from_x0_eps(self, x0, eps, c):
        return x0

    def to_x0_eps(self, out, x, c):
        return out, eps_from_x0(x, out, c)

    def x0_error_scale(self, c):
        return torch.ones_like(c.alpha)


class VTarget(Target):
    name = "v"

    def from_x0_eps(self, x0, eps, c):
        return c.alpha * eps - c.sigma * x0

    def to_x0_eps(self, out, x, c):
        norm = c.alpha**2 + c.sigma**2
        return (c.alpha * x - c.sigma * out) / norm, (c.sigma * x + c.alpha * out) / norm

    def x0_error_scale(self, c):
        return (c.alpha**2 + c.sigma**2) / c.sigma


class VelocityTarget(Target):
    name = "velocity"

    def from_x0_eps(self, x0, eps, c):
        return c.d_alpha * x0 + c.d_sigma * eps

    def to_x0_eps(self, out, x, c):
        # out = d_alpha x0 + d_sigma (x - alpha x0) / sigma, solved for x0
        det = c.d_alpha * c.sigma - c.d_sigma * c.alpha
        x0 = (c.sigma * out - c.d_sigma * x) / det
        eps = (c.d_alpha * x - c.alpha * out) / det
        return x0, eps

    def x0_error_scale(self, c):
        return (c.d_alpha * c.sigma - c.d_sigma * c.alpha).abs() / c.sigma


class ScoreTarget(Target):
    name = "score"

    def from_x0_eps(self, x0, eps, c):
        return -eps / c.sigma

    def to_x0_eps(self, out, x, c):
        eps = -c.sigma * out
        return x0_from_eps(x, eps, c), eps

    def x0_error_scale(self, c):
        return c.alpha / c.sigma**2


TARGETS: dict[str, Target] = {t.name: t for t in (EpsTarget(), X0Target(), VTarget(), VelocityTarget(), ScoreTarget())}


def get_target(name: str | Target) -> Target:
    if isinstance(name, Target):
        return name
    if name not in TARGETS:
        raise ValueError(f"unknown prediction target {name!r}; choose one of {sorted(TARGETS)}")
    return TARGETS[name]


def convert(out: Tensor, x: Tensor, c: Coefficients, source: str | Target, dest: str | Target) -> Tensor:
    """Turn a prediction of one target into the equivalent prediction of another."""
    x0, eps = get_target(source).to_x0_eps(out, x, c)
    return get_target(dest).from_x0_eps(x0, eps, c)


def eps_from_denoised(x: Tensor, x0_hat: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
    """eps_hat from a denoiser's output, with scalar or broadcast coefficients."""
    return (x - alpha * x0_hat) / sigma


def velocity_from_denoised(x, x0_hat, alpha, sigma, d_alpha, d_sigma) -> Tensor:
    """The probability-flow velocity E[dx_t/dt | x_t] = d_alpha x0_hat + d_sigma eps_hat."""
    return d_alpha * x0_hat + d_sigma * eps_from_denoised(x, x0_hat, alpha, sigma)


class Network(Protocol):
    """What a domain's network is: ``net(x_t, t [B], space, cond) -> prediction``."""

    def __call__(self, x: Tensor, t: Tensor, space: Space, cond: Cond) -> Tensor: ...


class ModelDenoiser(nn.Module):
    """A network that predicts ``target``, seen as a denoiser x0_hat = D(x_t, t).

    ``time_input`` maps t to what the network was trained to receive: by default t itself; for a
    network trained on DDPM's integer steps, ``DiscreteVP.timestep`` (k = N t - 1).
    """

    def __init__(self, net: nn.Module | Callable, process: NoiseProcess, target: str | Target = "eps", *,
                 time_input: Callable[[Tensor], Tensor] | None = None):
        super().__init__()
        self.net, self.process, self.target = net, process, get_target(target)
        self.time_input = time_input

    def predict(self, x: Tensor, t: Tensor, space: Space | None = None, cond: Cond | None = None) -> Tensor:
        """The network's raw prediction of its own target."""
        t_in = t if self.time_input is None else self.time_input(t)
        return self.net(x, t_in, require_space(space, type(self).__name__), cond or {})

    def forward(self, x: Tensor, t: Tensor, space: Space | None = None, cond: Cond | None = None) -> Tensor:
        space = require_space(space, type(self).__name__)
        out = self.predict(x, t, space, cond)
        x0_hat, _ = self.target.to_x0_eps(out, x, Coefficients.at(self.process, t, x, space))
        return x0_hat


class EDMPrecond(nn.Module):
    """EDM preconditioning (Karras et al. 2022, Table 1), for any process.

    The network sees the variance-exploding view x_t / alpha at noise level s = sigma / alpha:
        c_skip = sd^2 / (s^2 + sd^2),  c_out = s sd / sqrt(s^2 + sd^2),
        c_in = 1 / sqrt(s^2 + sd^2),   c_noise = log(s) / 4,
        D(x) = c_skip x + c_out F(c_in x, c_noise).
    It is a denoiser (target ``x0``); ``F`` receives c_noise in place of t.
    """

    target = X0Target()

    def __init__(self, net: nn.Module | Callable, process: NoiseProcess, sigma_data: float = 0.5):
        super().__init__()
        self.net, self.process, self.sigma_data = net, process, sigma_data

    def coefficients(self, s: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        sd = self.sigma_data
        c_skip = sd**2 / (s**2 + sd**2)
        c_out = s * sd / (s**2 + sd**2).sqrt()
        c_in = 1 / (s**2 + sd**2).sqrt()
        c_noise = s.log() / 4
        return c_skip, c_out, c_in, c_noise

    def forward(self, x: Tensor, t: Tensor, space: Space | None = None, cond: Cond | None = None) -> Tensor:
        space = require_space(space, type(self).__name__)
        alpha = space.per_sample(self.process.alpha(t), x)
        s = self.process.scaled_sigma(t)
        c_skip, c_out, c_in, c_noise = (space.per_sample(c, x) for c in self.coefficients(s))
        x_ve = x / alpha
        f_x = self.net(c_in * x_ve, c_noise.reshape(s.shape), space, cond or {})
        return c_skip * x_ve + c_out * f_x

    predict = forward


def edm_loss_weight(scaled_sigma: Tensor, sigma_data: float = 0.5) -> Tensor:
    """lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2 (Karras et al. 2022, eq. 8), on x0 errors."""
    return (scaled_sigma**2 + sigma_data**2) / (scaled_sigma * sigma_data) ** 2


__all__ = [
    "Coefficients", "Cond", "Denoiser", "EDMPrecond", "ModelDenoiser", "Network", "TARGETS", "Target",
    "convert", "edm_loss_weight", "eps_from_denoised", "eps_from_x0", "get_target", "velocity_from_denoised",
    "x0_from_eps",
]

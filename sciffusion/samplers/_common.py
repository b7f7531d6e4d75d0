"""What every sampler shares: the checked grid with its coefficients, the denoiser call, noise
injection, the final denoising step and the per-step callback.

Sampling runs under ``torch.no_grad()``: nothing a sampler computes is differentiated, and keeping
the graph of every step would hold the whole trajectory in memory. A denoiser that needs gradients
(guidance) turns them back on inside its call with ``torch.enable_grad()``, which takes precedence.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from ..parameterization import Cond, Denoiser
from ..processes import NoiseProcess
from ..space import Space, require_space
from ..timesteps import custom

Callback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Grid:
    """A checked time grid t_0 > ... > t_n = 0 and the process's coefficients there, as floats
    (one vectorised call per coefficient, so a step costs no process arithmetic)."""

    t: list[float]
    alpha: list[float]
    sigma: list[float]
    d_alpha: list[float]
    d_sigma: list[float]
    scaled_sigma: list[float]  # sigma / alpha, the noise level of the variance-exploding view x / alpha
    lam: list[float]  # log(alpha / sigma), DPM-Solver's lambda (Lu et al. 2022a); inf where sigma = 0

    @classmethod
    def of(cls, process: NoiseProcess, ts: Tensor | list[float]) -> "Grid":
        ts = custom(ts)
        alpha, sigma = process.alpha(ts), process.sigma(ts)
        return cls(ts.tolist(), alpha.tolist(), sigma.tolist(), process.d_alpha(ts).tolist(),
                   process.d_sigma(ts).tolist(), (sigma / alpha).tolist(), (0.5 * process.log_snr(ts)).tolist())

    @property
    def steps(self) -> int:
        return len(self.t) - 1


def setup(process: NoiseProcess, ts: Tensor | list[float], space: Space | None,
          cond: Cond | None, sampler: str) -> tuple[Grid, Space, Cond]:
    """The grid, the space (required: a missing one is a TypeError naming ``sampler``) and the condition."""
    return Grid.of(process, ts), require_space(space, sampler), ({} if cond is None else cond)


def denoise(denoiser: Denoiser, x: Tensor, t: float, space: Space, cond: Cond) -> Tensor:
    """x0_hat = D(x, t) with t as a ``[B]`` tensor in x's dtype."""
    return denoiser(x, x.new_full((space.batch_size(x),), t), space, cond)


def add_noise(mean: Tensor, std: float | Tensor, space: Space, generator: torch.Generator | None) -> Tensor:
    """mean + std * z, z ~ N(0, I) in the sample subspace, projected back onto it. ``std`` is a
    float or a per-element tensor; a zero float draws nothing, so deterministic steps use no randomness."""
    if isinstance(std, float) and std == 0.0:
        return space.project(mean)
    return space.project(mean + std * space.randn_like(mean, generator))


def report(callback: Callback | None, i: int, grid: Grid, x: Tensor, x0_hat: Tensor) -> None:
    if callback is not None:
        callback({"i": i, "t": grid.t[i], "t_next": grid.t[i + 1], "x": x, "x0_hat": x0_hat})


def finish(denoiser: Denoiser, x: Tensor, grid: Grid, space: Space, cond: Cond,
           callback: Callback | None) -> Tensor:
    """The last step, to t = 0, returns the denoised estimate x0_hat (the grid convention of
    ``sciffusion.timesteps``). For alpha(0) = 1, sigma(0) = 0 it is what DDIM, Euler in the
    variance-exploding view and DPM-Solver++ all give when their next noise level is zero."""
    i = grid.steps - 1
    x0_hat = space.project(denoise(denoiser, x, grid.t[i], space, cond))
    report(callback, i, grid, x0_hat, x0_hat)
    return x0_hat


def prior_sample(process: NoiseProcess, shape_like: Tensor, *, t: float | None = None, space: Space | None = None,
                 generator: torch.Generator | None = None) -> Tensor:
    """A draw from the prior N(0, sigma(t)^2 I) shaped like ``shape_like`` (in ``space``'s subspace:
    required, ``DenseSpace()`` for plain ``[B, ...]`` tensors), at ``t`` (default ``process.t_max``).
    The signal part alpha(t) x0 is dropped: at t_max it is negligible for diffusion processes and
    exactly zero for the linear interpolant at t = 1."""
    space = require_space(space, "prior_sample")
    t = process.t_max if t is None else t
    sigma = float(process.sigma(torch.tensor(t, dtype=torch.float64)))
    return sigma * space.randn_like(shape_like, generator)


class CountedDenoiser:
    """A denoiser that counts its calls in ``count`` (the number of function evaluations, NFE)."""

    def __init__(self, denoiser: Denoiser):
        self.denoiser, self.count = denoiser, 0

    def __call__(self, x: Tensor, t: Tensor, space: Space, cond: Cond) -> Tensor:
        self.count += 1
        return self.denoiser(x, t, space, cond)


def count_evaluations(denoiser: Denoiser) -> CountedDenoiser:
    """Wrap ``denoiser`` so that ``wrapper.count`` is the number of times it has been called."""
    return CountedDenoiser(denoiser)


def sqrt_clamped(value: float) -> float:
    """sqrt of a variance that is non-negative in exact arithmetic but may round to -1e-17."""
    return math.sqrt(max(value, 0.0))

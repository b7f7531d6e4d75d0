"""Mean + residual diffusion: a deterministic predictor gives the conditional mean, a diffusion model
the rest (CorrDiff: Mardani et al. 2024, "Residual corrective diffusion modeling for km-scale
atmospheric downscaling", eqs. 3-5).

A predictor ``mu = predictor(cond)`` (a regression network trained first, a linear inverse model's
forecast mean, any callable; held fixed) splits the data into ``x = mu + r``. The diffusion model
learns only the residual ``r``, whose distribution is narrower and closer to stationary than the
data's. Under ``x_t = alpha x + sigma eps`` the noisy data and the noisy residual differ by the
known ``alpha mu``,

    x_t = alpha mu + (alpha r + sigma eps) = alpha mu + r_t,

so a denoiser of the residual D_r becomes a denoiser of the data under the same process,

    D_x(x_t, t, cond) = mu + D_r(x_t - alpha mu, t, cond),

exactly, and every sampler, guidance and likelihood written for denoisers of ``x`` runs on it
unchanged (data assimilation observes ``x``, not ``r``). The residual model also sees ``mu`` as a
condition, under ``cond["mean"]``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .parameterization import Cond, Denoiser
from .processes import NoiseProcess
from .space import Space, require_space

#: Where the residual model finds the predictor's mean among its conditions.
MEAN = "mean"

Predictor = Callable[[Cond], Tensor]


def predict_mean(predictor: Predictor, cond: Cond, like: Tensor, space: Space) -> Tensor:
    """``predictor(cond)`` without gradient, checked against the data ``like [B, ...]`` and projected
    onto the sample space (masked entries zero), so that ``like - mean`` lies in it too."""
    with torch.no_grad():
        mean = predictor(cond)
    if mean.shape != like.shape:
        raise ValueError(f"the predictor returned shape {tuple(mean.shape)} for data of shape {tuple(like.shape)}; "
                         "it must give the conditional mean of each sample, shaped like the data")
    return space.project(mean.to(like))


class ResidualLoss:
    """Trains a diffusion model on the residual ``x0 - predictor(cond)`` with ``loss`` (a
    ``DiffusionLoss``, or anything with its ``sample_time`` and call): a drop-in training loss
    (``TrainingLoss``) for the loop. Returns the per-sample loss ``[B]``."""

    def __init__(self, loss, predictor: Predictor):
        self.loss, self.predictor = loss, predictor

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.loss.sample_time(n, generator)

    def __call__(self, model, x0: Tensor, *, space: Space | None = None, cond: Cond | None = None,
                 t: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        space, cond = require_space(space, type(self).__name__), dict(cond or {})
        mean = predict_mean(self.predictor, cond, x0, space)
        return self.loss(model, x0 - mean, space=space, cond={**cond, MEAN: mean}, t=t, generator=generator)


class ResidualDenoiser:
    """The denoiser of the data ``D_x(x_t, t, space, cond) = mu + D_r(x_t - alpha(t) mu, t, space,
    cond + {"mean": mu})`` made of a residual denoiser ``D_r`` and the predictor; ``x_t [B, ...]``,
    ``t [B]``. Sample it like any denoiser: the samples are of ``x``."""

    def __init__(self, residual: Denoiser, predictor: Predictor, process: NoiseProcess):
        self.residual, self.predictor, self.process = residual, predictor, process

    def __call__(self, x: Tensor, t: Tensor, space: Space | None = None, cond: Cond | None = None) -> Tensor:
        space, cond = require_space(space, type(self).__name__), dict(cond or {})
        mean = predict_mean(self.predictor, cond, x, space)
        alpha = space.per_sample(self.process.alpha(torch.as_tensor(t)).to(x), x)
        return mean + self.residual(x - alpha * mean, t, space, {**cond, MEAN: mean})

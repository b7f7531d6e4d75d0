"""Multi-model ensembles: a model's ensemble combined with a Gaussian forecast (the LIM's), and the
simple spread fix of inflating an ensemble about its mean, scored the project's way.

Shapes as in :mod:`.scores`: an ensemble ``[M, *S]`` (members first), a Gaussian forecast's
``mean, std [*S]`` per point, the truth ``[*S]``; area means over ``[*S, H, W]`` with ``lat [H]``.

Two ways to combine, both the standard practice of seasonal forecasting centres (the NMME pools
its models' members):

- :func:`pool`: the members of both, e.g. the ensemble plus K draws from the Gaussian
  (:func:`gaussian_members`, or a model's own joint draws). The pooled ensemble is scored like any
  other (``scores.crps(..., fair=True)``), every member treated as exchangeable.
- :func:`mixture_crps`: the mixture ``w * ensemble + (1 - w) * N(mean, std^2)`` scored exactly,
  with no draws from the Gaussian. ``CRPS = E|X - y| - 1/2 E|X - X'|`` (Gneiting & Raftery 2007),
  expanded over the components:

      E|X - y|  = w mean_i |x_i - y| + (1 - w) E|Z - y|
      E|X - X'| = w^2 D + 2 w (1 - w) mean_i E|x_i - Z| + (1 - w)^2 2 std / sqrt(pi)

  with ``E|Z - a| = std (z (2 Phi(z) - 1) + 2 phi(z))``, ``z = (a - mean) / std``. ``D`` is the
  ensemble's pair term: the mean over its M(M-1) distinct pairs with ``fair=True`` (Ferro 2014, the
  project's convention for ensembles, ``scores.crps_ensemble``), over all M^2 pairs otherwise. The
  fair version is therefore an unbiased estimate of the CRPS of the mixture of the Gaussian with
  the distribution the members are drawn from; at ``w = 1`` it is the ensemble's fair CRPS, at
  ``w = 0`` the Gaussian's closed form (``scores.crps_gaussian``).

:func:`inflate` widens the members about their mean by a factor (the mean, so the RMSE, stays);
:func:`spread_skill_inflation` is the factor that makes the spread/skill ratio 1 and
:func:`best_on_grid` picks a factor (or a weight, a member count) by the lowest score on a grid,
to be run on validation years only. The two factors differ even for a perfect ensemble: inflated
members are no longer independent draws, and the fair CRPS of M Gaussian members inflated by ``a``
about their mean, against a truth from the same Gaussian, is lowest at ``a = sqrt(M (M+1) / ((M-1)(M-2)))``
(1.31 for M = 8; ``tests/domains/test_weather_combine.py``), where spread/skill is 1.31: the
lowest fair CRPS asks for an over-dispersed 8-member ensemble.

:func:`block_bootstrap_ratio` puts a confidence interval on the ratio of two forecasts' mean
scores over the same cases (e.g. a model's fair CRPS over the best baseline's, per lead), by the
circular moving-block bootstrap (Kunsch 1989; Politis & Romano 1992) over the initial times: monthly
initial times whose forecasts share target months, and whose errors persist with the anomalies they
forecast, are not independent cases, so whole blocks of consecutive ones are resampled, the same
blocks for numerator and denominator.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from .scores import area_mean, crps_gaussian, spread_skill_ratio


def gaussian_members(mean: Tensor, std: Tensor, members: int, *, generator: torch.Generator | None = None) -> Tensor:
    """``members`` independent draws ``[K, *S]`` from ``N(mean, std^2)`` at each point (NaN stays NaN)."""
    mean = torch.as_tensor(mean)
    std = torch.broadcast_to(torch.as_tensor(std, dtype=mean.dtype), mean.shape)
    noise = torch.randn(members, *mean.shape, generator=generator, dtype=mean.dtype)
    return mean + std * noise


def pool(*ensembles: Tensor) -> Tensor:
    """The members of all ``ensembles [M_k, *S]`` as one ensemble ``[sum M_k, *S]``."""
    shapes = {tuple(e.shape[1:]) for e in ensembles}
    if len(shapes) != 1:
        raise ValueError(f"ensembles to pool must share their shape after the member axis, got {sorted(shapes)}")
    return torch.cat([e.to(ensembles[0].dtype) for e in ensembles], dim=0)


def inflate(ensemble: Tensor, factor: float | Tensor) -> Tensor:
    """The members moved ``factor`` times as far from the ensemble mean: ``mean + factor (x - mean)``."""
    mean = ensemble.mean(0, keepdim=True)
    return mean + factor * (ensemble - mean)


def spread_skill_inflation(ensemble: Tensor, truth: Tensor, *, lat: Tensor | np.ndarray) -> float:
    """The inflation factor that makes ``scores.spread_skill_ratio`` 1: ``1 / ratio`` (the ratio
    scales with the factor, since inflation leaves the mean alone)."""
    return float(1 / spread_skill_ratio(ensemble, truth, lat=lat))


def _abs_gaussian(mean: Tensor, std: Tensor, a: Tensor) -> Tensor:
    """``E|Z - a|`` for ``Z ~ N(mean, std^2)`` (``|mean - a|`` where ``std`` is zero)."""
    return crps_gaussian(mean, std, a) + torch.as_tensor(std, dtype=mean.dtype) / math.sqrt(math.pi)


def mixture_crps(ensemble: Tensor, mean: Tensor, std: Tensor, truth: Tensor, *, weight: float,
                 fair: bool = True) -> Tensor:
    """Pointwise CRPS ``[*S]`` of the mixture ``weight * ensemble + (1 - weight) * N(mean, std^2)``
    against ``truth [*S]`` (see the module doc); ``ensemble [M, *S]``."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the ensemble's weight must lie in [0, 1], got {weight}")
    m = ensemble.shape[0]
    if fair and m < 2 and weight > 0:
        raise ValueError(f"the fair CRPS needs at least 2 members, got {m}; use fair=False")
    std = torch.broadcast_to(torch.as_tensor(std, dtype=mean.dtype), mean.shape)
    w, v = float(weight), 1.0 - float(weight)
    gaussian = crps_gaussian(mean, std, truth)  # E|Z - y| - std / sqrt(pi)
    if w == 0.0:
        return gaussian
    skill = (ensemble - truth).abs().mean(0)
    ranks = torch.arange(m, dtype=ensemble.dtype, device=ensemble.device)
    ranks = (2 * ranks - m + 1).reshape(-1, *([1] * (ensemble.dim() - 1)))
    pairs = 2 * (ranks * ensemble.sort(0).values).sum(0) / (m * (m - 1 if fair else m))  # D
    cross = _abs_gaussian(mean, std, ensemble).mean(0)
    abs_gauss = gaussian + std / math.sqrt(math.pi)
    return (w * skill + v * abs_gauss
            - 0.5 * (w * w * pairs + 2 * w * v * cross + v * v * 2 * std / math.sqrt(math.pi)))


def mixture_mean(ensemble: Tensor, mean: Tensor, *, weight: float) -> Tensor:
    """The mixture's mean ``[*S]``: ``weight * ensemble mean + (1 - weight) * mean``."""
    return weight * ensemble.mean(0) + (1 - weight) * mean


def mixture_spread_skill(ensemble: Tensor, mean: Tensor, std: Tensor, truth: Tensor, *, weight: float,
                         lat: Tensor | np.ndarray) -> Tensor:
    """Spread/skill of the mixture: ``sqrt(area mean (var + w^2 s^2 / M)) / RMSE(mixture mean)``.

    ``var = w s^2 + (1 - w) std^2 + w (1 - w) (ensemble mean - mean)^2`` is the mixture's variance
    with ``s^2`` the members' unbiased variance; ``w^2 s^2 / M`` is the error of the mixture mean
    that comes from estimating the ensemble's mean from M members, so that at ``weight = 1`` this is
    ``scores.spread_skill_ratio`` (its ``sqrt((M + 1) / M)``) and at ``weight = 0`` the Gaussian's
    ``std / RMSE(mean)``: 1 for a calibrated forecast."""
    m, w = ensemble.shape[0], float(weight)
    if m < 2:
        raise ValueError(f"spread needs at least 2 members, got {m}")
    s2 = ensemble.var(0, unbiased=True)
    std = torch.broadcast_to(torch.as_tensor(std, dtype=mean.dtype), mean.shape)
    var = w * s2 + (1 - w) * std**2 + w * (1 - w) * (ensemble.mean(0) - mean) ** 2 + w * w * s2 / m
    spread = area_mean(torch.where(torch.isfinite(truth), var, float("nan")), lat=lat).sqrt()
    error = area_mean((mixture_mean(ensemble, mean, weight=w) - truth) ** 2, lat=lat).sqrt()
    return spread / error


def best_on_grid(score: Callable[[float], float], grid: Iterable[float]) -> tuple[float, float]:
    """``(value, score)`` of the grid value with the lowest ``score(value)`` (the first on ties)."""
    best: tuple[float, float] | None = None
    for value in grid:
        s = float(score(value))
        if best is None or s < best[1]:
            best = (float(value), s)
    if best is None:
        raise ValueError("the grid is empty")
    return best


def linear_grid(start: float, stop: float, step: float) -> Sequence[float]:
    """``start, start + step, ..., stop`` (inclusive, rounded to 6 decimals)."""
    n = int(round((stop - start) / step))
    return [round(start + k * step, 6) for k in range(n + 1)]


def moving_block_indices(n: int, block: int, resamples: int, *, generator: np.random.Generator,
                         circular: bool = True) -> np.ndarray:
    """``[resamples, n]`` case indices of block-bootstrap samples: ``ceil(n / block)`` blocks of
    ``block`` consecutive cases, joined and cut to ``n``. ``circular`` (Politis & Romano 1992): a
    block starts uniformly at any case and wraps from the last case to the first, so every case is
    drawn equally often and the resampled mean is unbiased for the series mean. Otherwise the plain
    moving-block bootstrap (Kunsch 1989): blocks start at ``0 .. n - block`` and do not wrap, so the
    first and last ``block - 1`` cases are drawn less often than the middle ones (with 54 cases
    and blocks of 12, the first case 12 times less often). ``block = 1`` is the ordinary bootstrap."""
    if not 1 <= block <= n:
        raise ValueError(f"the block length must lie in 1..{n} (the number of cases), got {block}")
    count = -(-n // block)
    starts = generator.integers(0, n if circular else n - block + 1, size=(resamples, count))
    idx = (starts[:, :, None] + np.arange(block)).reshape(resamples, count * block)[:, :n]
    return idx % n if circular else idx


@dataclass
class BootstrapRatio:
    """``estimate = mean(numerator) / mean(denominator)`` over all cases, the percentile interval
    ``[low, high]`` at ``level`` and the resampled ratios ``samples [resamples]``."""
    estimate: float
    low: float
    high: float
    level: float
    block: int
    circular: bool
    samples: np.ndarray

    def as_dict(self, digits: int = 4) -> dict:
        return {"estimate": round(self.estimate, digits), "low": round(self.low, digits),
                "high": round(self.high, digits), "level": self.level, "block": self.block, "circular": self.circular,
                "resamples": len(self.samples), "fraction_below_1": round(float(np.mean(self.samples < 1)), digits)}


def block_bootstrap_ratio(numerator: Sequence[float] | np.ndarray, denominator: Sequence[float] | np.ndarray, *,
                          block: int, level: float = 0.9, resamples: int = 10_000, circular: bool = True,
                          generator: np.random.Generator | int | None = 0) -> BootstrapRatio:
    """(Circular) moving-block bootstrap of ``mean(numerator) / mean(denominator)`` over paired cases ``[N]`` in
    time order (e.g. per-initial-month fair CRPS of a candidate and of the best baseline at one
    lead). Both series are resampled with the same indices (:func:`moving_block_indices`), so what
    the two forecasts have in common (the hard months) cancels; the interval is the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of the resampled ratios."""
    num, den = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    if num.ndim != 1 or num.shape != den.shape:
        raise ValueError(f"numerator and denominator must be paired 1-D series, got {num.shape} and {den.shape}")
    if not 0 < level < 1:
        raise ValueError(f"the level must lie in (0, 1), got {level}")
    rng = generator if isinstance(generator, np.random.Generator) else np.random.default_rng(generator)
    idx = moving_block_indices(len(num), block, resamples, generator=rng, circular=circular)
    samples = num[idx].mean(1) / den[idx].mean(1)
    low, high = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return BootstrapRatio(float(num.mean() / den.mean()), float(low), float(high), level, block, circular, samples)


__all__ = ["moving_block_indices", "BootstrapRatio", "block_bootstrap_ratio", "gaussian_members", "pool", "inflate", "spread_skill_inflation", "mixture_crps", "mixture_mean",
           "mixture_spread_skill", "best_on_grid", "linear_grid"]

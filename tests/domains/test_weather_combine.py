"""Multi-model combinations of an ensemble and a Gaussian forecast, and ensemble inflation, against
closed forms, numerical integration and known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sciffusion_domains.weather.combine import (best_on_grid, gaussian_members, inflate, linear_grid, mixture_crps,
                                                mixture_mean, mixture_spread_skill, pool, spread_skill_inflation)
from sciffusion_domains.weather.scores import (area_mean, crps, crps_ensemble, crps_gaussian, rmse,
                                               spread_skill_ratio)

LAT = np.array([-30.0, -15.0, 0.0, 15.0, 30.0])


def normal_cdf(x: np.ndarray) -> np.ndarray:
    return torch.special.ndtr(torch.as_tensor(x, dtype=torch.float64)).numpy()


def integrated_crps(cdf, y: float, lo: float = -30.0, hi: float = 30.0, n: int = 600_001) -> float:
    """``int (F(x) - 1{x >= y})^2 dx`` by the trapezoid rule on a fine grid (the CRPS's definition)."""
    x = np.linspace(lo, hi, n)
    f = (cdf(x) - (x >= y)) ** 2
    return float(torch.trapezoid(torch.as_tensor(f, dtype=torch.float64), torch.as_tensor(x)))


def test_mixture_ends_are_the_ensemble_and_the_gaussian():
    g = torch.Generator().manual_seed(0)
    ensemble = torch.randn(6, 40, generator=g, dtype=torch.float64)
    mean, std = torch.randn(40, generator=g, dtype=torch.float64), torch.rand(40, generator=g, dtype=torch.float64) + 0.1
    truth = torch.randn(40, generator=g, dtype=torch.float64)
    for fair in (True, False):
        torch.testing.assert_close(mixture_crps(ensemble, mean, std, truth, weight=1.0, fair=fair),
                                   crps_ensemble(ensemble, truth, fair=fair))
    torch.testing.assert_close(mixture_crps(ensemble, mean, std, truth, weight=0.0), crps_gaussian(mean, std, truth))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mixture_crps(ensemble, mean, std, truth, weight=1.5)


def test_standard_mixture_crps_is_the_integral_of_its_cdf():
    """With the standard pair term the mixture ``w * empirical + (1 - w) * N`` is scored exactly."""
    members = np.array([-1.3, -0.2, 0.4, 0.9, 2.1])
    mu, sigma, w = 0.7, 1.4, 0.35
    cdf = lambda x: w * (x[:, None] >= members[None]).mean(1) + (1 - w) * normal_cdf((x - mu) / sigma)
    for y in (-2.0, 0.1, 0.55, 3.0):
        expected = integrated_crps(cdf, y)
        got = mixture_crps(torch.tensor(members)[:, None], torch.tensor([mu]), torch.tensor([sigma]),
                           torch.tensor([y]), weight=w, fair=False)
        assert float(got) == pytest.approx(expected, abs=1e-4)  # the rule's error at the steps


def test_fair_mixture_crps_is_unbiased_for_the_mixture_of_the_members_distribution():
    """Members drawn from N(0, 1): the fair score averages to the CRPS of ``w N(0, 1) + (1 - w) N(mu, s^2)``,
    the standard one does not (it is biased up by the finite ensemble)."""
    mu, sigma, w, y, m, reps = 1.0, 2.0, 0.6, 0.3, 4, 400_000
    cdf = lambda x: w * normal_cdf(x) + (1 - w) * normal_cdf((x - mu) / sigma)
    expected = integrated_crps(cdf, y)
    g = torch.Generator().manual_seed(1)
    ensemble = torch.randn(m, reps, generator=g, dtype=torch.float64)
    mean, std, truth = torch.full((reps,), mu, dtype=torch.float64), torch.tensor(sigma), torch.full((reps,), y,
                                                                                                         dtype=torch.float64)
    fair = float(mixture_crps(ensemble, mean, std, truth, weight=w).mean())
    standard = float(mixture_crps(ensemble, mean, std, truth, weight=w, fair=False).mean())
    assert fair == pytest.approx(expected, abs=2e-3)
    assert standard - expected > 0.02  # w^2 E|X - X'| / (2M) = 0.36 * 1.128 / 8 = 0.051


def test_pooled_draws_of_the_gaussian_score_its_closed_form():
    g = torch.Generator().manual_seed(2)
    mean = torch.randn(3, 5, 7, generator=g, dtype=torch.float64)
    std = torch.rand(3, 5, 7, generator=g, dtype=torch.float64) + 0.2
    truth = torch.randn(3, 5, 7, generator=g, dtype=torch.float64)
    draws = gaussian_members(mean, std, 4000, generator=torch.Generator().manual_seed(3))
    assert draws.shape == (4000, 3, 5, 7)
    torch.testing.assert_close(draws.mean(0), mean, atol=0.05, rtol=0)
    torch.testing.assert_close(draws.std(0), std, atol=0.05, rtol=0)
    exact = float(area_mean(crps_gaussian(mean, std, truth), lat=LAT))
    assert float(crps(draws, truth, lat=LAT, fair=True)) == pytest.approx(exact, rel=0.01)
    again = gaussian_members(mean, std, 4000, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(draws, again, rtol=0, atol=0)


def test_pooling_an_ensemble_with_itself_changes_no_distribution_score():
    g = torch.Generator().manual_seed(4)
    ensemble = torch.randn(8, 3, 5, 7, generator=g, dtype=torch.float64)
    truth = torch.randn(3, 5, 7, generator=g, dtype=torch.float64)
    twice = pool(ensemble, ensemble)
    assert twice.shape == (16, 3, 5, 7)
    # the empirical distribution is the same, so is its (standard) CRPS and its mean
    assert float(crps(twice, truth, lat=LAT)) == pytest.approx(float(crps(ensemble, truth, lat=LAT)), rel=1e-12)
    torch.testing.assert_close(twice.mean(0), ensemble.mean(0))
    # so is a mixture of the ensemble with any weight of itself: pool(e, e) at w scores as e
    mean, std = torch.zeros(3, 5, 7, dtype=torch.float64), torch.ones(3, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(mixture_crps(twice, mean, std, truth, weight=1.0, fair=False),
                               mixture_crps(ensemble, mean, std, truth, weight=1.0, fair=False))
    with pytest.raises(ValueError, match="share their shape"):
        pool(ensemble, ensemble[:, :2])


def test_mixture_spread_skill_ends_and_mean():
    g = torch.Generator().manual_seed(5)
    ensemble = torch.randn(8, 3, 5, 7, generator=g, dtype=torch.float64)
    mean = torch.randn(3, 5, 7, generator=g, dtype=torch.float64)
    std = torch.rand(3, 5, 7, generator=g, dtype=torch.float64) + 0.2
    truth = torch.randn(3, 5, 7, generator=g, dtype=torch.float64)
    torch.testing.assert_close(mixture_spread_skill(ensemble, mean, std, truth, weight=1.0, lat=LAT),
                               spread_skill_ratio(ensemble, truth, lat=LAT))
    gaussian = area_mean(std**2, lat=LAT).sqrt() / rmse(mean, truth, lat=LAT)
    torch.testing.assert_close(mixture_spread_skill(ensemble, mean, std, truth, weight=0.0, lat=LAT), gaussian)
    torch.testing.assert_close(mixture_mean(ensemble, mean, weight=0.25), 0.25 * ensemble.mean(0) + 0.75 * mean)


def test_mixture_of_calibrated_components_is_calibrated():
    """Truth and both components from N(0, 1) independently: the 50/50 mixture's spread/skill is 1."""
    g = torch.Generator().manual_seed(6)
    shape = (400, 5, 7)
    ensemble = torch.randn(8, *shape, generator=g, dtype=torch.float64)
    truth = torch.randn(*shape, generator=g, dtype=torch.float64)
    mean = torch.zeros(shape, dtype=torch.float64)
    ratio = float(mixture_spread_skill(ensemble, mean, torch.ones(shape, dtype=torch.float64), truth, weight=0.5,
                                       lat=LAT))
    assert ratio == pytest.approx(1.0, abs=0.02)


def test_a_known_inflation_factor_is_recovered():
    """A calibrated ensemble squeezed to half its spread about its mean: inflating by 2 restores it
    exactly and the spread/skill factor comes back near 2. The factor with the lowest fair CRPS is
    larger: for M members inflated by a about their mean (Gaussian truth and members), the expected
    fair CRPS ``sqrt(2/pi) sqrt(1 + 1/M + a^2 (M-1)/M) - a/sqrt(pi)`` is lowest at
    ``a = sqrt(M (M+1) / ((M-1)(M-2)))``, 1.31 for M = 8: the fair CRPS rewards an over-dispersed
    8-member ensemble once its members are no longer independent draws."""
    g = torch.Generator().manual_seed(7)
    shape = (2000, 5, 7)
    mu = torch.randn(*shape, generator=g, dtype=torch.float64)
    calibrated = mu + torch.randn(8, *shape, generator=g, dtype=torch.float64)
    truth = mu + torch.randn(*shape, generator=g, dtype=torch.float64)
    squeezed = inflate(calibrated, 0.5)
    torch.testing.assert_close(squeezed.mean(0), calibrated.mean(0))
    torch.testing.assert_close(inflate(squeezed, 2.0), calibrated)
    assert spread_skill_inflation(squeezed, truth, lat=LAT) == pytest.approx(2.0, rel=0.02)
    factor, _ = best_on_grid(lambda a: crps(inflate(squeezed, a), truth, lat=LAT, fair=True),
                             linear_grid(1.0, 3.0, 0.05))
    assert factor == pytest.approx(2.0 * math.sqrt(8 * 9 / (7 * 6)), abs=0.1)  # 2.62


def test_weight_on_a_grid_finds_the_right_component():
    g = torch.Generator().manual_seed(8)
    shape = (300, 5, 7)
    truth = torch.randn(*shape, generator=g, dtype=torch.float64)
    good = torch.randn(8, *shape, generator=g, dtype=torch.float64)
    zero, one = torch.zeros(shape, dtype=torch.float64), torch.ones(shape, dtype=torch.float64)
    score = lambda e, mean: (lambda w: area_mean(mixture_crps(e, mean, one, truth, weight=w), lat=LAT))
    weights = linear_grid(0.0, 1.0, 0.05)
    assert len(weights) == 21 and weights[-1] == 1.0
    assert best_on_grid(score(good, zero + 3.0), weights)[0] == 1.0  # the Gaussian is far off: ensemble only
    assert best_on_grid(score(good + 3.0, zero), weights)[0] == 0.0  # the ensemble is far off: Gaussian only
    # two equally wrong components on either side of the truth: the even mixture is best
    assert best_on_grid(score(good + 1.0, zero - 1.0), weights)[0] == pytest.approx(0.5, abs=0.1)
    with pytest.raises(ValueError, match="empty"):
        best_on_grid(lambda w: 0.0, [])

"""Multi-model combinations of an ensemble and a Gaussian forecast, and ensemble inflation, against
closed forms, numerical integration and known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sciffusion_domains.weather.combine import (best_on_grid, block_bootstrap_ratio, gaussian_members, inflate, linear_grid, mixture_crps,
                                                mixture_mean, mixture_spread_skill, moving_block_indices, pool,
                                                spread_skill_inflation)
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


def test_moving_blocks_are_runs_of_consecutive_cases():
    rng = np.random.default_rng(0)
    idx = moving_block_indices(54, 12, 2000, generator=rng, circular=False)
    assert idx.shape == (2000, 54) and idx.min() >= 0 and idx.max() <= 53
    blocks = idx[:, :48].reshape(2000, 4, 12)  # the 5th block is cut to 6 cases
    assert (np.diff(blocks, axis=2) == 1).all()
    assert set(idx[:, 0]) == set(range(54 - 12 + 1))  # every start is drawn, none past n - block
    counts = np.bincount(idx.ravel(), minlength=54)
    assert counts[20] > 8 * counts[0]  # without wrapping the ends are drawn far less often (12x in expectation)
    # circular: blocks wrap from the last case to the first and every case is drawn equally often
    idx = moving_block_indices(54, 12, 2000, generator=rng)
    assert set(idx[:, 0]) == set(range(54))
    assert (np.diff(idx[:, :48].reshape(2000, 4, 12), axis=2) % 54 == 1).all()
    counts = np.bincount(idx.ravel(), minlength=54)
    np.testing.assert_allclose(counts / counts.mean(), 1.0, atol=0.1)
    assert (moving_block_indices(7, 7, 3, generator=rng, circular=False) == np.arange(7)).all()  # the series itself
    with pytest.raises(ValueError, match="block length"):
        moving_block_indices(5, 6, 1, generator=rng)


def test_block_bootstrap_ratio_exact_small_cases():
    # two cases, block 1: the resampled numerator mean is 1, 2 or 3 with probabilities 1/4, 1/2, 1/4
    result = block_bootstrap_ratio([1.0, 3.0], [1.0, 1.0], block=1, resamples=40_000, generator=1)
    assert result.estimate == 2.0
    values, counts = np.unique(result.samples, return_counts=True)
    assert values.tolist() == [1.0, 2.0, 3.0]
    np.testing.assert_allclose(counts / counts.sum(), [0.25, 0.5, 0.25], atol=0.01)
    assert (result.low, result.high) == (1.0, 3.0)  # 25% of the mass at each end: the 5% and 95% points
    # a candidate that is 0.9 times the baseline in every case has no uncertainty in the ratio
    den = np.random.default_rng(2).gamma(2.0, size=54)
    result = block_bootstrap_ratio(0.9 * den, den, block=6)
    assert result.low == pytest.approx(0.9, rel=1e-12) and result.high == pytest.approx(0.9, rel=1e-12)
    # one block as long as the series: every resample is the series (plain) or a rotation of it
    # (circular), with the same means either way
    for circular in (False, True):
        result = block_bootstrap_ratio(den + 1, den, block=54, resamples=10, circular=circular)
        np.testing.assert_allclose(result.samples, (den + 1).mean() / den.mean())
    with pytest.raises(ValueError, match="paired"):
        block_bootstrap_ratio(den, den[:-1], block=6)


def ar1(n: int, phi: float, rng: np.random.Generator) -> np.ndarray:
    x = np.empty(n)
    x[0] = rng.standard_normal() / math.sqrt(1 - phi**2)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + rng.standard_normal()
    return x


def test_block_bootstrap_ratio_covers_a_known_ratio_of_autocorrelated_scores():
    """Paired scores with AR(1) errors (phi = 0.6, as persistent monthly anomalies): the true ratio of
    the expected means is 1.8 / 2.0 = 0.9. The 90% circular block interval (block 10 of 240 cases)
    covers it close to 90% of the time; the ordinary bootstrap (block 1) is too narrow for
    correlated cases and covers it markedly less often."""
    rng = np.random.default_rng(3)
    covered = {1: 0, 10: 0}
    trials = 300
    for _ in range(trials):
        common = ar1(240, 0.6, rng)
        den = 2.0 + 0.5 * common + 0.3 * ar1(240, 0.6, rng)
        num = 1.8 + 0.5 * common + 0.3 * ar1(240, 0.6, rng)
        for block in covered:
            r = block_bootstrap_ratio(num, den, block=block, resamples=1000, generator=rng)
            covered[block] += r.low <= 0.9 <= r.high
    coverage = {block: count / trials for block, count in covered.items()}
    assert 0.8 <= coverage[10] <= 0.97, coverage
    assert coverage[1] < coverage[10] - 0.1, coverage

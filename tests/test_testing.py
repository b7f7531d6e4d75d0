"""The analytic targets themselves: the references every other test trusts."""
import math

import pytest
import torch

from sciffusion.processes import VPLinear
from sciffusion.testing import GaussianMixture, assert_matches_target, gaussian_mixture_2d, mode_weights, random_gaussian

F64 = torch.float64


def test_score_is_the_gradient_of_the_log_density():
    g = gaussian_mixture_2d()
    p = VPLinear()
    t = torch.full((64,), 0.3, dtype=F64)
    x = torch.randn(64, 2, dtype=F64, requires_grad=True) * 3
    (grad,) = torch.autograd.grad(g.log_prob(x, p.alpha(t), p.sigma(t)).sum(), x)
    torch.testing.assert_close(g.score(x.detach(), p.alpha(t), p.sigma(t)), grad, rtol=1e-10, atol=1e-12)


def test_gaussian_log_density_matches_torch_distributions():
    g = random_gaussian(5, seed=2)
    x = torch.randn(10, 5, dtype=F64)
    alpha, sigma = 0.6, 0.8
    ref = torch.distributions.MultivariateNormal(alpha * g.means[0], alpha**2 * g.covs[0] + sigma**2 * torch.eye(5, dtype=F64))
    torch.testing.assert_close(g.log_prob(x, alpha, sigma), ref.log_prob(x))


def test_posterior_mean_is_the_monte_carlo_conditional_mean():
    """E[x0 | x_t] checked by regression: the residual x0 - E[x0|x_t] is uncorrelated with x_t."""
    g = random_gaussian(3, seed=1)
    x0, _ = g.sample(200_000, torch.Generator().manual_seed(0))
    x_t = 0.7 * x0 + 0.5 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
    resid = x0 - g.posterior_mean(x_t, 0.7, 0.5)
    assert resid.mean(0).abs().max() < 0.01
    cross = (resid - resid.mean(0)).T @ (x_t - x_t.mean(0)) / len(x_t)
    assert cross.abs().max() < 0.01
    expected_mse = g.posterior_variance_trace(0.7, 0.5)
    assert float((resid**2).sum(1).mean()) == pytest.approx(float(expected_mse), rel=0.01)


def test_sampling_reproduces_moments_and_weights():
    g = gaussian_mixture_2d()
    x, labels = g.sample(50_000, torch.Generator().manual_seed(0))
    assert_matches_target(x, g, mean_tol=0.02, cov_tol=0.02, weight_tol=0.01)
    torch.testing.assert_close(mode_weights(x, g), torch.bincount(labels, minlength=3).to(F64) / len(x), atol=0.005, rtol=0)


def test_assertion_fails_on_wrong_samples():
    g = gaussian_mixture_2d()
    x, _ = g.sample(20_000, torch.Generator().manual_seed(0))
    with pytest.raises(AssertionError, match="covariance"):
        assert_matches_target(1.3 * x, g, mean_tol=0.5, cov_tol=0.05)
    with pytest.raises(AssertionError, match="mode weights"):
        assert_matches_target(x[x[:, 0] < 0], g, mean_tol=10, cov_tol=10, weight_tol=0.05)


def test_bad_mixtures_are_rejected():
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture(torch.ones(2), torch.zeros(3, 2), torch.eye(2).expand(3, 2, 2))
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture.gaussian(torch.zeros(2), torch.diag(torch.tensor([1.0, -1.0])))
    assert math.isclose(float(gaussian_mixture_2d().weights.sum()), 1.0)

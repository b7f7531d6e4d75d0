"""Mean + residual diffusion on an analytic case: x | c = A c + r with r a Gaussian mixture, so the
conditional law of x is the mixture shifted by A c, whose denoiser is closed-form. The residual model
wrapped with the predictor must be that denoiser exactly, sample that law, and the residual loss must
reach its known minimum."""
from __future__ import annotations

import pytest
import torch

from sciffusion.losses import DiffusionLoss
from sciffusion.parameterization import X0Target
from sciffusion.processes import EDM, LinearInterpolant, VPLinear
from sciffusion.residual import MEAN, ResidualDenoiser, ResidualLoss
from sciffusion.samplers import heun, prior_sample
from sciffusion.space import DenseSpace
from sciffusion.testing import GaussianMixture, assert_matches_target, gaussian_mixture_2d, random_gaussian
from sciffusion.timesteps import uniform_log_snr

F64 = torch.float64
A = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]], dtype=F64)  # the conditional mean is A c
RESIDUAL = gaussian_mixture_2d()
PROCESSES = [VPLinear(), LinearInterpolant(), EDM()]


def predictor(cond):
    return cond["c"] @ A.T


def shifted(residual: GaussianMixture, c: torch.Tensor) -> GaussianMixture:
    """The law of x = A c + r for one condition ``c [3]``."""
    return GaussianMixture(residual.weights, residual.means + A @ c, residual.covs)


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: type(p).__name__)
def test_the_wrapped_residual_denoiser_is_the_exact_conditional_denoiser(process):
    g = torch.Generator().manual_seed(0)
    c = torch.randn(3, generator=g, dtype=F64)
    seen = {}

    def residual(x, t, space, cond):
        seen["mean"] = cond[MEAN]
        return RESIDUAL.denoiser(process)(x, t)

    x = 3 * torch.randn(64, 2, generator=g, dtype=F64)
    t = torch.rand(64, generator=g, dtype=F64) * 0.97 + 0.02
    cond = {"c": c.expand(64, 3)}
    got = ResidualDenoiser(residual, predictor, process)(x, t, DenseSpace(), cond)
    torch.testing.assert_close(got, shifted(RESIDUAL, c).denoiser(process)(x, t), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(seen["mean"], predictor(cond))


def test_sampling_the_wrapped_denoiser_draws_the_conditional_law():
    process, g = EDM(), torch.Generator().manual_seed(1)
    ts = uniform_log_snr(process, 40, sigma_min=0.02)
    for c in (torch.zeros(3, dtype=F64), torch.tensor([1.0, 2.0, -1.0], dtype=F64)):
        x = prior_sample(process, torch.zeros(8000, 2, dtype=F64), t=float(ts[0]), generator=g, space=DenseSpace())
        x = x + process.alpha(ts[:1]) * (A @ c)  # the prior of x_t around alpha mu
        samples = heun(ResidualDenoiser(RESIDUAL.denoiser(process), predictor, process), x, ts, process=process,
                       cond={"c": c.expand(8000, 3)}, space=DenseSpace())
        assert_matches_target(samples, shifted(RESIDUAL, c), mean_tol=0.05, cov_tol=0.05, weight_tol=0.03)


class ExactResidualModel(torch.nn.Module):
    """The Bayes-optimal x0-predicting network of the residual."""

    target = X0Target()

    def __init__(self, residual: GaussianMixture, process):
        super().__init__()
        self.denoise = residual.denoiser(process)

    def predict(self, x, t, space, cond):
        assert MEAN in cond
        return self.denoise(x, t)


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: type(p).__name__)
def test_the_residual_loss_reaches_its_known_minimum_and_is_the_loss_of_the_residual(process):
    gaussian, n, t0 = random_gaussian(2, seed=2), 40_000, 0.3
    g = torch.Generator().manual_seed(3)
    c = torch.randn(n, 3, generator=g, dtype=F64)
    r, _ = gaussian.sample(n, g)
    x0, t = predictor({"c": c}) + r, torch.full((n,), t0, dtype=F64)
    model, plain = ExactResidualModel(gaussian, process), DiffusionLoss(process, weighting="x0")
    loss = ResidualLoss(plain, predictor)(model, x0, cond={"c": c}, t=t, generator=torch.Generator().manual_seed(4),
                                          space=DenseSpace())
    minimum = gaussian.posterior_variance_trace(process.alpha(t[:1]), process.sigma(t[:1])) / 2
    assert float(loss.mean()) == pytest.approx(float(minimum), rel=0.04)
    direct = plain(model, r, space=DenseSpace(), cond={"c": c, MEAN: predictor({"c": c})}, t=t,
                   generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(loss, direct, rtol=1e-12, atol=1e-14)


def test_the_predictor_is_held_fixed_and_masked_entries_stay_zero():
    weight = torch.nn.Parameter(A.clone())
    learned = lambda cond: cond["c"] @ weight.T
    mask = torch.tensor([True, False])
    space = DenseSpace(mask)
    net = torch.nn.Linear(2, 2, dtype=F64)
    model = type("Net", (torch.nn.Module,), {"target": X0Target(), "predict": lambda self, x, t, s, cond: net(x)})()
    c = torch.randn(16, 3, dtype=F64)
    loss = ResidualLoss(DiffusionLoss(EDM()), learned)(model, torch.randn(16, 2, dtype=F64), space=space,
                                                      cond={"c": c}, generator=torch.Generator().manual_seed(5))
    loss.mean().backward()
    assert weight.grad is None and net.weight.grad is not None
    denoised = ResidualDenoiser(lambda x, t, s, cond: torch.zeros_like(x), learned, EDM())(
        torch.randn(16, 2, dtype=F64), torch.full((16,), 0.5, dtype=F64), space, {"c": c})
    assert (denoised[:, 1] == 0).all() and (denoised[:, 0] != 0).all()
    with pytest.raises(ValueError, match=r"predictor returned shape \(16, 3\) for data of shape \(16, 2\)"):
        ResidualDenoiser(lambda *a: a[0], lambda cond: cond["c"], EDM())(
            torch.randn(16, 2, dtype=F64), torch.full((16,), 0.5, dtype=F64), DenseSpace(), {"c": c})

"""Data-space guidance through a decoder (latent DPS) on an analytic case: scaled latents z ~ N(0, I),
a linear decoder x = W z / s with W = c Q (Q orthogonal), and y = A x + N(0, n^2) with A selecting
data coordinates. Then M = A W / s has M M^T = (c / s)^2 I and p(z | y), p(x | y) are Gaussian in
closed form (the Kalman update), which the guided denoiser and the guided sampler must reproduce."""
import pytest
import torch

from sciffusion.latent import DecodedObservation, KLAutoencoder, decoded_classifier_guidance, latent_posterior_guidance
from sciffusion.latent.guidance import estimate_gram
from sciffusion.processes import VPLinear
from sciffusion.samplers import ddim, prior_sample
from sciffusion.space import DenseSpace
from sciffusion.testing import GaussianMixture, assert_matches_target, moment_errors
from sciffusion.timesteps import make_grid

F64 = torch.float64
C, S, NOISE = 1.5, 2.0, 0.3  # decoder gain, latent scale factor, observation noise


def linear_case():
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=F64))
    W = C * q
    A = torch.eye(4, dtype=F64)[[0, 2]]
    y = torch.tensor([1.0, -0.8], dtype=F64)
    return W, A, y


def kalman(prior: GaussianMixture, M: torch.Tensor, y: torch.Tensor, noise_std: float) -> GaussianMixture:
    m, P = prior.means[0], prior.covs[0]
    gain = P @ M.T @ torch.linalg.inv(M @ P @ M.T + noise_std**2 * torch.eye(len(M), dtype=F64))
    cov = P - gain @ M @ P
    return GaussianMixture.gaussian(m + gain @ (y - M @ m), 0.5 * (cov + cov.T))


def guided_case(process, method: str = "reconstruction"):
    W, A, y = linear_case()
    prior = GaussianMixture.gaussian(torch.zeros(4), torch.eye(4))
    guided = latent_posterior_guidance(prior.denoiser(process), process, decoder=lambda u: u @ W.T,
                                       observe=lambda x: x[:, [0, 2]], y=y, scale_factor=S, noise_std=NOISE,
                                       gram=(C / S) ** 2, method=method)
    M = A @ W / S
    return guided, prior, kalman(prior, M, y, NOISE), W


def test_guided_denoiser_is_the_exact_latent_posterior_denoiser():
    process = VPLinear()
    guided, _, posterior, _ = guided_case(process)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(64, 4, generator=g, dtype=F64) * 2
    t = 0.02 + 0.96 * torch.rand(64, generator=g, dtype=F64)
    expected = posterior.denoiser(process)(z, t)
    torch.testing.assert_close(guided(z, t, DenseSpace(), {}), expected, rtol=1e-7, atol=1e-7)


def test_guided_sampling_reproduces_the_data_space_posterior():
    """DDIM with the guided denoiser: the decoded samples x = W z / s have the exact mean and covariance
    of p(x | y), far from the prior's."""
    process = VPLinear()
    guided, prior, posterior, W = guided_case(process)
    n = 4000
    z = prior_sample(process, torch.zeros(n, 4, dtype=F64), generator=torch.Generator().manual_seed(2),
                     space=DenseSpace())
    z0 = ddim(guided, z, make_grid("uniform_t", process, 100), process=process, space=DenseSpace())
    x = z0 @ W.T / S
    data_posterior = GaussianMixture.gaussian(W @ posterior.means[0] / S, W @ posterior.covs[0] @ W.T / S**2)
    assert_matches_target(x, data_posterior, mean_tol=0.05, cov_tol=0.08)
    data_prior = GaussianMixture.gaussian(torch.zeros(4), W @ W.T / S**2)
    assert moment_errors(x, data_prior)[0] > 0.3


def test_estimate_gram_of_a_scaled_orthogonal_decoder():
    W, _, _ = linear_case()
    operator = DecodedObservation(lambda u: u @ W.T, lambda x: x[:, [0, 2]], scale_factor=S)
    z = torch.zeros(8, 4, dtype=F64)
    gram = estimate_gram(operator, z, probes=200, generator=torch.Generator().manual_seed(3))
    assert gram == pytest.approx((C / S) ** 2, rel=0.1)


def test_dps_through_a_conv_decoder_moves_towards_the_observation():
    """A KLAutoencoder's decoder (untrained, nonlinear): the guided estimate's decoded observation is
    closer to y than the unguided one, and nothing leaks a graph."""
    torch.manual_seed(0)
    ae = KLAutoencoder(1, latent_channels=2, channels=[8, 8]).eval().requires_grad_(False)
    process = VPLinear()

    def denoiser(z, t, space, cond):
        return 0.5 * z

    observe = lambda x: x[..., :4, :]  # noqa: E731  (the top rows of the image are seen)
    y = torch.ones(1, 1, 4, 8)
    guided = latent_posterior_guidance(denoiser, process, decoder=lambda u: ae.decode(u, size=(8, 8)), observe=observe,
                                       y=y, method="dps", zeta=0.5)
    z = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(4))
    t = torch.full((3,), 0.3)
    z0 = guided(z, t, DenseSpace(), {})
    assert z0.shape == z.shape and not z0.requires_grad
    residual = lambda z0: (observe(ae.decode(z0, size=(8, 8))) - y).flatten(1).norm(dim=1)  # noqa: E731
    assert (residual(z0) < residual(denoiser(z, t, None, None))).all()


def test_bad_options_are_named():
    process = VPLinear()
    with pytest.raises(ValueError, match="method 'mcmc'"):
        latent_posterior_guidance(None, process, decoder=lambda u: u, observe=lambda x: x, y=torch.zeros(1),
                                  method="mcmc")
    with pytest.raises(ValueError, match="gram .* must be > 0.*estimate_gram"):
        latent_posterior_guidance(None, process, decoder=lambda u: u, observe=lambda x: x, y=torch.zeros(1), gram=0)


def test_classifier_guidance_through_the_decoder_is_the_closed_form_gradient():
    """log p(y | x0) = log N(y; A x0, n^2) of clean data, through x0 = W D(z_t) / s with the exact
    D(z_t) = alpha z_t / (alpha^2 + sigma^2) of unit Gaussian latents: the guided estimate is
    D + sigma^2 / alpha * (alpha / (alpha^2 + sigma^2)) M^T (y - M D) / n^2, M = A W / s."""
    process = VPLinear()
    W, A, y = linear_case()
    prior = GaussianMixture.gaussian(torch.zeros(4), torch.eye(4))

    def log_likelihood(x0, cond):
        return torch.distributions.Normal(x0[:, [0, 2]], NOISE).log_prob(y).sum(1)

    guided = decoded_classifier_guidance(prior.denoiser(process), process, decoder=lambda u: u @ W.T,
                                         log_likelihood=log_likelihood, scale_factor=S)
    g = torch.Generator().manual_seed(5)
    z = torch.randn(16, 4, generator=g, dtype=F64)
    t = 0.05 + 0.9 * torch.rand(16, generator=g, dtype=F64)
    a, s = process.alpha(t)[:, None], process.sigma(t)[:, None]
    M = A @ W / S
    d = a * z / (a**2 + s**2)
    expected = d + s**2 / a * (a / (a**2 + s**2)) * ((y - d @ M.T) @ M) / NOISE**2
    torch.testing.assert_close(guided(z, t, DenseSpace(), {}), expected, rtol=1e-9, atol=1e-9)

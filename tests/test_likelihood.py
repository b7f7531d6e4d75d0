"""Probability-flow likelihoods against closed-form densities of Gaussians and Gaussian mixtures."""
import math

import pytest
import torch

from sciffusion.likelihood import (bits_per_dim, divergence, exact_probes, hutchinson_probes, log_likelihood,
                                   prior_log_prob)
from sciffusion.processes import EDM, LinearInterpolant, VarianceExploding, VPLinear
from sciffusion.space import DenseSpace, GraphSpace
from sciffusion.testing import GaussianMixture, gaussian_mixture_2d, random_gaussian

F64 = torch.float64
PROCESSES = [VPLinear(), LinearInterpolant(), EDM(), VarianceExploding()]
TARGETS = {"gaussian_3d": random_gaussian(3, seed=1), "mixture_2d": gaussian_mixture_2d()}


def _at(process, t: float):
    t = torch.tensor(t, dtype=F64)
    return process.alpha(t), process.sigma(t)


@pytest.mark.parametrize("name", sorted(TARGETS))
@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: type(p).__name__)
def test_exact_trace_solves_the_change_of_variables(name, process):
    """With the exact denoiser and the exact trace, the ODE transports log p_{t_min}(x0) to
    log p_{t_max}(x_T) to solver accuracy. Swapping the N(0, (alpha^2 + sigma^2) I) prior for the true
    marginal at t_max removes the prior mismatch, and comparing with the marginal at t_min removes the
    t_min offset, so what is left is the ODE error alone (measured 2e-7..6e-6 at rtol = atol = 1e-7)."""
    target = TARGETS[name]
    x0, _ = target.sample(6, torch.Generator().manual_seed(0))
    result = log_likelihood(target.denoiser(process), x0, process=process, trace="exact", rtol=1e-7, atol=1e-7,
                            space=DenseSpace())
    true_prior = target.log_prob(result.latent, *_at(process, process.t_max))
    transported = result.log_prob - result.prior_log_prob + true_prior
    torch.testing.assert_close(transported, target.log_prob(x0, *_at(process, 1e-5)), rtol=0, atol=5e-5)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_log_prob_matches_the_data_density(name):
    """End to end with default tolerances: on the linear interpolant alpha(1) = 0, so the N(0, I) prior is
    the exact p_1, and t_min = 1e-5 shifts log p by O(D t_min), far below the 1e-3 allowed here."""
    target, process = TARGETS[name], LinearInterpolant()
    x0, _ = target.sample(8, torch.Generator().manual_seed(1))
    result = log_likelihood(target.denoiser(process), x0, process=process, trace="exact", space=DenseSpace())
    torch.testing.assert_close(result.log_prob, target.log_prob(x0), rtol=0, atol=1e-3)
    assert result.nfe > 10


def test_hutchinson_is_unbiased():
    """Each sample draws its own probe, so a batch of copies of one point gives independent estimates:
    their mean matches the exact trace within 4 standard errors, and they really do vary."""
    target, process = random_gaussian(3, seed=2), VPLinear()
    point, _ = target.sample(1, torch.Generator().manual_seed(3))
    exact = log_likelihood(target.denoiser(process), point, process=process, trace="exact", rtol=1e-7, atol=1e-7,
                           space=DenseSpace())
    copies = point.expand(200, -1)
    for probe in ("rademacher", "gaussian"):
        estimates = log_likelihood(target.denoiser(process), copies, process=process, probe=probe,
                                   generator=torch.Generator().manual_seed(4), space=DenseSpace()).log_prob
        std_error = estimates.std() / math.sqrt(len(estimates))
        assert estimates.std() > 1e-3, f"{probe} probes gave no variance: not a stochastic estimate"
        assert (estimates.mean() - exact.log_prob[0]).abs() < 4 * std_error, (probe, estimates.mean(), exact.log_prob)


def test_more_probes_reduce_the_variance():
    target, process = random_gaussian(3, seed=2), VPLinear()
    point, _ = target.sample(1, torch.Generator().manual_seed(3))
    copies = point.expand(100, -1)
    spread = [log_likelihood(target.denoiser(process), copies, process=process, num_probes=n, probe="gaussian",
                             generator=torch.Generator().manual_seed(5), space=DenseSpace()).log_prob.std()
              for n in (1, 8)]
    assert spread[1] < 0.5 * spread[0], spread  # 1/sqrt(8) = 0.35 expected


def test_bits_per_dim():
    """A standard normal at its mode: log p = -D/2 log(2 pi), i.e. log2(2 pi) / 2 = 1.3257 bits per dimension."""
    target, process = GaussianMixture.gaussian(torch.zeros(4), torch.eye(4)), LinearInterpolant()
    with torch.no_grad():  # the divergence turns gradients back on inside
        result = log_likelihood(target.denoiser(process), torch.zeros(2, 4, dtype=F64), process=process, trace="exact",
                                space=DenseSpace())
    assert not result.log_prob.requires_grad
    torch.testing.assert_close(result.bits_per_dim, torch.full((2,), 0.5 * math.log2(2 * math.pi), dtype=F64),
                               rtol=0, atol=1e-5)
    torch.testing.assert_close(bits_per_dim(torch.tensor([-8.0]), torch.tensor([4.0])), torch.tensor([2 / math.log(2)]))


def _isotropic_denoiser(process, var: float):
    """E[x0 | x_t] for x0 ~ N(0, var I) in the sample subspace: alpha var x / (alpha^2 var + sigma^2) there.
    It does not project its input, so its full Jacobian's trace counts removed dimensions: only a
    divergence taken in the subspace gets the density right."""

    def denoise(x, t, space, cond):
        a, s = space.per_sample(process.alpha(t), x), space.per_sample(process.sigma(t), x)
        return a * var * x / (a**2 * var + s**2)

    return denoise


def _isotropic_log_prob(x, space, var: float):
    dims = space.dims(x)
    return -0.5 * space.sum(x**2) / var - 0.5 * dims * math.log(2 * math.pi * var)


def test_graph_zero_mean_counts_the_subspace():
    """Point clouds of 2, 3 and 5 nodes with centred 3-D coordinates and one free feature: N(0, var) on the
    subspace has 3 (n - 1) + n degrees of freedom. The data variance is not 1, so the prior needs
    ``data_var``; then prior and denoiser are exact, and only the counting of dimensions can go wrong
    (counting the 3 removed ones would shift log p by 1.5 log(2 pi var) = 2.4 nats)."""
    var, process = 0.49, VPLinear()
    batch = torch.tensor([2, 0, 1, 2, 1, 2, 0, 2, 2, 1])  # unsorted rows: sizes 2, 3, 5
    space = GraphSpace(batch, 3, zero_mean=(0, 1, 2))
    x0 = space.project(math.sqrt(var) * torch.randn(10, 4, generator=torch.Generator().manual_seed(6), dtype=F64))
    torch.testing.assert_close(space.dims(x0), torch.tensor([5.0, 9.0, 17.0], dtype=F64))
    result = log_likelihood(_isotropic_denoiser(process, var), x0, process=process, space=space, data_var=var,
                            trace="exact")
    torch.testing.assert_close(result.log_prob, _isotropic_log_prob(x0, space, var), rtol=0, atol=1e-3)


def test_hutchinson_is_exact_for_data_matching_its_control_variate():
    """For N(0, data_var I) data D = lam x, so D - lam x has no divergence to estimate: one Gaussian probe
    per sample gives the exact density, on the centred graph subspace too."""
    var, process = 0.49, LinearInterpolant()
    space = GraphSpace(torch.tensor([0, 1, 1, 0, 1]), 2, zero_mean=(0, 1))
    x0 = space.project(math.sqrt(var) * torch.randn(5, 3, generator=torch.Generator().manual_seed(11), dtype=F64))
    result = log_likelihood(_isotropic_denoiser(process, var), x0, process=process, space=space, data_var=var,
                            probe="gaussian", generator=torch.Generator().manual_seed(12))
    torch.testing.assert_close(result.log_prob, _isotropic_log_prob(x0, space, var), rtol=0, atol=1e-3)


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_probes_cover_the_subspace(probe):
    """E[z z^T] = P, the projection onto centred coordinates, so E[z^T J z] = tr(P J P): checked on the
    empirical second moment of 4000 probes (standard error about 0.02 per entry)."""
    space = GraphSpace(torch.tensor([0, 1, 0, 1, 1]), 2, zero_mean=(0,))
    x = torch.zeros(5, 2, dtype=F64)
    z = torch.stack(hutchinson_probes(x, space, 4000, probe, torch.Generator().manual_seed(10))).flatten(1)
    second_moment = z.T @ z / len(z)
    batch = space.batch.repeat_interleave(2)
    centred = torch.tensor([True, False]).repeat(5)
    same_sample = batch[:, None] == batch[None, :]
    counts = space.counts[batch].to(F64)
    expected = torch.where(same_sample & centred[:, None] & centred[None, :], -1 / counts[:, None], 0.0)
    expected = expected + torch.diag(torch.ones(10, dtype=F64))
    torch.testing.assert_close(second_moment, expected, rtol=0, atol=0.08)


def test_dense_mask_is_not_a_dimension():
    mask = torch.tensor([True, False, True, True, False])
    space, process = DenseSpace(mask=mask), LinearInterpolant()
    x0 = space.project(torch.randn(3, 5, generator=torch.Generator().manual_seed(8), dtype=F64))
    result = log_likelihood(_isotropic_denoiser(process, 1.0), x0, process=process, space=space, trace="exact")
    torch.testing.assert_close(result.log_prob, _isotropic_log_prob(x0, space, 1.0), rtol=0, atol=1e-4)
    torch.testing.assert_close(result.bits_per_dim, -result.log_prob / (3 * math.log(2)))


def test_exact_probes_sum_to_the_projection():
    """sum_k (P e_k)(P e_k)^T restricted to one sample is P itself, so sum_k z_k * z_k = diag(P)."""
    space = GraphSpace(torch.tensor([1, 0, 1, 1]), 2, zero_mean=(0,))
    x = torch.zeros(4, 2, dtype=F64)
    diag = sum(z * z for z in exact_probes(x, space))
    counts = torch.tensor([3.0, 1.0, 3.0, 3.0], dtype=F64)
    torch.testing.assert_close(diag[:, 0], 1 - 1 / counts)  # P = I - 1 1^T / n on the centred column
    torch.testing.assert_close(diag[:, 1], torch.ones(4, dtype=F64))


def test_prior_is_the_marginal_of_standard_data():
    process, x = VPLinear(), torch.randn(5, 3, generator=torch.Generator().manual_seed(9), dtype=F64)
    t = torch.tensor(0.3, dtype=F64)
    expected = GaussianMixture.gaussian(torch.zeros(3), 2.0 * torch.eye(3)).log_prob(x, process.alpha(t), process.sigma(t))
    torch.testing.assert_close(prior_log_prob(x, t, process=process, space=DenseSpace(), data_var=2.0), expected)


def test_bad_options_raise():
    target, process = TARGETS["mixture_2d"], LinearInterpolant()
    x0 = torch.zeros(1, 2, dtype=F64)
    with pytest.raises(ValueError, match="trace"):
        log_likelihood(target.denoiser(process), x0, process=process, trace="skilling", space=DenseSpace())
    with pytest.raises(ValueError, match="t_min"):
        log_likelihood(target.denoiser(process), x0, process=process, t_min=0.0, space=DenseSpace())


def test_exact_divergence_is_the_projected_jacobian_trace():
    """For a nonlinear map that mixes rows within each graph, sum over exact probes = tr(P J P) per graph,
    with J from the full autograd Jacobian and P the centring projection of each graph."""
    space = GraphSpace(torch.tensor([1, 0, 1, 1, 0]), 2, zero_mean=(0,))
    weight = torch.randn(2, 2, generator=torch.Generator().manual_seed(13), dtype=F64)
    fn = lambda x: torch.tanh(x @ weight) + space.mean(x**2)[space.batch]
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(14), dtype=F64)
    x_in = x.clone().requires_grad_(True)
    got = divergence(fn(x_in), x_in, exact_probes(x, space), space)
    jac = torch.autograd.functional.jacobian(fn, x).reshape(10, 10)
    expected = []
    for b in range(2):
        rows = (space.batch == b).nonzero().flatten()
        n = len(rows)
        P = torch.zeros(10, 10, dtype=F64)
        for i in rows:
            P[2 * i + 1, 2 * i + 1] = 1.0  # the free column
            for j in rows:
                P[2 * i, 2 * j] = float(i == j) - 1 / n  # the centred column
        expected.append(torch.trace(P @ jac @ P))
    torch.testing.assert_close(got, torch.stack(expected))

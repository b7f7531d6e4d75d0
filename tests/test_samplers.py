"""Samplers against exact answers: Gaussian and Gaussian-mixture targets whose denoisers are
closed-form (sciffusion.testing), the probability-flow ODE of a 1-D Gaussian solved exactly, and the
sampler contract (reproducibility, subspaces, grids, callbacks, autograd inside the denoiser)."""
from __future__ import annotations

import math

import pytest
import torch

from sciffusion.processes import EDM, DiscreteVP, LinearInterpolant, VarianceExploding, VPCosine, VPLinear
from sciffusion.samplers import SAMPLERS, count_evaluations, ddim, dpmpp_2m, euler, heun, prior_sample, sample
from sciffusion.space import DenseSpace, GraphSpace
from sciffusion.testing import GaussianMixture, gaussian_mixture_2d, mode_weights, moment_errors, random_gaussian
from sciffusion.timesteps import custom, uniform_log_snr

F64 = torch.float64
PROCESSES = {
    "vp_linear": VPLinear(), "vp_cosine": VPCosine(), "linear": LinearInterpolant(), "edm": EDM(),
    "ve": VarianceExploding(), "ddpm_linear": DiscreteVP.linear(),
}
DETERMINISTIC = ["ddim", "euler", "heun", "dpmpp_2m", "unipc", "deis", "ipndm", "ode"]
STOCHASTIC = ["ddpm", "dpmpp_2m_sde", "euler_maruyama", "predictor_corrector"]
# Modest step counts: first-order solvers need more than second-order ones, SDE solvers more than ODE ones.
STEPS = {"ddim": 50, "euler": 50, "heun": 25, "dpmpp_2m": 20, "unipc": 20, "deis": 20, "ipndm": 20, "sa_solver": 20, "ode": 10,
         "ddpm": 100, "dpmpp_2m_sde": 40, "euler_maruyama": 100, "predictor_corrector": 50}
OPTIONS = {"predictor_corrector": {"snr": 0.05}, "ode": {"rtol": 1e-4, "atol": 1e-4}}
GAUSSIAN = random_gaussian(16)
MIXTURE = gaussian_mixture_2d()


def _grid(process, name: str):
    # sigma_min = 0.02 stays above the variance-exploding process's own floor sigma(0) = 0.01
    steps = STEPS[name]
    if name == "euler" and isinstance(process, VarianceExploding):
        # Euler in t on sigma = sigma_min (sigma_max / sigma_min)^t: each step misses the exponential's
        # curvature, an error about 30 / steps on the covariance (measured), so it needs many steps
        steps = 400
    return uniform_log_snr(process, steps, sigma_min=0.02)


# Every sampler of a diffusion/flow denoiser; the consistency sampler is only right for a consistency
# model (its own tests are in test_distillation.py).
DIFFUSION_SAMPLERS = [name for name in SAMPLERS if name != "consistency"]


def _run(name: str, process, target: GaussianMixture, x, generator=None):
    return SAMPLERS[name](target.denoiser(process), x, _grid(process, name), process=process,
                          generator=generator, space=DenseSpace(), **OPTIONS.get(name, {}))


def _marginal(process, ts) -> tuple[float, float]:
    t0 = ts[:1]
    return float(process.alpha(t0)), float(process.sigma(t0))


def _start(name: str, process, target: GaussianMixture, n: int, generator) -> torch.Tensor:
    """n draws of the exact marginal at the grid's first time, alpha x0 + sigma eps, so that the test
    measures the sampler and not the prior's neglect of alpha x0."""
    alpha, sigma = _marginal(process, _grid(process, name))
    x0, _ = target.sample(n, generator)
    return alpha * x0 + sigma * torch.randn(n, target.dim, generator=generator, dtype=F64)


def _exact_gaussian_output(name: str, process, target: GaussianMixture) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of a deterministic sampler's output, exactly. With a Gaussian target the
    exact denoiser is affine in x, so the sampler is an affine map out = M x + b: running it on the
    rows [0, s e_1, ..., s e_D] gives b and s M^T, and from the exact marginal N(mu, S) at the grid's
    first time the output is N(M mu + b, M S M^T), with no Monte Carlo error at all. (The rows have
    the noise scale s = sigma(t_0) of real states, which the adaptive solver's tolerances assume.)"""
    alpha, sigma = _marginal(process, _grid(process, name))
    rows = torch.cat([torch.zeros(1, target.dim, dtype=F64), sigma * torch.eye(target.dim, dtype=F64)])
    out = _run(name, process, target, rows)
    b, m_t = out[0], (out[1:] - out[0]) / sigma
    mu, s = alpha * target.mean(), alpha**2 * target.cov() + sigma**2 * torch.eye(target.dim, dtype=F64)
    return mu @ m_t + b, m_t.T @ s @ m_t


def _relative_errors(mean, cov, target: GaussianMixture) -> tuple[float, float]:
    c = target.cov()
    return (float(torch.linalg.norm(mean - target.mean()) / c.trace().sqrt()),
            float(torch.linalg.norm(cov - c) / torch.linalg.norm(c)))


@pytest.mark.parametrize("process_name", PROCESSES)
@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_samplers_reproduce_a_gaussian_exactly(name, process_name):
    """No Monte Carlo here, so the tolerance is discretisation error alone. Measured relative errors
    (mean / sqrt(tr C), covariance in Frobenius norm) at the step counts in STEPS: DDIM 0.08 on the
    covariance (~ 4 / steps) and 3e-4 on the mean; Euler in t up to 0.015 on the mean and 0.08 on the
    covariance; Heun 0.035; DPM-Solver++(2M) 0.021; UniPC(2) 0.012; DEIS-3 0.0036; iPNDM-4 0.017; the adaptive solver at rtol 1e-4 under 0.003, 0.0056
    on the discrete DDPM schedule, whose log alpha^2 has a kink at each of its 1000 steps. DDIM, Heun
    and DPM-Solver++ give the same numbers for every process, as they should (their steps depend only
    on the noise levels). A wrong coefficient anywhere gives errors of order one."""
    mean_tol, cov_tol = {"ddim": (1e-3, 0.1), "euler": (0.02, 0.1), "heun": (1e-3, 0.05),
                         "dpmpp_2m": (1e-3, 0.03), "unipc": (1e-3, 0.02), "deis": (1e-3, 0.005),
                         "ipndm": (1e-3, 0.025), "ode": (1e-3, 0.01)}[name]
    mean_err, cov_err = _relative_errors(*_exact_gaussian_output(name, PROCESSES[process_name], GAUSSIAN), GAUSSIAN)
    assert mean_err < mean_tol and cov_err < cov_tol, (mean_err, cov_err)


@pytest.mark.parametrize("process_name", ["vp_linear", "edm", "linear"])
@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_samplers_reproduce_a_gaussian(name, process_name):
    """2000 samples in 16-D: Monte Carlo alone gives relative errors of about 1/sqrt(2000) = 0.022
    on the mean and about 0.09 on the covariance; the tolerances (0.07, 0.2) leave room for that
    plus the first-order discretisation error of SDE solvers at these step counts."""
    process = PROCESSES[process_name]
    g = torch.Generator().manual_seed(0)
    x = _start(name, process, GAUSSIAN, 2000, g)
    mean_err, cov_err = moment_errors(_run(name, process, GAUSSIAN, x, g), GAUSSIAN)
    assert mean_err < 0.07 and cov_err < 0.2, (mean_err, cov_err)


@pytest.mark.parametrize("process_name", PROCESSES)
@pytest.mark.parametrize("name", DIFFUSION_SAMPLERS)
def test_samplers_reproduce_a_gaussian_mixture(name, process_name):
    """2000 samples of the three-mode 2-D mixture (weights 0.5, 0.3, 0.2): Monte Carlo error of a
    mode weight is at most sqrt(0.25 / 2000) = 0.011 and about 0.02 on the moments; tolerances
    (0.05 weights, 0.08 mean, 0.12 covariance) add the discretisation error."""
    process = PROCESSES[process_name]
    g = torch.Generator().manual_seed(1)
    x = _start(name, process, MIXTURE, 2000, g)
    out = _run(name, process, MIXTURE, x, g)
    mean_err, cov_err = moment_errors(out, MIXTURE)
    weight_err = float((mode_weights(out, MIXTURE) - MIXTURE.weights).abs().max())
    assert mean_err < 0.08 and cov_err < 0.12 and weight_err < 0.05, (mean_err, cov_err, weight_err)


def _ode_state_at_t_end(name: str, process, variance: float, steps: int) -> float:
    """Max error at t_end of a sampler on the 1-D Gaussian N(0, variance) against the closed-form
    probability-flow solution x_t = sqrt(alpha_t^2 v + sigma_t^2) / sqrt(alpha_s^2 v + sigma_s^2) x_s.
    The grid is uniform in log-SNR from scaled sigma 20 to 0.05 (= t_end), then 0; the state at t_end
    is read from the callback, before the final denoising step."""
    log_snr = torch.linspace(-2 * math.log(20.0), -2 * math.log(0.05), steps + 1, dtype=F64)
    ts = custom(torch.cat([process.t_from_log_snr(log_snr), torch.zeros(1, dtype=F64)]))
    target = GaussianMixture.gaussian(torch.zeros(1), torch.tensor([[variance]]))
    spread = lambda t: float((process.alpha(t) ** 2 * variance + process.sigma(t) ** 2).sqrt())
    x = torch.tensor([[1.0], [-2.0], [0.5]], dtype=F64) * spread(ts[0])
    states = {}
    SAMPLERS[name](target.denoiser(process), x, ts, process=process,
                   callback=lambda info: states.update({info["t_next"]: info["x"]}), space=DenseSpace())
    exact = x * spread(ts[-2]) / spread(ts[0])
    return float((states[float(ts[-2])] - exact).abs().max())


@pytest.mark.parametrize("process_name", ["vp_linear", "edm", "linear"])
@pytest.mark.parametrize("name, order", [("ddim", 1), ("euler", 1), ("heun", 2), ("dpmpp_2m", 2)])
def test_convergence_order_on_the_probability_flow_ode(name, order, process_name):
    """Doubling the steps divides the global error by 2^order: the measured order between 32 and
    64 steps is within 0.3 of 1 for DDIM and Euler and of 2 for Heun and DPM-Solver++(2M)."""
    process = PROCESSES[process_name]
    coarse, fine = (_ode_state_at_t_end(name, process, 0.3, n) for n in (32, 64))
    measured = math.log2(coarse / fine)
    assert abs(measured - order) < 0.3, (coarse, fine, measured)


def _sample_twice(name: str, seeds: tuple[int, int], **options):
    process = PROCESSES["vp_linear"]
    ts = uniform_log_snr(process, 6)
    out = []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        x = prior_sample(process, torch.zeros(8, 2, dtype=F64), t=float(ts[0]), space=DenseSpace(),
                         generator=torch.Generator().manual_seed(0))
        out.append(SAMPLERS[name](MIXTURE.denoiser(process), x, ts, process=process, generator=g,
                                  space=DenseSpace(), **options))
    return out


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_samplers_are_reproducible_and_ignore_the_generator(name):
    first, second = _sample_twice(name, (0, 1))
    assert torch.equal(first, second)


@pytest.mark.parametrize("name, options", [(n, {}) for n in STOCHASTIC]
                         + [("ddim", {"eta": 0.5}), ("heun", {"s_churn": 10.0})])
def test_stochastic_samplers_follow_their_generator(name, options):
    again = _sample_twice(name, (3, 3), **options)
    other = _sample_twice(name, (3, 4), **options)
    assert torch.equal(*again)
    assert (other[0] - other[1]).abs().max() > 1e-3


def _graph_denoiser(variance: float, process):
    """Exact for zero-mean isotropic Gaussian positions, plus an offset that leaves the subspace:
    a sampler that forgets to project lets the per-sample mean drift."""

    def denoise(x, t, space, cond):
        alpha, sigma = space.per_sample(process.alpha(t), x), space.per_sample(process.sigma(t), x)
        return alpha * variance / (alpha**2 * variance + sigma**2) * x + 0.3

    return denoise


@pytest.mark.parametrize("name", DIFFUSION_SAMPLERS)
def test_graph_samples_stay_in_the_zero_mean_subspace(name):
    process = PROCESSES["vp_linear"]
    space = GraphSpace(torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2]), 3, zero_mean=(0, 1, 2))
    shape = torch.zeros(12, 4, dtype=F64)  # three coordinates and one free feature per node
    ts = uniform_log_snr(process, 8)
    x = prior_sample(process, shape, t=float(ts[0]), space=space, generator=torch.Generator().manual_seed(0))
    seen = []
    out = SAMPLERS[name](_graph_denoiser(0.5, process), x, ts, process=process, space=space,
                         generator=torch.Generator().manual_seed(1), callback=lambda info: seen.append(info["x"]))
    for state in [x, *seen, out]:
        assert space.mean(state)[:, :3].abs().max() < 1e-12
    assert space.mean(out)[:, 3].abs().min() > 0.1  # the free column is not centred


@pytest.mark.parametrize("name", DIFFUSION_SAMPLERS)
@pytest.mark.parametrize("ts, problem", [([0.8, 0.4, 0.1], "end at t = 0"), ([0.4, 0.8, 0.0], "decrease"),
                                         ([0.0], "two times")])
def test_bad_grids_are_rejected_clearly(name, ts, problem):
    process = PROCESSES["vp_linear"]
    with pytest.raises(ValueError, match=problem):
        SAMPLERS[name](MIXTURE.denoiser(process), torch.zeros(4, 2, dtype=F64), ts, process=process, space=DenseSpace())


@pytest.mark.parametrize("name", DIFFUSION_SAMPLERS)
def test_sampler_contract(name):
    """t reaches the denoiser as a [B] tensor in x's dtype, cond is passed through, the callback
    sees every step in order and its last state is the output, and the NFE count is as documented."""
    process, steps = PROCESSES["edm"], 5
    ts = uniform_log_snr(process, steps)
    calls, infos = [], []

    def denoiser(x, t, space, cond):
        assert t.shape == (4,) and t.dtype == torch.float32 and cond["label"].shape == (4,)
        calls.append(t[0].item())
        return 0.5 * x / (1 + t[:, None] ** 2)

    counted = count_evaluations(denoiser)
    x = prior_sample(process, torch.zeros(4, 3), t=float(ts[0]), generator=torch.Generator().manual_seed(0),
                     space=DenseSpace())
    out = SAMPLERS[name](counted, x, ts, process=process, cond={"label": torch.arange(4)},
                         generator=torch.Generator().manual_seed(0), callback=infos.append, space=DenseSpace())
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert [info["i"] for info in infos] == list(range(steps))
    assert [info["t_next"] for info in infos] == ts[1:].tolist()
    assert torch.equal(infos[-1]["x"], out) and set(infos[0]) == {"i", "t", "t_next", "x", "x0_hat"}
    expected_nfe = {"heun": 2 * steps - 1, "predictor_corrector": 2 * (steps - 1) + 1}
    if name == "ode":
        assert counted.count == len(calls) > steps  # adaptive, plus one per reported time
    else:
        assert counted.count == expected_nfe.get(name, steps)


@pytest.mark.parametrize("name", DIFFUSION_SAMPLERS)
def test_a_denoiser_may_use_autograd_inside_sampling(name):
    """A guidance-style denoiser turns gradients on and differentiates log p_t; its x0_hat from
    Tweedie's formula x0_hat = (x + sigma^2 grad log p_t) / alpha equals the exact denoiser's."""
    process = PROCESSES["vp_linear"]

    def autograd_denoiser(x, t, space, cond):
        alpha, sigma = process.alpha(t), process.sigma(t)
        with torch.enable_grad():
            x_ = x.detach().requires_grad_(True)
            (score,) = torch.autograd.grad(MIXTURE.log_prob(x_, alpha, sigma).sum(), x_)
        return (x + sigma[:, None] ** 2 * score) / alpha[:, None]

    ts = uniform_log_snr(process, 6)
    x = prior_sample(process, torch.zeros(16, 2, dtype=F64), t=float(ts[0]), generator=torch.Generator().manual_seed(0),
                     space=DenseSpace())
    runs = [SAMPLERS[name](d, x, ts, process=process, generator=torch.Generator().manual_seed(2), space=DenseSpace())
            for d in (autograd_denoiser, MIXTURE.denoiser(process))]
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-6, atol=1e-6)


def test_sample_by_name_and_unknown_names():
    process = PROCESSES["vp_linear"]
    ts = uniform_log_snr(process, 4)
    x = prior_sample(process, torch.zeros(4, 2, dtype=F64), t=float(ts[0]), generator=torch.Generator().manual_seed(0),
                     space=DenseSpace())
    assert torch.equal(sample("dpmpp_2m", MIXTURE.denoiser(process), x, ts, process=process, space=DenseSpace()),
                       dpmpp_2m(MIXTURE.denoiser(process), x, ts, process=process, space=DenseSpace()))
    with pytest.raises(ValueError, match="unknown sampler 'dpm'.*dpmpp_2m"):
        sample("dpm", MIXTURE.denoiser(process), x, ts, process=process, space=DenseSpace())


@pytest.mark.parametrize("process_name", ["vp_linear", "linear", "ve"])
def test_prior_sample_has_the_noise_scale_of_its_time(process_name):
    process = PROCESSES[process_name]
    x = prior_sample(process, torch.zeros(20000, 3, dtype=F64), generator=torch.Generator().manual_seed(0),
                     space=DenseSpace())
    sigma = float(process.sigma(torch.tensor(process.t_max, dtype=F64)))
    assert abs(float(x.std()) / sigma - 1) < 0.02  # 60000 draws: std error of the std is 0.3%
    half = prior_sample(process, torch.zeros(20000, 3, dtype=F64), t=0.5, generator=torch.Generator().manual_seed(0),
                        space=DenseSpace())
    assert torch.allclose(half / float(process.sigma(torch.tensor(0.5, dtype=F64))), x / sigma)


def test_euler_equals_ddim_where_alpha_and_sigma_are_linear_in_t():
    """Where alpha and sigma are linear in t (EDM, the linear interpolant) Euler in t lands exactly
    where DDIM(eta=0) does: x + (s - t)(d_alpha x0_hat + d_sigma eps_hat) = alpha_s x0_hat +
    sigma_s eps_hat. Elsewhere (VP; VE, whose sigma is exponential in t) they differ."""
    for name, same in (("edm", True), ("linear", True), ("ve", False), ("vp_linear", False)):
        process = PROCESSES[name]
        ts = uniform_log_snr(process, 8, sigma_min=0.02)
        x = prior_sample(process, torch.zeros(6, 2, dtype=F64), t=float(ts[0]), space=DenseSpace(),
                         generator=torch.Generator().manual_seed(0))
        a, b = (f(MIXTURE.denoiser(process), x, ts, process=process, space=DenseSpace()) for f in (euler, ddim))
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10) == same, name

"""SA-Solver against exact answers (the 1-D Gaussian's closed-form probability-flow ODE, a Gaussian's
moments) and against diffusers' SASolverScheduler, step by step, deterministic and stochastic."""
from __future__ import annotations

import math

import pytest
import torch

from sciffusion.processes import DiscreteVP, VPLinear
from sciffusion.samplers import SAMPLERS, count_evaluations, prior_sample, sa_solver
from sciffusion.space import DenseSpace
from sciffusion.testing import GaussianMixture, gaussian_mixture_2d, moment_errors, random_gaussian
from sciffusion.timesteps import custom, uniform_log_snr

F64 = torch.float64
PROCESS = VPLinear()
GAUSSIAN = random_gaussian(16)
MIXTURE = gaussian_mixture_2d()


def _ode_error(steps: int, **options) -> float:
    """Max error at t_end on the 1-D Gaussian N(0, 0.3) against the closed-form probability-flow map
    x_t = sqrt(alpha_t^2 v + sigma_t^2) / sqrt(alpha_s^2 v + sigma_s^2) x_s, on a grid uniform in
    log-SNR from scaled sigma 20 to 0.05 (= t_end), then 0; read from the callback at t_end (the
    predicted state there)."""
    log_snr = torch.linspace(-2 * math.log(20.0), -2 * math.log(0.05), steps + 1, dtype=F64)
    ts = custom(torch.cat([PROCESS.t_from_log_snr(log_snr), torch.zeros(1, dtype=F64)]))
    variance = 0.3
    target = GaussianMixture.gaussian(torch.zeros(1), torch.tensor([[variance]]))
    spread = lambda t: float((PROCESS.alpha(t) ** 2 * variance + PROCESS.sigma(t) ** 2).sqrt())
    x = torch.tensor([[1.0], [-2.0], [0.5]], dtype=F64) * spread(ts[0])
    states = {}
    sa_solver(target.denoiser(PROCESS), x, ts, process=PROCESS,
              callback=lambda info: states.update({info["t_next"]: info["x"]}), space=DenseSpace(), **options)
    return float((states[float(ts[-2])] - x * spread(ts[-2]) / spread(ts[0])).abs().max())


@pytest.mark.parametrize("predictor_order, corrector_order", [(1, 1), (2, 1), (1, 2), (2, 2), (1, 4), (2, 3),
                                                              (3, 3), (3, 4)])
def test_convergence_order(predictor_order, corrector_order):
    """A predictor of order p with a corrector of order c (one correction per step) is of order
    min(p + 1, c); the state read here is the last predicted one, whose step has predictor order
    min(p, 2) under ``lower_order_final``, so its local error O(h^3) caps the measured order at 3.
    Measured between 64 and 128 steps: 0.93, 0.98, 2.05, 2.15, 2.02, 3.03, 2.82, 2.96 (between 32 and
    64 the orders 3/3 and 3/4 are not yet asymptotic: 3.22, 3.33)."""
    expected = min(predictor_order + 1, corrector_order, 3)
    coarse, fine = (_ode_error(n, predictor_order=predictor_order, corrector_order=corrector_order) for n in (64, 128))
    measured = math.log2(coarse / fine)
    assert abs(measured - expected) < 0.2, (coarse, fine, measured)


def _exact_gaussian_output(**options) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact output mean and covariance (the sampler is affine for a Gaussian target) at 20 steps of
    the log-SNR grid down to scaled sigma 0.02."""
    ts = uniform_log_snr(PROCESS, 20, sigma_min=0.02)
    alpha, sigma = float(PROCESS.alpha(ts[:1])), float(PROCESS.sigma(ts[:1]))
    rows = torch.cat([torch.zeros(1, GAUSSIAN.dim, dtype=F64), sigma * torch.eye(GAUSSIAN.dim, dtype=F64)])
    out = sa_solver(GAUSSIAN.denoiser(PROCESS), rows, ts, process=PROCESS, space=DenseSpace(), **options)
    b, m_t = out[0], (out[1:] - out[0]) / sigma
    s = alpha**2 * GAUSSIAN.cov() + sigma**2 * torch.eye(GAUSSIAN.dim, dtype=F64)
    return alpha * GAUSSIAN.mean() @ m_t + b, m_t.T @ s @ m_t


@pytest.mark.parametrize("predictor_order, corrector_order, tolerance", [(2, 3, 0.04), (3, 4, 0.001)])
def test_a_gaussian_is_reproduced_exactly(predictor_order, corrector_order, tolerance):
    """No Monte Carlo: relative covariance errors measured 0.028 (orders 2/3) and 2.0e-4 (3/4), against
    0.11 for orders 1/1 and 0.012 for UniPC-2 (tests/test_unipc.py); the mean is exact to rounding.
    A wrong coefficient gives errors of order one."""
    mean, cov = _exact_gaussian_output(predictor_order=predictor_order, corrector_order=corrector_order)
    c = GAUSSIAN.cov()
    assert float(torch.linalg.norm(mean - GAUSSIAN.mean()) / c.trace().sqrt()) < 1e-3
    assert float(torch.linalg.norm(cov - c) / torch.linalg.norm(c)) < tolerance


def test_tau_samples_the_sde():
    """tau > 0: 2000 samples of the 16-D Gaussian have its moments within Monte Carlo error (about
    0.022 on the mean and 0.09 on the covariance), the generator decides the noise, and tau = 0
    ignores it."""
    ts = uniform_log_snr(PROCESS, 40, sigma_min=0.02)
    g = torch.Generator().manual_seed(0)
    alpha, sigma = float(PROCESS.alpha(ts[:1])), float(PROCESS.sigma(ts[:1]))
    x = alpha * GAUSSIAN.sample(2000, g)[0] + sigma * torch.randn(2000, GAUSSIAN.dim, generator=g, dtype=F64)
    run = lambda x, seed, tau: sa_solver(GAUSSIAN.denoiser(PROCESS), x, ts, process=PROCESS, tau=tau,
                                         space=DenseSpace(), generator=torch.Generator().manual_seed(seed))
    mean_err, cov_err = moment_errors(run(x, 1, 1.0), GAUSSIAN)
    assert mean_err < 0.07 and cov_err < 0.2, (mean_err, cov_err)
    few = x[:8]
    assert torch.equal(run(few, 1, 1.0), run(few, 1, 1.0)) and (run(few, 1, 1.0) - run(few, 2, 1.0)).abs().max() > 1e-3
    assert torch.equal(run(few, 1, 0.0), run(few, 2, 0.0))


def test_nfe_and_bad_options():
    ts = uniform_log_snr(PROCESS, 7)
    x = prior_sample(PROCESS, torch.zeros(4, 2, dtype=F64), generator=torch.Generator().manual_seed(0),
                     space=DenseSpace())
    for options in ({}, {"predictor_order": 1, "corrector_order": 1}, {"tau": 0.5}):
        counted = count_evaluations(MIXTURE.denoiser(PROCESS))
        SAMPLERS["sa_solver"](counted, x, ts, process=PROCESS, space=DenseSpace(), **options)
        assert counted.count == 7, options  # one evaluation per step: the corrector reuses the next one
    run = lambda **options: sa_solver(MIXTURE.denoiser(PROCESS), x, ts, process=PROCESS, space=DenseSpace(), **options)
    with pytest.raises(ValueError, match="predictor_order must be 1, 2 or 3, got 4"):
        run(predictor_order=4)
    with pytest.raises(ValueError, match="corrector_order must be 1, 2, 3 or 4, got 0"):
        run(corrector_order=0)
    with pytest.raises(ValueError, match="tau must be a number >= 0.*got -0.5"):
        run(tau=-0.5)


# ---------------------------------------------------------------- against diffusers
N = 1000
DISCRETE = DiscreteVP.linear(N)


def _eps_model(x: torch.Tensor, k) -> torch.Tensor:
    t = torch.tensor((float(k) + 1) / N, dtype=F64)
    alpha, sigma = float(DISCRETE.alpha(t)), float(DISCRETE.sigma(t))
    return (x - alpha * MIXTURE.denoiser(DISCRETE)(x, torch.full((len(x),), float(t), dtype=F64))) / sigma


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("predictor_order, corrector_order, tau, steps",
                         [(3, 4, 0.0, 12), (3, 4, 0.0, 5), (2, 2, 0.0, 8), (1, 1, 0.0, 6), (2, 3, 0.0, 9),
                          (1, 4, 0.0, 7), (3, 4, 0.7, 10)])
def test_sasolver_scheduler_is_our_sa_solver(predictor_order, corrector_order, tau, steps):
    """SASolverScheduler("data_prediction", lower_order_final, "trailing", tau_func = tau), given our
    float64 alpha-bar table and float64 sigmas, is our ``sa_solver``: its state after each step()
    is our callback's, to 1e-10 relative (measured ~1e-15), with tau > 0 too when both draw their
    noise from equally seeded generators. Its last step lands at sigma(k = 0) = 0.01 without
    denoising while ours returns x0_hat (the grid ends at t = 0), so that one is not compared."""
    schedulers = pytest.importorskip("diffusers.schedulers")
    sched = schedulers.SASolverScheduler(
        num_train_timesteps=N, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", predictor_order=predictor_order,
        corrector_order=corrector_order, tau_func=lambda t: tau, timestep_spacing="trailing")
    sched.alphas_cumprod = DISCRETE.alpha_sq(torch.arange(1, N + 1, dtype=F64) / N)
    sched.set_timesteps(steps)
    abar = sched.alphas_cumprod[torch.cat([sched.timesteps.long(), torch.zeros(1, dtype=torch.long)])]
    sched.sigmas = ((1 - abar) / abar).sqrt()
    ts = custom([(float(k) + 1) / N for k in sched.timesteps] + [0.0])
    g = torch.Generator().manual_seed(0)
    alpha, sigma = float(DISCRETE.alpha(ts[:1])), float(DISCRETE.sigma(ts[:1]))
    x = alpha * MIXTURE.sample(8, g)[0] + sigma * torch.randn(8, 2, generator=g, dtype=F64)
    ours = []
    sa_solver(MIXTURE.denoiser(DISCRETE), x, ts, process=DISCRETE, predictor_order=predictor_order,
              corrector_order=corrector_order, tau=tau, generator=torch.Generator().manual_seed(5),
              callback=lambda info: ours.append(info["x"]), space=DenseSpace())
    theirs, noise = x, torch.Generator().manual_seed(5)
    for k, mine in zip(sched.timesteps[:-1], ours[:-1]):
        theirs = sched.step(_eps_model(theirs, k), k, theirs, generator=noise).prev_sample
        torch.testing.assert_close(theirs, mine, rtol=1e-10, atol=1e-10 * float(mine.abs().max()))

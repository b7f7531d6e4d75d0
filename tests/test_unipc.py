"""UniPC against exact answers (a Gaussian's moments, the 1-D Gaussian's closed-form probability-flow
ODE), against DPM-Solver++(2M) (its predictor without the corrector) and against diffusers'
UniPCMultistepScheduler, step by step."""
from __future__ import annotations

import math

import pytest
import torch

from sciffusion.processes import EDM, DiscreteVP, LinearInterpolant, VPLinear
from sciffusion.samplers import SAMPLERS, count_evaluations, dpmpp_2m, prior_sample, unipc
from sciffusion.space import DenseSpace
from sciffusion.testing import GaussianMixture, gaussian_mixture_2d, mode_weights, moment_errors, random_gaussian
from sciffusion.timesteps import custom, uniform_log_snr

F64 = torch.float64
PROCESSES = {"vp_linear": VPLinear(), "linear": LinearInterpolant(), "edm": EDM(), "ddpm_linear": DiscreteVP.linear()}
GAUSSIAN = random_gaussian(16)
MIXTURE = gaussian_mixture_2d()


def _exact_gaussian_output(process, ts, **options) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact output mean and covariance: the sampler is affine for a Gaussian target, so pushing the
    rows [0, s e_1, ..., s e_D] through it gives the map, and the marginal at ts[0] its image."""
    alpha, sigma = float(process.alpha(ts[:1])), float(process.sigma(ts[:1]))
    rows = torch.cat([torch.zeros(1, GAUSSIAN.dim, dtype=F64), sigma * torch.eye(GAUSSIAN.dim, dtype=F64)])
    out = unipc(GAUSSIAN.denoiser(process), rows, ts, process=process, space=DenseSpace(), **options)
    b, m_t = out[0], (out[1:] - out[0]) / sigma
    mu = alpha * GAUSSIAN.mean()
    s = alpha**2 * GAUSSIAN.cov() + sigma**2 * torch.eye(GAUSSIAN.dim, dtype=F64)
    return mu @ m_t + b, m_t.T @ s @ m_t


@pytest.mark.parametrize("process_name", PROCESSES)
@pytest.mark.parametrize("order", [2, 3])
def test_unipc_reproduces_a_gaussian_exactly(order, process_name):
    """No Monte Carlo: discretisation error alone, at 20 steps on the log-SNR grid. Measured relative
    covariance errors (Frobenius norm): 0.0119 for order 2 and 3.2e-4 for order 3, against 0.0214 for
    DPM-Solver++(2M) (= UniPC without the corrector) and a floor of 8e-4 from stopping at scaled sigma
    0.02 (all at 200 steps); the mean error is rounding (the sampler is odd-symmetric about the
    target's mean). The same for every process, since the steps depend on the noise levels only. A
    wrong coefficient gives errors of order one."""
    process = PROCESSES[process_name]
    mean, cov = _exact_gaussian_output(process, uniform_log_snr(process, 20, sigma_min=0.02), order=order)
    c = GAUSSIAN.cov()
    mean_err = float(torch.linalg.norm(mean - GAUSSIAN.mean()) / c.trace().sqrt())
    cov_err = float(torch.linalg.norm(cov - c) / torch.linalg.norm(c))
    assert mean_err < 1e-3 and cov_err < {2: 0.015, 3: 0.002}[order], (mean_err, cov_err)


@pytest.mark.parametrize("process_name", ["vp_linear", "edm", "linear"])
def test_unipc_reproduces_a_gaussian_mixture(process_name):
    """2000 samples of the three-mode 2-D mixture at 20 steps; tolerances as for the other samplers
    (Monte Carlo ~0.011 on a weight, ~0.02 on the moments)."""
    process = PROCESSES[process_name]
    ts = uniform_log_snr(process, 20, sigma_min=0.02)
    g = torch.Generator().manual_seed(1)
    alpha, sigma = float(process.alpha(ts[:1])), float(process.sigma(ts[:1]))
    x = alpha * MIXTURE.sample(2000, g)[0] + sigma * torch.randn(2000, 2, generator=g, dtype=F64)
    out = unipc(MIXTURE.denoiser(process), x, ts, process=process, space=DenseSpace())
    mean_err, cov_err = moment_errors(out, MIXTURE)
    weight_err = float((mode_weights(out, MIXTURE) - MIXTURE.weights).abs().max())
    assert mean_err < 0.08 and cov_err < 0.12 and weight_err < 0.05, (mean_err, cov_err, weight_err)


def _ode_error(process, steps: int, **options) -> float:
    """Max error at t_end of UniPC on the 1-D Gaussian N(0, 0.3) against the closed-form
    probability-flow solution x_t = sqrt(alpha_t^2 v + sigma_t^2) / sqrt(alpha_s^2 v + sigma_s^2) x_s,
    on a grid uniform in log-SNR from scaled sigma 20 to 0.05 (= t_end), then 0. The corrected state
    at t_end is one more step of the solver; the test reads the predicted state from the callback,
    which is where the global error of UniPC's output (x0_hat there) comes from."""
    log_snr = torch.linspace(-2 * math.log(20.0), -2 * math.log(0.05), steps + 1, dtype=F64)
    ts = custom(torch.cat([process.t_from_log_snr(log_snr), torch.zeros(1, dtype=F64)]))
    variance = 0.3
    target = GaussianMixture.gaussian(torch.zeros(1), torch.tensor([[variance]]))
    spread = lambda t: float((process.alpha(t) ** 2 * variance + process.sigma(t) ** 2).sqrt())
    x = torch.tensor([[1.0], [-2.0], [0.5]], dtype=F64) * spread(ts[0])
    states = {}
    unipc(target.denoiser(process), x, ts, process=process,
          callback=lambda info: states.update({info["t_next"]: info["x"]}), space=DenseSpace(), **options)
    exact = x * spread(ts[-2]) / spread(ts[0])
    return float((states[float(ts[-2])] - exact).abs().max())


@pytest.mark.parametrize("process_name", ["vp_linear", "edm", "linear"])
@pytest.mark.parametrize("order, corrector, expected", [(1, False, 1), (2, False, 2), (1, True, 2), (2, True, 3)])
def test_convergence_order_on_the_probability_flow_ode(order, corrector, expected, process_name):
    """Doubling the steps divides the global error by 2^order. UniP-p alone is order p; UniC raises
    it by one (Zhao et al. 2023, Thm. 3.1). Measured between 32 and 64 steps: 0.98, 1.97, 1.99 and
    2.99 (within 0.3 of 1, 2, 2, 3). The last step to t_end is UniP-2 under ``lower_order_final``;
    its local error O(h^3) is a single step's and leaves the global order 3."""
    process = PROCESSES[process_name]
    coarse, fine = (_ode_error(process, n, order=order, corrector=corrector) for n in (32, 64))
    measured = math.log2(coarse / fine)
    assert abs(measured - expected) < 0.3, (coarse, fine, measured)


@pytest.mark.parametrize("corrector", [False, True])
def test_order_three_is_at_least_third_order(corrector):
    """Order 3 on the same problem. Its error changes sign along the path, so ratios of successive
    refinements wander (2.6 to 4.4 between 16 and 256 steps), and from ~256 steps on every order
    meets a floor of ~1e-8 that is not the solver's (order 2 meets it too). Averaged over 16 -> 128
    steps the error falls as h^3.9 (UniP-3) and h^3.5 (UniPC-3): we check at least third order, and
    an error at 128 steps under 1e-6 (measured 8.9e-7 and 6.0e-7; order 2 with corrector: 9.7e-6)."""
    process = PROCESSES["vp_linear"]  # the steps depend on the noise levels only: any process gives these numbers
    coarse, fine = (_ode_error(process, n, order=3, corrector=corrector) for n in (16, 128))
    assert math.log2(coarse / fine) / 3 > 3.0 and fine < 1e-6, (coarse, fine)


@pytest.mark.parametrize("process_name", ["vp_linear", "edm"])
def test_the_predictor_alone_is_dpm_solver_pp_2m(process_name):
    """UniP-2 with B(h) = e^h - 1 and the weight 1/2 is DPM-Solver++(2M), step for step."""
    process = PROCESSES[process_name]
    ts = uniform_log_snr(process, 10)
    x = prior_sample(process, torch.zeros(8, 2, dtype=F64), t=float(ts[0]), generator=torch.Generator().manual_seed(0),
                     space=DenseSpace())
    runs = [[], []]
    unipc(MIXTURE.denoiser(process), x, ts, process=process, corrector=False, callback=lambda i: runs[0].append(i["x"]),
          space=DenseSpace())
    dpmpp_2m(MIXTURE.denoiser(process), x, ts, process=process, callback=lambda i: runs[1].append(i["x"]),
             space=DenseSpace())
    for ours, theirs in zip(*runs):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_unipc_contract_and_options():
    """One evaluation per step, whatever the order; the corrector changes the result; bad options
    are refused with the value."""
    process = PROCESSES["vp_linear"]
    ts = uniform_log_snr(process, 7)
    x = prior_sample(process, torch.zeros(4, 2, dtype=F64), t=float(ts[0]), generator=torch.Generator().manual_seed(0),
                     space=DenseSpace())
    outs = []
    for options in ({"order": 1}, {"order": 2}, {"order": 3}, {"order": 3, "variant": "bh1"}, {"corrector": False}):
        counted = count_evaluations(MIXTURE.denoiser(process))
        outs.append(unipc(counted, x, ts, process=process, space=DenseSpace(), **options))
        assert counted.count == 7, options
    assert all((a - b).abs().max() > 1e-6 for a, b in zip(outs, outs[1:]))
    assert SAMPLERS["unipc"] is unipc
    with pytest.raises(ValueError, match="order must be 1, 2 or 3, got 4"):
        unipc(MIXTURE.denoiser(process), x, ts, process=process, order=4, space=DenseSpace())
    with pytest.raises(ValueError, match="variant.*'bh3'"):
        unipc(MIXTURE.denoiser(process), x, ts, process=process, variant="bh3", space=DenseSpace())


# ---------------------------------------------------------------- against diffusers
# As in tests/test_samplers_vs_diffusers.py: DDPM's betas, diffusers' timestep k is our t = (k + 1) / N,
# the scheduler gets our float64 alpha-bar table and float64 sigmas, and its eps model is built from
# the exact denoiser of a 2-D Gaussian mixture. UniPCMultistepScheduler keeps float64 throughout, so
# it can run on its own states and whole trajectories agree to rounding.
N = 1000
DISCRETE = DiscreteVP.linear(N)


def _t(k) -> float:
    return (float(k) + 1) / N


def _eps_model(x: torch.Tensor, k) -> torch.Tensor:
    t = torch.tensor(_t(k), dtype=F64)
    alpha, sigma = float(DISCRETE.alpha(t)), float(DISCRETE.sigma(t))
    return (x - alpha * MIXTURE.denoiser(DISCRETE)(x, torch.full((len(x),), float(t), dtype=F64))) / sigma


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("steps", [5, 12])
@pytest.mark.parametrize("order, variant", [(2, "bh2"), (3, "bh2"), (2, "bh1"), (3, "bh1")])
def test_unipc_multistep_scheduler_is_our_unipc(order, variant, steps):
    """UniPCMultistepScheduler(predict_x0=True, lower_order_final=True, "trailing") is our ``unipc``
    with the same order and B(h), step for step: its state after each step() is our callback's
    (predicted) state, to 1e-12 relative (measured ~1e-15). Its corrector at step k corrects the state
    with the evaluation there, exactly where ours does. With bh1 its last step to sigma = 0 is
    NaN (B = -inf times a zero correction), so that one is compared at the step before; ours returns
    x0_hat there, as with bh2."""
    schedulers = pytest.importorskip("diffusers.schedulers")
    sched = schedulers.UniPCMultistepScheduler(
        num_train_timesteps=N, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", solver_order=order,
        predict_x0=True, solver_type=variant, lower_order_final=True, timestep_spacing="trailing")
    sched.alphas_cumprod = DISCRETE.alpha_sq(torch.arange(1, N + 1, dtype=F64) / N)
    sched.set_timesteps(steps)
    abar = sched.alphas_cumprod[sched.timesteps.round().long()]
    sched.sigmas = torch.cat([((1 - abar) / abar).sqrt(), torch.zeros(1, dtype=F64)])
    ts = custom([_t(k) for k in sched.timesteps] + [0.0])
    g = torch.Generator().manual_seed(0)
    t0 = ts[:1]
    alpha, sigma = float(DISCRETE.alpha(t0)), float(DISCRETE.sigma(t0))
    x = alpha * MIXTURE.sample(8, g)[0] + sigma * torch.randn(8, 2, generator=g, dtype=F64)
    ours = [x]
    unipc(MIXTURE.denoiser(DISCRETE), x, ts, process=DISCRETE, order=order, variant=variant,
          callback=lambda info: ours.append(info["x"]), space=DenseSpace())
    theirs = x
    for i, k in enumerate(sched.timesteps):
        theirs = sched.step(_eps_model(theirs, k), k, theirs).prev_sample
        if variant == "bh1" and i == steps - 1:
            assert torch.isnan(theirs).all()
            break
        torch.testing.assert_close(theirs, ours[i + 1], rtol=1e-12, atol=1e-12 * float(ours[i + 1].abs().max()))

"""Our samplers against diffusers' schedulers, step by step, with the same denoiser, the same noise
levels and the same noise.

diffusers' discrete schedulers use DDPM's alpha-bar table; ``DiscreteVP`` with the same betas is the
same process, and diffusers' integer timestep k is our t = (k + 1) / N. The schedulers compute that
table in float32, so we hand them our float64 table (``alphas_cumprod``) before ``set_timesteps`` and
float64 ``sigmas`` after it; the remaining difference is that Euler, DPM-Solver and flow matching cast
the state to float32 inside ``step()``, so each step is compared from *our* state at its start
(relative error of one float32 rounding, ~1e-7) and the trajectories separately with a looser bound.
The diffusers network is an eps (or velocity) model built from the exact denoiser of a 2-D Gaussian
mixture, so every model call is exact and both sides see identical predictions.
"""
from __future__ import annotations

import pytest
import torch

from sciffusion.processes import DiscreteVP, LinearInterpolant
from sciffusion.samplers import ddim, ddpm, dpmpp_2m, dpmpp_2m_sde, euler, heun
from sciffusion.space import DenseSpace
from sciffusion.testing import gaussian_mixture_2d
from sciffusion.timesteps import custom

schedulers = pytest.importorskip("diffusers.schedulers")
# diffusers calls np.array() on our float64 tensors, which numpy 2 flags as deprecated
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

F64 = torch.float64
N = 1000
PROCESS = DiscreteVP.linear(N)  # diffusers' default betas: linspace(1e-4, 0.02, 1000)
TARGET = gaussian_mixture_2d()
DENOISER = TARGET.denoiser(PROCESS)
STEPS = 12
RTOL = 1e-6


class RecordingSpace(DenseSpace):
    """A dense space that remembers every noise draw, to hand the same noise to diffusers."""

    def __init__(self):
        super().__init__()
        self.draws: list[torch.Tensor] = []

    def randn_like(self, x, generator=None):
        self.draws.append(super().randn_like(x, generator))
        return self.draws[-1]


def _t(k) -> float:
    return (float(k) + 1) / N


def _alpha_sigma(t: float) -> tuple[float, float]:
    t = torch.tensor(t, dtype=F64)
    return float(PROCESS.alpha(t)), float(PROCESS.sigma(t))


def _eps_model(x: torch.Tensor, k) -> torch.Tensor:
    """diffusers' view of the exact denoiser: an eps-prediction network of timestep k."""
    t = _t(k)
    alpha, sigma = _alpha_sigma(t)
    return (x - alpha * DENOISER(x, torch.full((len(x),), t, dtype=F64))) / sigma


def _scheduler(cls, **config):
    sched = cls(num_train_timesteps=N, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", **config)
    sched.alphas_cumprod = PROCESS.alpha_sq(torch.arange(1, N + 1, dtype=F64) / N)
    return sched


def _float64_sigmas(sched, timesteps) -> torch.Tensor:
    """The scheduler's noise levels sqrt((1 - abar_k) / abar_k) and the final 0, in float64."""
    abar = sched.alphas_cumprod[torch.as_tensor(timesteps).round().long()]
    return torch.cat([((1 - abar) / abar).sqrt(), torch.zeros(1, dtype=F64)])


def _grid(timesteps) -> torch.Tensor:
    return custom([_t(k) for k in timesteps] + [0.0])


def _start(ts, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    alpha, sigma = _alpha_sigma(float(ts[0]))
    return alpha * TARGET.sample(8, g)[0] + sigma * torch.randn(8, 2, generator=g, dtype=F64)


def _trajectory(sampler, ts, x, **options) -> list[torch.Tensor]:
    states = [x]
    sampler(DENOISER, x, ts, process=PROCESS, callback=lambda info: states.append(info["x"]),
            space=DenseSpace(), **options)
    return states


def _close(ours: torch.Tensor, theirs: torch.Tensor, rtol: float = RTOL) -> None:
    torch.testing.assert_close(theirs.to(F64), ours, rtol=rtol, atol=rtol * float(ours.abs().max()))


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_scheduler_is_our_ddim(eta):
    """DDIMScheduler (Song et al. 2021a) is our ``ddim`` with the same eta, step for step; its last
    step to alpha-bar = 1 (``set_alpha_to_one``) returns x0_hat, as ours does. Pure float64 on both
    sides, so whole trajectories agree to 1e-10."""
    sched = _scheduler(schedulers.DDIMScheduler, clip_sample=False, set_alpha_to_one=True)
    sched.set_timesteps(STEPS)
    ts = _grid(sched.timesteps)
    space = RecordingSpace()
    ours = [_start(ts)]
    ddim(DENOISER, ours[0], ts, process=PROCESS, space=space, eta=eta, generator=torch.Generator().manual_seed(1),
         callback=lambda info: ours.append(info["x"]))
    noise = space.draws + [torch.zeros_like(ours[0])]  # no draw on the last, noiseless step
    x = ours[0]
    for i, k in enumerate(sched.timesteps):
        x = sched.step(_eps_model(x, k), k, x, eta=eta, variance_noise=noise[i] if eta > 0 else None).prev_sample
        _close(ours[i + 1], x, rtol=1e-10)


def test_ddpm_scheduler_is_our_ddpm():
    """DDPMScheduler with the posterior ("fixed_small") variance is ancestral sampling, our ``ddpm``
    (= ``ddim`` with eta = 1), also on a strided grid of 12 out of 1000 steps. Both draw their noise
    from a generator with the same seed in the same order and shape, so trajectories agree to 1e-10."""
    sched = _scheduler(schedulers.DDPMScheduler, clip_sample=False, variance_type="fixed_small")
    sched.set_timesteps(STEPS)
    ts = _grid(sched.timesteps)
    ours = _trajectory(ddpm, ts, _start(ts), generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    x = ours[0]
    for i, k in enumerate(sched.timesteps):
        x = sched.step(_eps_model(x, k), k, x, generator=g).prev_sample
        _close(ours[i + 1], x, rtol=1e-10)


def test_euler_discrete_scheduler_is_our_ddim_without_noise():
    """EulerDiscreteScheduler is Euler's method on the probability-flow ODE in the variance-exploding
    view (state x / alpha, noise level sigma / alpha) -- which is exactly DDIM(eta=0) for any process.
    For processes where alpha and sigma are linear in t (EDM, linear interpolant) that is also our
    ``euler``; on this VP process our ``euler`` steps in t instead and differs. Its state is ours
    divided by alpha; each step is compared from our state (it computes in float32)."""
    sched = _scheduler(schedulers.EulerDiscreteScheduler, timestep_spacing="leading")
    sched.set_timesteps(STEPS)
    sched.sigmas = _float64_sigmas(sched, sched.timesteps)
    ts = _grid(sched.timesteps)
    ours = _trajectory(ddim, ts, _start(ts))
    alphas = [_alpha_sigma(float(t))[0] for t in ts]
    for i, k in enumerate(sched.timesteps):
        sample = ours[i] / alphas[i]
        eps = _eps_model(sched.scale_model_input(sample, k), k)
        _close(ours[i + 1] / alphas[i + 1], sched.step(eps, k, sample).prev_sample)


def test_heun_discrete_scheduler_is_our_heun():
    """HeunDiscreteScheduler is EDM's deterministic Heun sampler (Karras et al. 2022, Alg. 1): our
    ``heun`` without churn, with the same 2N - 1 evaluations and an Euler last step. It works in
    float64 throughout, so we compare the whole trajectory at the end of each Heun step."""
    sched = _scheduler(schedulers.HeunDiscreteScheduler, timestep_spacing="leading")
    sched.set_timesteps(STEPS)
    steps_k = sched.timesteps[::2]  # k_0, then each k_i once (the scheduler repeats them)
    sched.sigmas = torch.cat([_float64_sigmas(sched, steps_k)[:1],
                              _float64_sigmas(sched, steps_k)[1:-1].repeat_interleave(2), torch.zeros(1, dtype=F64)])
    ts = _grid(steps_k)
    ours = _trajectory(heun, ts, _start(ts))
    alphas = [_alpha_sigma(float(t))[0] for t in ts]
    sample, theirs = ours[0] / alphas[0], []
    for k in sched.timesteps:
        sample = sched.step(_eps_model(sched.scale_model_input(sample, k), k), k, sample).prev_sample
        if sched.state_in_first_order:  # a Heun step has just completed
            theirs.append(sample)
    theirs.append(sample)  # the final Euler step to sigma = 0
    assert len(theirs) == STEPS
    for i, sample in enumerate(theirs):
        _close(ours[i + 1] / alphas[i + 1], sample, rtol=1e-10)


@pytest.mark.parametrize("algorithm", ["dpmsolver++", "sde-dpmsolver++"])
def test_dpm_solver_multistep_scheduler_is_our_dpmpp_2m(algorithm):
    """DPMSolverMultistepScheduler(solver_order=2, "midpoint") is DPM-Solver++(2M) (Lu et al. 2022b),
    our ``dpmpp_2m``; with algorithm_type="sde-dpmsolver++" it is our ``dpmpp_2m_sde`` at eta = 1,
    given the same noise. Both are first order on the first step and on the last (to sigma = 0).
    The scheduler keeps its own history of x0 estimates; we step it from our states, so that history
    equals ours and each step is compared to one float32 rounding."""
    sched = _scheduler(schedulers.DPMSolverMultistepScheduler, algorithm_type=algorithm, solver_order=2,
                       solver_type="midpoint", lower_order_final=True, final_sigmas_type="zero")
    sched.set_timesteps(STEPS)
    sched.sigmas = _float64_sigmas(sched, sched.timesteps)
    ts = _grid(sched.timesteps)
    space = RecordingSpace()
    sampler = dpmpp_2m if algorithm == "dpmsolver++" else dpmpp_2m_sde
    ours = [_start(ts)]
    sampler(DENOISER, ours[0], ts, process=PROCESS, space=space, generator=torch.Generator().manual_seed(2),
            callback=lambda info: ours.append(info["x"]))
    noise = space.draws + [torch.zeros_like(ours[0])]
    for i, k in enumerate(sched.timesteps):
        out = sched.step(_eps_model(ours[i], k), k, ours[i], variance_noise=noise[i] if "sde" in algorithm else None)
        _close(ours[i + 1], out.prev_sample)


def test_flow_match_euler_scheduler_is_our_euler_on_the_linear_interpolant():
    """FlowMatchEulerDiscreteScheduler (shift 1) is Euler in t on the linear interpolant x_t =
    (1 - t) x0 + t eps with a velocity (eps - x0) model: our ``euler`` on ``LinearInterpolant`` with
    t = its sigmas (and, alpha and sigma being linear in t, also our DDIM(eta=0))."""
    process = LinearInterpolant()
    denoiser = TARGET.denoiser(process)
    sched = schedulers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=N)
    sched.set_timesteps(STEPS)
    sched.sigmas = sched.sigmas.to(F64)
    ts = custom(sched.sigmas)
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=F64)  # t = 1 is pure noise
    ours = [x]
    euler(denoiser, x, ts, process=process, callback=lambda info: ours.append(info["x"]), space=DenseSpace())
    for i, k in enumerate(sched.timesteps):
        t = float(ts[i])
        x0_hat = denoiser(ours[i], torch.full((8,), t, dtype=F64))
        velocity = (ours[i] - x0_hat) / t  # eps_hat - x0_hat, with eps_hat = (x - (1 - t) x0_hat) / t
        _close(ours[i + 1], sched.step(velocity, k, ours[i]).prev_sample)

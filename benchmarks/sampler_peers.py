"""The peers of benchmarks/samplers.py: every deterministic diffusers scheduler that runs on DDPM's
discrete schedule, with every timestep spacing it offers, and every deterministic k-diffusion sampler
on every k-diffusion noise schedule, all driven by an exact denoiser.

A peer that starts below our top noise level (diffusers' "leading"/"linspace" spacings, k-diffusion's
VP schedule) gets the exact probability-flow state there (``Transport``) for free, so its error is
its own; this favours those peers (a sampler that starts lower from pure noise pays a prior
error that is not charged here). Variants that cannot end at sigma = 0 (DPM-Solver's "dpmsolver",
UniPC's bh1: a NaN there) end at their sigma_min, as diffusers asks. Stochastic peers (ancestral, SDE) and the adaptive ones (``dpm_adaptive``, which chooses its
NFE) are left out, as are schedulers of other processes (EDM's, flow matching's, ScoreSdeVe, and
diffusers' IPNDMScheduler, which carries its own trigonometric schedule).

k-diffusion is a test/benchmark-only dependency. Its package ``__init__`` imports its training stack
(accelerate, clean-fid, torchvision, wandb...); only ``k_diffusion/sampling.py`` is needed, which
imports scipy, torchdiffeq, torchsde and tqdm and uses one helper of ``k_diffusion.utils``
(``append_dims``), so it is loaded from the installed wheel by path with that helper provided::

    pip install --no-deps k-diffusion==0.1.1.post1 && pip install torchsde
"""
from __future__ import annotations

import importlib.util
import inspect
import math
import sys
import types
from typing import Callable

import torch

F64 = torch.float64


def k_diffusion_sampling():
    """``k_diffusion.sampling``, or None when k-diffusion is not installed."""
    try:
        import k_diffusion.sampling as sampling  # the full package, where its training stack is installed
        return sampling
    except ImportError:
        pass
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = types.ModuleType("k_diffusion")
    package.__path__ = list(spec.submodule_search_locations)
    utils = types.ModuleType("k_diffusion.utils")
    utils.append_dims = lambda x, ndim: x[(...,) + (None,) * (ndim - x.ndim)]
    package.utils = utils
    sys.modules.setdefault("k_diffusion", package)
    sys.modules.setdefault("k_diffusion.utils", utils)
    path = spec.submodule_search_locations[0] + "/sampling.py"
    module_spec = importlib.util.spec_from_file_location("k_diffusion.sampling", path)
    sampling = importlib.util.module_from_spec(module_spec)
    sys.modules["k_diffusion.sampling"] = sampling
    module_spec.loader.exec_module(sampling)
    return sampling


class Transport:
    """The exact probability-flow state at t0 < 1 of the states at t = 1 (UniPC-3 on 400 steps
    uniform in log-SNR, cached per t0): what a peer starting at t0 is given."""

    def __init__(self, process, denoiser, x: torch.Tensor):
        self.process, self.denoiser, self.x, self.cache = process, denoiser, x, {}

    def __call__(self, t0: float) -> torch.Tensor:
        from sciffusion.samplers import unipc
        from sciffusion.space import DenseSpace

        if t0 >= 1.0 - 1e-12:
            return self.x
        if t0 not in self.cache:
            lam = 0.5 * self.process.log_snr(torch.tensor([1.0, t0], dtype=F64))
            ts = self.process.t_from_log_snr(2 * torch.linspace(float(lam[0]), float(lam[1]), 401, dtype=F64))
            ts = torch.cat([ts, torch.zeros(1, dtype=F64)])
            ts[0], ts[-2] = 1.0, t0
            states = {}
            unipc(self.denoiser, self.x, ts, process=self.process, order=3, corrector=False,
                  callback=lambda info: states.update({info["i"]: info["x"]}), space=DenseSpace())
            self.cache[t0] = states[len(ts) - 3]
        return self.cache[t0]


# ---------------------------------------------------------------- diffusers
def diffusers_peers() -> dict[str, tuple[type, dict]]:
    """name -> (scheduler class, options) of every deterministic scheduler variant for DDPM's schedule."""
    import diffusers as d

    peers = {
        "DDIM": (d.DDIMScheduler, {"clip_sample": False, "set_alpha_to_one": True}),
        "PNDM": (d.PNDMScheduler, {}),
        "PLMS (PNDM skip_prk)": (d.PNDMScheduler, {"skip_prk_steps": True}),
        "LMS": (d.LMSDiscreteScheduler, {}),
        "Euler": (d.EulerDiscreteScheduler, {}),
        "Heun": (d.HeunDiscreteScheduler, {}),
        "KDPM2": (d.KDPM2DiscreteScheduler, {}),
        "DPMSolver++ 2M": (d.DPMSolverMultistepScheduler, {"solver_order": 2}),
        "DPMSolver++ 3M": (d.DPMSolverMultistepScheduler, {"solver_order": 3}),
        "DPMSolver 2M": (d.DPMSolverMultistepScheduler, {"solver_order": 2, "algorithm_type": "dpmsolver",
                                                        "final_sigmas_type": "sigma_min"}),
        "DPMSolver 3M": (d.DPMSolverMultistepScheduler, {"solver_order": 3, "algorithm_type": "dpmsolver",
                                                        "final_sigmas_type": "sigma_min"}),
        "DPMSolver++ 2S": (d.DPMSolverSinglestepScheduler, {"solver_order": 2}),
        "DPMSolver++ 3S": (d.DPMSolverSinglestepScheduler, {"solver_order": 3}),
        "DEIS 2": (d.DEISMultistepScheduler, {"solver_order": 2}),
        "DEIS 3": (d.DEISMultistepScheduler, {"solver_order": 3}),
        "UniPC 2 bh2": (d.UniPCMultistepScheduler, {"solver_order": 2}),
        "UniPC 3 bh2": (d.UniPCMultistepScheduler, {"solver_order": 3}),
        "UniPC 2 bh1": (d.UniPCMultistepScheduler, {"solver_order": 2, "solver_type": "bh1",
                                                    "final_sigmas_type": "sigma_min"}),
        "UniPC 3 bh1": (d.UniPCMultistepScheduler, {"solver_order": 3, "solver_type": "bh1",
                                                    "final_sigmas_type": "sigma_min"}),
        "SA-Solver 3/4 tau=0": (d.SASolverScheduler, {"predictor_order": 3, "corrector_order": 4,
                                                      "tau_func": lambda t: 0.0}),
        "SA-Solver 2/2 tau=0": (d.SASolverScheduler, {"predictor_order": 2, "corrector_order": 2,
                                                      "tau_func": lambda t: 0.0}),
    }
    return peers


def spacings(cls: type) -> dict[str, dict]:
    """Every timestep spacing the scheduler class offers."""
    params = inspect.signature(cls.__init__).parameters
    out = {}
    if "timestep_spacing" in params:
        out.update({s: {"timestep_spacing": s} for s in ("trailing", "linspace", "leading")})
    else:
        out["linspace"] = {}
    for name in ("karras", "exponential", "beta"):
        if f"use_{name}_sigmas" in params:
            out[name] = {f"use_{name}_sigmas": True}
    return out


def run_diffusers(cls: type, options: dict, budget: int, process, n_train: int, denoiser,
                  transport: Transport) -> tuple[torch.Tensor, int, float] | None:
    """The scheduler with the most inference steps whose model calls fit ``budget``, from the exact
    state at its first noise level, driven by an eps model exact at its own noise level: (state where
    it ends, model calls, scaled sigma where it ends); None if it cannot run at this budget. Most end
    at sigma = 0 (their last step returns the denoised estimate); SA-Solver, PNDM, and UniPC bh1 and
    DPM-Solver with ``final_sigmas_type="sigma_min"`` end at sigma(k = 0) = 0.01 without denoising."""
    def build(steps):
        try:
            sched = cls(num_train_timesteps=n_train, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", **options)
            sched.alphas_cumprod = process.alpha_sq(torch.arange(1, n_train + 1, dtype=F64) / n_train)
            sched.set_timesteps(steps)
        except (ValueError, IndexError, ZeroDivisionError):
            return None
        return sched

    # one model call per timestep; two-stage schedulers (Heun, KDPM2) list about two per step
    candidates = [budget, (budget + 1) // 2] + list(range(budget - 1, 0, -1))
    sched = next((s for n in candidates if (s := build(n)) is not None and len(s.timesteps) <= budget), None)
    if sched is None:
        return None
    sigma_view = hasattr(sched, "sigmas") and cls.__name__ not in ("DDIMScheduler", "PNDMScheduler")
    ve_view = float(sched.init_noise_sigma) > 1.0

    def t_of(k) -> float:
        if sigma_view:
            sigma = float(sched.sigmas[sched.step_index or 0])
            return float(process.t_from_scaled_sigma(torch.tensor(sigma, dtype=F64)))
        return (float(k) + 1) / n_train

    calls = 0
    t0 = min(t_of(sched.timesteps[0]), 1.0)
    x = transport(t0)
    a0 = float(process.alpha(torch.tensor(t0, dtype=F64)))
    sample = x / a0 if ve_view else x
    for k in sched.timesteps:
        model_in = sched.scale_model_input(sample, k)
        t = t_of(k)
        alpha, sigma = (float(c) for c in (process.alpha(torch.tensor(t, dtype=F64)), process.sigma(torch.tensor(t, dtype=F64))))
        x0_hat = denoiser(model_in, torch.full((len(model_in),), t, dtype=F64))
        calls += 1
        sample = sched.step((model_in - alpha * x0_hat) / sigma, k, sample).prev_sample.to(F64)
    if sigma_view:
        end = float(sched.sigmas[-1])
    else:  # DDIM, PNDM: their last step goes to alpha-bar = final_alpha_cumprod
        end = math.sqrt(max(1 / float(sched.final_alpha_cumprod) - 1, 0.0))
    if ve_view and end > 0:  # back from the variance-exploding view x / alpha
        sample = sample * float(process.alpha(process.t_from_scaled_sigma(torch.tensor(end, dtype=F64))))
    return sample, calls, end


# ---------------------------------------------------------------- k-diffusion
def k_diffusion_peers(kd) -> dict[str, tuple[Callable, Callable[[int], int]]]:
    """name -> (sampler(model, x, sigmas), NFE of n noise levels) for every deterministic sampler."""
    two_stage = lambda n: 2 * n - 1  # two evaluations a step, one on the last (to sigma = 0)
    return {
        "euler": (lambda m, x, s: kd.sample_euler(m, x, s, disable=True), lambda n: n),
        "heun": (lambda m, x, s: kd.sample_heun(m, x, s, disable=True), two_stage),
        "dpm_2": (lambda m, x, s: kd.sample_dpm_2(m, x, s, disable=True), two_stage),
        "lms": (lambda m, x, s: kd.sample_lms(m, x, s, disable=True), lambda n: n),
        "dpmpp_2m": (lambda m, x, s: kd.sample_dpmpp_2m(m, x, s, disable=True), lambda n: n),
        "dpmpp_2s (eta=0)": (lambda m, x, s: kd.sample_dpmpp_2s_ancestral(m, x, s, eta=0.0, disable=True), two_stage),
        "dpmpp_sde (eta=0)": (lambda m, x, s: kd.sample_dpmpp_sde(m, x, s, eta=0.0, disable=True), two_stage),
        "dpmpp_2m_sde heun (eta=0)": (lambda m, x, s: kd.sample_dpmpp_2m_sde(m, x, s, eta=0.0, solver_type="heun", disable=True),
                                      lambda n: n),
        "dpmpp_3m_sde (eta=0)": (lambda m, x, s: kd.sample_dpmpp_3m_sde(m, x, s, eta=0.0, disable=True), lambda n: n),
        "dpm_fast": (None, lambda n: n),
    }


def k_diffusion_schedules(kd, sigma_min: float, sigma_max: float) -> dict[str, Callable[[int], torch.Tensor]]:
    return {
        "karras": lambda n: kd.get_sigmas_karras(n, sigma_min, sigma_max),
        "exponential": lambda n: kd.get_sigmas_exponential(n, sigma_min, sigma_max),
        "polyexponential rho=2": lambda n: kd.get_sigmas_polyexponential(n, sigma_min, sigma_max, rho=2.0),
        "vp": lambda n: kd.get_sigmas_vp(n),
    }


def run_k_diffusion(kd, name: str, schedule: Callable[[int], torch.Tensor], budget: int, process, denoiser,
                    transport: Transport, sigma_min: float, sigma_max: float) -> tuple[torch.Tensor, int, float]:
    """(state where the sampler ends, model calls, scaled sigma where it ends): sigma = 0 for all but
    ``dpm_fast``, which ends at ``sigma_min`` (its variance-exploding state is scaled back by alpha)."""
    sampler, nfe_of = k_diffusion_peers(kd)[name]
    n = max(m for m in range(1, budget + 1) if nfe_of(m) <= budget)
    calls = 0

    def model(x_ve, sigma, **extra):
        nonlocal calls
        calls += 1
        t = float(process.t_from_scaled_sigma(sigma[:1].to(F64)))
        alpha = float(process.alpha(torch.tensor(t, dtype=F64)))
        return denoiser(alpha * x_ve, torch.full((len(x_ve),), t, dtype=F64))

    if sampler is None:  # dpm_fast takes its range and NFE, not noise levels, and ends at sigma_min
        out = kd.sample_dpm_fast(model, transport(1.0) / float(process.alpha(torch.tensor(1.0, dtype=F64))),
                                 sigma_min, sigma_max, n, disable=True)
        alpha_end = float(process.alpha(process.t_from_scaled_sigma(torch.tensor(sigma_min, dtype=F64))))
        return out * alpha_end, calls, sigma_min
    sigmas = schedule(n).to(F64)
    t0 = min(1.0, float(process.t_from_scaled_sigma(sigmas[:1])))
    out = sampler(model, transport(t0) / float(process.alpha(torch.tensor(t0, dtype=F64))), sigmas)
    return out, calls, float(sigmas[-1])

"""Guidance: wrappers that turn a denoiser into the denoiser of a guided or conditioned model.

Each wrapper is itself a denoiser ``D(x, t, space, cond) -> x0_hat``, so every sampler runs it
unchanged. Guidance that adds a term g to the score,

    grad log p_t(x | y) = grad log p_t(x) + g,     score = (alpha x0_hat - x) / sigma^2,

is the same as moving the denoised estimate by

    x0_hat <- x0_hat + sigma^2 / alpha * g.

Wrappers that need a gradient take it on a detached copy of ``x`` inside ``torch.enable_grad()``,
project it onto the sample subspace (masked entries, centred graph columns) and return detached
results: they never leak an autograd graph into the sampler, and nothing differentiates through
them, so put them outermost when wrappers are stacked. Every wrapper subclasses ``Guidance``, which
forwards ``restore`` (see ``Inpainting``) from the outermost wrapper to the one that needs it.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .guidance_base import Guidance, restore_samples
from .inpainting import Inpainting
from .losses import DROP, SELF_COND
from .parameterization import Cond, Denoiser
from .processes import NoiseProcess
from .state import first_tensor, is_categorical
from .space import Space, require_space

LogLikelihood = Callable[[Tensor, Tensor, Space, Cond], Tensor]


def _score_to_x0(process: NoiseProcess, t: Tensor, x: Tensor, space: Space) -> Tensor:
    """sigma^2 / alpha broadcast onto x: how far x0_hat moves per unit of added score."""
    alpha, sigma = process.alpha(t), process.sigma(t)
    return space.per_sample((sigma**2 / alpha).to(x.dtype), x)


def _check_interval(interval: tuple[float, float] | None, process: NoiseProcess | None) -> None:
    if interval is None:
        return
    if process is None:
        raise ValueError("a guidance interval is given in scaled sigma (sigma / alpha); "
                         "pass process=... so that it can be computed from t")
    if not 0 <= interval[0] < interval[1]:
        raise ValueError(f"need interval = (sigma_lo, sigma_hi) with 0 <= sigma_lo < sigma_hi, got {interval}")


def _check_scale(scale: float, name: str = "scale") -> None:
    """A guidance weight is >= 0: 0 switches the guidance off, larger steers harder (a negative one
    steers away from the target and is a typo)."""
    if not scale >= 0:
        raise ValueError(f"guidance.{name}={scale} must be >= 0 (0 switches the guidance off, 1 is the usual "
                         f"strength, larger steers harder)")


def _inside(interval: tuple[float, float] | None, process: NoiseProcess | None, t: Tensor) -> Tensor:
    """bool [B]: which times ``t`` lie in the scaled-sigma ``interval`` (all of them without one)."""
    if interval is None:
        return torch.ones(t.shape, dtype=torch.bool, device=t.device)
    s = process.scaled_sigma(t)
    return (s >= interval[0]) & (s <= interval[1])


class DropCondition(Guidance):
    """The denoiser with every sample's condition dropped (``cond["drop"]`` all True): the
    unconditional model of a network trained with condition dropout, for guidance that steers by
    something else (an observation, a property predictor). ``cond`` still reaches the guidance."""

    def __init__(self, denoiser: Denoiser):
        self.denoiser = denoiser

    def __call__(self, x: Tensor, t: Tensor, space: Space, cond: Cond | None = None) -> Tensor:
        space = require_space(space, type(self).__name__)
        drop = torch.ones(space.batch_size(x), dtype=torch.bool, device=first_tensor(x).device)
        return self.denoiser(x, t, space, {**(cond or {}), DROP: drop})


class SelfConditioning(Guidance):
    """A self-conditioned denoiser (trained with ``self_condition`` > 0) for the core's one-tensor
    samplers: each call passes the previous call's x0 estimate in ``cond["self_cond"]`` (Chen et al.
    2022). A call at a time not below the previous one starts a new trajectory without it, so one
    wrapper serves successive sampling runs. (The joint sampler passes estimates itself.)"""

    def __init__(self, denoiser: Denoiser):
        self.denoiser, self.previous, self.last_t = denoiser, None, None

    def __call__(self, x: Tensor, t: Tensor, space: Space, cond: Cond | None = None) -> Tensor:
        cond = dict(cond or {})
        now = float(t.reshape(-1)[0]) if t.numel() else 0.0
        fresh = self.previous is None or self.last_t is None or now >= self.last_t or self.previous.shape != x.shape
        if not fresh:
            cond[SELF_COND] = self.previous
        x0_hat = self.denoiser(x, t, require_space(space, type(self).__name__), cond)
        self.previous, self.last_t = x0_hat.detach(), now
        return x0_hat


def device_of(denoiser: Denoiser) -> torch.device:
    """Where a denoiser's parameters live (the CPU for one without any): guidance factories put
    their observations there."""
    params = getattr(denoiser, "parameters", None)
    first = next(params(), None) if params is not None else None
    return first.device if first is not None else torch.device("cpu")


class ClassifierFreeGuidance(Guidance):
    """x0_hat = x0_uncond + scale * (x0_cond - x0_uncond) (Ho & Salimans 2022).

    ``scale = 1`` is the purely conditional model, ``scale = 0`` the unconditional one, ``scale > 1``
    extrapolates away from the unconditional prediction. The unconditional call receives ``cond`` with
    ``cond["drop"]`` all True (see ``losses.DROP``), the condition dropout the network was trained with.

    ``interval = (sigma_lo, sigma_hi)`` in scaled sigma (sigma / alpha) guides only at noise levels
    inside that interval and uses the plain conditional prediction elsewhere (Kynkäänniemi et al. 2024,
    "Applying guidance in a limited interval"); it needs ``process`` to compute the scaled sigma.
    Steps where no sample of the batch is inside the interval skip the unconditional call.
    """

    def __init__(self, denoiser: Denoiser, scale: float, *, interval: tuple[float, float] | None = None,
                 process: NoiseProcess | None = None, domain: object = None):
        # ``domain`` is unused: every guidance factory is called with process= and domain=
        _check_interval(interval, process)
        _check_scale(scale)
        self.denoiser, self.scale, self.interval, self.process = denoiser, scale, interval, process

    def guided(self, t: Tensor) -> Tensor:
        """Which samples are guided at times ``t`` [B] (bool [B])."""
        return _inside(self.interval, self.process, t)

    def __call__(self, x: Tensor, t: Tensor, space: Space, cond: Cond | None = None) -> Tensor:
        space, cond = require_space(space, type(self).__name__), cond or {}
        x0_cond = self.denoiser(x, t, space, cond)
        guided = self.guided(t)
        if self.scale == 1 or not guided.any():
            return x0_cond
        drop_all = torch.ones(space.batch_size(x), dtype=torch.bool, device=first_tensor(x).device)
        x0_uncond = self.denoiser(x, t, space, {**cond, DROP: drop_all})
        if isinstance(x0_cond, dict):
            return {name: _guide_part(x0_cond[name], x0_uncond[name], x[name], space[name], guided, self.scale)
                    for name in x0_cond}
        scale = torch.where(guided, float(self.scale), 1.0).to(x)
        return x0_uncond + space.per_sample(scale, x) * (x0_cond - x0_uncond)


def _guide_part(cond: Tensor, uncond: Tensor, x: Tensor, space: Space, guided: Tensor, scale: float) -> Tensor:
    """One part of a joint state under classifier-free guidance. A continuous part extrapolates its x0
    estimate linearly; a categorical part's class probabilities extrapolate log-linearly,
    p ~ p_uncond (p_cond / p_uncond)^scale, renormalised (the guided distribution of Nisonoff et al.
    2024 and of classifier-free guidance for masked diffusion)."""
    s = space.per_sample(torch.where(guided, float(scale), 1.0).to(cond.dtype), x)
    if is_categorical(x):
        log_u, log_c = torch.log(uncond.clamp_min(1e-30)), torch.log(cond.clamp_min(1e-30))
        return torch.softmax(log_u + s[..., None] * (log_c - log_u) if s.dim() else log_u + s * (log_c - log_u), -1)
    return uncond + s * (cond - uncond)


class ClassifierGuidance(Guidance):
    """Adds ``scale * grad_x log p(y | x_t)`` to the score (Dhariwal & Nichol 2021; Song et al. 2021):

        x0_hat <- x0_hat + scale * sigma^2 / alpha * grad_x log p(y | x_t).

    ``log_likelihood(x_t, t, space, cond) -> [B]`` must be differentiable in ``x_t``; a noise-aware
    classifier is one, the exact Gaussian likelihood of a linear observation another. With the true
    log p_t(y | x_t) and ``scale = 1`` the result is the exact denoiser of the posterior p(x0 | y).

    ``interval = (sigma_lo, sigma_hi)`` in scaled sigma guides only at noise levels inside it, as for
    ``ClassifierFreeGuidance``: at high noise sigma^2 / alpha is large and an approximate classifier's
    gradient can throw samples far off (molecules' atoms apart); steps outside skip the gradient.
    """

    def __init__(self, denoiser: Denoiser, log_likelihood: LogLikelihood, process: NoiseProcess, *,
                 scale: float = 1.0, interval: tuple[float, float] | None = None):
        _check_interval(interval, process)
        _check_scale(scale)
        self.denoiser, self.log_likelihood, self.process, self.scale = denoiser, log_likelihood, process, scale
        self.interval = interval

    def __call__(self, x: Tensor, t: Tensor, space: Space, cond: Cond | None = None) -> Tensor:
        space, cond = require_space(space, type(self).__name__), cond or {}
        x0_hat = self.denoiser(x.detach(), t, space, cond).detach()
        guided = _inside(self.interval, self.process, t)
        if not guided.any():
            return x0_hat
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            log_p = self.log_likelihood(x_in, t, space, cond)
            if log_p.shape != (space.batch_size(x),):
                raise ValueError(f"log_likelihood must return one value per sample, shape ({space.batch_size(x)},); "
                                 f"got {tuple(log_p.shape)}")
            (grad,) = torch.autograd.grad(log_p.sum(), x_in)
        step = self.scale * _score_to_x0(self.process, t, x, space) * space.project(grad)
        return x0_hat + space.per_sample(guided.to(x.dtype), x) * step


class ReconstructionGuidance(Guidance):
    """Posterior sampling for an observation y = A(x0) + N(0, noise_std^2 I) through the denoiser.

    The guided score adds the gradient of the approximate likelihood

        log p_t(y | x_t) ~ log N(y; A(D(x_t)), (r_t^2 + noise_std^2) I),
        r_t^2 = data_var s^2 / (data_var + s^2),   s = sigma / alpha,

    taken through the denoiser by a vector-Jacobian product (reconstruction guidance, Ho et al. 2022;
    r_t^2 is the Pi-GDM variance of Song et al. 2023, "Pseudoinverse-guided diffusion models"). It is
    exact when the data are N(0, data_var I) and A selects coordinates; elsewhere it is the usual
    Gaussian approximation of p(x0 | x_t), which can mis-weight the modes of multimodal data (on
    ``testing.gaussian_mixture_2d`` with its second coordinate observed as 1 +- 0.5, the exact posterior
    puts 0.03% of its mass on the mode at height 3.46, guided DDIM with 200 steps 27%).
    Inpainting (A keeps the known entries), super-resolution (A downsamples) and data assimilation
    (A interpolates to stations) are all this with another A. The variance r_t^2 A A^T is taken to be
    r_t^2 I, i.e. A A^T = I (true for selections): for an operator with A A^T = c I, such as average
    pooling by f (c = 1/f^2), pass A' = A / sqrt(c), y' = y / sqrt(c), noise_std' = noise_std / sqrt(c).

    ``observe`` is A, any differentiable callable on an x0 estimate shaped like the batch; ``y`` its
    observed values (broadcastable to A's output). A must not mix samples.
    """

    def __init__(self, denoiser: Denoiser, observe: Callable[[Tensor], Tensor], y: Tensor, process: NoiseProcess,
                 noise_std: float, *, scale: float = 1.0, data_var: float = 1.0):
        if noise_std < 0 or data_var <= 0:
            raise ValueError(f"need noise_std >= 0 and data_var > 0, got noise_std={noise_std}, data_var={data_var}")
        _check_scale(scale)
        self.denoiser, self.observe, self.y, self.process = denoiser, observe, y, process
        self.noise_std, self.scale, self.data_var = noise_std, scale, data_var

    def precision(self, residual: Tensor, x: Tensor, t: Tensor, space: Space) -> Tensor:
        """w [B] with grad log p(y | x_t) = -w grad_x ||y - A(D(x_t))||^2 / 2: here 1 / (r_t^2 + noise_std^2)."""
        s_sq = self.process.scaled_sigma(t).to(x.dtype) ** 2
        r_sq = self.data_var * s_sq / (self.data_var + s_sq)  # Song et al. 2023 (Pi-GDM), r_t^2
        return 1 / (r_sq + self.noise_std**2)

    def __call__(self, x: Tensor, t: Tensor, space: Space, cond: Cond | None = None) -> Tensor:
        space, cond = require_space(space, type(self).__name__), cond or {}
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            x0_hat = self.denoiser(x_in, t, space, cond)
            residual = self.y - self.observe(x0_hat)
            (grad_half_sq,) = torch.autograd.grad(0.5 * (residual**2).sum(), x_in)
        weight = self.precision(residual.detach(), x, t, space).to(x.device)
        score_term = -space.per_sample(weight, x) * space.project(grad_half_sq)
        return x0_hat.detach() + self.scale * _score_to_x0(self.process, t, x, space) * score_term


class DiffusionPosteriorSampling(ReconstructionGuidance):
    """DPS (Chung et al. 2023): the likelihood gradient with the step size zeta / ||y - A(x0_hat)||,

        g = -zeta / ||y - A(D(x_t))|| * grad_x ||y - A(D(x_t))||^2 / 2 = -zeta grad_x ||y - A(D(x_t))||,

    with the norm per sample. The paper moves x by -zeta_i grad ||r||^2 = 2 g after each ancestral step;
    here g is added to the score, so the move in x also scales with the sampler's step: tune zeta per sampler.
    A's output must lead with the sample axis (dense data) or with x's rows (graph data).
    """

    def __init__(self, denoiser: Denoiser, observe: Callable[[Tensor], Tensor], y: Tensor, process: NoiseProcess, *,
                 zeta: float = 1.0):
        super().__init__(denoiser, observe, y, process, noise_std=0.0)
        _check_scale(zeta, "zeta")
        self.zeta = zeta

    def precision(self, residual: Tensor, x: Tensor, t: Tensor, space: Space) -> Tensor:
        norm = _per_sample_sum(residual**2, x, space).sqrt()
        return self.zeta / norm.clamp_min(torch.finfo(x.dtype).tiny)


def _per_sample_sum(values: Tensor, x: Tensor, space: Space) -> Tensor:
    """Per-sample sum [B] of a tensor laid out like x along its first axis (samples, or graph rows)."""
    if values.shape == x.shape:
        return space.sum(values)
    if values.dim() == 0 or values.shape[0] != x.shape[0]:
        raise ValueError(f"an observation of shape {tuple(values.shape)} does not lead with the first axis of x "
                         f"{tuple(x.shape)}; A must keep samples (dense data) or rows (graph data) first")
    rows = values.reshape(values.shape[0], -1).sum(1)
    # one row per sample means rows are samples; otherwise the space knows which row is whose
    return rows if space.batch_size(x) == x.shape[0] else space.sum(rows)


__all__ = ["ClassifierFreeGuidance", "ClassifierGuidance", "DiffusionPosteriorSampling", "DropCondition", "Guidance",
           "Inpainting", "ReconstructionGuidance", "SelfConditioning", "restore_samples"]

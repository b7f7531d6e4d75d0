"""Noise processes under one convention.

    x_t = alpha(t) * x0 + sigma(t) * eps,   eps ~ N(0, I),   t in [0, 1],  t = 0 data, t = 1 noise
    log_snr(t) = 2 * log(alpha(t) / sigma(t))

Every process gives alpha, sigma, their exact time derivatives, log-SNR and its inverse. Functions take
a tensor ``t`` of any shape and return tensors of the same shape and dtype; they never broadcast onto
data (that is the batch ``Space``'s job).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


class NoiseProcess:
    """Base class. Subclasses define ``alpha``, ``sigma``, ``d_alpha``, ``d_sigma``, ``t_from_log_snr``.

    ``t_max`` is where sampling starts by default: 1 unless alpha(1) = 0 would make some prediction
    targets singular there.
    """

    t_max: float = 1.0

    def alpha(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def sigma(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def d_alpha(self, t: Tensor) -> Tensor:
        """d alpha / dt."""
        raise NotImplementedError

    def d_sigma(self, t: Tensor) -> Tensor:
        """d sigma / dt."""
        raise NotImplementedError

    def log_snr(self, t: Tensor) -> Tensor:
        return 2 * (torch.log(self.alpha(t)) - torch.log(self.sigma(t)))

    def d_log_snr(self, t: Tensor) -> Tensor:
        return 2 * (self.d_alpha(t) / self.alpha(t) - self.d_sigma(t) / self.sigma(t))

    def t_from_log_snr(self, log_snr: Tensor) -> Tensor:
        """The inverse of ``log_snr``."""
        raise NotImplementedError

    def scaled_sigma(self, t: Tensor) -> Tensor:
        """sigma / alpha: the noise level of x_t / alpha, i.e. of the equivalent variance-exploding
        process (the ``sigma`` of Karras et al. 2022 and of k-diffusion)."""
        return self.sigma(t) / self.alpha(t)

    def t_from_scaled_sigma(self, scaled_sigma: Tensor) -> Tensor:
        return self.t_from_log_snr(-2 * torch.log(scaled_sigma))

    def marginal(self, x0: Tensor, eps: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """x_t from already-broadcast coefficients."""
        return alpha * x0 + sigma * eps

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class VarianceExploding(NoiseProcess):
    """alpha = 1, sigma = sigma_min * (sigma_max / sigma_min) ** t (Song et al. 2021, VE SDE).

    As in that paper the data end carries a little noise: sigma(0) = sigma_min.
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self._log_ratio = math.log(sigma_max / sigma_min)

    def alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def d_alpha(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t)

    def sigma(self, t: Tensor) -> Tensor:
        return self.sigma_min * torch.exp(self._log_ratio * t)

    def d_sigma(self, t: Tensor) -> Tensor:
        return self._log_ratio * self.sigma(t)

    def t_from_log_snr(self, log_snr: Tensor) -> Tensor:
        return (-0.5 * log_snr - math.log(self.sigma_min)) / self._log_ratio


class EDM(NoiseProcess):
    """alpha = 1, sigma = sigma_max * t: the process of Karras et al. 2022 (their sigma(t) = t),
    with time rescaled to [0, 1]. Pair it with ``EDMPrecond``, log-normal training noise and the
    Karras time grid."""

    def __init__(self, sigma_max: float = 80.0, sigma_data: float = 0.5):
        self.sigma_max, self.sigma_data = sigma_max, sigma_data

    def alpha(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def d_alpha(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t)

    def sigma(self, t: Tensor) -> Tensor:
        return self.sigma_max * t

    def d_sigma(self, t: Tensor) -> Tensor:
        return torch.full_like(t, self.sigma_max)

    def t_from_log_snr(self, log_snr: Tensor) -> Tensor:
        return torch.exp(-0.5 * log_snr) / self.sigma_max


class LinearInterpolant(NoiseProcess):
    """alpha = 1 - t, sigma = t: the path of flow matching / rectified flow
    (Lipman et al. 2023; Liu et al. 2023). Its velocity target is eps - x0."""

    def alpha(self, t: Tensor) -> Tensor:
        return 1 - t

    def d_alpha(self, t: Tensor) -> Tensor:
        return -torch.ones_like(t)

    def sigma(self, t: Tensor) -> Tensor:
        return t

    def d_sigma(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def t_from_log_snr(self, log_snr: Tensor) -> Tensor:
        return torch.sigmoid(-0.5 * log_snr)


class VariancePreserving(NoiseProcess):
    """alpha^2 + sigma^2 = 1. Subclasses give alpha^2 and sigma^2 in forms that stay accurate at both
    ends, d log(alpha^2)/dt, and the inverse of log-SNR; the rest follows here."""

    def alpha_sq(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def sigma_sq(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def d_log_alpha_sq(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def alpha(self, t: Tensor) -> Tensor:
        return self.alpha_sq(t).sqrt()

    def sigma(self, t: Tensor) -> Tensor:
        return self.sigma_sq(t).sqrt()

    def log_snr(self, t: Tensor) -> Tensor:
        return torch.log(self.alpha_sq(t)) - torch.log(self.sigma_sq(t))

    def d_alpha(self, t: Tensor) -> Tensor:
        return 0.5 * self.alpha(t) * self.d_log_alpha_sq(t)

    def d_sigma(self, t: Tensor) -> Tensor:
        # sigma^2 = 1 - alpha^2  =>  sigma * d_sigma = -alpha * d_alpha
        return -0.5 * self.alpha_sq(t) * self.d_log_alpha_sq(t) / self.sigma(t)

    def d_log_snr(self, t: Tensor) -> Tensor:
        return self.d_log_alpha_sq(t) / self.sigma_sq(t)


class VPLinear(VariancePreserving):
    """Linear beta(t) = beta_min + t (beta_max - beta_min): the continuous limit of DDPM's
    1000-step linear schedule (Song et al. 2021, VP SDE): alpha^2 = exp(-B(t)), B = int_0^t beta."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        if not 0 <= beta_min < beta_max:
            raise ValueError(f"need 0 <= beta_min < beta_max, got {beta_min}, {beta_max}")
        self.beta_min, self.beta_max = beta_min, beta_max

    def _integral(self, t: Tensor) -> Tensor:
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def alpha_sq(self, t: Tensor) -> Tensor:
        return torch.exp(-self._integral(t))

    def sigma_sq(self, t: Tensor) -> Tensor:
        return -torch.expm1(-self._integral(t))

    def d_log_alpha_sq(self, t: Tensor) -> Tensor:
        return -(self.beta_min + (self.beta_max - self.beta_min) * t)

    def t_from_log_snr(self, log_snr: Tensor) -> Tensor:
        integral = torch.nn.functional.softplus(-log_snr)  # B = -log(alpha^2) = log(1 + e^-lambda)
        a, b = 0.5 * (self.beta_max - self.beta_min), self.beta_min
        return 2 * integral / (b + torch.sqrt(b * b + 4 * a * integral))  # stable root of a t^2 + b t = B


class VPCosine(VariancePreserving):
    """alpha^2 = cos^2(f(t)) / cos^2(f(0)), f(t) = (t + s) / (1 + s) * pi / 2 (Nichol & Dhariwal 2021).

    alpha(1) = 0, where an eps-predicting network cannot be turned into an x0 estimate, so sampling
    starts at ``t_max`` (log-SNR about -13 by default) rather than 1.
    """

    def __init__(self, s: float = 0.008, t_max: float = 0.999):
        self.s, self.t_max = s, t_max
        self._scale = math.pi / (2 * (1 + s))
        self._f0 = s * self._scale

    def alpha_sq(self, t: Tensor) -> Tensor:
        return (torch.cos(self._scale * t + self._f0) / math.cos(self._f0)) ** 2

    def sigma_sq(self, t: Tensor) -> Tensor:
        # cos^2 f0 - cos^2 f = sin(f - f0) sin(f + f0), and f - f0 = scale t: no cancellation near t = 0
        return torch.sin(self._scale * t) * torch.sin(self._scale * t + 2 * self._f0) / math.cos(self._f0) ** 2

    def d_log_alpha_sq(self, t: Tensor) -> Tensor:
        return -2 * self._scale * torch.tan(self._scale * t + self._f0)

    def t_from_log_snr(self, log_snr: Tensor) -> Tensor:
        cos_f = torch.sqrt(torch.sigmoid(log_snr)) * math.cos(self._f0)
        return (torch.arccos(cos_f) - self._f0) / self._scale


class VPSigmoid(VariancePreserving):
    """alpha^2 = (v_end - sigmoid(u)) / (v_end - v_start), u = (start + t (end - start)) / tau
    (Chen 2023, "On the importance of noise scheduling", sigmoid schedule)."""

    def __init__(self, start: float = -3.0, end: float = 3.0, tau: float = 1.0, t_max: float = 0.999):
        if not start < end or tau <= 0:
            raise ValueError(f"need start < end and tau > 0, got start={start}, end={end}, tau={tau}")
        self.start, self.end, self.tau, self.t_max = start, end, tau, t_max
        self._v_start = 1 / (1 + math.exp(-start / tau))
        self._v_end = 1 / (1 + math.exp(-end / tau))

    def _u(self, t: Tensor) -> Tensor:
        return (self.start + t * (self.end - self.start)) / self.tau

    def alpha_sq(self, t: Tensor) -> Tensor:
        return (self._v_end - torch.sigmoid(self._u(t))) / (self._v_end - self._v_start)

    def sigma_sq(self, t: Tensor) -> Tensor:
        # sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - e^(b - a)), with a - b formed exactly
        gap = t * (self.end - self.start) / self.tau
        diff = torch.sigmoid(self._u(t)) * (1 - self._v_start) * -torch.expm1(-gap)
        return diff / (self._v_end - self._v_start)

    def d_log_alpha_sq(self, t: Tensor) -> Tensor:
        s = torch.sigmoid(self._u(t))
        d_u = (self.end - self.start) / self.tau
        return -s * (1 - s) * d_u / (self._v_end - s)

    def t_from_log_snr(self, log_snr: Tensor) -> Tensor:
        s = self._v_end - torch.sigmoid(log_snr) * (self._v_end - self._v_start)
        return (torch.logit(s) * self.tau - self.start) / (self.end - self.start)


class VPShiftedCosine(VariancePreserving):
    """log_snr(t) = -2 log tan(a t + b) + 2 log(shift), with a, b set so that the unshifted log-SNR runs
    from ``log_snr_max`` to ``log_snr_min`` (Kingma et al. 2021; Hoogeboom et al. 2023 shift it by
    2 log(64 / resolution) for large images). Both ends are finite."""

    def __init__(self, log_snr_min: float = -15.0, log_snr_max: float = 15.0, shift: float = 1.0):
        if not log_snr_min < log_snr_max or shift <= 0:
            raise ValueError(f"need log_snr_min < log_snr_max and shift > 0, got "
                             f"{log_snr_min}, {log_snr_max}, {shift}")
        self.log_snr_min, self.log_snr_max, self.shift = log_snr_min, log_snr_max, shift
        self._b = math.atan(math.exp(-0.5 * log_snr_max))
        self._a = math.atan(math.exp(-0.5 * log_snr_min)) - self._b
        self._offset = 2 * math.log(shift)

    def log_snr(self, t: Tensor) -> Tensor:
        return -2 * torch.log(torch.tan(self._a * t + self._b)) + self._offset

    def alpha_sq(self, t: Tensor) -> Tensor:
        return torch.sigmoid(self.log_snr(t))

    def sigma_sq(self, t: Tensor) -> Tensor:
        return torch.sigmoid(-self.log_snr(t))

    def d_log_alpha_sq(self, t: Tensor) -> Tensor:
        # d log sigmoid(l) / dt = sigmoid(-l) * dl/dt, dl/dt = -4 a / sin(2 (a t + b))
        d_log_snr = -4 * self._a / torch.sin(2 * (self._a * t + self._b))
        return torch.sigmoid(-self.log_snr(t)) * d_log_snr

    def t_from_log_snr(self, log_snr: Tensor) -> Tensor:
        return (torch.arctan(torch.exp(-0.5 * (log_snr - self._offset))) - self._b) / self._a


class DiscreteVP(VariancePreserving):
    """A discrete-time DDPM schedule (betas_1..N) made continuous without changing it.

    Step n (n = 0 is data) sits at t = n / N with alpha^2 = prod_{i<=n} (1 - beta_i) exactly;
    log(alpha^2) is linear between steps. A network trained with integer timesteps k = 0..N-1
    (diffusers' convention, where k means step n = k + 1) receives ``timestep(t)``.
    """

    def __init__(self, betas: Tensor | list[float]):
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.dim() != 1 or not ((betas > 0) & (betas < 1)).all():
            raise ValueError("betas must be a 1-D sequence of values in (0, 1)")
        self.num_steps = len(betas)
        log_alpha_sq = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(torch.log1p(-betas), 0)])
        self._log_alpha_sq = log_alpha_sq  # at t = n / N, n = 0..N; strictly decreasing

    @classmethod
    def linear(cls, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "DiscreteVP":
        """DDPM's schedule (Ho et al. 2020)."""
        return cls(torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64))

    @classmethod
    def scaled_linear(cls, num_steps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> "DiscreteVP":
        """Latent diffusion's schedule: linear in sqrt(beta)."""
        return cls(torch.linspace(beta_start**0.5, beta_end**0.5, num_steps, dtype=torch.float64) ** 2)

    @classmethod
    def cosine(cls, num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> "DiscreteVP":
        """Nichol & Dhariwal 2021, betas clipped at ``max_beta`` as in their code."""
        f = lambda n: math.cos((n / num_steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = [min(1 - f(n + 1) / f(n), max_beta) for n in range(num_steps)]
        return cls(betas)

    def _table(self, t: Tensor) -> Tensor:
        return self._log_alpha_sq.to(device=t.device, dtype=t.dtype)

    def _segment(self, t: Tensor) -> tuple[Tensor, Tensor]:
        pos = (t * self.num_steps).clamp(0, self.num_steps)
        n = pos.floor().long().clamp(max=self.num_steps - 1)
        return n, pos - n

    def log_alpha_sq(self, t: Tensor) -> Tensor:
        table = self._table(t)
        n, frac = self._segment(t)
        return table[n] + frac * (table[n + 1] - table[n])

    def alpha_sq(self, t: Tensor) -> Tensor:
        return torch.exp(self.log_alpha_sq(t))

    def sigma_sq(self, t: Tensor) -> Tensor:
        return -torch.expm1(self.log_alpha_sq(t))

    def d_log_alpha_sq(self, t: Tensor) -> Tensor:
        table = self._table(t)
        n, _ = self._segment(t)
        return (table[n + 1] - table[n]) * self.num_steps

    def t_from_log_snr(self, log_snr: Tensor) -> Tensor:
        table = self._table(log_snr)
        target = -torch.nn.functional.softplus(-log_snr)  # log(alpha^2)
        # table is decreasing: count entries above the target to find the segment
        n = torch.searchsorted(-table, -target.contiguous()).clamp(1, self.num_steps) - 1
        lo, hi = table[n], table[n + 1]
        return (n + (target - lo) / (hi - lo)) / self.num_steps

    def timestep(self, t: Tensor) -> Tensor:
        """The network input of a discretely trained model: k = N t - 1 (0..N-1 on the grid)."""
        return t * self.num_steps - 1


PROCESSES = {
    "vp_linear": VPLinear,
    "vp_cosine": VPCosine,
    "vp_sigmoid": VPSigmoid,
    "vp_shifted_cosine": VPShiftedCosine,
    "ve": VarianceExploding,
    "edm": EDM,
    "linear": LinearInterpolant,
    "ddpm_linear": DiscreteVP.linear,
    "ddpm_scaled_linear": DiscreteVP.scaled_linear,
    "ddpm_cosine": DiscreteVP.cosine,
}


def make_process(name: str, **kwargs) -> NoiseProcess:
    """Build a process by name (the names config files use)."""
    if name not in PROCESSES:
        raise ValueError(f"unknown noise process {name!r}; choose one of {sorted(PROCESSES)}")
    return PROCESSES[name](**kwargs)

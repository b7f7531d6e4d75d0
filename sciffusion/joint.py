"""Joint generation of states with several parts: one noise process per part, one time per sample.

    process = JointProcess({"pos": VPCosine(), "atoms": CategoricalProcess(5), "bonds": CategoricalProcess(5)})
    model   = JointModel(net, process)            # net(x_t: dict, t [B], space, cond) -> dict of raw outputs
    loss    = JointLoss(process, weights={"pos": 3, "atoms": 0.4, "bonds": 2})

The denoiser protocol is the core's, part by part: ``model(x_t, t, space, cond)`` returns for each
continuous part its x0 estimate and for each categorical part the probabilities of the clean class
(``softmax`` of the network's logits). Continuous parts train with the core's weighted squared error
(``losses.WEIGHTINGS``), categorical parts with cross-entropy on the x0 prediction, optionally with
the masked process's ELBO weighting; the per-sample losses are added with per-part weights.

Self-conditioning (Chen et al. 2022, "Analog Bits"): with probability ``self_condition`` a training
step first runs the model without gradient and passes that x0 estimate to the network in
``cond[SELF_COND]``; samplers pass the previous step's estimate the same way. Networks that do not
use it ignore the key.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .categorical import CategoricalProcess
from .couplings import get_coupling
from .losses import SELF_COND, TIME_SAMPLERS, WEIGHTINGS, _choose, drop_condition
from .parameterization import Coefficients, Cond, Target, get_target
from .processes import NoiseProcess
from .state import PartsSpace, is_categorical


Process = NoiseProcess | CategoricalProcess


class JointProcess:
    """One process per named part. ``t_max`` is the smallest of the parts' (where sampling starts)."""

    def __init__(self, parts: Mapping[str, Process]):
        if not parts:
            raise ValueError("a JointProcess needs at least one part")
        self.parts = dict(parts)
        self.t_max = min(p.t_max for p in self.parts.values())

    def __getitem__(self, name: str) -> Process:
        return self.parts[name]

    @property
    def continuous(self) -> list[str]:
        return [k for k, p in self.parts.items() if not isinstance(p, CategoricalProcess)]

    @property
    def categorical(self) -> list[str]:
        return [k for k, p in self.parts.items() if isinstance(p, CategoricalProcess)]

    @property
    def grid_process(self) -> NoiseProcess:
        """The process whose noise levels place the sampling grid: the first continuous part's, or
        the linear interpolant (t itself) for a purely categorical state."""
        from .processes import LinearInterpolant

        return self.parts[self.continuous[0]] if self.continuous else LinearInterpolant()

    def check(self, x: Mapping[str, Tensor]) -> None:
        """Raise unless ``x`` has exactly these parts, categorical parts as class indices."""
        if set(x) != set(self.parts):
            raise ValueError(f"state parts {sorted(x)} do not match the process's parts {sorted(self.parts)}")
        for name, process in self.parts.items():
            if isinstance(process, CategoricalProcess) != is_categorical(x[name]):
                kind = "class indices (int64)" if isinstance(process, CategoricalProcess) else "floating values"
                raise ValueError(f"part {name!r} must hold {kind} for {process!r}, got dtype {x[name].dtype}")

    def __repr__(self) -> str:
        return f"JointProcess({self.parts!r})"


def make_joint_process(parts: Mapping[str, Mapping]) -> JointProcess:
    """A ``JointProcess`` from plain options, one entry per part: a Gaussian process by name
    (``{"name": "vp_cosine", ...}``, see ``processes.make_process``) or a categorical one
    (``{"categorical": {"num_classes": 5, "prior": "marginal", "schedule": "cosine"}}``). A marginal
    prior without ``marginals`` gets them from the domain (``Domain.prepare_process``)."""
    from .processes import make_process

    built = {}
    for name, options in parts.items():
        options = dict(options)
        if "categorical" in options:
            built[name] = CategoricalProcess(**dict(options.pop("categorical")))
            if options:
                raise ValueError(f"part {name!r}: a categorical part takes only 'categorical', got {sorted(options)}")
        elif "name" in options:
            built[name] = make_process(**options)
        else:
            raise ValueError(f"part {name!r} needs 'name' (a Gaussian process) or 'categorical' options, got {sorted(options)}")
    return JointProcess(built)


def prior_sample_joint(process: JointProcess, like: Mapping[str, Tensor], space: PartsSpace, *,
                       generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """A draw from every part's prior, shaped like ``like``: N(0, sigma(t_max)^2) in each continuous
    part's subspace, pi for each categorical part."""
    from .samplers import prior_sample

    out = {}
    for name, p in process.parts.items():
        if isinstance(p, CategoricalProcess):
            out[name] = p.prior_sample(like[name].shape, device=like[name].device, generator=generator)
        else:
            out[name] = prior_sample(p, like[name], t=process.t_max, space=space[name], generator=generator)
    return out


class JointModel(nn.Module):
    """A network over a ``dict`` state seen as a joint denoiser.

    ``net(x_t, t [B], space, cond)`` returns a dict: for each continuous part a prediction of
    ``target`` (default x0, what every post-EDM molecule model predicts) shaped like the part, for
    each categorical part logits [..., K] over its clean classes.
    """

    def __init__(self, net: nn.Module | Callable, process: JointProcess, target: str | Target = "x0"):
        super().__init__()
        self.net, self.process, self.target = net, process, get_target(target)

    def predict(self, x: dict[str, Tensor], t: Tensor, space: PartsSpace, cond: Cond | None = None) -> dict[str, Tensor]:
        """The network's raw outputs (continuous targets, categorical logits), shapes checked."""
        out = self.net(x, t, space, cond or {})
        for name, p in self.process.parts.items():
            if name not in out:
                raise ValueError(f"the network returned no output for part {name!r}; it returned {sorted(out)}")
            want = (*x[name].shape, p.num_classes) if isinstance(p, CategoricalProcess) else tuple(x[name].shape)
            if tuple(out[name].shape) != tuple(want):
                raise ValueError(f"the network returned shape {tuple(out[name].shape)} for part {name!r}; "
                                 f"it must be {tuple(want)}")
        return out

    def denoised(self, raw: dict[str, Tensor], x: dict[str, Tensor], t: Tensor, space: PartsSpace) -> dict[str, Tensor]:
        """x0 estimates of continuous parts and class probabilities of categorical ones, from ``raw``."""
        out = {}
        for name, p in self.process.parts.items():
            if isinstance(p, CategoricalProcess):
                out[name] = torch.softmax(raw[name].float(), -1).to(raw[name].dtype)
            else:
                c = Coefficients.at(p, t.to(x[name].dtype), x[name], space[name])
                out[name] = self.target.to_x0_eps(raw[name], x[name], c)[0]
        return out

    def forward(self, x: dict[str, Tensor], t: Tensor, space: PartsSpace, cond: Cond | None = None) -> dict[str, Tensor]:
        return self.denoised(self.predict(x, t, space, cond), x, t, space)


def _clamped_snr(c: Coefficients, *, low: float = 0.05, high: float = 1.5, **_) -> Tensor:
    """EQGAT-diff's x0 weighting: SNR clamped to [low, high] (Le et al. 2024)."""
    return torch.clamp((c.alpha / c.sigma) ** 2, low, high)


CONTINUOUS_WEIGHTINGS = {**WEIGHTINGS, "snr_clamped": _clamped_snr}
CATEGORICAL_WEIGHTINGS = ("uniform", "elbo")


class JointLoss:
    """Per-sample loss ``sum_k weights[k] * loss_k`` of a ``dict`` state.

    Continuous part k: ``w(t) * mean_i (T_hat - T)_i^2`` exactly as ``DiffusionLoss`` (``weighting``
    on x0 errors, converted to the model's target). Categorical part k: the mean over its entries of
    -log p0(x0) (``categorical_weighting="uniform"``), or the masked process's ELBO integrand
    ``-kappa'/(1-kappa) * [x_t masked] * -log p0(x0)`` (``"elbo"``). ``coupling`` re-pairs each
    continuous part's noise with its data (``sciffusion.couplings``, e.g. ``equivariant_ot`` for
    positions). ``last_parts`` keeps the batch mean of each part's loss for logging.
    """

    def __init__(self, process: JointProcess, *, weights: Mapping[str, float] | None = None,
                 weighting: str = "uniform", weighting_options: dict | None = None,
                 categorical_weighting: str = "uniform", time_distribution: str = "uniform",
                 time_options: dict | None = None, cond_dropout: float = 0.0, self_condition: float = 0.0,
                 coupling: str = "independent"):
        if weighting != "uniform":
            _choose(CONTINUOUS_WEIGHTINGS, weighting, "loss weighting")
        if categorical_weighting not in CATEGORICAL_WEIGHTINGS:
            raise ValueError(f"unknown categorical weighting {categorical_weighting!r}; choose one of {CATEGORICAL_WEIGHTINGS}")
        _choose(TIME_SAMPLERS, time_distribution, "training time distribution")
        unknown = set(weights or {}) - set(process.parts)
        if unknown:
            raise ValueError(f"loss weights name parts {sorted(unknown)} that the state lacks; its parts are {sorted(process.parts)}")
        if not 0 <= cond_dropout < 1:  # dropping every condition would leave nothing to guide
            raise ValueError(f"cond_dropout is a probability in [0, 1), got {cond_dropout}")
        if not 0 <= self_condition <= 1:
            raise ValueError(f"self_condition is a probability in [0, 1], got {self_condition}")
        self.process, self.weighting, self.categorical_weighting = process, weighting, categorical_weighting
        self.weights = {k: float((weights or {}).get(k, 1.0)) for k in process.parts}
        self.weighting_options, self.time_options = dict(weighting_options or {}), dict(time_options or {})
        self.time_distribution, self.cond_dropout, self.self_condition = time_distribution, cond_dropout, self_condition
        self.last_parts: dict[str, Tensor] = {}
        self.coupling = get_coupling(coupling)
        if categorical_weighting == "elbo":
            for name in process.categorical:
                process[name].elbo_weight(torch.zeros(1))  # raises for a process without this ELBO

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return TIME_SAMPLERS[self.time_distribution](n, self.process.grid_process, generator, **self.time_options)

    def noise(self, x0: dict[str, Tensor], t: Tensor, space: PartsSpace,
              generator: torch.Generator | None = None) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """x_t for every part and the Gaussian noise of the continuous ones."""
        x_t, eps = {}, {}
        for name, p in self.process.parts.items():
            sp = space[name]
            if isinstance(p, CategoricalProcess):
                kappa = torch.broadcast_to(sp.per_sample(p.kappa(t), x0[name]), x0[name].shape)
                x_t[name] = p.noise(x0[name], kappa, generator)
            else:
                clean = sp.project(x0[name])
                eps[name] = self.coupling(clean, sp.randn_like(clean, generator), sp)
                c = Coefficients.at(p, t.to(clean.dtype), clean, sp)
                x_t[name] = c.alpha * clean + c.sigma * eps[name]
        return x_t, eps

    def _continuous_weight(self, p: NoiseProcess, model, t: Tensor) -> Tensor:
        if self.weighting == "uniform":
            return torch.ones_like(t)
        c = Coefficients(p.alpha(t), p.sigma(t), p.d_alpha(t), p.d_sigma(t))
        return CONTINUOUS_WEIGHTINGS[self.weighting](c, **self.weighting_options) / model.target.x0_error_scale(c) ** 2

    def __call__(self, model: JointModel, x0: dict[str, Tensor], *, space: PartsSpace, cond: Cond | None = None,
                 t: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        self.process.check(x0)
        batch = space.batch_size(x0)
        if t is None:
            t = self.sample_time(batch, generator)
        device = next(iter(x0.values())).device
        t = t.to(device=device, dtype=torch.float64)
        x_t, eps = self.noise(x0, t, space, generator)
        cond = drop_condition(cond or {}, batch, self.cond_dropout, generator, device)
        t_in = t.float()
        if self.self_condition and float(torch.rand((), generator=generator, device=_gen_device(generator))) < self.self_condition:
            with torch.no_grad():
                cond = {**cond, SELF_COND: {k: v.detach() for k, v in model(x_t, t_in, space, cond).items()}}
        raw = model.predict(x_t, t_in, space, cond)
        total = torch.zeros(batch, dtype=torch.float32, device=device)
        for name, p in self.process.parts.items():
            sp = space[name]
            if isinstance(p, CategoricalProcess):
                logits = raw[name].float()
                nll = F.cross_entropy(logits.reshape(-1, p.num_classes), x0[name].reshape(-1), reduction="none")
                nll = nll.reshape(x0[name].shape)
                if self.categorical_weighting == "elbo":
                    nll = nll * sp.per_sample(p.elbo_weight(t).float(), nll) * (x_t[name] == p.mask_index)
                part = sp.average(nll)
            else:
                clean = sp.project(x0[name])
                c = Coefficients.at(p, t.to(clean.dtype), clean, sp)
                target = model.target.from_x0_eps(clean, eps[name], c)
                part = self._continuous_weight(p, model, t).to(clean) * sp.average((raw[name] - target) ** 2)
            self.last_parts[name] = part.detach().mean()
            total = total + self.weights[name] * part.float()
        return total


def _gen_device(generator: torch.Generator | None) -> torch.device:
    return torch.device("cpu") if generator is None else generator.device


__all__ = ["CATEGORICAL_WEIGHTINGS", "CONTINUOUS_WEIGHTINGS", "JointLoss", "JointModel", "JointProcess", "SELF_COND",
           "make_joint_process", "prior_sample_joint"]

"""Time grids optimised for one denoiser, one sampler and one budget (in the spirit of Align Your Steps,
Sabour et al. 2024, and GITS, Chen et al. 2024): the grid t_0 > t_1 > ... > t_{n-1} > t_n = 0 whose
sampler output from a calibration batch is closest to a fine-step solution of the probability-flow ODE
from the same starting points.

The free values are the noise levels u_i = log(sigma_i / alpha_i) of t_1..t_{n-1} (t_0 is where the
batch lives, t_n = 0 the final denoising step). A derivative-free pattern search moves one u_i at a
time, a fraction of the way to a neighbour (so the grid stays ordered), keeps a move that lowers the
RMS discrepancy and halves the fraction after a sweep without one; it starts from the best of the
fixed grids (Karras, uniform in log-SNR, uniform in t) and, for samplers with an ``order`` option,
repeats for each order asked for. The result goes into a checkpoint's ``sampling_defaults`` as
``grid: optimised`` with the times per budget in ``grid_options``, which ``timesteps.optimised`` reads::

    found = optimise_grid(denoiser, x_cal, process=process, steps=10, sampler="unipc", orders=(2, 3),
                          space=DenseSpace())   # the calibration batch's space
    model.sampling_defaults = found.store(model.sampling_defaults)   # then model.save_pretrained(folder)

or, for a loaded model, ``optimise_model_grid(model, 10, orders=(2, 3))``, which draws the calibration
batch from the domain's template and prior and stores the result.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor

from .parameterization import Cond, Denoiser
from .processes import NoiseProcess
from .space import Space, require_space
from .timesteps import custom, karras, uniform_log_snr, uniform_t

_F64 = torch.float64


@dataclass(frozen=True)
class OptimisedGrid:
    """A searched grid and what it was searched for; ``error`` is its RMS discrepancy to the
    reference on the calibration batch, ``fixed_errors`` those of the fixed grids it started from,
    ``evaluations`` the sampler runs the search made."""

    times: list[float]
    sampler: str
    sampler_options: dict[str, Any]
    error: float
    fixed_errors: dict[str, float] = field(default_factory=dict)
    evaluations: int = 0

    @property
    def steps(self) -> int:
        return len(self.times) - 1

    def store(self, sampling_defaults: dict[str, Any] | None = None) -> dict[str, Any]:
        """``sampling_defaults`` with this grid as the default (sampler, its options, steps) and its
        times added to the stored optimised grids of other budgets, which stay usable with ``steps=``."""
        defaults = dict(sampling_defaults or {})
        grids = dict((defaults.get("grid_options") or {}).get("grids") or {}) if defaults.get("grid") == "optimised" else {}
        grids[str(self.steps)] = list(self.times)
        return {**defaults, "sampler": self.sampler, "steps": self.steps, "grid": "optimised",
                "grid_options": {"grids": grids}, "sampler_options": dict(self.sampler_options)}


def rms_distance(a: Tensor, b: Tensor, space: Space) -> float:
    """sqrt(mean over samples of ||a - b||^2): the RMS distance of paired samples (graph rows summed per sample)."""
    return math.sqrt(float(((a - b) ** 2).sum()) / space.batch_size(a))


def reference_solution(denoiser: Denoiser, x: Tensor, *, process: NoiseProcess, t_start: float, sigma_min: float,
                       steps: int = 500, space: Space | None = None, cond: Cond | None = None) -> Tensor:
    """The probability-flow ODE's solution from ``x`` at ``t_start``: UniPC-3 on ``steps`` steps
    uniform in log-SNR down to scaled sigma ``sigma_min``, then the denoised estimate."""
    from .samplers import unipc

    sigma_start = float(process.scaled_sigma(torch.tensor(t_start, dtype=_F64)))
    ts = uniform_log_snr(process, steps, sigma_min=sigma_min, sigma_max=sigma_start)
    ts[0] = t_start  # from where the batch lives (rounding in t(sigma) aside)
    return unipc(denoiser, x, ts, process=process, space=require_space(space, "reference_solution"), cond=cond,
                 order=3)


def _fixed_grids(process: NoiseProcess, steps: int, t_start: float, sigma_min: float) -> dict[str, Tensor]:
    """The grids ``grid=NAME`` samples with (``timesteps`` defaults: Karras and log-SNR from scaled
    sigma 80 or ``t_start``'s if lower, uniform in t from ``t_start``), so that the errors reported
    under their names are theirs and the search never ends worse than the best of them. Sampling
    uses a prior draw at t_max as the state at a grid's first time, as here: for a process reaching
    beyond sigma 80 (VP cosine: 642) forcing every grid to start at ``t_start`` instead gave other
    grids than the named ones, and worse (spoken digits, 10 NFE: Karras from 642 has ~1.7x the ODE
    error of Karras from 80)."""
    sigma_start = float(process.scaled_sigma(torch.tensor(t_start, dtype=_F64)))
    sigma_max = min(80.0, sigma_start)
    grids = {"karras": karras(process, steps, sigma_min=sigma_min, sigma_max=sigma_max),
             "uniform_log_snr": uniform_log_snr(process, steps, sigma_min=sigma_min, sigma_max=sigma_max),
             "uniform_t": uniform_t(process, steps, t_max=t_start),
             "uniform_t_to_sigma_min": uniform_t(process, steps, t_max=t_start, sigma_min=sigma_min)}
    if sigma_max == sigma_start:
        for ts in grids.values():
            ts[0] = t_start  # the same noise level: only t(sigma(t_start))'s rounding differs
    else:
        # Also from t_start itself, where the batch lives: the search never moves a grid's first time,
        # so without these it could not use the noise levels above 80 (the 2-D mixture on the linear VP,
        # 157 at t = 1: iPNDM-3's searched 10-NFE grid had twice the error of one searched from t_start).
        for name, build in (("karras", karras), ("uniform_log_snr", uniform_log_snr)):
            grids[f"{name}_from_t_start"] = ts = build(process, steps, sigma_min=sigma_min, sigma_max=sigma_start)
            ts[0] = t_start
    return grids


def optimise_grid(denoiser: Denoiser, x: Tensor, *, process: NoiseProcess, steps: int, sampler: str = "unipc",
                  sampler_options: dict[str, Any] | None = None, orders: tuple[int, ...] | None = None,
                  space: Space | None = None, cond: Cond | None = None, t_start: float | None = None,
                  sigma_min: float = 0.002, reference: Tensor | None = None, reference_steps: int = 500,
                  evaluations: int = 300) -> OptimisedGrid:
    """The grid of ``steps`` steps (and the ``order`` among ``orders``, if given) on which ``sampler``
    maps the calibration batch ``x`` (at ``t_start``, default ``process.t_max``) closest to
    ``reference`` (default: ``reference_solution`` with ``reference_steps``), in RMS distance.

    A process with pure noise at ``t_start`` (the linear interpolant at t = 1) starts at scaled sigma
    80 instead, where the fixed grids start; ``x`` is used there as it is.
    ``evaluations`` sampler runs per order and search, each ``steps``-ish NFE on the batch (two searches
    for a process above scaled sigma 80 at ``t_start``: from the best start, and from the best start at
    ``t_start``). ``sigma_min`` is the smallest scaled sigma of the fixed grids the search starts from
    (the search may go below it, but not below the process's own noise at t = 0). Shapes: ``x`` ``[B, ...]`` (or graph rows).
    """
    from .samplers import SAMPLERS

    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {sorted(SAMPLERS)}")
    if not isinstance(steps, int) or steps < 2:
        raise ValueError(f"an optimised grid needs steps >= 2 (one step has no free time), got {steps!r}")
    space = require_space(space, "optimise_grid")
    t_start = process.t_max if t_start is None else float(t_start)
    if not math.isfinite(float(process.scaled_sigma(torch.tensor(t_start, dtype=_F64)))):
        # pure noise there (the linear interpolant at t = 1): start at scaled sigma 80, as the fixed grids do
        t_start = float(process.t_from_scaled_sigma(torch.tensor(80.0, dtype=_F64)))
    if reference is None:
        reference = reference_solution(denoiser, x, process=process, t_start=t_start, sigma_min=sigma_min,
                                       steps=reference_steps, space=space, cond=cond)
    floor = float(process.scaled_sigma(torch.tensor(0.0, dtype=_F64)))
    u_floor = math.log(floor) + 1e-6 if floor > 0 else -math.inf
    fixed = _fixed_grids(process, steps, t_start, sigma_min)
    best: tuple[float, Tensor, dict[str, Any]] | None = None  # (error, times, sampler options)
    fixed_errors: dict[str, float] = {}
    runs = 0
    for order in orders or (None,):
        options = dict(sampler_options or {}, **({} if order is None else {"order": order}))
        run = _objective(SAMPLERS[sampler], denoiser, x, reference, process, space, cond, options)
        starts = {}
        for name, ts in fixed.items():
            starts[name] = run(ts)
            fixed_errors[name + ("" if order is None else f" order {order}")] = starts[name]
        runs += len(fixed)
        # The search never moves a grid's first time: search from the best start, and also from the best
        # one that starts at t_start when that is another (a process above sigma 80, where the named grids
        # start lower), keeping the better of the two.
        first = [min(starts, key=starts.get)]
        at_start = [name for name in starts if float(fixed[name][0]) == t_start]
        if at_start and (other := min(at_start, key=starts.get)) != first[0]:
            first.append(other)
        for start in first:
            ts, error, used = _pattern_search(run, fixed[start], starts[start], process, u_floor, evaluations)
            runs += used
            if best is None or error < best[0]:
                best = (error, ts, options)
    error, ts, options = best
    return OptimisedGrid(ts.tolist(), sampler, options, error, fixed_errors, runs)


def _objective(run_sampler: Callable[..., Tensor], denoiser: Denoiser, x: Tensor, reference: Tensor,
               process: NoiseProcess, space: Space, cond: Cond | None, options: dict[str, Any]) -> Callable[[Tensor], float]:
    def error(ts: Tensor) -> float:
        out = run_sampler(denoiser, x, ts, process=process, space=space, cond=cond, **options)
        value = rms_distance(out, reference, space)
        return value if math.isfinite(value) else math.inf
    return error


def _pattern_search(error: Callable[[Tensor], float], ts: Tensor, start_error: float, process: NoiseProcess,
                    u_floor: float, budget: int) -> tuple[Tensor, float, int]:
    """Coordinate moves of u_i = log scaled sigma(t_i), i = 1..n-1, by a fraction of the gap to the
    neighbour on that side (for the last time, below, by the gap above); the fraction starts at 1/2
    and halves after a sweep without improvement."""
    u = process.scaled_sigma(ts[:-1]).log()
    best, used, fraction = start_error, 0, 0.5
    while used < budget and fraction > 1e-3:
        improved = False
        for i in range(1, len(u)):
            for direction in (1, -1):
                if used >= budget:
                    break
                gap = u[i - 1] - u[i] if direction == 1 or i == len(u) - 1 else u[i] - u[i + 1]
                candidate = u.clone()
                candidate[i] = u[i] + direction * fraction * gap
                if candidate[i] <= u_floor:
                    continue
                trial = _times(process, candidate, ts[0])
                if trial is None:
                    continue
                value = error(trial)
                used += 1
                if value < best:
                    best, u, improved = value, candidate, True
        if not improved:
            fraction /= 2
    return _times(process, u, ts[0]), best, used


def _times(process: NoiseProcess, u: Tensor, t_start: Tensor) -> Tensor | None:
    """The grid [t_start, t(u_1), ..., t(u_{n-1}), 0], or None if rounding made it not decrease."""
    inner = process.t_from_scaled_sigma(u[1:].exp())
    ts = torch.cat([t_start.reshape(1), inner, torch.zeros(1, dtype=_F64)])
    return custom(ts) if bool((ts[1:] < ts[:-1]).all()) else None


def optimise_model_grid(model, steps: int, *, sampler: str | None = None, num_samples: int = 64, seed: int = 0,
                        cond: dict[str, Any] | None = None, **search: Any) -> OptimisedGrid:
    """Search a grid for a ``sciffusion.api.Model`` and store it in its ``sampling_defaults`` (which
    ``model.save_pretrained`` writes with the weights): ``num_samples`` prior draws of the domain's
    template (conditions ``cond`` as for ``model.sample``) are the calibration batch, the denoiser is
    the model's with the guidance its settings use, and the sampler is ``sampler`` or the model's
    default. ``search`` goes to ``optimise_grid`` (``orders``, ``evaluations``, ``reference_steps``...)."""
    from .samplers import prior_sample

    settings = model.settings(sampler=sampler, steps=steps)
    generator = torch.Generator().manual_seed(seed)
    cond = model.domain.condition(num_samples, generator=generator, **dict(cond or {}))
    x_like, space = model.domain.template(num_samples, generator=generator, cond=cond)
    x = prior_sample(model.process, x_like, space=space, generator=generator)
    found = optimise_grid(model.guided(settings.guidance), x, process=model.process, steps=steps,
                          sampler=settings.sampler, sampler_options=settings.sampler_options, space=space, cond=cond,
                          **search)
    model.sampling_defaults = found.store(model.sampling_defaults)
    return found

"""Sampling time grids: descending times t_0 = t_max > ... > t_{n-1} > t_n = 0.

A grid of ``steps`` intervals has ``steps + 1`` times and always ends at t = 0, where a last
first-order step returns the denoised estimate. Grids are float64; samplers cast as they need.
Noise levels in the arguments are *scaled* sigmas, sigma / alpha (the variance-exploding view that
Karras et al. 2022 use), so the same numbers mean the same thing for every process.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .processes import NoiseProcess

_F64 = torch.float64


def _check_steps(steps: int) -> None:
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")


def _t_max(process: NoiseProcess, t_max: float | None) -> float:
    return process.t_max if t_max is None else t_max


def _sigma_range(process: NoiseProcess, sigma_min: float, sigma_max: float | None) -> tuple[float, float]:
    top = float(process.scaled_sigma(torch.tensor(process.t_max, dtype=_F64)))
    sigma_max = top if sigma_max is None else min(sigma_max, top)
    if sigma_max == float("inf"):
        raise ValueError(f"{process!r} reaches pure noise at t_max, so a grid in noise level needs a finite sigma_max")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max} "
                         f"(the process reaches scaled sigma {top:.4g} at t_max)")
    floor = float(process.scaled_sigma(torch.tensor(0.0, dtype=_F64)))
    if sigma_min <= floor:
        raise ValueError(f"sigma_min={sigma_min} is not above the noise the process already has at t = 0 "
                         f"({floor:.4g} for {process!r}); pass a larger sigma_min")
    return sigma_min, sigma_max


def _append_zero(ts: Tensor) -> Tensor:
    return torch.cat([ts, ts.new_zeros(1)])


def uniform_t(process: NoiseProcess, steps: int, *, t_max: float | None = None,
              sigma_min: float | None = None) -> Tensor:
    """Equally spaced in t from ``t_max`` (default: the process's) to 0; with ``sigma_min``, ``steps``
    times equally spaced from ``t_max`` down to the time of scaled sigma ``sigma_min``, then 0 (diffusers'
    "trailing" spacing ending at its last non-zero sigma: the final step denoises from ``sigma_min``)."""
    _check_steps(steps)
    if sigma_min is None:
        return torch.linspace(_t_max(process, t_max), 0.0, steps + 1, dtype=_F64)
    t_min = float(process.t_from_scaled_sigma(torch.tensor(float(sigma_min), dtype=_F64)))
    t_top = _t_max(process, t_max)
    if not 0.0 < t_min < t_top:
        raise ValueError(f"sigma_min={sigma_min} must lie strictly between the noise levels at t=0 and t_max")
    return _append_zero(torch.linspace(t_top, t_min, steps, dtype=_F64))


def uniform_log_snr(process: NoiseProcess, steps: int, *, sigma_min: float = 0.002,
                    sigma_max: float | None = 80.0) -> Tensor:
    """Equally spaced in log-SNR between scaled sigmas ``sigma_max`` and ``sigma_min``, then 0
    (the spacing DPM-Solver recommends; Lu et al. 2022)."""
    _check_steps(steps)
    lo, hi = _sigma_range(process, sigma_min, sigma_max)
    log_snr = torch.linspace(-2 * torch.log(torch.tensor(hi, dtype=_F64)),
                             -2 * torch.log(torch.tensor(lo, dtype=_F64)), steps, dtype=_F64)
    return _append_zero(process.t_from_log_snr(log_snr))


def karras(process: NoiseProcess, steps: int, *, sigma_min: float = 0.002, sigma_max: float | None = 80.0,
           rho: float = 7.0) -> Tensor:
    """sigma_i = (sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho, then 0
    (Karras et al. 2022, eq. 5). ``sigma_max`` is capped at what the process reaches at ``t_max``."""
    _check_steps(steps)
    lo, hi = _sigma_range(process, sigma_min, sigma_max)
    ramp = torch.linspace(0, 1, steps, dtype=_F64)
    sigmas = (hi ** (1 / rho) + ramp * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    return _append_zero(process.t_from_scaled_sigma(sigmas))


def custom(ts: Tensor | list[float]) -> Tensor:
    """A user's own grid, checked: strictly decreasing, within [0, 1] (may pass 1 for the EDM
    process, whose t scales sigma), ending at 0."""
    ts = torch.as_tensor(ts, dtype=_F64).flatten()
    if len(ts) < 2:
        raise ValueError(f"a time grid needs at least two times, got {ts.tolist()}")
    if not (ts[1:] < ts[:-1]).all():
        raise ValueError(f"a time grid must decrease strictly from noise to data, got {ts.tolist()}")
    if ts[-1] != 0 or ts[0] <= 0:
        raise ValueError(f"a time grid must start above 0 and end at t = 0, got {ts.tolist()}; "
                         "append 0.0 to finish with a denoising step")
    return ts


def optimised(process: NoiseProcess, steps: int, *, grids: dict[str, list[float]] | None = None) -> Tensor:
    """The grid of ``steps`` steps searched for a model by ``sciffusion.grids.optimise_grid`` and
    stored in its checkpoint's ``sampling_defaults`` (``grid_options: {grids: {"<steps>": times}}``)."""
    _check_steps(steps)
    stored = {int(k): v for k, v in (grids or {}).items()}
    if steps not in stored:
        have = f"it has grids for steps {sorted(stored)}" if stored else "it has none"
        raise ValueError(f"grid=optimised: no optimised grid of {steps} steps is stored with this model ({have}); "
                         f"search one with sciffusion.grids.optimise_grid(..., steps={steps}) and store it in the "
                         "checkpoint's sampling_defaults, or choose another grid")
    ts = custom(stored[steps])
    if len(ts) != steps + 1:
        raise ValueError(f"the optimised grid stored for {steps} steps has {len(ts) - 1} steps: {ts.tolist()}")
    return ts


GRIDS = {"uniform_t": uniform_t, "uniform_log_snr": uniform_log_snr, "karras": karras, "optimised": optimised}


def make_grid(name: str, process: NoiseProcess, steps: int, **kwargs) -> Tensor:
    if name not in GRIDS:
        raise ValueError(f"unknown time grid {name!r}; choose one of {sorted(GRIDS)} or pass times to custom()")
    return GRIDS[name](process, steps, **kwargs)

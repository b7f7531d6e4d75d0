"""Physical diagnostics of 2-D periodic fields on the square [0, L)^2 (numpy; L = 2 pi by default, so
wavenumbers are integers).

Layouts: a scalar field is ``[..., H, W]`` (rows y, columns x); a velocity is ``[..., 2, H, W]`` with
the components on a staggered (MAC) grid, as phiflow's ``StaggeredGrid`` stores them: ``u[j, i]`` at
the x-face ``(i dx, (j + 1/2) dx)`` and ``v[j, i]`` at the y-face ``((i + 1/2) dx, j dx)``. The discrete
divergence lives at cell centres, the discrete vorticity at cell corners ``(i dx, j dx)``:

    div[j, i]   = (u[j, i+1] - u[j, i] + v[j+1, i] - v[j, i]) / dx
    omega[j, i] = (v[j, i] - v[j, i-1] - u[j, i] + u[j-1, i]) / dx

Spectra use ``f_hat = fft2(f) / (H W)``, so that ``mean(f^2) = sum_k |f_hat(k)|^2`` (Parseval), and
sum ``1/2 |f_hat|^2`` over shells ``round(|k|) = K``: the shell sums add up to ``1/2 mean(f^2)``.
"""
from __future__ import annotations

import math

import numpy as np

LENGTH = 2 * math.pi


def _check_velocity(velocity: np.ndarray) -> None:
    if velocity.ndim < 3 or velocity.shape[-3] != 2:
        raise ValueError(f"a velocity must be [..., 2, H, W] (u, v on the staggered grid), got shape "
                         f"{tuple(velocity.shape)}")


def divergence(velocity: np.ndarray, *, length: float = LENGTH) -> np.ndarray:
    """Discrete divergence ``[..., H, W]`` of a staggered periodic velocity ``[..., 2, H, W]``."""
    _check_velocity(velocity)
    u, v = velocity[..., 0, :, :], velocity[..., 1, :, :]
    dx = length / u.shape[-1]
    return (np.roll(u, -1, axis=-1) - u + np.roll(v, -1, axis=-2) - v) / dx


def vorticity(velocity: np.ndarray, *, length: float = LENGTH) -> np.ndarray:
    """Discrete vorticity ``dv/dx - du/dy`` ``[..., H, W]`` at the cell corners of a staggered velocity."""
    _check_velocity(velocity)
    u, v = velocity[..., 0, :, :], velocity[..., 1, :, :]
    dx = length / u.shape[-1]
    return (v - np.roll(v, 1, axis=-1) - u + np.roll(u, 1, axis=-2)) / dx


def velocity_from_streamfunction(psi: np.ndarray, *, length: float = LENGTH) -> np.ndarray:
    """The staggered velocity ``[..., 2, H, W]`` of a streamfunction ``psi [..., H, W]`` at the cell
    corners: ``u = d psi / dy``, ``v = -d psi / dx`` as one-sided differences across each face, whose
    discrete divergence is zero to rounding (the differences telescope)."""
    dx = length / psi.shape[-1]
    u = (np.roll(psi, -1, axis=-2) - psi) / dx
    v = -(np.roll(psi, -1, axis=-1) - psi) / dx
    return np.stack([u, v], axis=-3)


def wavenumbers(height: int, width: int, *, length: float = LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """``ky [H, 1]``, ``kx [1, W]``: the angular wavenumbers of ``fft2`` on the square of side ``length``."""
    scale = 2 * math.pi / length
    return (np.fft.fftfreq(height, 1.0 / height)[:, None] * scale, np.fft.fftfreq(width, 1.0 / width)[None, :] * scale)


def shell_sum(power: np.ndarray, *, length: float = LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """Sum a per-mode quantity ``[..., H, W]`` (in ``fft2`` order) over shells ``round(|k| L / 2 pi) = K``:
    returns the shell wavenumbers ``K [S]`` (0, 1, ... up to the corner of the grid) and ``[..., S]``."""
    ky, kx = wavenumbers(*power.shape[-2:], length=length)
    shell = np.rint(np.hypot(ky, kx) * length / (2 * math.pi)).astype(int).ravel()
    flat = power.reshape(-1, shell.size)
    sums = np.stack([np.bincount(shell, weights=row, minlength=shell.max() + 1) for row in flat])
    k = np.arange(shell.max() + 1) * 2 * math.pi / length
    return k, sums.reshape(*power.shape[:-2], -1)


def _modes(field: np.ndarray) -> np.ndarray:
    return np.fft.fft2(field, axes=(-2, -1)) / (field.shape[-2] * field.shape[-1])


def enstrophy_spectrum(omega: np.ndarray, *, length: float = LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """``K [S]`` and the enstrophy per shell ``Z(K) = sum_shell 1/2 |omega_hat|^2`` ``[..., S]`` of a
    vorticity ``[..., H, W]``; ``sum_K Z(K) = 1/2 mean(omega^2)``."""
    return shell_sum(0.5 * np.abs(_modes(omega)) ** 2, length=length)


def energy_spectrum(omega: np.ndarray, *, length: float = LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """``K [S]`` and the kinetic energy per shell ``E(K) = sum_shell 1/2 |omega_hat|^2 / |k|^2``
    ``[..., S]`` of the incompressible flow with vorticity ``[..., H, W]`` (the k = 0 mode carries none)."""
    ky, kx = wavenumbers(*omega.shape[-2:], length=length)
    k2 = ky**2 + kx**2
    power = 0.5 * np.abs(_modes(omega)) ** 2 / np.where(k2 > 0, k2, np.inf)
    return shell_sum(power, length=length)


def velocity_energy_spectrum(velocity: np.ndarray, *, length: float = LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """``K [S]`` and ``E(K) = sum_shell 1/2 (|u_hat|^2 + |v_hat|^2)`` ``[..., S]`` of a velocity
    ``[..., 2, H, W]``. The staggering shifts each component by half a cell, which changes only the
    phases, so this is the spectrum of the velocity on any one of its grids."""
    _check_velocity(velocity)
    return shell_sum(0.5 * (np.abs(_modes(velocity)) ** 2).sum(axis=-3), length=length)


def spectrum_log_ratio(spectrum: np.ndarray, reference: np.ndarray, *, floor: float = 1e-30) -> np.ndarray:
    """``log10(spectrum / reference)`` per shell (0 where they agree); both ``[S]``."""
    if spectrum.shape != reference.shape:
        raise ValueError(f"spectra of shapes {spectrum.shape} and {reference.shape} differ; compare fields on one grid")
    return np.log10(np.maximum(spectrum, floor) / np.maximum(reference, floor))


def temporal_autocorrelation(clips: np.ndarray, *, max_lag: int | None = None) -> np.ndarray:
    """``rho [max_lag + 1]``: the correlation of frames ``tau`` apart, pooled over clips, channels,
    pixels and start frames, of clips ``[N, C, T, H, W]`` about their pooled mean:
    ``rho(tau) = sum x_t x_{t+tau} / sqrt(sum x_t^2 sum x_{t+tau}^2)`` (rho(0) = 1)."""
    if clips.ndim != 5:
        raise ValueError(f"clips must be [N, C, T, H, W], got shape {tuple(clips.shape)}")
    frames = clips.shape[2]
    max_lag = frames - 1 if max_lag is None else max_lag
    if not 0 <= max_lag < frames:
        raise ValueError(f"max_lag must be in 0..{frames - 1} for clips of {frames} frames, got {max_lag}")
    x = clips.astype(np.float64) - clips.mean(dtype=np.float64)
    rho = []
    for lag in range(max_lag + 1):
        a, b = x[:, :, :frames - lag], x[:, :, lag:]
        rho.append((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum()))
    return np.array(rho)


# -- forecasts ---------------------------------------------------------------------------------------
def persistence(given: np.ndarray, leads: int) -> np.ndarray:
    """The persistence forecast ``[N, C, leads, H, W]``: the last given frame of ``given [N, C, k, H, W]``
    repeated for every lead."""
    return np.repeat(given[:, :, -1:], leads, axis=2)


def rmse_per_lead(ensemble: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """RMSE of the ensemble mean per lead ``[T]``, over clips, channels and pixels; ``ensemble
    [M, N, C, T, H, W]`` (M = 1 for one forecast), ``truth [N, C, T, H, W]``."""
    _check_ensemble(ensemble, truth)
    return np.sqrt(((ensemble.mean(axis=0) - truth) ** 2).mean(axis=(0, 1, 3, 4)))


def crps_per_lead(ensemble: np.ndarray, truth: np.ndarray, *, fair: bool = True) -> np.ndarray:
    """Mean pointwise CRPS per lead ``[T]`` (the weather domain's estimator: fair, over the M(M-1)
    distinct member pairs, by default; the plain one gives the absolute error for M = 1)."""
    import torch

    from sciffusion_domains.weather.scores import crps_ensemble

    _check_ensemble(ensemble, truth)
    if fair and len(ensemble) < 2:
        raise ValueError(f"the fair CRPS needs an ensemble of 2 members or more, got {len(ensemble)}; "
                         "pass fair=False to score a single forecast")
    score = crps_ensemble(torch.tensor(np.asarray(ensemble), dtype=torch.float64),
                          torch.tensor(np.asarray(truth), dtype=torch.float64), fair=fair)
    return score.numpy().mean(axis=(0, 1, 3, 4))


def _check_ensemble(ensemble: np.ndarray, truth: np.ndarray) -> None:
    if ensemble.ndim != 6 or ensemble.shape[1:] != truth.shape:
        raise ValueError(f"an ensemble must be [M, N, C, T, H, W] over truth [N, C, T, H, W]; got {ensemble.shape} "
                         f"and {truth.shape}")

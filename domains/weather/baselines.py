"""The classical statistical forecasts a weather model must beat, fitted on the training years only.

Both forecast a Gaussian anomaly (from the training climatology) for each point and lead:

- damped anomaly persistence: ``a(t + tau) ~ N(r_tau a(t), s_tau^2)`` with ``r_tau`` and ``s_tau``
  fitted by least squares per grid point and lead on the training pairs;
- a Linear Inverse Model (Penland & Sardeshmukh 1995), the standard statistical ENSO benchmark: the
  leading area-weighted EOFs ``x [K]`` of the anomalies follow ``dx/dt = B x + white noise``, so
  ``x(t + tau) ~ N(G(tau) x(t), C(0) - G(tau) C(0) G(tau)^T)`` with ``G(tau) = C(1) C(0)^-1`` to the
  power tau (lag-1 covariance ``C(1)``), mapped back to the grid; the variance of the modes left out
  is added at each point, since they are forecast as climatology.

Shapes: anomalies ``[T, H, W]`` (consecutive months), initial anomalies ``[N, H, W]``; points with
a NaN anywhere in the training anomalies (land) are left out and forecast as NaN.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .grid import latitude_weights


@dataclass
class GaussianForecast:
    """The forecast's marginal distribution ``N(mean, std^2)`` at each point, ``[N, H, W]`` each (the
    joint one, for ensembles, is drawn by the models' ``sample``)."""

    mean: Tensor
    std: Tensor


def _valid_points(anomalies: Tensor) -> Tensor:
    valid = torch.isfinite(anomalies).all(0)
    if not valid.any():
        raise ValueError(f"anomalies of shape {tuple(anomalies.shape)} have no point finite at every time")
    return valid


def _check_grid(initial: Tensor, grid: torch.Size) -> None:
    if initial.dim() != 3 or initial.shape[-2:] != grid:
        raise ValueError(f"initial anomalies of shape {tuple(initial.shape)} are not on the fitted grid; "
                         f"expected [N, {grid[0]}, {grid[1]}]")


class DampedPersistence:
    """``a(t + tau) = r_tau a(t) + e``, ``e ~ N(0, s_tau^2)``, per point and lead (``coef, std [L, H, W]``
    for ``leads``)."""

    def __init__(self, coef: Tensor, std: Tensor, leads: list[int]):
        self.coef, self.std, self.leads = coef, std, leads

    @classmethod
    def fit(cls, anomalies: Tensor, *, leads: list[int] | range = range(1, 7)) -> "DampedPersistence":
        """Least squares through the origin on the pairs ``(a(t), a(t + tau))`` of ``anomalies [T, H, W]``;
        ``s_tau`` is the residual standard deviation (one parameter per point)."""
        a = anomalies.double()
        valid = _valid_points(a)
        a = torch.where(valid, a, 0.0)
        coefs, stds = [], []
        for lead in leads:
            if not 0 < lead < len(a) - 1:
                raise ValueError(f"lead {lead} needs 0 < lead < {len(a) - 1} with {len(a)} training months")
            x, y = a[:-lead], a[lead:]
            r = (x * y).sum(0) / (x * x).sum(0).clamp_min(1e-300)
            s = (((y - r * x) ** 2).sum(0) / (len(x) - 1)).sqrt()
            coefs.append(torch.where(valid, r, float("nan")))
            stds.append(torch.where(valid, s, float("nan")))
        return cls(torch.stack(coefs), torch.stack(stds), list(leads))

    def _row(self, lead: int) -> int:
        if lead not in self.leads:
            raise ValueError(f"lead {lead} was not fitted; fitted leads are {self.leads}")
        return self.leads.index(lead)

    def forecast(self, initial: Tensor, *, lead: int) -> GaussianForecast:
        """The forecast anomaly distribution ``[N, H, W]`` ``lead`` months after ``initial [N, H, W]``."""
        k = self._row(lead)
        _check_grid(initial, self.coef.shape[-2:])
        return GaussianForecast(self.coef[k] * initial.double(), self.std[k].expand(initial.shape))

    def sample(self, initial: Tensor, *, lead: int, members: int,
               generator: torch.Generator | None = None) -> Tensor:
        """An ensemble ``[M, N, H, W]`` of anomalies drawn from :meth:`forecast`."""
        f = self.forecast(initial, lead=lead)
        return f.mean + f.std * torch.randn(members, *f.mean.shape, generator=generator, dtype=torch.float64)


class LinearInverseModel:
    """A LIM on the ``modes`` leading area-weighted EOFs.

    ``u = sqrt(w) a`` over the valid points ``[P]`` (``w`` the cos(latitude) weights), ``x = E u`` the
    principal components with ``E [K, P]`` orthonormal EOFs; ``g1 = C(1) C(0)^-1 [K, K]``,
    ``c0 = C(0) [K, K]``, ``residual_var [P]`` the training variance of the modes left out.
    """

    def __init__(self, eofs: Tensor, sqrt_w: Tensor, valid: Tensor, g1: Tensor, c0: Tensor,
                 residual_var: Tensor):
        self.eofs, self.sqrt_w, self.valid = eofs, sqrt_w, valid
        self.g1, self.c0, self.residual_var = g1, c0, residual_var

    @classmethod
    def fit(cls, anomalies: Tensor, *, lat: Tensor | np.ndarray, modes: int) -> "LinearInverseModel":
        """Fit on consecutive monthly ``anomalies [T, H, W]`` (``lat [H]`` in degrees)."""
        a = anomalies.double()
        valid = _valid_points(a)
        sqrt_w = latitude_weights(lat).sqrt().reshape(-1, 1).expand(valid.shape)[valid]
        u = a[:, valid] * sqrt_w  # [T, P]
        if not 0 < modes <= min(u.shape[0] - 1, u.shape[1]):
            raise ValueError(f"modes={modes} must lie in 1..{min(u.shape[0] - 1, u.shape[1])} for {u.shape[0]} "
                             f"months of {u.shape[1]} points")
        eofs = torch.linalg.svd(u, full_matrices=False).Vh[:modes]  # [K, P]
        x = u @ eofs.T  # [T, K]
        c0 = x[:-1].T @ x[:-1] / (len(x) - 1)
        c1 = x[1:].T @ x[:-1] / (len(x) - 1)  # <x(t+1) x(t)^T>
        g1 = torch.linalg.solve(c0, c1, left=False)  # G(1) = C(1) C(0)^-1
        residual = (u - x @ eofs) / sqrt_w
        return cls(eofs, sqrt_w, valid, g1, c0, residual.pow(2).sum(0) / (len(x) - 1))

    @property
    def modes(self) -> int:
        return self.eofs.shape[0]

    def propagator(self, lead: int) -> Tensor:
        """``G(lead) = G(1)^lead [K, K]``."""
        return torch.linalg.matrix_power(self.g1, lead)

    def error_covariance(self, lead: int) -> Tensor:
        """``C(0) - G C(0) G^T [K, K]``, its negative eigenvalues (sampling noise) set to zero."""
        g = self.propagator(lead)
        q = self.c0 - g @ self.c0 @ g.T
        values, vectors = torch.linalg.eigh((q + q.T) / 2)
        return vectors @ torch.diag(values.clamp_min(0.0)) @ vectors.T

    def _scatter(self, values: Tensor) -> Tensor:
        """Values ``[..., P]`` at the valid points onto the grid ``[..., H, W]``, NaN elsewhere."""
        out = torch.full((*values.shape[:-1], *self.valid.shape), float("nan"), dtype=torch.float64)
        out[..., self.valid] = values
        return out

    def _to_grid(self, u: Tensor) -> Tensor:
        """Area-weighted values ``u [..., P]`` back to anomalies on the grid."""
        return self._scatter(u / self.sqrt_w)

    def forecast(self, initial: Tensor, *, lead: int) -> GaussianForecast:
        """The forecast anomaly distribution ``[N, H, W]`` ``lead`` months after ``initial [N, H, W]``."""
        _check_grid(initial, self.valid.shape)
        x = initial.double()[:, self.valid] * self.sqrt_w @ self.eofs.T  # [N, K]
        mean = self._to_grid(x @ self.propagator(lead).T @ self.eofs)
        resolved = ((self.eofs.T @ self.error_covariance(lead)) * self.eofs.T).sum(1)  # diag(E^T Q E) [P]
        std = self._scatter((resolved / self.sqrt_w**2 + self.residual_var).sqrt())
        return GaussianForecast(mean, std.expand(mean.shape))

    def sample(self, initial: Tensor, *, lead: int, members: int,
               generator: torch.Generator | None = None) -> Tensor:
        """An ensemble ``[M, N, H, W]``: the modes' errors drawn jointly from the error covariance,
        the left-out modes independently at each point."""
        mean = self.forecast(initial, lead=lead).mean
        values, vectors = torch.linalg.eigh(self.error_covariance(lead))
        root = vectors * values.clamp_min(0.0).sqrt()  # root @ root.T = Q
        n, k, p = mean.shape[0], self.modes, self.sqrt_w.numel()
        z = torch.randn(members, n, k, generator=generator, dtype=torch.float64)
        e = torch.randn(members, n, p, generator=generator, dtype=torch.float64)
        resolved = self._to_grid(z @ root.T @ self.eofs)
        return mean + resolved + self._scatter(e * self.residual_var.sqrt())


class LIMPredictor:
    """The LIM's one-month forecast mean as the predictor of mean + residual diffusion
    (``sciffusion.residual``), in a weather domain's normalised units.

    ``predictor(cond) -> mean [B, C, H, W]`` from the newest state ``cond["fields"][:, :C]`` and the
    target month ``cond["vector"]`` (``month_vector``'s sin, cos); a LIM with ``modes`` EOFs per
    channel, fitted on the domain's training years (anomalies from the training climatology).
    """

    def __init__(self, domain, *, modes: int = 15):
        from .grid import climatology

        self.normaliser, self.mask, self.channels = domain.normaliser, domain.mask, len(domain.channels)
        fields = domain.fields.sel(time=domain.period("train"))
        month = torch.as_tensor(fields.time.dt.month.values - 1)
        self.climatology, self.lims = [], []
        for k in range(self.channels):
            da = fields.isel(channel=k).drop_vars("channel").where(domain.mask[k].numpy())
            clim = torch.as_tensor(climatology(da, period=domain.period("train")).values, dtype=torch.float64)
            anomalies = torch.as_tensor(da.values, dtype=torch.float64) - clim[month]
            self.climatology.append(clim)
            self.lims.append(LinearInverseModel.fit(anomalies, lat=domain.lat, modes=modes))
        self.climatology = torch.stack(self.climatology, dim=1)  # [12, C, H, W]

    def __call__(self, cond: dict[str, Tensor]) -> Tensor:
        newest = cond["fields"][:, : self.channels].double()
        sin, cos = cond["vector"][:, 0].double(), cond["vector"][:, 1].double()
        target = torch.round(torch.atan2(sin, cos) * 6 / math.pi).long() % 12
        state = self.normaliser.denormalise(newest)
        anomaly = state - self.climatology[(target - 1) % 12]
        forecast = torch.stack([lim.forecast(anomaly[:, k], lead=1).mean for k, lim in enumerate(self.lims)], dim=1)
        mean = self.normaliser.normalise(self.climatology[target] + forecast)
        return torch.where(self.mask & torch.isfinite(mean), mean, 0.0).to(cond["fields"].dtype)

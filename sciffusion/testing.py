"""Analytic targets and assertions for testing samplers, losses, guidance and likelihoods.

For data drawn from a Gaussian mixture, every marginal p_t under x_t = alpha x0 + sigma eps is again a
Gaussian mixture, so the exact denoiser E[x0 | x_t], the exact score and the exact log-density are
closed-form. Domain authors reuse these to test their own samplers and wrappers.

Data are dense ``[B, D]`` tensors; everything is computed in float64 by default.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import Tensor

from .processes import NoiseProcess
from .space import Space


class GaussianMixture:
    """sum_k w_k N(mean_k, cov_k) in D dimensions; a single Gaussian is K = 1 (see ``gaussian``)."""

    def __init__(self, weights: Tensor, means: Tensor, covs: Tensor):
        weights, means, covs = (torch.as_tensor(v, dtype=torch.float64) for v in (weights, means, covs))
        if means.dim() != 2 or covs.shape != (*means.shape, means.shape[1]) or weights.shape != means.shape[:1]:
            raise ValueError(f"need weights [K], means [K, D], covs [K, D, D]; got {tuple(weights.shape)}, "
                             f"{tuple(means.shape)}, {tuple(covs.shape)}")
        self.weights = weights / weights.sum()
        self.means, self.covs = means, covs
        self.eigvals, self.eigvecs = torch.linalg.eigh(covs)  # cov_k = U diag(lam) U^T
        if (self.eigvals <= 0).any():
            raise ValueError("every covariance must be positive definite")

    @classmethod
    def gaussian(cls, mean: Tensor, cov: Tensor) -> "GaussianMixture":
        mean, cov = torch.as_tensor(mean, dtype=torch.float64), torch.as_tensor(cov, dtype=torch.float64)
        return cls(torch.ones(1), mean[None], cov[None])

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def mean(self) -> Tensor:
        return self.weights @ self.means

    def cov(self) -> Tensor:
        centred = self.means - self.mean()
        within = (self.weights[:, None, None] * self.covs).sum(0)
        return within + (self.weights[:, None] * centred).T @ centred

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """n samples [n, D] and their component labels [n]."""
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        scale = self.eigvecs[labels] * self.eigvals[labels].sqrt()[:, None, :]
        return self.means[labels] + (scale @ z[..., None])[..., 0], labels

    def _components(self, x: Tensor, alpha: Tensor, sigma: Tensor):
        """Per-component log N(x; alpha m_k, alpha^2 C_k + sigma^2 I) [B, K], rotated residual, variances."""
        x = x.to(torch.float64)
        alpha = alpha.to(torch.float64).reshape(-1, 1, 1)
        sigma = sigma.to(torch.float64).reshape(-1, 1, 1)
        var = alpha**2 * self.eigvals[None] + sigma**2  # [B, K, D]
        resid = x[:, None, :] - alpha * self.means[None]  # [B, K, D]
        z = torch.einsum("kde,bkd->bke", self.eigvecs, resid)
        log_n = -0.5 * ((z**2 / var).sum(-1) + torch.log(2 * math.pi * var).sum(-1))
        return log_n, z, var, alpha

    def log_prob(self, x: Tensor, alpha: Tensor | float = 1.0, sigma: Tensor | float = 0.0) -> Tensor:
        """log p_t(x) [B] of the marginal with coefficients alpha, sigma (scalars or [B])."""
        alpha, sigma = self._coeffs(x, alpha, sigma)
        log_n, _, _, _ = self._components(x, alpha, sigma)
        return torch.logsumexp(log_n + self.weights.log(), dim=1)

    def responsibilities(self, x: Tensor, alpha: Tensor | float = 1.0, sigma: Tensor | float = 0.0) -> Tensor:
        alpha, sigma = self._coeffs(x, alpha, sigma)
        log_n, _, _, _ = self._components(x, alpha, sigma)
        return torch.softmax(log_n + self.weights.log(), dim=1)

    def posterior_mean(self, x: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
        """E[x0 | x_t = x] [B, D]."""
        alpha, sigma = self._coeffs(x, alpha, sigma)
        log_n, z, var, a = self._components(x, alpha, sigma)
        resp = torch.softmax(log_n + self.weights.log(), dim=1)
        shrunk = a * self.eigvals[None] / var * z  # [B, K, D] in each component's eigenbasis
        means = self.means[None] + torch.einsum("kde,bke->bkd", self.eigvecs, shrunk)
        return (resp[..., None] * means).sum(1).to(x.dtype)

    def score(self, x: Tensor, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
        """grad_x log p_t(x) [B, D] = (alpha E[x0 | x] - x) / sigma^2."""
        alpha, sigma = self._coeffs(x, alpha, sigma)
        a, s = alpha.reshape(-1, 1), sigma.reshape(-1, 1)
        return ((a * self.posterior_mean(x, alpha, sigma).to(torch.float64) - x.to(torch.float64)) / s**2).to(x.dtype)

    def posterior_variance_trace(self, alpha: Tensor | float, sigma: Tensor | float) -> Tensor:
        """E tr Cov[x0 | x_t] for a single Gaussian: the minimum of E ||x0_hat - x0||^2."""
        if len(self.weights) != 1:
            raise ValueError("the minimum denoising error is closed-form only for a single Gaussian")
        alpha = torch.as_tensor(alpha, dtype=torch.float64)[..., None]
        sigma = torch.as_tensor(sigma, dtype=torch.float64)[..., None]
        lam = self.eigvals[0]
        return (lam * sigma**2 / (alpha**2 * lam + sigma**2)).sum(-1)

    @staticmethod
    def _coeffs(x: Tensor, alpha, sigma) -> tuple[Tensor, Tensor]:
        as_batch = lambda v: torch.as_tensor(v, dtype=torch.float64, device=x.device).expand(x.shape[0])
        return as_batch(alpha), as_batch(sigma)

    def denoiser(self, process: NoiseProcess):
        """The exact denoiser D(x_t, t, space, cond) = E[x0 | x_t] under ``process``."""

        def denoise(x: Tensor, t: Tensor, space: Space | None = None, cond=None) -> Tensor:
            t = torch.as_tensor(t, dtype=torch.float64).expand(x.shape[0])
            return self.posterior_mean(x, process.alpha(t), process.sigma(t))

        return denoise


def gaussian_mixture_2d(separation: float = 4.0, std: float = 0.5) -> GaussianMixture:
    """Three well-separated, unequally weighted modes in 2-D: a multimodal target for samplers."""
    means = separation * torch.tensor([[1.0, 0.0], [-0.5, 0.866], [-0.5, -0.866]])
    covs = torch.stack([torch.diag(torch.tensor([std**2, (0.6 * std) ** 2]))] * 3)
    return GaussianMixture(torch.tensor([0.5, 0.3, 0.2]), means, covs)


def random_gaussian(dim: int, seed: int = 0, condition: float = 10.0) -> GaussianMixture:
    """A Gaussian with a random mean and a random covariance whose eigenvalues span ``condition``."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    eig = torch.logspace(0, -math.log10(condition), dim, dtype=torch.float64)
    return GaussianMixture.gaussian(torch.randn(dim, generator=g, dtype=torch.float64) * 0.5, q @ torch.diag(eig) @ q.T)


def moment_errors(samples: Tensor, target: GaussianMixture) -> tuple[float, float]:
    """(||mean - mean_target|| / sqrt(tr C), ||cov - C||_F / ||C||_F): scale-free moment errors."""
    samples = samples.to(torch.float64)
    c = target.cov()
    mean_err = torch.linalg.norm(samples.mean(0) - target.mean()) / c.trace().sqrt()
    cov_err = torch.linalg.norm(torch.cov(samples.T) - c) / torch.linalg.norm(c)
    return float(mean_err), float(cov_err)


def mode_weights(samples: Tensor, target: GaussianMixture) -> Tensor:
    """Fraction of samples assigned (by the target's own responsibilities) to each component [K]."""
    labels = target.responsibilities(samples.to(torch.float64)).argmax(1)
    return torch.bincount(labels, minlength=len(target.weights)).to(torch.float64) / len(samples)


def assert_matches_target(samples: Tensor, target: GaussianMixture, *, mean_tol: float, cov_tol: float,
                          weight_tol: float | None = None) -> None:
    """Assert that samples reproduce the target's mean, covariance and (optionally) mode weights."""
    mean_err, cov_err = moment_errors(samples, target)
    problems = []
    if mean_err > mean_tol:
        problems.append(f"mean error {mean_err:.4f} > {mean_tol}")
    if cov_err > cov_tol:
        problems.append(f"covariance error {cov_err:.4f} > {cov_tol}")
    if weight_tol is not None:
        weights = mode_weights(samples, target)
        worst = float((weights - target.weights).abs().max())
        if worst > weight_tol:
            problems.append(f"mode weights {weights.tolist()} vs {target.weights.tolist()} (max gap {worst:.4f} > {weight_tol})")
    if problems:
        raise AssertionError("samples do not match the target: " + "; ".join(problems))


def run_app(app: str, *args: str, cwd: str | Path, torchrun: int = 0, check: bool = True,
            timeout: float = 300) -> "subprocess.CompletedProcess[str]":
    """Run ``sciffusion-<app>`` (train, sample, evaluate) with Hydra overrides ``args`` in a subprocess
    of this interpreter, as a user would, on one thread; ``torchrun=N`` starts N ranks. With ``check``,
    a failure raises with the tail of the app's output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    if torchrun:
        launcher = [str(Path(sys.executable).parent / "torchrun"), "--standalone", f"--nproc_per_node={torchrun}"]
    else:
        launcher = [sys.executable]
    out = subprocess.run([*launcher, "-m", f"sciffusion.cli.{app}", *args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"{app} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


from .testing_domain import assert_domain_contract  # noqa: E402  (shipped test helpers, re-exported)
from .testing_equivariance import assert_equivariant, random_isometry  # noqa: E402
from .testing_networks import assert_adaln_zero_class_conditioning, trained_like  # noqa: E402

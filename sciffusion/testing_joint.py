"""Exact targets for categorical and mixed (continuous + categorical) states.

``CategoricalTarget``: a joint distribution over D variables with K classes each, given as a full
table. Its exact denoiser p(x0_d | x_t) is computed by enumerating the K^D clean states, and
``sampler_law`` propagates the *whole distribution* of a categorical sampler's state down a grid
(S^D states), so a sampler's error is measured exactly, without Monte Carlo noise.

``LabelledGaussians``: a label c ~ w and a point y | c ~ N(mean_c, std^2 I). Under any Gaussian
process for y and categorical process for c the posterior p(c0 | y_t, c_t) and E[y0 | y_t, c_t] are
closed-form, so joint samplers can be checked against known label frequencies and class moments.
"""
from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from .categorical import CategoricalProcess, step_probs
from .processes import NoiseProcess


class CategoricalTarget:
    """A distribution ``probs`` [K, K, ..., K] (D axes) over D categorical variables."""

    def __init__(self, probs: Tensor):
        probs = torch.as_tensor(probs, dtype=torch.float64)
        if probs.dim() < 1 or len(set(probs.shape)) != 1 or (probs < 0).any():
            raise ValueError(f"need a non-negative table with equal axes, got shape {tuple(probs.shape)}")
        self.probs = probs / probs.sum()
        self.dims, self.num_classes = probs.dim(), probs.shape[0]
        self.states = torch.tensor(list(itertools.product(range(self.num_classes), repeat=self.dims)))  # [K^D, D]

    @classmethod
    def random(cls, dims: int = 3, num_classes: int = 4, *, seed: int = 0, sharpness: float = 3.0) -> "CategoricalTarget":
        """A strongly correlated random table: exp(sharpness * N(0, 1)) per cell."""
        g = torch.Generator().manual_seed(seed)
        return cls(torch.exp(sharpness * torch.randn((num_classes,) * dims, generator=g, dtype=torch.float64)))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        idx = torch.multinomial(self.probs.flatten(), n, replacement=True, generator=generator)
        return self.states[idx]

    def denoiser(self, process: CategoricalProcess, x_t: Tensor, t: Tensor) -> Tensor:
        """p(x0_d = k | x_t) [B, D, K] for states ``x_t`` [B, D] at times ``t`` [B]."""
        kappa = process.kappa(t.to(torch.float64))[:, None, None]                       # [B, 1, 1]
        lik = process.marginal_probs(torch.arange(self.num_classes), kappa)             # [B, 1, K, S] -> q(x_t | x0)
        lik = lik.expand(x_t.shape[0], self.dims, self.num_classes, process.num_states)
        per_dim = torch.gather(lik, 3, x_t[:, :, None, None].expand(-1, -1, self.num_classes, 1))[..., 0]  # [B, D, K]
        # joint posterior over the K^D clean states: p(x0) prod_d q(x_t,d | x0_d)
        logs = torch.log(per_dim.clamp_min(1e-300))
        joint = self.probs.flatten().log()[None] + sum(logs[:, d, self.states[:, d]] for d in range(self.dims))
        post = torch.softmax(joint, -1)                                                  # [B, K^D]
        onehot = torch.nn.functional.one_hot(self.states, self.num_classes).to(post)     # [K^D, D, K]
        return torch.einsum("bs,sdk->bdk", post, onehot)

    def sampler_law(self, process: CategoricalProcess, ts: Tensor | list[float], *, method: str = "posterior",
                    eta: float = 0.0) -> Tensor:
        """The exact distribution [K^D] of the clean states that ``method`` produces from x_1 ~ pi^D
        down the grid ``ts`` (ending at 0), driven by the exact denoiser."""
        ts = [float(v) for v in ts]
        S = process.num_states
        all_states = torch.tensor(list(itertools.product(range(S), repeat=self.dims)))   # [S^D, D]
        law = process.pi[all_states].prod(-1)                                          # prior over S^D states
        for t, s in zip(ts[:-1], ts[1:]):
            tt = torch.full((all_states.shape[0],), t, dtype=torch.float64)
            p0 = self.denoiser(process, all_states, tt)
            kt, ks = process.kappa(tt)[:, None], process.kappa(torch.full_like(tt, s))[:, None]
            kt, ks = kt.expand(-1, self.dims), ks.expand(-1, self.dims)
            step = step_probs(process, method, all_states, p0, kt, ks, eta=eta)        # [S^D, D, S]
            transition = torch.ones(all_states.shape[0], all_states.shape[0], dtype=torch.float64)
            for d in range(self.dims):
                transition = transition * step[:, d, all_states[:, d]]
            law = law @ transition
        clean = (all_states < self.num_classes).all(-1)
        if abs(float(law[~clean].sum())) > 1e-9:
            raise AssertionError(f"mass {float(law[~clean].sum())} left on noise-only states at t = 0")
        # all_states restricted to clean classes is the same ordering as self.states
        return law[clean]

    def total_variation(self, law: Tensor) -> float:
        return 0.5 * float((law - self.probs.flatten()).abs().sum())

    def entropy(self) -> float:
        p = self.probs.flatten()
        return float(-(p[p > 0] * p[p > 0].log()).sum())


class LabelledGaussians:
    """c ~ ``weights`` [K]; y | c ~ N(``means[c]`` [K, D], ``std``^2 I)."""

    def __init__(self, weights: Tensor, means: Tensor, std: float):
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.weights = self.weights / self.weights.sum()
        self.means = torch.as_tensor(means, dtype=torch.float64)
        self.std = float(std)
        self.num_classes, self.dim = self.means.shape

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        c = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        y = self.means[c] + self.std * torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return y, c

    def denoiser(self, y_process: NoiseProcess, c_process: CategoricalProcess, y_t: Tensor, c_t: Tensor,
                 t: Tensor) -> tuple[Tensor, Tensor]:
        """(E[y0 | y_t, c_t] [B, D], p(c0 | y_t, c_t) [B, K]) at times ``t`` [B]."""
        y_t, t = y_t.to(torch.float64), t.to(torch.float64)
        a, s = y_process.alpha(t)[:, None], y_process.sigma(t)[:, None]
        var = a**2 * self.std**2 + s**2                                                   # [B, 1]
        diff = y_t[:, None, :] - a[:, None] * self.means[None]                            # [B, K, D]
        log_y = -0.5 * (diff**2).sum(-1) / var - 0.5 * self.dim * torch.log(2 * math.pi * var)
        kappa = c_process.kappa(t)[:, None]
        lik_c = c_process.marginal_probs(torch.arange(self.num_classes), kappa)  # [B, K, S]
        log_c = torch.log(torch.gather(lik_c, 2, c_t[:, None, None].expand(-1, self.num_classes, 1))[..., 0].clamp_min(1e-300))
        post = torch.softmax(self.weights.log()[None] + log_y + log_c, -1)               # [B, K]
        mean_k = self.means[None] + (a * self.std**2 / var)[:, None] * diff             # E[y0 | y_t, c0 = k]
        return torch.einsum("bk,bkd->bd", post, mean_k), post


__all__ = ["CategoricalTarget", "LabelledGaussians"]

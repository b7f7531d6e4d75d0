"""Categorical (discrete) noise processes: masked, uniform and marginal-prior diffusion, and the
mixture paths of discrete flow matching, under the core's convention t = 0 data, t = 1 noise.

Every process here is the continuous-time mixing process

    q(x_t | x0) = kappa(t) * onehot(x0) + (1 - kappa(t)) * pi,      kappa(0) = 1, kappa(1) = 0,

with ``pi`` the noise distribution over the S states: a dedicated mask state (absorbing diffusion,
Austin et al. 2021; MDLM, Sahoo et al. 2024), uniform over the K classes (Campbell et al. 2022), or
the data's class marginals (Vignac et al. 2023, DiGress/MiDi). Because ``pi`` is stationary,
q(x_t | x_s) = (kappa_t / kappa_s) onehot(x_s) + (1 - kappa_t / kappa_s) pi for s < t: a Markov chain,
so the exact reverse posterior q(x_s | x_t, x0) exists in closed form. The same marginals are the
"mixture path" of discrete flow matching (Gat et al. 2024; Campbell et al. 2024), with flow time
1 - t and kappa its scheduler: one object serves both, and the sampler step decides which reverse
process is run (the exact posterior, or the flow's Euler / tau-leaping step).

States are class indices (int64); a masked process has S = K + 1 states, the last one the mask.
Denoisers return ``p0`` [..., K], the probabilities of the clean class given the whole noisy state.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

SCHEDULES = ("linear", "cosine", "polynomial")


class CategoricalProcess:
    """q(x_t | x0) = kappa(t) onehot(x0) + (1 - kappa(t)) pi over ``num_classes`` classes.

    ``prior``: "masked" (an extra absorbing state), "uniform", or "marginal" (pass ``marginals``, the
    data's class frequencies, or set them later with ``set_marginals``).
    ``schedule``: "linear" kappa = 1 - t (MDLM's log-linear; discrete FM's linear path), "cosine"
    kappa = cos^2(pi t / 2) (the cosine alpha-bar of MiDi and EQGAT-diff), "polynomial" kappa =
    (1 - t)^exponent (flow_matching's ``PolynomialConvexScheduler`` in flow time).
    """

    t_max = 1.0

    def __init__(self, num_classes: int, prior: str = "marginal", *, schedule: str = "cosine",
                 marginals: Sequence[float] | Tensor | None = None, exponent: float = 1.0):
        if num_classes < 2:
            raise ValueError(f"a categorical process needs at least 2 classes, got {num_classes}")
        if prior not in ("masked", "uniform", "marginal"):
            raise ValueError(f"unknown categorical prior {prior!r}; choose masked, uniform or marginal")
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown categorical schedule {schedule!r}; choose one of {SCHEDULES}")
        if exponent <= 0:
            raise ValueError(f"the polynomial schedule needs exponent > 0, got {exponent}")
        self.num_classes, self.prior, self.schedule, self.exponent = int(num_classes), prior, schedule, float(exponent)
        self.num_states = self.num_classes + (prior == "masked")
        if prior == "masked":
            self.pi = torch.zeros(self.num_states, dtype=torch.float64)
            self.pi[-1] = 1.0
        elif prior == "uniform":
            self.pi = torch.full((self.num_states,), 1.0 / self.num_states, dtype=torch.float64)
        else:
            self.pi = torch.full((self.num_states,), 1.0 / self.num_states, dtype=torch.float64)
            if marginals is not None:
                self.set_marginals(marginals)

    @property
    def mask_index(self) -> int | None:
        """The mask state of a masked process (its last state), else None."""
        return self.num_classes if self.prior == "masked" else None

    def set_marginals(self, marginals: Sequence[float] | Tensor) -> None:
        """Use the data's class frequencies ``marginals`` [K] as the noise distribution."""
        if self.prior != "marginal":
            raise ValueError(f"only a marginal-prior process takes marginals; this one is {self.prior!r}")
        m = torch.as_tensor(marginals, dtype=torch.float64).flatten()
        if m.numel() != self.num_classes or not torch.isfinite(m).all() or (m < 0).any() or m.sum() <= 0:
            raise ValueError(f"marginals must be {self.num_classes} finite non-negative frequencies, got {m.tolist()}")
        self.pi = m / m.sum()

    # schedule ---------------------------------------------------------------------------------
    def kappa(self, t: Tensor) -> Tensor:
        """The probability that x_t still equals x0 (beyond chance)."""
        if self.schedule == "linear":
            return 1 - t
        if self.schedule == "cosine":
            return torch.cos(0.5 * math.pi * t) ** 2
        return (1 - t).clamp_min(0) ** self.exponent

    def d_kappa(self, t: Tensor) -> Tensor:
        """d kappa / dt (non-positive)."""
        if self.schedule == "linear":
            return -torch.ones_like(t)
        if self.schedule == "cosine":
            return -0.5 * math.pi * torch.sin(math.pi * t)
        return -self.exponent * (1 - t).clamp_min(0) ** (self.exponent - 1)

    # forward process --------------------------------------------------------------------------
    def _pi(self, like: Tensor) -> Tensor:
        return self.pi.to(device=like.device, dtype=like.dtype if like.is_floating_point() else torch.float32)

    def marginal_probs(self, x0: Tensor, kappa: Tensor) -> Tensor:
        """q(x_t | x0) [..., S] for class indices ``x0`` [...] and ``kappa`` broadcastable to x0."""
        pi = self._pi(kappa)
        onehot = torch.nn.functional.one_hot(x0, self.num_states).to(pi)
        kappa = kappa.to(pi)[..., None]
        return kappa * onehot + (1 - kappa) * pi

    def noise(self, x0: Tensor, kappa: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A draw of x_t ~ q(x_t | x0) (class indices shaped like ``x0``)."""
        return sample_classes(self.marginal_probs(x0, kappa), generator)

    def prior_sample(self, shape: Sequence[int], *, device: torch.device | str = "cpu",
                     generator: torch.Generator | None = None) -> Tensor:
        """x_1 ~ pi, class indices of ``shape``."""
        probs = self.pi.to(device=device, dtype=torch.float32).expand(*shape, self.num_states)
        return sample_classes(probs, generator)

    # reverse steps ----------------------------------------------------------------------------
    def consistent(self, x_t: Tensor, p0: Tensor, kappa_t: Tensor) -> tuple[Tensor, Tensor]:
        """``p0`` restricted to the clean classes that could have produced ``x_t`` and renormalised
        (e.g. an unmasked entry of a masked process is its own x0: MDLM's carry-over), and
        q(x_t | x0) [..., K] for each clean class x0."""
        pi_t = self._pi(p0)[x_t]
        onehot = torch.nn.functional.one_hot(x_t, self.num_states)[..., : self.num_classes].to(p0)
        kappa_t = kappa_t.to(p0)[..., None]
        likelihood = kappa_t * onehot + (1 - kappa_t) * pi_t[..., None]
        allowed = p0 * (likelihood > 0)
        total = allowed.sum(-1, keepdim=True)
        # a network may put all its mass on impossible classes: fall back to the possible ones, evenly
        fallback = (likelihood > 0).to(p0) / (likelihood > 0).sum(-1, keepdim=True).clamp_min(1)
        return torch.where(total > 0, allowed / total.clamp_min(1e-30), fallback), likelihood

    def posterior_probs(self, x_t: Tensor, p0: Tensor, kappa_t: Tensor, kappa_s: Tensor) -> Tensor:
        """The exact ancestral step p(x_s | x_t) = sum_x0 q(x_s | x_t, x0) p0(x0) [..., S], s < t.

        q(x_s | x_t, x0) = q(x_t | x_s) q(x_s | x0) / q(x_t | x0) (Austin et al. 2021, eq. 3) with the
        mixing kernels above; ``kappa_t``, ``kappa_s`` broadcast onto ``x_t``.
        """
        p0, likelihood = self.consistent(x_t, p0, kappa_t)
        pi = self._pi(p0)
        kt, ks = kappa_t.to(p0)[..., None], kappa_s.to(p0)[..., None]
        ratio = kt / ks.clamp_min(1e-30)
        onehot_t = torch.nn.functional.one_hot(x_t, self.num_states).to(p0)
        to_x_t = ratio * onehot_t + (1 - ratio) * pi[x_t][..., None]                  # q(x_t | x_s = j)
        w = torch.where(likelihood > 0, p0 / likelihood.clamp_min(1e-30), torch.zeros_like(p0))
        w = _pad(w, self.num_states)
        from_x0 = ks * w + (1 - ks) * pi * w.sum(-1, keepdim=True)                    # sum_x0 w q(x_s = j | x0)
        probs = to_x_t * from_x0
        return probs / probs.sum(-1, keepdim=True).clamp_min(1e-30)

    def euler_probs(self, x_t: Tensor, p0: Tensor, kappa_t: Tensor, kappa_s: Tensor, *, eta: float = 0.0) -> Tensor:
        """One Euler (tau-leaping) step of the discrete flow from t to s < t [..., S].

        The flow's rate towards data jumps to y ~ p0 at rate -kappa' / (1 - kappa) (Gat et al. 2024,
        mixture path, x1-prediction velocity); ``eta`` > 0 adds eta times that and eta times the
        noising rate -kappa' / kappa towards pi (their corrector sampling: the marginals are
        unchanged; for a masked process it is stochastic remasking). Jump probabilities are the
        rates times the step, capped (data first) so that they sum to at most one: the last step, to
        kappa = 1, jumps to data with certainty.
        """
        if eta < 0:
            raise ValueError(f"eta must be non-negative, got {eta}")
        p0, _ = self.consistent(x_t, p0, kappa_t)
        pi = self._pi(p0)
        kt, ks = kappa_t.to(p0)[..., None], kappa_s.to(p0)[..., None]
        step = ks - kt
        to_data = ((1 + eta) * step / (1 - kt).clamp_min(1e-30)).clamp(max=1)
        to_noise = torch.minimum(eta * step / kt.clamp_min(1e-30) * (kt > 0), 1 - to_data)
        stay = torch.nn.functional.one_hot(x_t, self.num_states).to(p0)
        return (1 - to_data - to_noise) * stay + to_data * _pad(p0, self.num_states) + to_noise * pi

    def elbo_weight(self, t: Tensor) -> Tensor:
        """The weight of the masked process's continuous-time ELBO, -kappa'(t) / (1 - kappa(t)):
        NELBO = int_0^1 weight(t) E_q [sum over masked entries of -log p0(x0)] dt (Sahoo et al.
        2024, eq. 10; Shi et al. 2024). Only the masked process has it in this simple form."""
        if self.prior != "masked":
            raise ValueError(f"the ELBO weighting here is the masked process's; this process is {self.prior!r}: "
                             "use categorical_weighting='uniform' (plain cross-entropy, as MiDi and EQGAT-diff)")
        return -self.d_kappa(t) / (1 - self.kappa(t)).clamp_min(1e-12)

    def __repr__(self) -> str:
        return (f"CategoricalProcess(num_classes={self.num_classes}, prior={self.prior!r}, "
                f"schedule={self.schedule!r})")


def _pad(p: Tensor, size: int) -> Tensor:
    """Probabilities over K classes as probabilities over ``size`` >= K states (zero for the mask)."""
    return p if p.shape[-1] == size else torch.nn.functional.pad(p, (0, size - p.shape[-1]))


def sample_classes(probs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One class index per row of ``probs`` [..., S] (rows need not be exactly normalised)."""
    flat = probs.reshape(-1, probs.shape[-1]).float().clamp_min(0)
    if flat.shape[0] == 0:
        return torch.zeros(probs.shape[:-1], dtype=torch.long, device=probs.device)
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


STEPS = ("posterior", "euler")


def step_probs(process: CategoricalProcess, method: str, x_t: Tensor, p0: Tensor, kappa_t: Tensor,
               kappa_s: Tensor, *, eta: float = 0.0) -> Tensor:
    """The reverse step ``method`` ("posterior" or "euler") of ``process`` from t to s [..., S]."""
    if method == "posterior":
        if eta:
            raise ValueError("eta (corrector / remasking) belongs to the euler step; use categorical='euler'")
        return process.posterior_probs(x_t, p0, kappa_t, kappa_s)
    if method == "euler":
        return process.euler_probs(x_t, p0, kappa_t, kappa_s, eta=eta)
    raise ValueError(f"unknown categorical step {method!r}; choose one of {STEPS}")


__all__ = ["CategoricalProcess", "SCHEDULES", "STEPS", "sample_classes", "step_probs"]

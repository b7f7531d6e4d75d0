"""The training task of an autoencoder: a ``TrainingLoss`` the usual ``Trainer`` and ``sciffusion-train``
run (resumable and logged like a diffusion run), per sample

    loss = rec(x, x_hat) + kl_weight * KL(q(z | x) || N(0, I)) / D + feature_weight * |phi(x) - phi(x_hat)|^2 / F

with rec the mean absolute (``l1``) or squared (``l2``) error over the D counted data entries, the KL
summed over latent entries (so ``kl_weight`` is Rombach et al.'s, whose losses are sums over both: 1e-6
in Stable Diffusion's autoencoders), and phi an optional feature function ``[B, C, H, W] -> [B, F]``
given by the domain (its metrics classifier's penultimate features: a perceptual loss in the spirit
of LPIPS, whose weights this project cannot download).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ..parameterization import Cond
from ..space import DenseSpace, Space, require_space
from .autoencoder import KLAutoencoder, kl_divergence

RECONSTRUCTIONS = ("l1", "l2")


class AutoencoderLoss:
    """Per-sample autoencoder loss ``[B]`` (see the module docstring). ``features`` is a callable
    ``phi(x) -> [B, F]`` or None; ``sample_posterior=False`` decodes the posterior mean (with
    ``kl_weight=0``: a plain autoencoder). ``process`` is accepted and unused: the apps build every
    loss as ``loss(process)``. ``last_terms`` holds the batch means of the three terms of the latest call."""

    def __init__(self, process=None, *, reconstruction: str = "l1", kl_weight: float = 1e-6,
                 feature_weight: float = 0.0, features: Callable[[Tensor], Tensor] | None = None,
                 sample_posterior: bool = True):
        if reconstruction not in RECONSTRUCTIONS:
            raise ValueError(f"unknown loss.reconstruction {reconstruction!r}; choose one of {RECONSTRUCTIONS}")
        if kl_weight < 0 or feature_weight < 0:
            raise ValueError(f"loss.kl_weight and loss.feature_weight must be >= 0, got {kl_weight}, {feature_weight}")
        if feature_weight > 0 and features is None:
            raise ValueError(f"loss.feature_weight={feature_weight} needs loss.features: a feature function of the "
                             "domain, e.g. {_target_: sciffusion_domains.latent.features.ClassifierFeatures, "
                             "source: mnist5k}")
        self.reconstruction, self.kl_weight, self.feature_weight = reconstruction, kl_weight, feature_weight
        self.features, self.sample_posterior = features, sample_posterior
        self.last_terms: dict[str, float] = {}

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """No diffusion time: zeros ``[n]`` (the loop asks every loss for times)."""
        return torch.zeros(n, dtype=torch.float64)

    def terms(self, model: KLAutoencoder, x0: Tensor, *, space: Space,
              generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``{"reconstruction", "kl", "features"}``, each per sample ``[B]`` and unweighted."""
        if not isinstance(model, KLAutoencoder):
            raise TypeError(f"AutoencoderLoss trains a KLAutoencoder, got a {type(model).__name__}; set "
                            "network._target_=sciffusion.latent.KLAutoencoder and parameterization to "
                            "sciffusion.latent.autoencoder_task (experiment=mnist_latent_autoencoder does)")
        if not isinstance(space, DenseSpace) or x0.dim() != 4:
            raise ValueError(f"an autoencoder trains on dense [B, C, H, W] batches; got {tuple(x0.shape)} "
                             f"in a {type(space).__name__}")
        x0 = space.project(x0)
        x_hat, mean, logvar = model(x0, generator=generator, sample_posterior=self.sample_posterior)
        x_hat = space.project(x_hat)
        error = (x_hat - x0).abs() if self.reconstruction == "l1" else (x_hat - x0) ** 2
        out = {"reconstruction": space.average(error), "kl": kl_divergence(mean, logvar) / space.dims(x0)}
        if self.features is not None and self.feature_weight > 0:
            out["features"] = ((self.features(x_hat) - self.features(x0).detach()) ** 2).mean(1)
        else:
            out["features"] = torch.zeros_like(out["kl"])
        return out

    def __call__(self, model: nn.Module, x0: Tensor, *, space: Space | None = None, cond: Cond | None = None,
                 t: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        space = require_space(space, type(self).__name__)
        terms = self.terms(model, x0, space=space, generator=generator)
        self.last_terms = {name: float(value.detach().mean()) for name, value in terms.items()}
        return terms["reconstruction"] + self.kl_weight * terms["kl"] + self.feature_weight * terms["features"]

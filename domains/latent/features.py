"""Feature functions for an autoencoder's feature (perceptual) loss, from a domain's metrics classifier."""
from __future__ import annotations

from torch import Tensor, nn


class ClassifierFeatures:
    """``phi(x) [B, F]``: the penultimate features of a frozen dense classifier (``DenseClassifier``) of
    ``[B, C, H, W]`` data in the domain's range. ``source`` is a shipped images classifier name
    (``mnist5k``, ``sklearn_digits``) or a classifier file (``python -m sciffusion_domains.images.classifier``,
    the audio domain's). Loaded on first use, never trained, never part of the autoencoder's weights."""

    def __init__(self, source: str = "mnist5k"):
        self.source = source
        self._model: nn.Module | None = None

    def model(self) -> nn.Module:
        if self._model is None:
            from sciffusion_domains.images.classifier import load_classifier

            self._model = load_classifier(self.source).requires_grad_(False)
        return self._model

    def __call__(self, x: Tensor) -> Tensor:
        model = self.model()
        if next(model.parameters()).device != x.device:
            self._model = model = model.to(x.device)
        return model.features(x)

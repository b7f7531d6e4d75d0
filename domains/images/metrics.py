"""Sample-quality metrics for images, computed offline in a trained classifier's feature space.

Inception-v3 FID needs downloaded weights, so the default judge is the small classifier that the
images domain trains on real training digits and ships (``classifier.load_classifier``):

    fd              Frechet distance between Gaussians fitted to sample and reference features
                    (Heusel et al. 2017, the formula of FID in another feature space)
    precision       share of samples inside the real data's k-NN balls (Kynkaanniemi et al. 2019)
    recall          share of real images inside the samples' k-NN balls (same paper)
    inception_score exp E_x KL(p(y|x) || p(y)) with the classifier's p(y|x) (Salimans et al. 2016)
    class_accuracy  for class-conditional samples: how often the classifier finds the requested class
    fd_extractor    FD in the features of a network the user has locally (``ExternalFeatures``),
                    e.g. an Inception TorchScript file: the usual FID when that file is Inception's

Like FID, ``fd`` is biased upwards with few samples: compare numbers computed at the same sample
counts only. All statistics are computed in float64. The statistics themselves (``frechet_distance``,
``precision_recall``, ``inception_score``, ``ExternalFeatures``, ``classifier_metrics``...) live in
``sciffusion_domains.dense.metrics``, for any feature space, and are re-exported here.
"""
from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from sciffusion_domains.dense.metrics import (ExternalFeatures, Features, batched, classifier_metrics,  # noqa: F401
                                              feature_statistics, frechet_distance, frechet_distance_features,
                                              inception_score, precision_recall)

from .classifier import ImageClassifier, load_classifier


def image_metrics(samples: Tensor, reference: Tensor, *, classifier: str | Path | ImageClassifier = "mnist5k",
                  labels: Tensor | None = None, k: int = 3, feature_extractor: Features | None = None,
                  batch_size: int = 500) -> dict[str, float]:
    """All metrics of ``samples [N, C, H, W]`` against held-out real ``reference [M, C, H, W]``
    (both in [-1, 1]); see the module docstring for each key.

    ``classifier`` is a shipped name, a checkpoint file or a loaded ``ImageClassifier``; ``labels [N]``
    are the classes requested for class-conditional samples (adds ``class_accuracy``);
    ``feature_extractor`` (e.g. ``ExternalFeatures``) adds ``fd_extractor``.
    """
    model = classifier if isinstance(classifier, nn.Module) else load_classifier(classifier)
    return classifier_metrics(samples, reference, classifier=model, labels=labels, k=k,
                              feature_extractor=feature_extractor, batch_size=batch_size)

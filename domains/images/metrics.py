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
``precision_recall``, ``inception_score``...) live in ``sciffusion_domains.dense.metrics``, for any
feature space, and are re-exported here.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sciffusion_domains.dense.metrics import (Features, batched, feature_statistics, frechet_distance,  # noqa: F401
                                              frechet_distance_features, inception_score, precision_recall)

from .classifier import ImageClassifier, load_classifier


def _jit_load(path: str) -> nn.Module:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.load.* is deprecated", category=DeprecationWarning)
        return torch.jit.load(path, map_location="cpu").eval()


class ExternalFeatures(nn.Module):
    """Features of a network the user has locally, e.g. Inception-v3 for the usual FID. Nothing is
    downloaded: point ``module`` at a TorchScript file, a ``torch.export`` archive (``.pt2``), or pass
    an ``nn.Module``/callable.

    Images ``[B, C, H, W]`` in [-1, 1] are adapted to what the network expects: greyscale repeated
    to ``channels``, resized to ``size`` x ``size`` (bilinear; ``None`` keeps the size), and mapped to
    ``input_range``: ``"uint8"`` (0-255 uint8 tensor), ``"unit"`` ([0, 1]) or ``"symmetric"``
    ([-1, 1]). ``call_kwargs`` are passed on each call; a tuple output gives its first element.

    NVlabs' ``inception-2015-12-05.pt`` (StyleGAN2-ADA/3, EDM), if you have it:
    ``ExternalFeatures("inception-2015-12-05.pt", size=None, input_range="uint8",
    call_kwargs={"return_features": True})`` gives the 2048-d pool features of FID.
    """

    def __init__(self, module: str | Path | nn.Module | Features, *, size: int | None = 299, channels: int = 3,
                 input_range: Literal["uint8", "unit", "symmetric"] = "unit", call_kwargs: dict | None = None):
        super().__init__()
        if isinstance(module, (str, Path)):
            if not Path(module).is_file():
                raise FileNotFoundError(f"feature extractor file {module} not found; give a local TorchScript file "
                                        f"(nothing is downloaded)")
            # TorchScript is how Inception weights circulate (deprecated by torch, hence the filter).
            module = (torch.export.load(str(module)).module() if str(module).endswith(".pt2") else
                      _jit_load(str(module)))
        if input_range not in ("uint8", "unit", "symmetric"):
            raise ValueError(f"input_range={input_range!r}; choose 'uint8', 'unit' or 'symmetric'")
        self.module, self.size, self.channels = module, size, channels
        self.input_range, self.call_kwargs = input_range, dict(call_kwargs or {})

    def forward(self, images: Tensor) -> Tensor:
        """Features ``[B, D]`` of ``images [B, C, H, W]`` in [-1, 1]."""
        x = images.float()
        if x.shape[1] == 1 and self.channels != 1:
            x = x.expand(-1, self.channels, -1, -1)
        if x.shape[1] != self.channels:
            raise ValueError(f"feature extractor expects {self.channels} channels, images have {x.shape[1]}")
        if self.size is not None:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if self.input_range == "uint8":
            x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        elif self.input_range == "unit":
            x = (x + 1) / 2
        out = self.module(x, **self.call_kwargs)
        out = out[0] if isinstance(out, (tuple, list)) else out
        return out.flatten(1).float()


def _check_images(name: str, images: Tensor, classifier: ImageClassifier) -> None:
    if images.ndim != 4:
        raise ValueError(f"{name} must be images [N, C, H, W], got {tuple(images.shape)}")
    trained_on = getattr(classifier, "meta", {}).get("image_shape")
    if trained_on is not None and list(images.shape[1:]) != list(trained_on):
        raise ValueError(f"the classifier was trained on images {trained_on} ({classifier.meta.get('dataset')}) "
                         f"but {name} are {list(images.shape[1:])}; train one for this data with "
                         f"`python -m sciffusion_domains.images.classifier` and pass classifier=<its file>")


@torch.no_grad()
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
    model.eval()
    for name, images in (("samples", samples), ("reference", reference)):
        _check_images(name, images, model)
    fake = batched(model.features, samples.float(), batch_size=batch_size)
    real = batched(model.features, reference.float(), batch_size=batch_size)
    probs = model.head(fake).softmax(dim=1)
    precision, recall = precision_recall(real, fake, k=k)
    results = {"fd": frechet_distance_features(real, fake), "precision": precision, "recall": recall,
               "inception_score": inception_score(probs)}
    if labels is not None:
        if labels.shape != (len(samples),):
            raise ValueError(f"labels must be [N] = [{len(samples)}], got {tuple(labels.shape)}")
        results["class_accuracy"] = (probs.argmax(dim=1) == labels.to(probs.device)).double().mean().item()
    if feature_extractor is not None:
        results["fd_extractor"] = frechet_distance_features(
            batched(feature_extractor, reference.float(), batch_size=batch_size),
            batched(feature_extractor, samples.float(), batch_size=batch_size))
    return results

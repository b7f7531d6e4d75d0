"""Distribution metrics in any feature space, for dense domains and plugins: the Frechet distance
between Gaussians fitted to two feature sets (the formula of FID, Heusel et al. 2017), k-NN
precision and recall (Kynkaanniemi et al. 2019) and the Inception Score of class probabilities
(Salimans et al. 2016). ``classifier_metrics`` computes them all in a trained classifier's features
(``dense.classifier``), as the images and audio domains do, and ``ExternalFeatures`` adapts a local
network (e.g. Inception) as another feature space. All statistics are computed in float64.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .classifier import DenseClassifier

Features = Callable[[Tensor], Tensor]


def feature_statistics(features: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and covariance ``[D, D]`` (unbiased, float64) of ``features [N, D]``."""
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need features [N >= 2, D], got {tuple(features.shape)}")
    f = features.detach().cpu().double().numpy()
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix; round-off negative eigenvalues are clipped."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Frechet (2-Wasserstein squared) distance between N(mu1, cov1) and N(mu2, cov2):

        |mu1 - mu2|^2 + tr(cov1) + tr(cov2) - 2 tr((cov1 cov2)^(1/2))

    ``tr((cov1 cov2)^(1/2))`` is the sum of square roots of the eigenvalues of the symmetric PSD
    ``s cov2 s`` with ``s = cov1^(1/2)`` (same spectrum as ``cov1 cov2``), which stays real and
    stable where ``scipy.linalg.sqrtm`` of the non-symmetric product returns complex round-off.
    """
    mu1, mu2, cov1, cov2 = (np.asarray(a, dtype=np.float64) for a in (mu1, mu2, cov1, cov2))
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != mu1.shape * 2:
        raise ValueError(f"mismatched statistics: means {mu1.shape}, {mu2.shape}; covariances {cov1.shape}, {cov2.shape}")
    s = _psd_sqrt(cov1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(s @ cov2 @ s), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * cross)


def frechet_distance_features(features1: Tensor, features2: Tensor) -> float:
    """Frechet distance between Gaussians fitted to ``features1 [N, D]`` and ``features2 [M, D]``."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


def _kth_neighbour_radii(features: Tensor, k: int, chunk: int) -> Tensor:
    """Distance ``[N]`` from each row of ``features [N, D]`` to its k-th nearest other row."""
    if len(features) <= k:
        raise ValueError(f"k={k} nearest neighbours need more than {k} points, got {len(features)}")
    radii = [torch.cdist(part, features).kthvalue(k + 1, dim=1).values  # +1: each point is its own 0-th
             for part in features.split(chunk)]
    return torch.cat(radii)


def _coverage(points: Tensor, centres: Tensor, radii: Tensor, chunk: int) -> float:
    """Share of ``points [M, D]`` within ``radii [N]`` of at least one of ``centres [N, D]``."""
    inside = [(torch.cdist(part, centres) <= radii).any(dim=1) for part in points.split(chunk)]
    return torch.cat(inside).double().mean().item()


def precision_recall(real: Tensor, fake: Tensor, *, k: int = 3, chunk: int = 1024) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of ``fake [M, D]`` against
    ``real [N, D]``: each set's manifold is the union of balls reaching every point's k-th nearest
    neighbour; precision is the share of fake points in the real manifold, recall the share of real
    points in the fake one."""
    real, fake = real.detach().double(), fake.detach().double()
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"need features real [N, D] and fake [M, D], got {tuple(real.shape)} and {tuple(fake.shape)}")
    precision = _coverage(fake, real, _kth_neighbour_radii(real, k, chunk), chunk)
    recall = _coverage(real, fake, _kth_neighbour_radii(fake, k, chunk), chunk)
    return precision, recall


def inception_score(probs: Tensor) -> float:
    """``exp(E_x KL(p(y|x) || p(y)))`` of class probabilities ``probs [N, K]``: 1 for samples that
    all look alike or that no class claims, K for confident predictions spread evenly over K classes."""
    p = probs.detach().double().clamp_min(1e-12)
    marginal = p.mean(dim=0, keepdim=True)
    return float(torch.exp((p * (p.log() - marginal.log())).sum(dim=1).mean()))


@torch.no_grad()
def batched(fn: Features, images: Tensor, *, batch_size: int = 500) -> Tensor:
    """``fn`` applied to ``images [N, ...]`` in batches, outputs concatenated ``[N, ...]``."""
    return torch.cat([fn(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


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


def _check_inputs(name: str, images: Tensor, classifier: DenseClassifier) -> None:
    if images.ndim != 4:
        raise ValueError(f"{name} must be images [N, C, H, W], got {tuple(images.shape)}")
    meta = getattr(classifier, "meta", {})
    trained_on = meta.get("image_shape")
    if trained_on is not None and list(images.shape[1:]) != list(trained_on):
        how = f" (as `{meta['command']}` did for its own data)" if "command" in meta else ""
        raise ValueError(f"the classifier was trained on images {trained_on} ({meta.get('dataset')}) but {name} "
                         f"are {list(images.shape[1:])}; train one for this data{how} and pass classifier=<its file>")


@torch.no_grad()
def classifier_metrics(samples: Tensor, reference: Tensor, *, classifier: DenseClassifier,
                       labels: Tensor | None = None, k: int = 3, feature_extractor: Features | None = None,
                       batch_size: int = 500) -> dict[str, float]:
    """Metrics of ``samples [N, C, H, W]`` against held-out real ``reference [M, C, H, W]`` (both in
    [-1, 1]) in ``classifier``'s features: ``fd``, ``precision``, ``recall``, ``inception_score``;
    with ``labels [N]`` (the classes requested of class-conditional samples) ``class_accuracy``, how
    often the classifier finds the requested class; with ``feature_extractor`` (e.g.
    ``ExternalFeatures``) ``fd_extractor``, the Frechet distance in its features.
    """
    classifier.eval()
    for name, images in (("samples", samples), ("reference", reference)):
        _check_inputs(name, images, classifier)
    fake = batched(classifier.features, samples.float(), batch_size=batch_size)
    real = batched(classifier.features, reference.float(), batch_size=batch_size)
    probs = classifier.head(fake).softmax(dim=1)
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

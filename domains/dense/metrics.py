"""Distribution metrics in any feature space, for dense domains and plugins: the Frechet distance
between Gaussians fitted to two feature sets (the formula of FID, Heusel et al. 2017), k-NN
precision and recall (Kynkaanniemi et al. 2019) and the Inception Score of class probabilities
(Salimans et al. 2016). The images and audio domains compute them in their classifiers' features
(``sciffusion_domains.images.metrics``). All statistics are computed in float64.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

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

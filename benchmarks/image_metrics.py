"""How the offline image metrics rank real digits, degraded digits and noise.

    python benchmarks/image_metrics.py [--dataset mnist5k|sklearn_digits]

Samples are 500 held-out real digits (the ``val`` split) and degraded copies of them; the reference
is the other 500 held-out digits (``test``). Neither split was seen by the shipped classifier, so
``real`` is the floor that a perfect generator would reach at these sample counts.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from sciffusion_domains.images import data
from sciffusion_domains.images.metrics import image_metrics


def gaussian_blur(x: torch.Tensor, *, sigma: float) -> torch.Tensor:
    """``x [B, C, H, W]`` blurred by a separable Gaussian of ``sigma`` pixels (edges replicated)."""
    r = int(3 * sigma)
    k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype) ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).repeat(x.shape[1], 1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(x.shape[1], 1, 1, -1), groups=x.shape[1])
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(x.shape[1], 1, -1, 1), groups=x.shape[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist5k", choices=["mnist5k", "sklearn_digits"])
    args = parser.parse_args()
    loader = getattr(data, args.dataset)
    (real, labels), (reference, _) = loader("val").tensors(), loader("test").tensors()
    g = torch.Generator().manual_seed(0)
    candidates = {
        "real (held out)": real,
        "blurred sigma=1": gaussian_blur(real, sigma=1.0),
        "blurred sigma=1.5": gaussian_blur(real, sigma=1.5),
        "real + noise 0.3": (real + 0.3 * torch.randn(real.shape, generator=g)).clamp(-1, 1),
        "gaussian noise": (0.5 * torch.randn(real.shape, generator=g)).clamp(-1, 1),
        "one digit repeated": real[:1].expand_as(real),
    }
    print(f"{args.dataset}: {len(real)} samples vs {len(reference)} reference images, classifier {args.dataset}")
    print(f"{'samples':<20} {'fd':>9} {'precision':>9} {'recall':>7} {'IS':>6} {'accuracy':>8}")
    for name, x in candidates.items():
        m = image_metrics(x, reference, classifier=args.dataset, labels=labels)
        print(f"{name:<20} {m['fd']:9.3f} {m['precision']:9.3f} {m['recall']:7.3f} {m['inception_score']:6.2f} "
              f"{m['class_accuracy']:8.3f}")


if __name__ == "__main__":
    main()

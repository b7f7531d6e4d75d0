"""A small CNN classifier of dense ``[B, C, H, W]`` arrays whose penultimate features replace
Inception's for offline metrics (``metrics.classifier_metrics``).

Inception-based FID needs weights this project cannot download, so each dense domain trains its own
judge once on its real training data (the images domain on digits, the audio domain on log-mel
spectrograms) and ships it. A checkpoint is ``{"config": ..., "state_dict": ..., "meta": ...}`` of
plain types and tensors, so ``torch.load(path, weights_only=True)`` opens it.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm


class DenseClassifier(nn.Module):
    """Three 3x3 convs (group norm, SiLU) with two 2x average poolings, a 3x3 adaptive pool, then
    ``features`` (``feature_dim``, SiLU) and a linear head. Works at any size and channel count: the
    adaptive pool makes the head independent of H and W.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, *, width: int = 16, feature_dim: int = 128):
        super().__init__()
        self.config = {"in_channels": in_channels, "num_classes": num_classes, "width": width,
                       "feature_dim": feature_dim}
        #: Provenance from the checkpoint (dataset, image_shape, test_accuracy, command); {} if untrained.
        self.meta: dict[str, Any] = {}

        def conv(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU()]

        # One conv at full resolution and two at half: most of a CNN's cost is its first stage, and
        # ceil-mode pooling keeps 1-pixel inputs valid.
        pool = lambda: nn.AvgPool2d(2, ceil_mode=True)
        self.body = nn.Sequential(*conv(in_channels, width), pool(), *conv(width, 2 * width),
                                  *conv(2 * width, 2 * width), pool(), nn.AdaptiveAvgPool2d(3), nn.Flatten(),
                                  nn.Linear(18 * width, feature_dim), nn.SiLU())
        self.head = nn.Linear(feature_dim, num_classes)

    @property
    def in_channels(self) -> int:
        return self.config["in_channels"]

    @property
    def num_classes(self) -> int:
        return self.config["num_classes"]

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``[B, feature_dim]`` of ``x [B, C, H, W]`` in [-1, 1]."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"classifier expects images [B, {self.in_channels}, H, W], got {tuple(x.shape)}")
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``[B, num_classes]`` of ``x [B, C, H, W]`` in [-1, 1]."""
        return self.head(self.features(x))


def random_shift(x: Tensor, *, max_shift: int, generator: torch.Generator) -> Tensor:
    """Each array of ``x [B, C, H, W]`` translated by up to ``max_shift`` pixels (edge padding), the
    augmentation that keeps a 4,000-digit classifier from memorising stroke positions."""
    if max_shift == 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    dy, dx = (torch.randint(0, 2 * max_shift + 1, (b,), generator=generator) for _ in range(2))
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    return padded[torch.arange(b)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None], rows, cols]


def train_classifier(images: Tensor, labels: Tensor, *, num_classes: int, epochs: int = 12, batch_size: int = 128,
                     lr: float = 3e-3, weight_decay: float = 1e-4, max_shift: int = 2, seed: int = 0,
                     width: int = 16, feature_dim: int = 128, progress: bool = True) -> DenseClassifier:
    """A ``DenseClassifier`` trained on ``images [N, C, H, W]`` in [-1, 1] with ``labels [N]`` in
    ``[0, num_classes)``, with AdamW and a cosine learning-rate decay.

    Seeded end to end (initialisation, shuffling, augmentation), so two runs on CPU give the same
    weights. ``max_shift`` is the random translation in pixels (0 for 8x8 digits).
    """
    if images.ndim != 4 or labels.shape != (len(images),):
        raise ValueError(f"expected images [N, C, H, W] and labels [N], got {tuple(images.shape)} "
                         f"and {tuple(labels.shape)}")
    with torch.random.fork_rng():  # seeds the initialisation without touching the caller's global RNG
        torch.manual_seed(seed)
        model = DenseClassifier(images.shape[1], num_classes, width=width, feature_dim=feature_dim)
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(images) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    model.train()
    bar = tqdm(total=epochs * steps_per_epoch, desc="classifier", disable=not progress)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for i in range(0, len(images), batch_size):
            idx = order[i:i + batch_size]
            x = random_shift(images[idx], max_shift=max_shift, generator=generator)
            loss = F.cross_entropy(model(x), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval()


@torch.no_grad()
def accuracy(model: DenseClassifier, images: Tensor, labels: Tensor, *, batch_size: int = 500) -> float:
    """Fraction of ``images [N, C, H, W]`` whose predicted class equals ``labels [N]``."""
    predicted = torch.cat([model(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])
    return (predicted == labels).float().mean().item()


def save_classifier(model: DenseClassifier, path: str | Path, *, meta: dict[str, Any] | None = None) -> Path:
    """Write ``{"config", "state_dict", "meta"}``; ``meta`` holds plain values (dataset, accuracy...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": dict(model.config), "state_dict": model.state_dict(), "meta": dict(meta or {})}, path)
    return path


def load_classifier(path: str | Path, *, fix: str = "pass a file written by save_classifier") -> DenseClassifier:
    """A classifier in eval mode from a checkpoint file, through the project's safe loader; its
    ``meta`` dict (dataset, image shape, accuracy, command) is attached. ``fix`` ends the error
    message of a missing or unreadable file (what the caller's user should do instead)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no classifier checkpoint at {path}; {fix}")
    from sciffusion.training.checkpoint import safe_load

    checkpoint = safe_load(path, what="classifier checkpoint", fix=fix)
    model = DenseClassifier(**checkpoint["config"])
    model.load_state_dict(checkpoint["state_dict"])
    model.meta = checkpoint.get("meta", {})
    return model.eval()

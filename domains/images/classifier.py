"""A small CNN classifier whose penultimate features replace Inception's for offline metrics.

Inception-based FID needs weights this project cannot download, so the images domain trains its own
judge once, with this module, on the real training digits, and ships it in ``weights/``. The shipped
checkpoints were made with exactly these commands (from the repository root):

    python -m sciffusion_domains.images.classifier --dataset mnist5k --out domains/images/weights/mnist5k_classifier.pt
    python -m sciffusion_domains.images.classifier --dataset sklearn_digits --out domains/images/weights/sklearn_digits_classifier.pt

A checkpoint is ``{"config": ..., "state_dict": ..., "meta": ...}`` of plain types and tensors, so
``torch.load(path, weights_only=True)`` opens it.
"""
from __future__ import annotations

import argparse
import math
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import data as image_data

SHIPPED = ("mnist5k", "sklearn_digits")


class ImageClassifier(nn.Module):
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
        # ceil-mode pooling keeps 1-pixel images valid.
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
        """Penultimate features ``[B, feature_dim]`` of images ``x [B, C, H, W]`` in [-1, 1]."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"classifier expects images [B, {self.in_channels}, H, W], got {tuple(x.shape)}")
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``[B, num_classes]`` of images ``x [B, C, H, W]`` in [-1, 1]."""
        return self.head(self.features(x))


def random_shift(x: Tensor, *, max_shift: int, generator: torch.Generator) -> Tensor:
    """Each image of ``x [B, C, H, W]`` translated by up to ``max_shift`` pixels (edge padding), the
    augmentation that keeps a 4,000-digit classifier from memorising stroke positions."""
    if max_shift == 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    dy, dx = (torch.randint(0, 2 * max_shift + 1, (b,), generator=generator) for _ in range(2))
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    return padded[torch.arange(b)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None], rows, cols]


def train_classifier(train: image_data.ImageDataset, *, epochs: int = 12, batch_size: int = 128,
                     lr: float = 3e-3, weight_decay: float = 1e-4, max_shift: int = 2, seed: int = 0,
                     width: int = 16, feature_dim: int = 128, progress: bool = True) -> ImageClassifier:
    """Train an ``ImageClassifier`` on ``train`` with AdamW and a cosine learning-rate decay.

    Seeded end to end (initialisation, shuffling, augmentation), so two runs on CPU give the same
    weights. ``max_shift`` is the random translation in pixels (0 for 8x8 digits).
    """
    images, labels = train.tensors()
    with torch.random.fork_rng():  # seeds the initialisation without touching the caller's global RNG
        torch.manual_seed(seed)
        model = ImageClassifier(train.shape[0], train.num_classes, width=width, feature_dim=feature_dim)
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
def accuracy(model: ImageClassifier, images: Tensor, labels: Tensor, *, batch_size: int = 500) -> float:
    """Fraction of ``images [N, C, H, W]`` whose predicted class equals ``labels [N]``."""
    predicted = torch.cat([model(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])
    return (predicted == labels).float().mean().item()


def save_classifier(model: ImageClassifier, path: str | Path, *, meta: dict[str, Any] | None = None) -> Path:
    """Write ``{"config", "state_dict", "meta"}``; ``meta`` holds plain values (dataset, accuracy...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": dict(model.config), "state_dict": model.state_dict(), "meta": dict(meta or {})}, path)
    return path


def load_classifier(path_or_name: str | Path = "mnist5k") -> ImageClassifier:
    """A classifier in eval mode from a checkpoint file, or a shipped one by name (``mnist5k``,
    ``sklearn_digits``). Its ``meta`` dict (dataset, image shape, accuracy, command) is attached."""
    if str(path_or_name) in SHIPPED:
        weights = resources.files("sciffusion_domains.images") / "weights" / f"{path_or_name}_classifier.pt"
        with resources.as_file(weights) as path:
            return load_classifier(path)
    path = Path(path_or_name)
    if not path.is_file():
        raise FileNotFoundError(f"no classifier checkpoint at {path}; pass a file or one of {SHIPPED}")
    from sciffusion.training.checkpoint import safe_load

    checkpoint = safe_load(path, what="classifier checkpoint",
                           fix=f"pass a file written by `python -m sciffusion_domains.images.classifier` or one of {SHIPPED}")
    model = ImageClassifier(**checkpoint["config"])
    model.load_state_dict(checkpoint["state_dict"])
    model.meta = checkpoint.get("meta", {})
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the metrics classifier on a dataset's train split and "
                                                 "report its accuracy on the held-out test split.")
    parser.add_argument("--dataset", default="mnist5k", choices=["mnist5k", "sklearn_digits", "fashion_mnist"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=None, help="default: 12, or 40 for the 8x8 digits")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    small = args.dataset == "sklearn_digits"
    train = getattr(image_data, args.dataset)("train")
    test = getattr(image_data, args.dataset)("test")
    epochs = args.epochs or (40 if small else 12)
    model = train_classifier(train, epochs=epochs, max_shift=0 if small else 2, seed=args.seed)
    test_accuracy = accuracy(model, *test.tensors())
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python -m sciffusion_domains.images.classifier", *given])
    save_classifier(model, args.out, meta={"dataset": args.dataset, "image_shape": list(train.shape),
                                           "train_size": len(train), "test_size": len(test), "epochs": epochs,
                                           "seed": args.seed, "test_accuracy": test_accuracy, "command": command})
    print(f"{args.dataset}: test accuracy {test_accuracy:.4f} on {len(test)} held-out images; wrote {args.out} "
          f"({args.out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()

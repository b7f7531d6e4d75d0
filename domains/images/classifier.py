"""The images domain's metrics classifier: ``sciffusion_domains.dense.classifier`` trained on the
real training digits and shipped in ``weights/``. The shipped checkpoints were made with exactly
these commands (from the repository root):

    python -m sciffusion_domains.images.classifier --dataset mnist5k --out domains/images/weights/mnist5k_classifier.pt
    python -m sciffusion_domains.images.classifier --dataset sklearn_digits --out domains/images/weights/sklearn_digits_classifier.pt
    python -m sciffusion_domains.images.classifier --dataset fashion_mnist --out domains/images/weights/fashion_mnist_classifier.pt

(Fashion-MNIST: 12 epochs of the 55,000 training images, 10 minutes on a busy CPU thread; test accuracy
0.910 on the 10,000 official test images.)

The model, its training and its file format live in ``dense.classifier`` and are re-exported here
(``ImageClassifier`` is ``DenseClassifier``) for code written against this module.
"""
from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from sciffusion_domains.dense import classifier as dense
from sciffusion_domains.dense.classifier import accuracy, random_shift, save_classifier  # noqa: F401

from . import data as image_data

SHIPPED = ("mnist5k", "sklearn_digits", "fashion_mnist")
ImageClassifier = dense.DenseClassifier


def train_classifier(train: image_data.ImageDataset, **options) -> ImageClassifier:
    """``dense.classifier.train_classifier`` on an ``ImageDataset``'s tensors and classes;
    ``options`` as there (epochs, batch_size, lr, max_shift, seed...)."""
    return dense.train_classifier(*train.tensors(), num_classes=train.num_classes, **options)


def load_classifier(path_or_name: str | Path = "mnist5k") -> ImageClassifier:
    """A classifier in eval mode from a checkpoint file, or a shipped one by name (``mnist5k``,
    ``sklearn_digits``, ``fashion_mnist``). Its ``meta`` dict (dataset, image shape, accuracy, command) is attached."""
    if str(path_or_name) in SHIPPED:
        weights = resources.files("sciffusion_domains.images") / "weights" / f"{path_or_name}_classifier.pt"
        with resources.as_file(weights) as path:
            return load_classifier(path)
    return dense.load_classifier(path_or_name, fix="pass a file written by `python -m "
                                                  f"sciffusion_domains.images.classifier` or one of {SHIPPED}")


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

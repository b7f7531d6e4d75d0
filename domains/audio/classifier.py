"""The spoken-digit judge: the images domain's CNN classifier trained on normalised log-mel
spectrograms of the training voices. The shipped weights were made with

    python -m sciffusion_domains.audio.classifier --out domains/audio/weights/spoken_digits_classifier.pt
"""
from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

from sciffusion_domains.images.classifier import accuracy, save_classifier, train_classifier
from sciffusion_domains.images.data import ImageDataset


SHIPPED = "spoken_digits_classifier.pt"


def shipped_classifier_path() -> Path:
    path = Path(str(resources.files("sciffusion_domains.audio") / "weights" / SHIPPED))
    if not path.is_file():
        raise FileNotFoundError(f"the shipped classifier {path} is missing; train one with "
                                "`python -m sciffusion_domains.audio.classifier --out FILE` and pass classifier=FILE")
    return path


def main(argv: list[str] | None = None) -> None:
    from .domain import AudioDomain

    parser = argparse.ArgumentParser(description="Train the spoken-digit classifier used by the audio metrics.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None, help="a folder of audio, one sub-folder per class "
                                                     "(default: the spoken digits)")
    parser.add_argument("--n-fft", type=int, default=512)
    parser.add_argument("--hop-length", type=int, default=256)
    parser.add_argument("--n-mels", type=int, default=80, help="0: linear-frequency STFT")
    args = parser.parse_args(argv)
    domain = AudioDomain(dataset="folder" if args.root else "spoken_digits", root=args.root, n_fft=args.n_fft,
                         hop_length=args.hop_length, n_mels=args.n_mels)
    train, test = (ImageDataset(*domain.dataset(s).tensors, class_names=domain.class_names) for s in ("train", "test"))
    model = train_classifier(train, epochs=args.epochs, max_shift=2, seed=args.seed)
    test_accuracy = accuracy(model, *test.tensors())
    save_classifier(model, args.out, meta={"dataset": args.root or "spoken_digits", "image_shape": list(train.shape),
                                           "train_size": len(train), "test_size": len(test), "epochs": args.epochs,
                                           "seed": args.seed, "test_accuracy": test_accuracy,
                                           "spectrogram": domain.spec.to_dict()})
    print(f"spoken digits: held-out-voice accuracy {test_accuracy:.4f} on {len(test)} clips; wrote {args.out}")


if __name__ == "__main__":
    main()

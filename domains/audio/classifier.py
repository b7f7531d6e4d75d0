"""The spoken-digit judge: the dense domains' CNN classifier (``dense.classifier``) trained on normalised log-mel
spectrograms of the training voices. The shipped weights were made with

    python -m sciffusion_domains.audio.classifier --out domains/audio/weights/spoken_digits_classifier.pt
"""
from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

from sciffusion_domains.dense.classifier import accuracy, save_classifier, train_classifier


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
    (x_train, y_train), (x_test, y_test) = ((x.float(), y.long()) for x, y in
                                            (domain.dataset(s).tensors for s in ("train", "test")))
    model = train_classifier(x_train, y_train, num_classes=len(domain.class_names), epochs=args.epochs,
                             max_shift=2, seed=args.seed)
    test_accuracy = accuracy(model, x_test, y_test)
    save_classifier(model, args.out, meta={"dataset": args.root or "spoken_digits",
                                           "image_shape": list(x_train.shape[1:]), "train_size": len(x_train),
                                           "test_size": len(x_test), "epochs": args.epochs, "seed": args.seed,
                                           "test_accuracy": test_accuracy, "spectrogram": domain.spec.to_dict()})
    print(f"spoken digits: held-out-voice accuracy {test_accuracy:.4f} on {len(x_test)} clips; wrote {args.out}")


if __name__ == "__main__":
    main()

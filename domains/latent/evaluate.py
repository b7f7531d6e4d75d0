"""How good an image autoencoder is, as latent diffusion needs it: reconstruction PSNR and what the images
domain's metrics classifier still recognises, on a held-out split.

    python -m sciffusion_domains.latent.evaluate RUN/checkpoints/last.ckpt [--dataset mnist5k] [--split test]
    python -m sciffusion_domains.latent.evaluate digits_latent     # the autoencoder inside a latent model

prints one JSON line: ``psnr_db`` (mean over images of 10 log10(1 / MSE), on the 8-bit images both sides,
as [0, 1]), ``psnr_db_of_mean_mse``, ``accuracy_real`` and ``accuracy_reconstructed`` (the shipped
classifier of the dataset, when there is one), the latent shape, the compression (data entries per
latent entry), the scale factor 1 / std of the encoded training latents, and encode + decode time per
image. Reconstructions decode the posterior mean, as the latent domain encodes.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from sciffusion.latent import load_autoencoder


def psnr(real: torch.Tensor, reconstructed: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB ``[N]`` of uint8 images ``[N, ...]`` (peak 255)."""
    mse = ((real.double() - reconstructed.double()) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(255.0**2 / mse.clamp_min(1e-12))


@torch.no_grad()
def evaluate(checkpoint: str, *, dataset: str = "mnist5k", split: str = "test", batch: int = 500,
             limit: int | None = None) -> dict:
    """The measures of the module docstring on the first ``limit`` images of ``split`` (all by default);
    the scale factor from the first ``limit`` training images."""
    from sciffusion_domains.images import data as image_data
    from sciffusion_domains.images.classifier import SHIPPED, accuracy, load_classifier

    autoencoder = load_autoencoder(checkpoint)
    loader = getattr(image_data, dataset)
    images, labels = loader(split).tensors(limit)
    start = time.perf_counter()
    reconstructed = torch.cat([autoencoder.decode(autoencoder.encode(images[i:i + batch])[0], size=images.shape[-2:])
                               for i in range(0, len(images), batch)]).clamp(-1, 1)
    seconds = time.perf_counter() - start
    train, _ = loader("train").tensors(limit)
    latents = torch.cat([autoencoder.encode(train[i:i + batch])[0] for i in range(0, len(train), batch)])
    as_uint8 = lambda x: ((x + 1) * 127.5).round()  # noqa: E731  (image_data.to_uint8, batched)
    per_image = psnr(as_uint8(images), as_uint8(reconstructed))
    mse = ((as_uint8(images) - as_uint8(reconstructed)) ** 2).mean().double()
    shape = autoencoder.latent_shape(images.shape[1:])
    out = {"checkpoint": str(checkpoint), "dataset": dataset, "split": split, "images": len(images),
           "psnr_db": round(float(per_image.mean()), 2),
           "psnr_db_of_mean_mse": round(float(10 * torch.log10(255.0**2 / mse)), 2),
           "latent_shape": list(shape), "compression": images[0].numel() / (shape[0] * shape[1] * shape[2]),
           "scale_factor": round(float(1 / latents.std()), 4),
           "ms_per_image_encode_decode": round(1000 * seconds / len(images), 3), "threads": torch.get_num_threads()}
    if dataset in SHIPPED:
        classifier = load_classifier(dataset)
        out["accuracy_real"] = round(accuracy(classifier, images, labels), 4)
        out["accuracy_reconstructed"] = round(accuracy(classifier, reconstructed, labels), 4)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Reconstruction PSNR and classifier accuracy of an image autoencoder")
    parser.add_argument("checkpoint")
    parser.add_argument("--dataset", default="mnist5k", choices=["mnist5k", "sklearn_digits", "fashion_mnist"])
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--limit", type=int, default=None, help="the first N images of the split and of train")
    args = parser.parse_args(argv)
    print(json.dumps(evaluate(args.checkpoint, dataset=args.dataset, split=args.split, limit=args.limit)), flush=True)


if __name__ == "__main__":
    main()

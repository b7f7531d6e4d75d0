"""How good an autoencoder is, as latent diffusion needs it: reconstruction PSNR and what the domain's
metrics classifier still recognises, on a held-out split. Images (the images domain's datasets) and
spoken-digit spectrograms (the audio domain, found from the checkpoint's config):

    python -m sciffusion_domains.latent.evaluate RUN/checkpoints/last.ckpt [--dataset mnist5k] [--split test]
    python -m sciffusion_domains.latent.evaluate digits_latent     # the autoencoder inside a latent model
    python -m sciffusion_domains.latent.evaluate SPOKEN_AE/checkpoints/last.ckpt   # audio: read from its config

prints one JSON line: ``psnr_db`` (mean over images of 10 log10(1 / MSE), on the 8-bit images both sides,
as [0, 1]), ``psnr_db_of_mean_mse``, ``accuracy_real`` and ``accuracy_reconstructed`` (the shipped
classifier of the dataset, when there is one), the latent shape, the compression (data entries per
latent entry), the scale factor 1 / std of the encoded training latents, and encode + decode time per
image. Reconstructions decode the posterior mean, as the latent domain encodes.

Audio (an autoencoder trained on ``domain=audio``, or a latent model whose ``domain.base`` is audio): the
spectrograms are compared as log-mel magnitudes in dB floored 80 dB below the real clip's loudest bin
(as ``experiments/audio/edit_scores.py`` and ``librosa.amplitude_to_db`` do, so near-silence does not
swamp the score), ``psnr_db`` taking that 80 dB range as the peak, ``rmse_db`` the mean over clips of
the error in dB; the accuracies are the audio domain's metrics classifier's (the shipped spoken-digit
judge) on the real and the reconstructed spectrograms, before any Griffin-Lim inversion.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from sciffusion.latent import load_autoencoder

TOP_DB = 80.0  # the dynamic range kept of each audio clip, and the peak of its PSNR
NATURAL_LOG_TO_DB = 20 / math.log(10)


def psnr(real: torch.Tensor, reconstructed: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB ``[N]`` of uint8 images ``[N, ...]`` (peak 255)."""
    mse = ((real.double() - reconstructed.double()) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(255.0**2 / mse.clamp_min(1e-12))


def data_domain(checkpoint: str) -> tuple[dict, dict | None]:
    """``(config, state)`` of the domain an autoencoder checkpoint's data came from: an autoencoder run's
    ``domain``, or a latent model's ``domain.base`` (a shipped latent model by name too). The state
    (e.g. the audio normaliser) is None where the checkpoint has none."""
    from sciffusion import shipped
    from sciffusion.training import load_checkpoint

    path = checkpoint
    if not Path(path).is_file() and shipped.lookup(str(path)) is not None:
        path = shipped.resolve(str(path))
    state = load_checkpoint(path)
    config, domain_state = dict((state.get("config") or {}).get("domain") or {}), state.get("domain")
    if config.get("name") == "latent":
        return dict(config.get("base") or {}), (domain_state or {}).get("base")
    return config, domain_state


def audio_db(domain, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Normalised spectrograms ``[N, 1, bins, frames]`` as log-mel dB ``[N, bins, frames]``, floored
    ``TOP_DB`` below the loudest bin of the real clip ``like`` (the same floor for its reconstruction)."""
    db = domain.normalizer.decode(x[:, 0]) * NATURAL_LOG_TO_DB
    ceiling = (domain.normalizer.decode(like[:, 0]) * NATURAL_LOG_TO_DB).amax(dim=(1, 2), keepdim=True)
    return db.maximum(ceiling - TOP_DB)


@torch.no_grad()
def evaluate_audio(checkpoint: str, config: dict, state: dict | None, *, split: str = "test", batch: int = 500,
                   limit: int | None = None) -> dict:
    """The audio measures of the module docstring on the first ``limit`` clips of ``split`` (all by
    default), the audio domain built from ``config`` (its normaliser from ``state`` when given); the
    scale factor from the first ``limit`` training clips."""
    from sciffusion.registry import make_domain
    from sciffusion_domains.dense.classifier import accuracy

    options = {k: v for k, v in config.items() if k != "name"}
    domain = make_domain("audio", **options)
    if state:
        domain.load_state_dict(state)
    autoencoder = load_autoencoder(checkpoint)
    clips, labels = domain.dataset(split).tensors
    clips, labels = clips[:limit].float(), labels[:limit].long()
    start = time.perf_counter()
    reconstructed = torch.cat([autoencoder.decode(autoencoder.encode(clips[i:i + batch])[0], size=clips.shape[-2:])
                               for i in range(0, len(clips), batch)])
    seconds = time.perf_counter() - start
    train = domain.dataset("train").tensors[0][:limit].float()
    latents = torch.cat([autoencoder.encode(train[i:i + batch])[0] for i in range(0, len(train), batch)])
    real_db, reconstructed_db = audio_db(domain, clips, clips), audio_db(domain, reconstructed, clips)
    mse = ((real_db - reconstructed_db) ** 2).flatten(1).mean(1).double()
    shape = autoencoder.latent_shape(clips.shape[1:])
    classifier = domain.classifier()
    return {"checkpoint": str(checkpoint), "domain": "audio", "dataset": domain.dataset_name, "split": split,
            "clips": len(clips), "psnr_db": round(float((10 * torch.log10(TOP_DB**2 / mse.clamp_min(1e-12))).mean()), 2),
            "psnr_db_of_mean_mse": round(float(10 * torch.log10(TOP_DB**2 / mse.mean())), 2),
            "rmse_db": round(float(mse.sqrt().mean()), 3), "top_db": TOP_DB,
            "latent_shape": list(shape), "compression": round(clips[0].numel() / math.prod(shape), 4),
            "scale_factor": round(float(1 / latents.std()), 4),
            "accuracy_real": round(accuracy(classifier, clips, labels), 4),
            "accuracy_reconstructed": round(accuracy(classifier, reconstructed, labels), 4),
            "ms_per_clip_encode_decode": round(1000 * seconds / len(clips), 3), "threads": torch.get_num_threads()}


@torch.no_grad()
def evaluate(checkpoint: str, *, dataset: str = "mnist5k", split: str = "test", batch: int = 500,
             limit: int | None = None) -> dict:
    """The measures of the module docstring on the first ``limit`` images of ``split`` (all by default);
    the scale factor from the first ``limit`` training images. An autoencoder of the audio domain's
    spectrograms (by its checkpoint's config) is scored by ``evaluate_audio`` (``dataset`` unused)."""
    config, state = data_domain(checkpoint)
    if config.get("name") == "audio":
        return evaluate_audio(checkpoint, config, state, split=split, batch=batch, limit=limit)
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
    parser = argparse.ArgumentParser(description="Reconstruction PSNR and classifier accuracy of an autoencoder "
                                                 "(images, or audio spectrograms found from the checkpoint's config)")
    parser.add_argument("checkpoint")
    parser.add_argument("--dataset", default="mnist5k", choices=["mnist5k", "sklearn_digits", "fashion_mnist"],
                        help="for image autoencoders; an audio one uses its checkpoint's data")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--limit", type=int, default=None, help="the first N images (clips) of the split and of train")
    args = parser.parse_args(argv)
    print(json.dumps(evaluate(args.checkpoint, dataset=args.dataset, split=args.split, limit=args.limit)), flush=True)


if __name__ == "__main__":
    main()

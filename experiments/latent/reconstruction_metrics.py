"""The autoencoder's floor in the sample metrics: 500 val images and their reconstructions against the first
500 test images, in the dataset's metrics classifier's features (experiments/latent/README.md).

    python experiments/latent/reconstruction_metrics.py                        # MNIST, runs/mnist_ae
    python experiments/latent/reconstruction_metrics.py --autoencoder experiments/latent/runs/fashion_ae/checkpoints/last.ckpt \
        --dataset fashion_mnist
    python experiments/latent/reconstruction_metrics.py --autoencoder experiments/latent/runs/spoken_ae/checkpoints/last.ckpt

An autoencoder of the audio spectrograms (found from its checkpoint's config) is scored as
experiments/audio scores its rows: all validation clips (400) against the 500 test clips, on spectrograms,
in the shipped spoken-digit classifier's features.
"""
import argparse
import json

import torch

from sciffusion.latent import load_autoencoder
from sciffusion_domains.latent.evaluate import data_domain
from sciffusion_domains.images import data as image_data
from sciffusion_domains.images.metrics import image_metrics

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--autoencoder", default="experiments/latent/runs/mnist_ae/checkpoints/last.ckpt")
parser.add_argument("--dataset", default="mnist5k", choices=["mnist5k", "fashion_mnist"])
parser.add_argument("--count", type=int, default=500, help="val images scored, and test images as the reference")
args = parser.parse_args()

ae = load_autoencoder(args.autoencoder)
config, state = data_domain(args.autoencoder)
if config.get("name") == "audio":
    from sciffusion.registry import make_domain
    from sciffusion_domains.dense.metrics import classifier_metrics

    domain = make_domain("audio", **{k: v for k, v in config.items() if k != "name"})
    if state:
        domain.load_state_dict(state)
    val, val_labels = (t.float() for t in domain.dataset("val").tensors)
    test = domain.dataset("test").tensors[0].float()
    with torch.no_grad():
        reconstructed = ae.decode(ae.encode(val)[0], size=tuple(val.shape[-2:]))
    rows = {name: {key: round(value, 3) for key, value in
                   classifier_metrics(clips, test, classifier=domain.classifier(), labels=val_labels.long()).items()}
            for name, clips in (("real val", val), ("reconstructed val", reconstructed))}
    print(json.dumps(rows, indent=1))
    raise SystemExit
dataset = getattr(image_data, args.dataset)
val, val_labels = (t[:args.count] for t in dataset("val").tensors())
test = dataset("test").tensors()[0][:args.count]
with torch.no_grad():
    reconstructed = ae.decode(ae.encode(val)[0], size=tuple(val.shape[-2:])).clamp(-1, 1)


def to_8bit(x):  # what a saved sample is: 256 grey levels
    return ((x + 1) * 127.5).round() / 127.5 - 1


rows = {name: {key: round(value, 3) for key, value in
               image_metrics(to_8bit(images), test, classifier=args.dataset, labels=val_labels).items()}
        for name, images in (("real val", val), ("reconstructed val", reconstructed))}
print(json.dumps(rows, indent=1))

"""The autoencoder's floor in the sample metrics: 500 val digits and their reconstructions against the 500
test digits (experiments/latent/README.md).

    python experiments/latent/reconstruction_metrics.py
"""
import torch
from sciffusion.latent import load_autoencoder
from sciffusion_domains.images import data as image_data
from sciffusion_domains.images.metrics import image_metrics
ae = load_autoencoder("experiments/latent/runs/mnist_ae/checkpoints/last.ckpt")
val, vl = image_data.mnist5k("val").tensors(); test, tl = image_data.mnist5k("test").tensors()
with torch.no_grad():
    rec = ae.decode(ae.encode(val)[0], size=(28, 28)).clamp(-1, 1)
q = lambda x: ((x + 1) * 127.5).round() / 127.5 - 1
print("real val", {k: round(v, 3) for k, v in image_metrics(q(val), test, labels=vl).items()})
print("reconstructed val", {k: round(v, 3) for k, v in image_metrics(q(rec), test, labels=vl).items()})

"""The figure reconstructions.png: 20 held-out test digits (rows 'real') above their reconstructions by
the autoencoder (posterior mean, decoded; rows 'reconstructed').

    python experiments/latent/reconstructions.py experiments/latent/runs/mnist_ae/checkpoints/last.ckpt
"""
import sys
from pathlib import Path

import torch

from sciffusion.latent import load_autoencoder
from sciffusion_domains.images import data as image_data
from sciffusion_domains.images.figures import sample_grid

autoencoder = load_autoencoder(sys.argv[1])
images, _ = image_data.mnist5k("test").tensors(20)
with torch.no_grad():
    reconstructed = autoencoder.decode(autoencoder.encode(images)[0], size=images.shape[-2:]).clamp(-1, 1)
rows = torch.tensor([0] * 10 + [1] * 10 + [2] * 10 + [3] * 10)
grid = torch.cat([images[:10], reconstructed[:10], images[10:], reconstructed[10:]])
out = sample_grid(grid, Path(__file__).parent / "reconstructions.png", labels=rows, ncols=10,
                  class_names=["real", "reconstructed", "real", "reconstructed"])
print(out)

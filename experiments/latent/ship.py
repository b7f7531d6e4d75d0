"""Ship the measured MNIST latent UNet (the 1,450-step run of README section 2) as ``digits_latent``:
its run checkpoint reduced to what sampling needs (``training.for_sampling``: EMA weights, config,
domain state with the autoencoder embedded), with the sampling settings of
``sciffusion.shipped.SHIPPED["digits_latent"]``.

    python experiments/latent/ship.py experiments/latent/runs/mnist_latent_unet_1450/checkpoints/last.ckpt

The config's ``domain.autoencoder`` (a path on the training machine) is cleared: the embedded copy is
what sampling reads, and a dangling path would only mislead a reader of the file.
"""
from __future__ import annotations

import copy
import sys

import torch

from sciffusion import shipped
from sciffusion.cli import build
from sciffusion.training import for_sampling, load_checkpoint, save_checkpoint

NAME = "digits_latent"
TARGET = "domains/latent/weights/mnist_latent_unet.ckpt"


def main() -> None:
    state = load_checkpoint(sys.argv[1])
    entry = shipped.SHIPPED[NAME]
    domain = build.build_domain(state["config"])
    domain.load_state_dict(state["domain"])  # checks the embedded autoencoder against the base domain
    config = copy.deepcopy(state["config"])
    config["domain"]["autoencoder"] = None
    state = dict(state, config=config, domain=domain.state_dict(),
                 sampling_defaults=dict(entry.best, measured=entry.measured))
    slim = for_sampling(state)
    assert all(torch.equal(slim["model"][k], v) for k, v in state["ema"]["module"].items())
    path = save_checkpoint(slim, TARGET)
    path.chmod(0o644)  # the temporary file was private
    print(f"{NAME}: step {state['step']} -> {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()

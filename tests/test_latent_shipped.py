"""The shipped latent digits model (``digits_latent``): it loads by name with its autoencoder embedded
(no autoencoder file, no data), samples 4x7x7 latents that decode to 28x28 digits, keeps its measured
sampling settings, and its samples at those settings are the digits asked for."""
import pytest
import torch

import sciffusion
from sciffusion import shipped
from sciffusion.registry import loadable

pytestmark = pytest.mark.skipif(not {"images", "latent"} <= set(loadable())
                                or shipped.lookup("digits_latent").path() is None,
                                reason="the digits_latent checkpoint or the images plugin is not installed")


def _levels(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as the 8-bit grey levels ``psnr`` compares."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round()


@pytest.fixture(scope="module")
def model():
    return sciffusion.load("digits_latent")


def test_loads_with_its_autoencoder_and_measured_settings(model):
    from sciffusion_domains.latent.domain import LatentDomain

    assert sciffusion.load("mnist_latent_unet").config == model.config  # the file's stem is an alias
    assert isinstance(model.domain, LatentDomain) and model.domain.shape == (4, 7, 7)
    assert model.domain.base_shape == (1, 28, 28)
    assert model.config["domain"]["autoencoder"] is None  # the embedded copy is all sampling reads
    assert model.domain.scale_factor == pytest.approx(0.927, abs=5e-4)  # experiments/latent/README.md
    best = shipped.lookup("digits_latent").best
    assert {k: model.sampling_defaults[k] for k in best} == best
    chosen = model.settings()
    assert (chosen.sampler, chosen.steps, chosen.grid) == ("heun", 20, "karras")
    assert chosen.guidance["scale"] == 2.0 and chosen.sources["guidance"] == "checkpoint sampling_defaults"


def test_samples_latents_that_decode_to_the_requested_digits(model):
    """At its stored settings (Heun 20 steps, CFG 2: 99.8% recognised over 500 samples) the shipped
    metrics classifier recognises the digits asked for; the latents have the autoencoder's shape."""
    from sciffusion_domains.images.classifier import load_classifier
    from sciffusion_domains.images.domain import DecodedImage

    labels = list(range(10))
    state = model.draw(10, model.settings(), cond={"label": labels}, seed=1, progress=False)[0]
    assert state.x.shape == (10, 4, 7, 7) and torch.isfinite(state.x).all()
    images = model.sample(10, cond={"label": labels}, seed=1, progress=False, verbose=False)
    assert all(isinstance(o, DecodedImage) and o.pixels.shape == (28, 28, 1) and o.pixels.dtype.name == "uint8"
               for o in images)
    assert [o.label for o in images] == labels
    assert all(o.pixels.min() < 30 and o.pixels.max() > 220 for o in images)  # dark ground, bright strokes
    with torch.no_grad():
        predicted = load_classifier("mnist5k")(torch.stack([o.tensor() for o in images])).argmax(-1)
    assert (predicted == torch.tensor(labels)).sum() >= 9, predicted.tolist()


def test_its_autoencoder_loads_alone_and_reconstructs_its_samples(model):
    """``load_autoencoder("digits_latent")`` is the embedded autoencoder (new latent models can train on
    its latents with ``domain.autoencoder=digits_latent``), and it reconstructs the model's own digits."""
    from sciffusion.latent import load_autoencoder
    from sciffusion_domains.latent.evaluate import psnr

    autoencoder = load_autoencoder("digits_latent")
    embedded = model.domain.autoencoder.state_dict()
    assert all(torch.equal(v, embedded[k]) for k, v in autoencoder.state_dict().items())
    images = model.sample(8, seed=2, progress=False, verbose=False)
    x = torch.stack([o.tensor() for o in images])
    with torch.no_grad():
        reconstructed = autoencoder(x)[0]
    # its own decoder outputs lie on its manifold: ~36 dB here (28.6 dB on real test digits, ~8 between two digits)
    assert psnr(_levels(x), _levels(reconstructed)).mean() > 30

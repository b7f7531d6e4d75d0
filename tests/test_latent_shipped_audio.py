"""The shipped latent spoken-digits model (``spoken_digits_latent``): it loads by name with its
autoencoder embedded (no autoencoder file, no data), keeps its measured sampling settings, samples
4x20x16 latents that decode to 80x63 log-mel spectrograms of the digits asked for, and writes WAVs."""
import pytest
import torch

import sciffusion
from sciffusion import shipped
from sciffusion.registry import loadable

pytestmark = pytest.mark.skipif(not {"audio", "latent"} <= set(loadable())
                                or shipped.lookup("spoken_digits_latent").path() is None,
                                reason="the spoken_digits_latent checkpoint or the audio plugin is not installed")


@pytest.fixture(scope="module")
def model():
    return sciffusion.load("spoken_digits_latent")


def test_loads_with_its_autoencoder_and_measured_settings(model):
    from sciffusion_domains.latent.domain import LatentDomain

    assert sciffusion.load("spoken_latent").config == model.config  # the alias
    assert isinstance(model.domain, LatentDomain) and model.domain.shape == (4, 20, 16)
    assert model.domain.base_shape == (1, 80, 63)
    assert model.config["domain"]["autoencoder"] is None  # the embedded copy is all sampling reads
    assert model.domain.scale_factor == pytest.approx(0.677, abs=5e-4)  # spoken_autoencoder_test.json
    chosen = model.settings()
    assert (chosen.sampler, chosen.steps, chosen.grid) == ("dpmpp_2m", 25, "karras")
    assert chosen.guidance["scale"] == 2.0 and chosen.sources["guidance"] == "checkpoint sampling_defaults"


def test_samples_decode_to_spectrograms_of_the_requested_digits(model, tmp_path):
    """At its stored settings (99.6% recognised over 500 samples) the shipped spoken-digit classifier
    recognises the digits asked for, and the samples are written as WAV files."""
    from sciffusion_domains.audio.domain import AudioSample

    labels = list(range(10))
    state = model.draw(10, model.settings(), cond={"label": labels}, seed=1, progress=False)[0]
    assert state.x.shape == (10, 4, 20, 16) and torch.isfinite(state.x).all()
    clips = model.sample(10, cond={"label": labels}, seed=1, progress=False, verbose=False)
    assert all(isinstance(c, AudioSample) and c.log_spec.shape == (80, 63) for c in clips)
    assert [c.label for c in clips] == labels
    base = model.domain.base
    with torch.no_grad():
        spectrograms = base.normalizer.encode(torch.stack([torch.from_numpy(c.log_spec) for c in clips]))[:, None]
        predicted = base.classifier()(spectrograms.float()).argmax(-1)
    assert (predicted == torch.tensor(labels)).sum() >= 9, predicted.tolist()
    written = model.save(clips[:2], tmp_path, figure=False)
    assert any(str(p).endswith(".wav") for p in written)

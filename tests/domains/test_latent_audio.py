"""Latent diffusion on spoken-digit spectrograms (AudioLDM-style): the two experiment configs compose with
the shipped pixel model's data options and recipe, an autoencoder trained by the usual app maps the
1 x 80 x 63 spectrograms to 4 x 20 x 16 latents (the 63 frames padded to 64 and cropped back), a latent
U-Net trained on them decodes to the audio domain's clips, and its checkpoint embeds the autoencoder,
so loading and sampling need nothing else. Tiny runs: three voices, narrow networks, 2-3 steps."""
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

pytest.importorskip("librosa")
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

import sciffusion  # noqa: E402
import sciffusion.cli  # noqa: E402,F401  (registers the schemas and the domain search path)
from sciffusion.cli.train import run  # noqa: E402
from sciffusion.training import load_checkpoint  # noqa: E402
from sciffusion_domains.audio.domain import AudioSample  # noqa: E402

TINY_VOICES = ["accents=[en-us]", "variants=[m1,f2,klatt]", "renders_per_voice=1", "val_variants=[f2]",
               "test_variants=[klatt]"]


def compose_train(overrides: list[str]):
    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        return OmegaConf.to_container(compose("train", overrides=overrides), resolve=True)


def tiny(prefix: str, cache: Path) -> list[str]:
    """Three voices (30 clips) rendered into ``cache``: the options that shrink the audio domain at ``prefix``."""
    return [f"++{prefix}.digits.{option}" for option in TINY_VOICES] + [f"{prefix}.cache={cache}",
                                                                        f"{prefix}.griffin_lim_iters=4"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("audio_cache")


@pytest.fixture(scope="module")
def autoencoder(cache, tmp_path_factory) -> Path:
    """Two steps of experiment=spoken_digits_latent_autoencoder, narrow but with its three levels (f = 4)."""
    folder = tmp_path_factory.mktemp("ae")
    cfg = compose_train(["experiment=spoken_digits_latent_autoencoder", *tiny("domain", cache),
                         "network.channels=[8,16,16]", "train.steps=2", "train.batch_size=8", "train.warmup=0",
                         "train.tensorboard=false"])
    run(OmegaConf.create(cfg), folder)
    return folder / "checkpoints/last.ckpt"


@pytest.fixture(scope="module")
def latent_checkpoint(autoencoder, cache, tmp_path_factory) -> Path:
    """Three steps of experiment=spoken_digits_latent_unet on those latents; the autoencoder file is then
    removed, so that loading can only use the copy embedded in the checkpoint."""
    folder = tmp_path_factory.mktemp("latent")
    own = folder / "ae.ckpt"
    shutil.copy(autoencoder, own)
    cfg = compose_train(["experiment=spoken_digits_latent_unet", f"domain.autoencoder={own}",
                         *tiny("domain.base", cache), "network.unet.channels=8", "network.unet.head_channels=8",
                         "train.steps=3", "train.batch_size=8", "train.warmup=0", "train.tensorboard=false"])
    run(OmegaConf.create(cfg), folder / "run")
    own.unlink()
    return folder / "run/checkpoints/last.ckpt"


def test_configs_keep_the_pixel_models_data_and_recipe():
    pixel = compose_train(["experiment=spoken_digits"])
    latent = compose_train(["experiment=spoken_digits_latent_unet"])
    first_stage = compose_train(["experiment=spoken_digits_latent_autoencoder"])
    audio = {k: v for k, v in pixel["domain"].items() if k != "name"}
    base = latent["domain"]["base"]
    assert base["name"] == "audio" and {k: base[k] for k in audio} == audio
    assert {k: first_stage["domain"][k] for k in audio if k != "conditional"} == \
        {k: v for k, v in audio.items() if k != "conditional"}
    for key in ("process", "parameterization", "loss", "sampling"):
        assert latent[key] == pixel[key], key
    recipe = ("batch_size", "ema_decay", "warmup", "lr_schedule", "grad_clip")
    assert {k: latent["train"][k] for k in recipe} == {k: pixel["train"][k] for k in recipe}
    assert latent["optim"]["lr"] == pixel["optim"]["lr"] and latent["loss"]["cond_dropout"] == 0.1
    assert first_stage["network"]["channels"] == [32, 64, 64] and first_stage["network"]["latent_channels"] == 4


def test_latents_are_a_fourth_of_the_spectrogram_and_decode_to_clips(autoencoder, cache):
    from sciffusion.registry import make_domain

    base = {"name": "audio", "conditional": True, "cache": str(cache),
            "digits": {"accents": ["en-us"], "variants": ["m1", "f2", "klatt"], "renders_per_voice": 1,
                       "val_variants": ["f2"], "test_variants": ["klatt"]}}
    domain = make_domain("latent", base=base, autoencoder=str(autoencoder))
    assert domain.base_shape == (1, 80, 63) and domain.shape == (4, 20, 16)  # 63 frames padded to 64, / 4
    assert 80 * 63 / math.prod(domain.shape) == pytest.approx(3.94, abs=0.01)
    train = domain.dataset("train")
    assert train.latents.shape == (10, 4, 20, 16) and float(train.latents.std()) == pytest.approx(1.0, rel=1e-5)
    batch = domain.collate([train[i] for i in range(4)])
    clips = domain.decode(batch.x, batch.space, batch.cond)
    assert all(isinstance(c, AudioSample) and c.log_spec.shape == (80, 63) for c in clips)
    assert [c.label for c in clips] == batch.cond["label"].tolist()
    # decoding is the decoder, cropped back to 63 frames, then the audio domain's own decode
    spectrograms = domain.decode_latents(batch.x)
    assert spectrograms.shape == (4, 1, 80, 63)
    np.testing.assert_allclose(clips[1].log_spec, domain.base.decode(spectrograms, None)[1].log_spec, rtol=1e-6)


def test_the_checkpoint_embeds_the_autoencoder_and_samples_alone(latent_checkpoint, autoencoder):
    from sciffusion.latent import load_autoencoder

    state = load_checkpoint(latent_checkpoint)
    assert {"autoencoder", "base", "scale_factor"} == set(state["domain"])
    assert "normalizer" in state["domain"]["base"]  # the audio domain's decode needs no data
    embedded, trained = load_autoencoder(latent_checkpoint), load_autoencoder(autoencoder)
    assert all(torch.equal(a, b) for a, b in zip(embedded.state_dict().values(), trained.state_dict().values()))
    model = sciffusion.load(latent_checkpoint)  # the autoencoder file is gone: only the embedded copy is left
    clips = model.sample(2, steps=2, guidance=2.0, cond={"label": [3, 7]}, verbose=False, progress=False)
    assert [c.label for c in clips] == [3, 7] and all(c.log_spec.shape == (80, 63) for c in clips)
    assert all(np.isfinite(c.log_spec).all() for c in clips)
    assert clips[0].waveform.shape == (16000,)


def test_spectrogram_error_is_in_db_floored_80_db_below_the_real_clip():
    from types import SimpleNamespace

    from sciffusion_domains.latent.evaluate import audio_db

    identity = SimpleNamespace(normalizer=SimpleNamespace(decode=lambda x: x))  # natural-log magnitudes as they are
    nats_per_db = math.log(10) / 20
    real = torch.zeros(1, 1, 2, 3)
    real[0, 0, 0, 0] = 10 * nats_per_db  # the loudest bin: 10 dB, so the floor is -70 dB
    quiet = real - 100 * nats_per_db  # 100 dB quieter everywhere
    torch.testing.assert_close(audio_db(identity, real, real)[0, 0], torch.tensor([10.0, 0.0, 0.0]))
    torch.testing.assert_close(audio_db(identity, quiet, real), torch.full((1, 2, 3), -70.0))


def test_autoencoder_evaluation_on_spectrograms(autoencoder):
    from sciffusion_domains.latent.evaluate import TOP_DB, evaluate

    out = evaluate(str(autoencoder), split="test")
    assert out["domain"] == "audio" and out["clips"] == 10 and out["latent_shape"] == [4, 20, 16]
    assert out["compression"] == pytest.approx(80 * 63 / 1280)
    assert out["accuracy_real"] >= 0.5 and 0 <= out["accuracy_reconstructed"] <= 1
    # PSNR takes the kept 80 dB range as the peak: psnr = 20 log10(80 / rms error) when all clips err alike
    assert out["rmse_db"] > 0 and out["psnr_db_of_mean_mse"] <= 20 * math.log10(TOP_DB / out["rmse_db"]) + 1e-6

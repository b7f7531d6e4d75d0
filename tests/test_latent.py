"""The autoencoder of latent diffusion: shapes, exact KL, its loss, and training as a task of the usual
Trainer and sciffusion-train (resumable, its checkpoint read back by load_autoencoder)."""
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import sciffusion.cli  # noqa: F401  (registers the schemas and the domain search path)
from sciffusion.cli.train import run
from sciffusion.latent import (AutoencoderLoss, KLAutoencoder, autoencoder_from_state, autoencoder_state,
                               autoencoder_task, kl_divergence, load_autoencoder)
from sciffusion.space import DenseSpace
from sciffusion.training import CheckpointError, load_checkpoint

TINY = ["experiment=mnist_latent_autoencoder", "domain.dataset=sklearn_digits", "network.channels=[8,16]",
        "network.latent_channels=2", "train.batch_size=16", "train.warmup=0", "train.log_every=1",
        "train.save_every=2", "train.tensorboard=false", "train.lr_schedule=constant"]


def compose_train(overrides: list[str]):
    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        return compose("train", overrides=overrides)


@pytest.mark.parametrize("size, latent", [((28, 28), (4, 7, 7)), ((9, 7), (4, 3, 2))])
def test_shapes_padding_and_state_round_trip(size, latent):
    torch.manual_seed(0)
    ae = KLAutoencoder(1, latent_channels=4, channels=[8, 8, 16])
    x = torch.rand(2, 1, *size) * 2 - 1
    mean, logvar = ae.encode(x)
    assert mean.shape == logvar.shape == (2, *latent) == (2, *ae.latent_shape((1, *size)))
    x_hat, _, _ = ae(x, generator=torch.Generator().manual_seed(0))
    assert x_hat.shape == x.shape
    again = autoencoder_from_state(autoencoder_state(ae))
    torch.testing.assert_close(again.decode(mean, size=size), ae.decode(mean, size=size))
    assert not any(p.requires_grad for p in again.parameters())


def test_kl_is_the_exact_gaussian_kl():
    g = torch.Generator().manual_seed(1)
    mean, logvar = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64), torch.randn(3, 2, 4, 4, generator=g,
                                                                                             dtype=torch.float64)
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    torch.testing.assert_close(kl_divergence(mean, logvar), torch.distributions.kl_divergence(q, p).flatten(1).sum(1))


def test_loss_is_reconstruction_plus_weighted_kl_and_features():
    torch.manual_seed(0)
    ae = KLAutoencoder(1, latent_channels=2, channels=[8, 8])
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    features = lambda v: v.flatten(1)[:, :10] * 3  # noqa: E731
    loss = AutoencoderLoss(reconstruction="l2", kl_weight=0.1, feature_weight=0.5, features=features,
                           sample_posterior=False)
    value = loss(ae, x, space=DenseSpace(), cond={}, t=loss.sample_time(4), generator=None)
    x_hat, mean, logvar = ae(x, sample_posterior=False)
    expected = (((x_hat - x) ** 2).flatten(1).mean(1) + 0.1 * kl_divergence(mean, logvar) / 64
                + 0.5 * ((features(x_hat) - features(x)) ** 2).mean(1))
    torch.testing.assert_close(value, expected)
    assert set(loss.last_terms) == {"reconstruction", "kl", "features"}


def test_clear_errors():
    ae = KLAutoencoder(1, channels=[8, 8])
    with pytest.raises(ValueError, match=r"samples of shape \(1, H, W\), got \(3, 8, 8\).*in_channels"):
        ae.encode(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="feature_weight=1.0 needs loss.features"):
        AutoencoderLoss(feature_weight=1.0)
    with pytest.raises(ValueError, match="reconstruction 'l3'"):
        AutoencoderLoss(reconstruction="l3")
    with pytest.raises(TypeError, match="trains a KLAutoencoder, got a Linear"):
        autoencoder_task(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="KLAutoencoder, got a Linear"):
        AutoencoderLoss()(torch.nn.Linear(2, 2), torch.zeros(2, 1, 8, 8), space=DenseSpace())


def test_trains_with_the_app_resumes_and_loads(tmp_path: Path):
    """Three steps then three more in the same run folder give the weights of six uninterrupted steps;
    the loss falls; load_autoencoder reads the checkpoint and refuses a diffusion checkpoint."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    record = run(compose_train(TINY + ["train.steps=6"]), straight)
    run(compose_train(TINY + ["train.steps=3"]), split)
    run(compose_train(TINY + ["train.steps=6"]), split)
    a, b = load_checkpoint(straight / "checkpoints/last.ckpt"), load_checkpoint(split / "checkpoints/last.ckpt")
    assert a["step"] == b["step"] == 6
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=0)
    losses = [json.loads(line)["loss"] for line in (straight / "metrics.jsonl").read_text().splitlines()
              if '"loss"' in line]
    assert len(losses) == 6 and record["loss"] == losses[-1] < 0.9 * losses[0]
    ae = load_autoencoder(straight / "checkpoints/last.ckpt")
    assert isinstance(ae, KLAutoencoder) and ae.options["channels"] == [8, 16]
    assert ae.latent_shape((1, 8, 8)) == (2, 4, 4)

    toy = compose_train(["domain=toy", "train.steps=1", "train.tensorboard=false"])
    run(toy, tmp_path / "toy")
    with pytest.raises(CheckpointError, match="not an autoencoder checkpoint.*experiment=mnist_latent_autoencoder"):
        load_autoencoder(tmp_path / "toy/checkpoints/last.ckpt")


def test_experiment_composes_with_the_images_domain_alone():
    cfg = OmegaConf.to_container(compose_train(["experiment=mnist_latent_autoencoder"]), resolve=True)
    assert set(cfg["network"]) == {"_target_", "in_channels", "latent_channels", "channels", "num_res_blocks"}
    assert cfg["domain"]["name"] == "images" and cfg["loss"]["_target_"] == "sciffusion.latent.AutoencoderLoss"


def test_feature_loss_through_a_domain_classifier():
    """The images domain's shipped classifier as phi: frozen, yet its features pass gradients to x_hat."""
    from sciffusion_domains.latent.features import ClassifierFeatures

    torch.manual_seed(0)
    phi = ClassifierFeatures("sklearn_digits")
    ae = KLAutoencoder(1, latent_channels=2, channels=[8, 8])
    loss = AutoencoderLoss(feature_weight=1.0, features=phi)
    value = loss(ae, torch.rand(3, 1, 8, 8) * 2 - 1, space=DenseSpace(), generator=torch.Generator().manual_seed(0))
    value.sum().backward()
    assert loss.last_terms["features"] > 0 and ae.decoder[-1].weight.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in phi.model().parameters())
    assert sum(p.numel() for p in ae.parameters()) == sum(v.numel() for v in ae.state_dict().values())

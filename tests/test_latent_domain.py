"""The latent domain: a dense domain seen through a trained autoencoder. Its latents are scaled to unit
variance by the encoded training data, decode to the base domain's objects, and a diffusion checkpoint
trained on them embeds the autoencoder: sciffusion.load and sciffusion-sample need nothing else, with
any sampler and with classifier-free guidance."""
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import sciffusion
import sciffusion.cli  # noqa: F401  (registers the schemas and the domain search path)
from sciffusion.cli.sample import draw, write
from sciffusion.cli.train import run
from sciffusion.latent import KLAutoencoder
from sciffusion.latent.autoencoder import TARGET
from sciffusion.losses import flow_matching_loss
from sciffusion.parameterization import ModelDenoiser
from sciffusion.registry import make_domain
from sciffusion.space import DenseSpace
from sciffusion.training import save_checkpoint
from sciffusion_domains.images.domain import DecodedImage

BASE = {"name": "images", "dataset": "sklearn_digits", "conditional": True}


def compose_train(overrides: list[str]):
    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        return compose("train", overrides=overrides)


@pytest.fixture(scope="module")
def autoencoder(tmp_path_factory) -> Path:
    """Two steps of the autoencoder app on the 8x8 digits: 2x4x4 latents."""
    folder = tmp_path_factory.mktemp("ae")
    run(compose_train(["experiment=mnist_latent_autoencoder", "domain.dataset=sklearn_digits",
                       "network.channels=[8,16]", "network.latent_channels=2", "train.steps=2", "train.batch_size=16",
                       "train.warmup=0", "train.tensorboard=false"]), folder)
    return folder / "checkpoints/last.ckpt"


@pytest.fixture(scope="module")
def latent_checkpoint(autoencoder, tmp_path_factory) -> Path:
    """Three steps of experiment=mnist_latent_dit (a small DiT) on those latents; the autoencoder file is
    then moved away, so that sampling can only use the copy embedded in the checkpoint."""
    folder = tmp_path_factory.mktemp("latent")
    own = folder / "ae.ckpt"
    shutil.copy(autoencoder, own)
    run(compose_train(["experiment=mnist_latent_dit", "domain.base.dataset=sklearn_digits", f"domain.autoencoder={own}",
                       "network.dit.width=32", "network.dit.depth=1", "train.steps=3", "train.batch_size=16",
                       "train.warmup=0", "train.tensorboard=false", "sampling.steps=4", "loss.cond_dropout=0.2"]),
        folder / "run")
    own.unlink()
    return folder / "run/checkpoints/last.ckpt"


def test_latents_are_scaled_to_unit_variance_and_decode_to_images(autoencoder):
    domain = make_domain("latent", base=BASE, autoencoder=str(autoencoder))
    assert domain.shape == (2, 4, 4) and domain.num_classes == 10 and domain.conditional
    unconditional = make_domain("latent", base={**BASE, "conditional": False}, autoencoder=str(autoencoder))
    assert not unconditional.conditional and unconditional.num_classes == 0 and unconditional.condition(2) == {}
    train = domain.dataset("train")
    batch = domain.collate([train[i] for i in range(5)])
    assert batch.x.shape == (5, 2, 4, 4) and batch.cond["label"].shape == (5,)
    assert float(train.latents.std()) == pytest.approx(1.0, rel=1e-5)
    images = domain.base.collate([domain.base.dataset("train")[i] for i in range(5)])
    torch.testing.assert_close(batch.x, domain.encode(images.x) * domain.scale_factor)
    decoded = domain.decode(batch.x, batch.space, batch.cond)
    assert [type(o) for o in decoded] == [DecodedImage] * 5
    assert decoded[0].pixels.shape == (8, 8, 1) and [o.label for o in decoded] == batch.cond["label"].tolist()
    assert domain.condition(3, label=7)["label"].tolist() == [7, 7, 7]
    with pytest.raises(ValueError, match="cond.colour"):
        domain.condition(2, colour=1)


def test_state_round_trip_needs_no_autoencoder_file(autoencoder):
    domain = make_domain("latent", base=BASE, autoencoder=str(autoencoder))
    state = domain.state_dict()
    restored = make_domain("latent", base=BASE, autoencoder=None)
    restored.load_state_dict(state)
    z = torch.randn(2, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(restored.decode_latents(z), domain.decode_latents(z))
    assert restored.scale_factor == domain.scale_factor and restored.shape == (2, 4, 4)


def test_every_loss_runs_on_latents(autoencoder):
    """The core's losses see a plain dense batch: here flow matching with a UNet on the latents."""
    domain = make_domain("latent", base=BASE, autoencoder=str(autoencoder))
    batch = domain.collate([domain.dataset("train")[i] for i in range(4)])
    loss = flow_matching_loss()
    net = domain.network(kind="unet", unet={"channels": 8, "channel_mult": [1], "attention_levels": [],
                                            "head_channels": 8})
    value = loss(ModelDenoiser(net, loss.process, "velocity"), batch.x, space=batch.space, cond=batch.cond,
                 generator=torch.Generator().manual_seed(0))
    assert value.shape == (4,) and torch.isfinite(value).all()


def test_clear_errors(autoencoder, tmp_path):
    with pytest.raises(ValueError, match="needs domain.autoencoder=PATH"):
        _ = make_domain("latent", base=BASE).shape
    with pytest.raises(ValueError, match="domain.base must name"):
        make_domain("latent", base={"dataset": "mnist5k"})
    wrong = KLAutoencoder(3, latent_channels=2, channels=[8, 16])
    network = {"_target_": TARGET, **wrong.options}
    save_checkpoint({"step": 0, "config": {"network": network}, "model": wrong.state_dict(),
                     "ema": {"module": wrong.state_dict()}}, tmp_path / "rgb.ckpt")
    with pytest.raises(ValueError, match=r"does not fit domain.base.*\(3, H, W\), got \(1, 8, 8\)"):
        _ = make_domain("latent", base=BASE, autoencoder=str(tmp_path / "rgb.ckpt")).shape
    with pytest.raises(ValueError, match="lacks"):
        make_domain("latent", base=BASE).load_state_dict({"base": {}})
    trained = make_domain("latent", base=BASE, autoencoder=str(autoencoder))
    state = trained.state_dict()
    state["autoencoder"]["weights"] = {k: v + 1 for k, v in state["autoencoder"]["weights"].items()}
    with pytest.raises(ValueError, match="differs from the one embedded in the checkpoint"):
        trained.load_state_dict(state)


@pytest.mark.parametrize("sampler", ["heun", "ddim"])
def test_load_and_sample_with_cfg_from_the_checkpoint_alone(latent_checkpoint, sampler):
    model = sciffusion.load(latent_checkpoint)
    samples = model.sample(6, sampler=sampler, steps=4, guidance=2.0, cond={"label": [3, 5]}, verbose=False,
                           progress=False)
    assert [o.label for o in samples] == [3, 5, 3, 5, 3, 5]
    assert all(isinstance(o, DecodedImage) and o.pixels.shape == (8, 8, 1) for o in samples)
    latents = [model.draw(2, model.settings(sampler=sampler, steps=4, guidance=g), cond={"label": [3, 5]},
                          progress=False)[0].x for g in (2.0, "none")]
    assert latents[0].shape == (2, 2, 4, 4) and not torch.equal(*latents)  # the guidance acts (weakly: 3 steps)


def test_save_pretrained_and_the_sample_app(latent_checkpoint, tmp_path):
    model = sciffusion.load(latent_checkpoint)
    folder = model.save_pretrained(tmp_path / "model")
    again = sciffusion.load(folder)
    first, second = (m.sample(2, steps=3, verbose=False, progress=False) for m in (model, again))
    assert all((a.pixels == b.pixels).all() for a, b in zip(first, second))
    out = tmp_path / "samples"  # the sample app's steps, in this process: composed options, draw, write
    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        cfg = compose("sample", overrides=[f"checkpoint={latent_checkpoint}", "num_samples=4", "steps=3", "guidance=cfg",
                                           "guidance.scale=1.5", "cond.label=2", f"out_dir={out}", "progress=false"])
    opts = OmegaConf.to_container(cfg, resolve=True)
    write(*draw(opts), out)
    assert sorted(p.name for p in out.glob("*.png")) == ["figure.png"] + [f"sample_0000{i}_2.png" for i in range(4)]


def test_autoencoder_evaluation(autoencoder):
    from sciffusion_domains.latent.evaluate import evaluate, psnr

    one_level = psnr(torch.zeros(2, 1, 8, 8), torch.ones(2, 1, 8, 8))
    expected = 20 * torch.log10(torch.tensor(255.0, dtype=torch.float64))  # one grey level of error everywhere
    torch.testing.assert_close(one_level, expected.expand(2))
    out = evaluate(str(autoencoder), dataset="sklearn_digits")
    assert out["latent_shape"] == [2, 4, 4] and out["compression"] == 2.0 and out["images"] > 100
    assert 0 <= out["accuracy_reconstructed"] <= 1 and out["accuracy_real"] > 0.9 and out["psnr_db"] > 0


def test_inpainting_through_the_decoder_from_python(latent_checkpoint):
    """A data-space observation (the top half of a digit) guides the latent model through the decoder."""
    model = sciffusion.load(latent_checkpoint)
    domain = model.domain
    digit = domain.base.collate([domain.base.dataset("test")[0]]).x
    observe = lambda x: x[..., :4, :]  # noqa: E731

    def make(d):
        return domain.posterior_guidance(d, model.process, observe=observe, y=observe(digit), noise_std=0.1,
                                         unconditional=True)

    samples = model.sample(3, steps=4, guidance=make, verbose=False, progress=False)
    assert [o.pixels.shape for o in samples] == [(8, 8, 1)] * 3
    guided = make(model.denoiser)
    # operator, y and noise scaled by 1 / sqrt(gram), the measured mean eigenvalue of M M^T
    assert guided.noise_std == pytest.approx(0.1 * guided.observe.gain) and guided.observe.gain != 1


def test_domain_contract(autoencoder, tmp_path):
    from sciffusion.testing import assert_domain_contract

    domain = make_domain("latent", base=BASE, autoencoder=str(autoencoder))
    assert_domain_contract(domain, tmp_path, fresh=lambda: make_domain("latent", base=BASE))


def test_the_base_domains_inverse_problems_through_the_decoder(latent_checkpoint, tmp_path):
    """guidance=decoded_inpaint / decoded_superres: the images domain's problems, guided through the decoder;
    the images domain's own guidance=inpaint is refused on a latent checkpoint, naming the latent ones."""
    from sciffusion_domains.images import data as image_data

    model = sciffusion.load(latent_checkpoint)
    digit = tmp_path / "digit.png"
    image_data.save_png(model.domain.base.collate([model.domain.base.dataset("test")[0]]).x[0], digit)
    for problem, extra in (("inpaint", {}), ("superres", {"method": "dps", "zeta": 0.5})):
        guidance = {"_target_": "sciffusion_domains.latent.inverse.decoded", "_partial_": True,
                    "problem": f"sciffusion_domains.images.inverse.{problem}", "input": str(digit), **extra}
        samples = model.sample(2, steps=3, guidance=guidance, verbose=False, progress=False)
        assert [o.pixels.shape for o in samples] == [(8, 8, 1)] * 2
    pixel = {"_target_": "sciffusion_domains.images.inverse.inpaint", "_partial_": True, "input": str(digit)}
    with pytest.raises(ValueError, match="made for the domain.*images.*guidance=decoded_inpaint"):
        model.sample(2, steps=3, guidance=pixel, verbose=False, progress=False)
    bad = {"_target_": "sciffusion_domains.latent.inverse.decoded", "_partial_": True,
           "problem": "sciffusion_domains.images.inverse.inpaint", "input": str(digit), "method": "replace"}
    with pytest.raises(ValueError, match="method=replace"):
        model.sample(2, steps=3, guidance=bad, verbose=False, progress=False)
    with pytest.raises(ValueError, match="guidance.maks: not an option of"):
        model.sample(2, steps=3, guidance={**bad, "method": "dps", "maks": "box"}, verbose=False, progress=False)

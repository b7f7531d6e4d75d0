"""The images domain plugin: batches, conditions, networks, decoded files and figures, metrics that
separate real digits from noise, and a tiny train / sample with CFG / evaluate through the CLI."""
import json

import numpy as np
import pytest
import torch

pytest.importorskip("PIL")

from sciffusion import registry  # noqa: E402
from sciffusion.testing import run_app  # noqa: E402
from sciffusion_domains.images import data  # noqa: E402
from sciffusion_domains.images.domain import DecodedImage, ImagesDomain, stack  # noqa: E402
from sciffusion_domains.images.networks import DiT, UNet  # noqa: E402



@pytest.fixture(scope="module")
def digits() -> ImagesDomain:
    return ImagesDomain(dataset="sklearn_digits", conditional=True)


def test_registered_under_images():
    assert registry.load_class("images") is ImagesDomain
    assert (ImagesDomain.config_dir() / "domain" / "mnist.yaml").is_file()


def test_batches_are_images_in_symmetric_range_with_labels(digits):
    data_ = digits.dataset("train")
    batch = digits.collate([data_[i] for i in range(12)])
    assert batch.x.shape == (12, 1, 8, 8) and batch.x.dtype == torch.float32
    assert batch.x.min() >= -1 and batch.x.max() <= 1
    true_labels = torch.tensor([data_[i][1] for i in range(12)])
    assert torch.equal(batch.cond["label"], true_labels) and batch.cond["label"].dtype == torch.long
    assert not ImagesDomain(dataset="sklearn_digits").collate([data_[0]]).cond
    assert digits.shape == (1, 8, 8) and digits.num_classes == 10


def test_mnist5k_is_the_default_dataset():
    domain = ImagesDomain()
    assert domain.shape == (1, 28, 28) and len(domain.dataset("test")) == 500


def test_conditions_balanced_fixed_listed_or_unconditional(digits):
    assert digits.condition(12)["label"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert digits.condition(3, label=7)["label"].tolist() == [7, 7, 7]
    assert digits.condition(5, label=[1, 2])["label"].tolist() == [1, 2, 1, 2, 1]
    assert digits.condition(4, unconditional=True) == {}
    with pytest.raises(ValueError, match="0..9"):
        digits.condition(2, label=10)
    with pytest.raises(ValueError, match="unconditional"):
        ImagesDomain(dataset="sklearn_digits").condition(2, label=3)


def test_decode_names_the_requested_labels(digits):
    cond = digits.condition(4, label=3)
    x, space = digits.template(4, cond=cond)
    assert x.shape == (4, 1, 8, 8)
    objects = digits.decode(torch.rand(4, 1, 8, 8) * 2 - 1, space, cond)
    assert all(isinstance(o, DecodedImage) and o.label == 3 for o in objects)
    assert objects[0].pixels.dtype == np.uint8 and objects[0].pixels.shape == (8, 8, 1)
    assert objects[0].to_pil().size == (8, 8)
    assert digits.decode(x, space)[0].label is None  # no conditions: unconditional samples


def test_networks_take_the_classes_of_a_conditional_domain(digits):
    unet = digits.network(kind="unet", unet={"channels": 16, "channel_mult": [1, 2], "attention_levels": [1],
                                             "head_channels": 16})
    dit = digits.network(kind="dit", dit={"width": 32, "depth": 1, "num_heads": 2})
    assert isinstance(unet, UNet) and isinstance(dit, DiT)
    x, cond = torch.randn(3, 1, 8, 8), {"label": torch.tensor([0, 4, 9])}
    for net in (unet, dit):
        assert net(x, torch.rand(3), None, cond).shape == x.shape
    with pytest.raises(ValueError, match="set by the domain"):
        digits.network(kind="unet", unet={"num_classes": 3})
    with pytest.raises(ValueError, match="unknown image network"):
        digits.network(kind="mlp")


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="unknown image dataset"):
        ImagesDomain(dataset="cifar")
    with pytest.raises(ValueError, match="root"):
        ImagesDomain(dataset="folder")


def test_folder_dataset_any_size_and_channels(tmp_path):
    for label in ("cat", "dog"):
        for i in range(5):
            data.save_png(torch.rand(3, 6, 10) * 2 - 1, tmp_path / label / f"{i}.png")
    domain = ImagesDomain(dataset="folder", root=str(tmp_path), conditional=True)
    assert domain.shape == (3, 6, 10) and domain.class_names == ("cat", "dog")
    net = domain.network(unet={"channels": 8, "channel_mult": [1, 2], "attention_levels": [], "head_channels": 8})
    x, space = domain.template(2, cond=domain.condition(2))
    assert net(x, torch.rand(2), space, domain.condition(2)).shape == (2, 3, 6, 10)
    with pytest.warns(UserWarning, match="no metrics classifier"):
        assert domain.metrics(domain.reference("all"), domain.reference("all")) == {}


def test_save_writes_one_png_per_sample_named_by_label_and_a_figure(digits, tmp_path):
    objects = digits.reference("test", limit=20)
    files = digits.save(objects, tmp_path / "out")
    assert len(files) == 20 and all(f.is_file() for f in files)
    assert files[0].name == f"sample_00000_{objects[0].label}.png"
    np.testing.assert_array_equal(data.to_uint8(data.read_png(files[3])), objects[3].pixels)
    figure = digits.figure(objects, tmp_path / "out" / "figure.png")
    assert figure.stat().st_size > 1000
    data.save_png(objects[0].tensor(), tmp_path / "inv" / "observation.png")  # an inverse problem's input
    unlabelled = [DecodedImage(o.pixels) for o in objects]
    assert digits.figure(unlabelled, tmp_path / "inv" / "figure.png").stat().st_size > 1000


def test_metrics_separate_real_digits_from_noise(digits):
    reference = digits.reference("test")
    real = digits.reference("val")
    g = torch.Generator().manual_seed(0)
    noise_images = torch.rand(len(real), 1, 8, 8, generator=g) * 2 - 1
    noise = [DecodedImage(data.to_uint8(img), o.label) for img, o in zip(noise_images, real)]
    on_real, on_noise = digits.metrics(real, reference), digits.metrics(noise, reference)
    assert set(on_real) == {"fd", "precision", "recall", "inception_score", "class_accuracy"}
    assert on_real["fd"] * 10 < on_noise["fd"]
    assert on_real["class_accuracy"] > 0.85 and on_noise["class_accuracy"] < 0.4
    assert on_real["precision"] > 0.8 and on_real["precision"] > on_noise["precision"] + 0.3
    assert torch.allclose(stack(real), digits.dataset("val").tensors()[0], atol=1 / 127.5)  # uint8 rounding


run = run_app


def test_train_sample_with_cfg_and_evaluate_through_the_cli(tmp_path):
    run("train", "experiment=digits8_tiny", "train.steps=20", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2
    run("sample", f"checkpoint={ckpt}", "num_samples=6", "steps=4", "guidance=cfg", "guidance.scale=2.0",
        "cond.label=3", f"out_dir={tmp_path / 'cfg'}", cwd=tmp_path)
    names = sorted(p.name for p in (tmp_path / "cfg").glob("sample_*.png"))
    assert names == [f"sample_0000{i}_3.png" for i in range(6)] and (tmp_path / "cfg" / "figure.png").is_file()
    run("evaluate", f"checkpoint={ckpt}", "num_samples=20", "steps=4", "reference_limit=100",
        f"out_dir={tmp_path / 'eval'}", cwd=tmp_path)
    result = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert result["num_samples"] == 20
    assert {"fd", "precision", "recall", "inception_score", "class_accuracy"} <= set(result["metrics"])
    assert all(np.isfinite(v) for v in result["metrics"].values())


def test_keeps_the_domain_contract(digits, tmp_path):
    from sciffusion.testing import assert_domain_contract

    assert_domain_contract(digits, tmp_path, fresh=lambda: ImagesDomain(dataset="sklearn_digits", conditional=True))

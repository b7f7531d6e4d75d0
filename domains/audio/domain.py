"""The audio domain: class-conditional log-mel spectrograms of spoken digits (or any folder of
recordings), decoded to playable WAV by Griffin-Lim and judged by a classifier trained on real clips.

State: ``x [B, 1, n_bins, frames]``, the log spectrogram standardised per frequency bin with
training-set statistics (``state_dict`` carries them and the STFT settings into checkpoints).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, TensorDataset

from sciffusion.domain import Batch, Domain
from sciffusion.parameterization import Cond
from sciffusion.plotting import save_figure
from sciffusion.space import DenseSpace, Space

from .data import DIGITS, SpokenDigitsConfig, load_audio_folder, load_spoken_digits
from .spectrogram import Normalizer, SpectrogramConfig

SPLITS = ("train", "val", "test")


@dataclass
class AudioSample:
    """One decoded sample: its log spectrogram and label; the waveform is inverted on first use
    (Griffin-Lim costs about half a second a clip, and metrics never need it)."""

    log_spec: np.ndarray  # [n_bins, frames], natural-log magnitudes
    config: SpectrogramConfig
    samples: int
    label: int | None = None
    seed: int = 0
    _waveform: np.ndarray | None = field(default=None, repr=False)

    @property
    def waveform(self) -> np.ndarray:
        if self._waveform is None:
            self._waveform = self.config.waveform(self.log_spec, length=self.samples, seed=self.seed)
        return self._waveform


class AudioDomain(Domain):
    """Spoken digits rendered by espeak-ng (``dataset=spoken_digits``, SC09-like, split by voice) or
    a folder of WAV/FLAC files with one sub-folder per class (``dataset=folder root=...``)."""

    name = "audio"
    extra = "audio"

    def __init__(self, *, dataset: str = "spoken_digits", root: str | None = None, conditional: bool = True,
                 sample_rate: int = 16000, seconds: float = 1.0, n_fft: int = 512, hop_length: int = 256,
                 n_mels: int = 80, griffin_lim_iters: int = 64, classifier: str | None = None,
                 split_seed: int = 0, digits: dict[str, Any] | None = None, cache: str | None = None):
        if dataset not in ("spoken_digits", "folder"):
            raise ValueError(f"unknown audio dataset {dataset!r}; choose 'spoken_digits' or 'folder' (with root=)")
        if dataset == "folder" and root is None:
            raise ValueError("dataset=folder needs root=/path/to/audio with one sub-folder per class")
        self.dataset_name, self.root, self.conditional = dataset, root, conditional
        self.seconds, self.split_seed, self.cache = seconds, split_seed, cache
        self.spec = SpectrogramConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                                      griffin_lim_iters=griffin_lim_iters)
        self.digits = replace(SpokenDigitsConfig(sample_rate=sample_rate, seconds=seconds),
                              **{k: tuple(v) if isinstance(v, list) else v for k, v in (digits or {}).items()})
        self.classifier_path = classifier
        self.normalizer: Normalizer | None = None
        self._splits: dict[str, TensorDataset] | None = None
        self.class_names: tuple[str, ...] = DIGITS

    # data ------------------------------------------------------------------------------------------
    @property
    def samples(self) -> int:
        return int(round(self.spec.sample_rate * self.seconds))

    def _clips(self) -> tuple[Tensor, Tensor, Tensor]:
        """All clips [N, samples], labels [N] and split ids [N] (0 train, 1 val, 2 test)."""
        if self.dataset_name == "spoken_digits":
            data = load_spoken_digits(self.digits, cache=None if self.cache is None else Path(self.cache))
            return data["audio"], data["label"], data["split"]
        audio, labels, classes, _ = load_audio_folder(self.root, sample_rate=self.spec.sample_rate, seconds=self.seconds)
        self.class_names = tuple(classes)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.split_seed))
        split = torch.zeros(len(labels), dtype=torch.long)
        n_val = n_test = max(1, len(labels) // 10)
        split[order[:n_val]], split[order[n_val:n_val + n_test]] = 1, 2
        return audio, labels, split

    def _load(self) -> dict[str, TensorDataset]:
        if self._splits is None:
            audio, labels, split = self._clips()
            log_specs = torch.from_numpy(self.spec.log_spectrogram(audio.numpy()))
            if self.normalizer is None:  # fitted on training clips only; a checkpoint brings its own
                self.normalizer = Normalizer.fit(log_specs[split == 0])
            x = self.normalizer.encode(log_specs)[:, None]
            self._splits = {name: TensorDataset(x[split == i], labels[split == i]) for i, name in enumerate(SPLITS)}
        return self._splits

    def waveforms(self, split: str) -> tuple[Tensor, Tensor]:
        """The clips ``[N, samples]`` and labels ``[N]`` of one split, as sound."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
        audio, labels, split_ids = self._clips()
        keep = split_ids == SPLITS.index(split)
        return audio[keep], labels[keep]

    def encode(self, waveforms: np.ndarray) -> Tensor:
        """Waveforms ``[N, samples]`` as the model's state ``[N, 1, bins, frames]`` (normalised log
        spectrograms)."""
        if self.normalizer is None:
            self._load()
        return self.normalizer.encode(torch.from_numpy(self.spec.log_spectrogram(np.asarray(waveforms))))[:, None]

    def dataset(self, split: str) -> Dataset:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
        return self._load()[split]

    def collate(self, items: Sequence[tuple[Tensor, Tensor]]) -> Batch:
        x = torch.stack([item[0] for item in items])
        labels = torch.stack([torch.as_tensor(item[1]) for item in items]).long()
        return Batch(x, DenseSpace(), {"label": labels} if self.conditional else {})

    # checkpoint state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """What decoding needs besides the network: the spectrogram settings and the normaliser."""
        if self.normalizer is None:  # restored from a checkpoint: no need to open the data
            self._load()
        return {"spectrogram": self.spec.to_dict(), "normalizer": self.normalizer.state_dict(),
                "class_names": list(self.class_names)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # the representation must match; how hard Griffin-Lim works at decoding may differ
        saved = replace(SpectrogramConfig(**state["spectrogram"]), griffin_lim_iters=self.spec.griffin_lim_iters)
        if saved != self.spec:
            raise ValueError(f"the checkpoint was trained on spectrograms {saved} but this domain is configured "
                             f"with {self.spec}; use the checkpoint's settings")
        self.normalizer = Normalizer.from_state_dict(state["normalizer"])
        self.class_names = tuple(state["class_names"])
        self._splits = None

    # model and sampling ----------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def network(self, **options: Any):
        from sciffusion_domains.dense.networks import UNet

        return UNet(1, num_classes=self.num_classes if self.conditional else 0, **options)

    def condition(self, num_samples: int, *, generator: torch.Generator | None = None,
                  label: int | str | Sequence[int | str] | None = None, unconditional: bool = False) -> Cond:
        """``{"label": [B]}``: every sample ``label`` (an index or a class name such as "seven"), a
        list of them repeated in turn (``cond.label=[0,1,2]``), or random classes.
        ``unconditional=True`` asks a conditional model for unconditional samples (the null class),
        as gap filling and continuation do by default."""
        if unconditional:
            if label is not None:
                raise ValueError(f"cond.label={label} given but unconditional=true was requested; drop one of them")
            return {}
        if not self.conditional:
            return super().condition(num_samples, generator=generator, **({} if label is None else {"label": label}))
        if label is None:
            return {"label": torch.randint(0, self.num_classes, (num_samples,), generator=generator)}
        wanted = [self._class_index(one) for one in (label if isinstance(label, (list, tuple)) else [label])]
        if not wanted:
            raise ValueError("cond.label=[] names no class; give one or more classes, or leave it unset")
        return {"label": torch.tensor(wanted * (num_samples // len(wanted) + 1))[:num_samples]}

    def _class_index(self, label: int | str) -> int:
        if isinstance(label, str):
            if label not in self.class_names:
                raise ValueError(f"unknown class {label!r}; choose one of {self.class_names}")
            return self.class_names.index(label)
        if not 0 <= int(label) < self.num_classes:
            raise ValueError(f"label must be in 0..{self.num_classes - 1} or a class name, got {label}")
        return int(label)

    def template(self, num_samples: int, *, generator: torch.Generator | None = None,
                 cond: Cond | None = None) -> tuple[Tensor, Space]:
        return torch.zeros(num_samples, 1, self.spec.n_bins, self.spec.frames(self.samples)), DenseSpace()

    def decode(self, x: Tensor, space: Space, cond: Cond | None = None) -> list[AudioSample]:
        if self.normalizer is None:
            self._load()
        log_specs = self.normalizer.decode(x.detach().float().cpu()[:, 0]).numpy()
        labels = (cond or {}).get("label")
        return [AudioSample(spec, self.spec, self.samples, None if labels is None else int(labels[i]), seed=i)
                for i, spec in enumerate(log_specs)]

    def save(self, objects: Sequence[AudioSample], out_dir: Path) -> list[Path]:
        import soundfile

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        files = []
        for i, sample in enumerate(objects):
            tag = "" if sample.label is None else f"_{self.class_names[sample.label]}"
            path = out_dir / f"sample_{i:04d}{tag}.wav"
            soundfile.write(path, sample.waveform, self.spec.sample_rate, subtype="PCM_16")
            files.append(path)
        return files

    def figure(self, objects: Sequence[AudioSample], path: Path, *, max_panels: int = 16) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        shown = list(objects)[:max_panels]
        cols = min(4, len(shown))
        rows = -(-len(shown) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.4 * rows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, sample in zip(axes.flat, shown):
            ax.imshow(sample.log_spec, origin="lower", aspect="auto", cmap="magma")
            ax.set_title("unconditional" if sample.label is None else f"'{self.class_names[sample.label]}'", fontsize=9)
        kind = f"{self.spec.n_mels}-band log-mel" if self.spec.n_mels > 0 else "log STFT"
        fig.suptitle(f"{kind} spectrograms (time across, frequency up)", fontsize=10)
        fig.tight_layout()
        return save_figure(fig, path, dpi=90)

    def reference(self, split: str = "test", limit: int | None = None) -> list[AudioSample]:
        data = self.dataset(split)
        n = len(data) if limit is None else min(limit, len(data))
        x, labels = data.tensors[0][:n], data.tensors[1][:n]
        return self.decode(x, DenseSpace(), {"label": labels})

    # metrics ---------------------------------------------------------------------------------------
    def classifier(self):
        """The judge: the shipped spoken-digit classifier, or the one given as ``classifier=``."""
        from sciffusion_domains.dense.classifier import load_classifier

        from .classifier import shipped_classifier_path

        model = load_classifier(self.classifier_path or shipped_classifier_path(),
                                fix="train one with `python -m sciffusion_domains.audio.classifier --out FILE` "
                                    "and pass classifier=FILE")
        trained_on = model.meta.get("spectrogram")
        if trained_on is not None:  # the judge reads the model's spectrograms, so they must be alike
            trained_on = replace(SpectrogramConfig(**trained_on), griffin_lim_iters=self.spec.griffin_lim_iters)
            if trained_on != self.spec:
                raise ValueError(f"the metrics classifier was trained on spectrograms {trained_on}, not this domain's "
                                 f"{self.spec}; train one for these settings (python -m "
                                 "sciffusion_domains.audio.classifier --out FILE, with the same domain options) "
                                 "and pass classifier=FILE")
        return model

    def metrics(self, samples: Sequence[AudioSample], reference: Sequence[AudioSample]) -> dict[str, float]:
        """Frechet distance, precision/recall and inception-style score in the classifier's feature
        space, and the fraction recognised as the requested digit, computed on spectrograms (what
        SC09 papers compute on the classifier's input); ``inversion_ceiling`` reports what Griffin-Lim
        alone loses."""
        from sciffusion_domains.dense.metrics import classifier_metrics

        encode = lambda objs: self.normalizer.encode(torch.from_numpy(np.stack([o.log_spec for o in objs])))[:, None]
        labels = [s.label for s in samples]
        requested = torch.tensor(labels) if all(label is not None for label in labels) else None
        return classifier_metrics(encode(samples), encode(reference), classifier=self.classifier(), labels=requested)

"""Audio data: a deterministic SC09-like spoken-digit set rendered by espeak-ng, and any folder of
WAV/FLAC files with one sub-folder per class.

Clips are mono float32 waveforms of a fixed length at a fixed sample rate. The rendered set is cached
as a tensor file (read by the safe loader, ``sciffusion.training.checkpoint.safe_load``), keyed by everything that changes its content.
"""
from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import shutil
import subprocess
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from sciffusion.domain import cache_dir as sciffusion_cache_dir

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif"}


@dataclass(frozen=True)
class SpokenDigitsConfig:
    """Which voices, speeds and pitches render the set. Splits are by voice variant, as SC09 splits
    by speaker, so test clips come from voices never heard in training."""

    sample_rate: int = 16000
    seconds: float = 1.0
    accents: tuple[str, ...] = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029")
    variants: tuple[str, ...] = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
                                 "klatt", "klatt2", "klatt3", "croak", "whisper", "Andy", "Annie", "Denis",
                                 "Gene", "Jacky", "Lee", "Mario", "Michael", "Mike", "anika", "boris",
                                 "david", "edward", "grandpa", "iven", "john", "linda", "max", "michel",
                                 "norbert", "paul", "quincy", "rob", "robert", "steph", "travis", "zac")
    speeds: tuple[int, int] = (120, 200)  # words per minute, drawn uniformly per render
    pitches: tuple[int, int] = (25, 75)  # espeak-ng pitch 0-99, drawn uniformly per render
    renders_per_voice: int = 2  # (speed, pitch) draws for each accent, variant and digit
    seed: int = 0
    test_variants: tuple[str, ...] = ("f4", "klatt3", "Mike", "paul", "steph")
    val_variants: tuple[str, ...] = ("m6", "Jacky", "norbert", "f5")

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def cache_dir() -> Path:
    """``$SCIFFUSION_CACHE`` or ``~/.cache/sciffusion``."""
    return sciffusion_cache_dir()


def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("the spoken-digit set is rendered by espeak-ng, which is not installed: "
                           "run 'apt-get install espeak-ng' (Debian/Ubuntu) or 'brew install espeak-ng', "
                           "or train on your own recordings with dataset=folder root=/path/to/audio")
    return exe


def render(text: str, *, voice: str, speed: int, pitch: int, sample_rate: int, seconds: float) -> np.ndarray:
    """One espeak-ng utterance as a float32 waveform, trimmed of silence and centred in a clip of
    ``seconds`` (padded with zeros, or cut if longer)."""
    import librosa
    import soundfile

    wav = subprocess.run([_espeak(), "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
                         check=True, capture_output=True).stdout
    audio, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    audio = librosa.resample(audio, orig_sr=rate, target_sr=sample_rate)
    audio, _ = librosa.effects.trim(audio, top_db=40)
    return fit_length(audio, int(round(sample_rate * seconds)))


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Centre ``audio`` in ``length`` samples: zero padding either side, or the middle cut out."""
    if len(audio) >= length:
        start = (len(audio) - length) // 2
        return audio[start:start + length].astype(np.float32)
    left = (length - len(audio)) // 2
    return np.pad(audio, (left, length - len(audio) - left)).astype(np.float32)


def _split_of(variant: str, config: SpokenDigitsConfig) -> str:
    if variant in config.test_variants:
        return "test"
    return "val" if variant in config.val_variants else "train"


def _available_variants(config: SpokenDigitsConfig) -> list[str]:
    """Variants espeak-ng knows on this machine; a missing one would silently fall back to the default voice."""
    listing = subprocess.run([_espeak(), "--voices=variant"], check=True, capture_output=True, text=True).stdout
    known = {line.split()[4].split("/")[-1] for line in listing.splitlines()[1:] if len(line.split()) > 4}
    return [v for v in config.variants if v in known]


def build_spoken_digits(config: SpokenDigitsConfig, *, progress: bool = True) -> dict:
    """Render every digit for every accent and variant at ``renders_per_voice`` seeded (speed, pitch)
    draws, and return the tensors: audio [N, samples], label [N], split [N] (0 train, 1 val, 2 test)."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    rng = np.random.default_rng(config.seed)
    variants = _available_variants(config)
    jobs = []
    for accent, variant, digit in itertools.product(config.accents, variants, range(len(DIGITS))):
        for _ in range(config.renders_per_voice):
            speed, pitch = int(rng.integers(*config.speeds, endpoint=True)), int(rng.integers(*config.pitches, endpoint=True))
            jobs.append((f"{accent}+{variant}", variant, speed, pitch, digit))

    def run(job):
        voice, _, speed, pitch, digit = job
        return render(DIGITS[digit], voice=voice, speed=speed, pitch=pitch, sample_rate=config.sample_rate,
                      seconds=config.seconds)

    # espeak-ng runs as a subprocess, so threads keep every core busy
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        clips = list(tqdm(pool.map(run, jobs), total=len(jobs), desc="rendering spoken digits", disable=not progress))
    split_names = ("train", "val", "test")
    return {
        "audio": torch.from_numpy(np.stack(clips)),
        "label": torch.tensor([job[4] for job in jobs], dtype=torch.int64),
        "split": torch.tensor([split_names.index(_split_of(job[1], config)) for job in jobs], dtype=torch.int64),
        "sample_rate": torch.tensor(config.sample_rate),
    }


def load_spoken_digits(config: SpokenDigitsConfig = SpokenDigitsConfig(), *, cache: Path | None = None) -> dict:
    """The rendered set, from the cache when present (rendered once, about a minute on 2 cores)."""
    path = (cache or cache_dir()) / f"spoken_digits_{config.key()}.pt"
    if path.exists():
        from sciffusion.training.checkpoint import safe_load

        return safe_load(path, what="spoken-digit cache", fix=f"delete {path}; it is rendered again on the next run")
    data = build_spoken_digits(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(data, tmp)
    os.replace(tmp, path)
    return data


@dataclass
class LoadReport:
    """What a folder load did with each file: loaded ones counted, bad ones named with the reason."""

    loaded: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


#: A recording shorter than this holds no usable sound (a valid header with a few samples).
MIN_SECONDS = 0.05
#: Peak amplitude at or below which a recording counts as silent (-80 dB full scale).
SILENCE = 1e-4


def check_recording(audio: np.ndarray, sample_rate: int, *, min_seconds: float = MIN_SECONDS) -> None:
    """Raise ``ValueError`` saying why a mono recording is no training data: almost no samples, or
    silence throughout (or values that are not finite)."""
    if len(audio) < min_seconds * sample_rate:
        raise ValueError(f"only {len(audio)} samples ({1000 * len(audio) / sample_rate:.1f} ms at {sample_rate} Hz), "
                         f"less than {1000 * min_seconds:.0f} ms of audio")
    if not np.isfinite(audio).all():
        raise ValueError("holds NaN or infinite samples")
    peak = float(np.abs(audio).max())
    if peak <= SILENCE:
        raise ValueError(f"silent throughout (peak amplitude {peak:.1e}, at most {SILENCE:.0e})")


def read_clip(path: str | Path, *, sample_rate: int = 16000, seconds: float = 1.0,
              trim_db: float | None = None, check: bool = True) -> np.ndarray:
    """One audio file as a mono clip of ``seconds`` at ``sample_rate`` (resampled; optionally trimmed
    of leading and trailing silence, then centred, padded or cut by ``fit_length``). With ``check``,
    a recording with almost no samples or only silence raises (see ``check_recording``)."""
    import librosa
    import soundfile

    audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    if check:
        check_recording(audio.mean(1), rate)
    audio = librosa.resample(audio.mean(1), orig_sr=rate, target_sr=sample_rate)
    if trim_db is not None:
        audio, _ = librosa.effects.trim(audio, top_db=trim_db)
    return fit_length(audio, int(round(sample_rate * seconds)))


def load_audio_folder(root: str | Path, *, sample_rate: int = 16000, seconds: float = 1.0,
                      trim_db: float | None = 40.0) -> tuple[torch.Tensor, torch.Tensor, list[str], LoadReport]:
    """Every audio file under ``root/<class>/`` as mono clips ``[N, samples]``, labels ``[N]`` and the
    class names (sorted sub-folder names). Files are resampled, trimmed of leading and trailing
    silence (``trim_db=None`` keeps it) and centred in ``seconds``. Unreadable files, and files with
    almost no samples or only silence, are reported by name and reason in the returned report and a
    warning, as the image folder does; the rest still load."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"audio folder {root} does not exist; expected {root}/<class>/<file>.wav")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{root} has no class sub-folders; put each class's files in {root}/<class>/")
    clips, labels, report = [], [], LoadReport()
    for label, name in enumerate(classes):
        for path in sorted((root / name).rglob("*")):
            if path.suffix.lower() not in AUDIO_SUFFIXES:
                continue
            try:
                clips.append(read_clip(path, sample_rate=sample_rate, seconds=seconds, trim_db=trim_db))
            except Exception as error:  # a bad file is reported, never fatal
                report.failed.append((str(path), f"{type(error).__name__}: {error}"))
                continue
            labels.append(label)
            report.loaded += 1
    if report.failed:
        names = ", ".join(f"{p} ({why})" for p, why in report.failed[:5])
        warnings.warn(f"{len(report.failed)} audio file(s) under {root} were not loaded: {names}; see the returned "
                      "report", stacklevel=2)
    if not clips:
        raise ValueError(f"no readable audio files under {root} (suffixes {sorted(AUDIO_SUFFIXES)})")
    return torch.from_numpy(np.stack(clips)), torch.tensor(labels), classes, report


class ClipDataset(Dataset):
    """(waveform [samples], label) pairs of one split."""

    def __init__(self, audio: torch.Tensor, labels: torch.Tensor):
        if len(audio) != len(labels):
            raise ValueError(f"{len(audio)} clips but {len(labels)} labels")
        self.audio, self.labels = audio, labels

    def __len__(self) -> int:
        return len(self.audio)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.audio[i], int(self.labels[i])


def spoken_digits(split: str, config: SpokenDigitsConfig = SpokenDigitsConfig(), *, cache: Path | None = None) -> ClipDataset:
    splits = ("train", "val", "test")
    if split not in splits:
        raise ValueError(f"unknown split {split!r}; choose one of {splits}")
    data = load_spoken_digits(config, cache=cache)
    keep = data["split"] == splits.index(split)
    return ClipDataset(data["audio"][keep], data["label"][keep])

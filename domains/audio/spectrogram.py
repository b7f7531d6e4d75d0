"""Waveforms to normalised log spectrograms and back.

A clip becomes an image ``[1, n_bins, frames]``: log-mel (default) or linear-frequency STFT
magnitudes, log-compressed and standardised per frequency bin with statistics of the training set.
Those statistics and every STFT parameter live in ``SpectrogramConfig``/``Normalizer``, which a
checkpoint stores as plain values, so decoding uses exactly what training used. Decoding inverts the
mel filterbank (non-negative least squares) and recovers phase by Griffin-Lim (Griffin & Lim 1984).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class SpectrogramConfig:
    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 256  # 63 frames a second at 16 kHz: the image stays small enough to train on a CPU
    n_mels: int = 80  # 0 means a linear-frequency STFT of n_fft // 2 + 1 bins
    fmin: float = 20.0
    fmax: float | None = 8000.0
    power: float = 1.0  # magnitude (1) or power (2) spectrogram
    floor: float = 1e-5  # log(max(S, floor)): silence maps to log(floor)
    griffin_lim_iters: int = 64

    @property
    def n_bins(self) -> int:
        return self.n_mels if self.n_mels > 0 else self.n_fft // 2 + 1

    def to_dict(self) -> dict:
        return asdict(self)

    def frames(self, samples: int) -> int:
        return 1 + samples // self.hop_length  # centred STFT

    def magnitudes(self, audio: np.ndarray) -> np.ndarray:
        """STFT magnitudes ** power ``[..., n_fft // 2 + 1, frames]`` of waveforms ``[..., samples]``."""
        import librosa

        return np.abs(librosa.stft(audio, n_fft=self.n_fft, hop_length=self.hop_length)) ** self.power

    def spectrogram(self, audio: np.ndarray) -> np.ndarray:
        """Mel or linear spectrogram ``[..., n_bins, frames]`` (not yet log-compressed)."""
        import librosa

        s = self.magnitudes(audio)
        if self.n_mels <= 0:
            return s
        return librosa.feature.melspectrogram(S=s, sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels,
                                              fmin=self.fmin, fmax=self.fmax, power=self.power)

    def log_spectrogram(self, audio: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(self.spectrogram(audio), self.floor)).astype(np.float32)

    def waveform(self, log_spec: np.ndarray, *, length: int | None = None, seed: int = 0) -> np.ndarray:
        """Invert a log spectrogram ``[..., n_bins, frames]`` to waveforms by Griffin-Lim."""
        import librosa

        s = np.exp(log_spec.astype(np.float64))
        if self.n_mels > 0:
            s = librosa.feature.inverse.mel_to_stft(s, sr=self.sample_rate, n_fft=self.n_fft, power=self.power,
                                                     fmin=self.fmin, fmax=self.fmax)
        magnitude = s ** (1.0 / self.power)
        return librosa.griffinlim(magnitude, n_iter=self.griffin_lim_iters, hop_length=self.hop_length,
                                  n_fft=self.n_fft, length=length, random_state=seed).astype(np.float32)


@dataclass
class Normalizer:
    """Per-bin standardisation of log spectrograms, fitted on training clips only."""

    mean: torch.Tensor  # [n_bins]
    std: torch.Tensor  # [n_bins]

    @classmethod
    def fit(cls, log_specs: torch.Tensor) -> "Normalizer":
        """``log_specs`` [N, n_bins, frames] of the training split."""
        mean = log_specs.mean(dim=(0, 2))
        std = log_specs.std(dim=(0, 2)).clamp(min=1e-3)
        return cls(mean, std)

    def encode(self, log_spec: torch.Tensor) -> torch.Tensor:
        return (log_spec - self.mean[:, None]) / self.std[:, None]

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std.to(x)[:, None] + self.mean.to(x)[:, None]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> "Normalizer":
        return cls(state["mean"], state["std"])


def spectral_convergence(reference: np.ndarray, estimate: np.ndarray) -> float:
    """||S - S_hat||_F / ||S||_F on STFT magnitudes (Sturmel & Daudet 2011)."""
    return float(np.linalg.norm(reference - estimate) / np.linalg.norm(reference))


def log_spectral_distance(reference: np.ndarray, estimate: np.ndarray, eps: float = 1e-8) -> float:
    """Mean over frames of sqrt(mean over bins of (10 log10(S^2 / S_hat^2))^2), in dB."""
    ratio = 10 * np.log10((reference**2 + eps) / (estimate**2 + eps))
    return float(np.mean(np.sqrt(np.mean(ratio**2, axis=-2))))


def inversion_ceiling(audio: np.ndarray, config: SpectrogramConfig, *, seed: int = 0) -> dict[str, float]:
    """How much a real clip loses in a spectrogram round trip alone (no model): the best any sample
    decoded by Griffin-Lim can do. ``audio`` [N, samples]; STFT magnitudes compared at config's
    resolution."""
    length = audio.shape[-1]
    back = config.waveform(config.log_spectrogram(audio), length=length, seed=seed)
    reference, estimate = config.magnitudes(audio) ** (1 / config.power), config.magnitudes(back) ** (1 / config.power)
    sc = [spectral_convergence(r, e) for r, e in zip(reference, estimate)]
    lsd = [log_spectral_distance(r, e) for r, e in zip(reference, estimate)]
    return {"spectral_convergence": float(np.mean(sc)), "log_spectral_distance_db": float(np.mean(lsd))}

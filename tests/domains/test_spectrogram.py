"""Log spectrograms, their normalisation, and the Griffin-Lim inversion ceiling."""
import numpy as np
import pytest
import torch

from sciffusion_domains.audio.spectrogram import (Normalizer, SpectrogramConfig, inversion_ceiling,
                                                  log_spectral_distance, spectral_convergence)


def _chirp(n=4, seconds=0.5, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * (200 + 300 * k) * t * (1 + t)) for k in range(n)]).astype(np.float32)


def test_shapes_for_mel_and_linear():
    audio = _chirp()
    mel, lin = SpectrogramConfig(), SpectrogramConfig(n_mels=0)
    assert mel.log_spectrogram(audio).shape == (4, 80, mel.frames(audio.shape[1]))
    assert lin.log_spectrogram(audio).shape == (4, 257, lin.frames(audio.shape[1]))


def test_linear_round_trip_is_close_and_mel_is_bounded():
    audio = _chirp(n=2)
    lin = inversion_ceiling(audio, SpectrogramConfig(n_mels=0))
    mel = inversion_ceiling(audio, SpectrogramConfig())
    assert lin["spectral_convergence"] < 0.1
    assert mel["spectral_convergence"] < 0.35
    assert lin["spectral_convergence"] < mel["spectral_convergence"], "the mel filterbank loses information"


def test_decoded_sound_has_the_right_pitch():
    rate = 16000
    t = np.arange(rate // 2) / rate
    tone = (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    config = SpectrogramConfig()
    back = config.waveform(config.log_spectrogram(tone), length=tone.shape[1])
    peak_hz = np.argmax(np.abs(np.fft.rfft(back[0]))) * rate / tone.shape[1]
    assert abs(peak_hz - 440) < 15


def test_metrics_on_known_values():
    s = np.ones((3, 5))
    assert spectral_convergence(s, s) == 0 and log_spectral_distance(s, s) == pytest.approx(0, abs=1e-6)
    assert spectral_convergence(s, 2 * s) == pytest.approx(1.0)
    assert log_spectral_distance(s, 10 * s) == pytest.approx(20.0, rel=1e-6)  # 10 log10(1/100)


def test_normalizer_fits_train_only_and_round_trips():
    specs = torch.randn(10, 6, 7) * torch.arange(1, 7)[:, None] + 3
    norm = Normalizer.fit(specs)
    z = norm.encode(specs[0])
    torch.testing.assert_close(norm.decode(z), specs[0])
    pooled = norm.encode(specs).transpose(0, 1).reshape(6, -1)
    torch.testing.assert_close(pooled.mean(1), torch.zeros(6), atol=1e-5, rtol=0)
    restored = Normalizer.from_state_dict({k: v.clone() for k, v in norm.state_dict().items()})
    torch.testing.assert_close(restored.decode(z), specs[0])


def test_config_round_trips_as_plain_values():
    config = SpectrogramConfig(n_mels=0, hop_length=64)
    assert SpectrogramConfig(**config.to_dict()) == config

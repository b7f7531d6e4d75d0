"""Spoken digits rendered by espeak-ng, and folders of the user's own recordings."""
import shutil
import warnings

import numpy as np
import pytest
import torch

from sciffusion_domains.audio.data import (DIGITS, SpokenDigitsConfig, fit_length, load_audio_folder,
                                           load_spoken_digits, spoken_digits)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
TINY = SpokenDigitsConfig(accents=("en-us",), variants=("m1", "f2", "klatt"), renders_per_voice=1,
                          test_variants=("klatt",), val_variants=("f2",))


@needs_espeak
def test_rendered_set_is_deterministic_labelled_and_split_by_voice(tmp_path):
    first = load_spoken_digits(TINY, cache=tmp_path / "a")
    second = load_spoken_digits(TINY, cache=tmp_path / "b")
    assert first["audio"].shape == (30, 16000)
    torch.testing.assert_close(first["audio"], second["audio"], rtol=0, atol=0)
    assert first["label"].tolist() == list(range(10)) * 3
    assert first["split"].bincount().tolist() == [10, 10, 10]
    assert (first["audio"].abs().amax(1) > 0.05).all(), "every clip holds speech"
    cached = list((tmp_path / "a").glob("*.pt"))
    assert len(cached) == 1
    assert torch.load(cached[0], weights_only=True)["audio"].shape == (30, 16000)
    train = spoken_digits("train", TINY, cache=tmp_path / "a")
    assert len(train) == 10 and train[3][1] == 3


@needs_espeak
def test_different_digits_sound_different(tmp_path):
    data = load_spoken_digits(TINY, cache=tmp_path)
    a = data["audio"]
    same_voice_gap = (a[0] - a[1]).abs().mean()
    assert same_voice_gap > 0.005


def test_unknown_split_is_named():
    with pytest.raises(ValueError, match="choose one of"):
        spoken_digits("training", TINY)


def test_fit_length_centres_and_cuts():
    short = np.ones(4, dtype=np.float32)
    assert fit_length(short, 8).tolist() == [0, 0, 1, 1, 1, 1, 0, 0]
    long = np.arange(10, dtype=np.float32)
    assert fit_length(long, 4).tolist() == [3, 4, 5, 6]


def test_folder_loads_resamples_and_reports_bad_files(tmp_path):
    import soundfile

    for name, freq in [("low", 220.0), ("high", 880.0)]:
        (tmp_path / name).mkdir()
        for i, rate in enumerate([8000, 22050]):
            t = np.arange(int(0.5 * rate)) / rate
            tone = 0.5 * np.sin(2 * np.pi * freq * t)
            soundfile.write(tmp_path / name / f"{i}.wav", np.stack([tone, tone], 1), rate)  # stereo
    soundfile.write(tmp_path / "high" / "2.flac", 0.1 * np.sin(np.arange(1600) / 3), 16000)
    (tmp_path / "low" / "broken.wav").write_bytes(b"RIFF not really a wav")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clips, labels, classes, report = load_audio_folder(tmp_path, trim_db=None)
    assert classes == ["high", "low"]
    assert clips.shape == (5, 16000) and labels.tolist() == [0, 0, 0, 1, 1]
    assert report.loaded == 5 and len(report.failed) == 1 and report.failed[0][0].endswith("broken.wav")
    assert any("broken.wav" in str(w.message) for w in caught)
    spectrum = np.abs(np.fft.rfft(clips[3].numpy()))
    assert abs(np.argmax(spectrum) * 16000 / 16000 - 220) < 3, "resampled to 16 kHz at the right pitch"


def test_folder_reports_clips_with_almost_no_samples_or_only_silence(tmp_path):
    import soundfile

    (tmp_path / "a").mkdir()
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)
    soundfile.write(tmp_path / "a" / "good.wav", tone, 16000)
    soundfile.write(tmp_path / "a" / "short.wav", tone[:12], 16000)  # a valid header, 12 samples
    soundfile.write(tmp_path / "a" / "silent.wav", np.zeros(16000), 16000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clips, labels, _, report = load_audio_folder(tmp_path)
    assert clips.shape == (1, 16000) and report.loaded == 1
    reasons = {name.rsplit("/", 1)[-1]: why for name, why in report.failed}
    assert reasons.keys() == {"short.wav", "silent.wav"}
    assert "only 12 samples (0.8 ms at 16000 Hz)" in reasons["short.wav"]
    assert "silent throughout" in reasons["silent.wav"]
    message = " ".join(str(w.message) for w in caught)
    assert "short.wav" in message and "silent.wav" in message and "2 audio file(s)" in message


def test_folder_errors_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="<class>"):
        load_audio_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="sub-folders"):
        load_audio_folder(tmp_path)


def test_digit_names():
    assert DIGITS[7] == "seven" and len(DIGITS) == 10


def test_a_corrupt_spoken_digit_cache_goes_through_the_safe_loader(tmp_path):
    from sciffusion.training import CheckpointError

    (tmp_path / f"spoken_digits_{TINY.key()}.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"not a readable spoken-digit cache .*; delete .*rendered again"):
        load_spoken_digits(TINY, cache=tmp_path)

"""The shipped turbulence interpolator (``sciffusion.load("turbulence_interpolate")``): trained for both
tasks, it keeps the frames it is given and fills the others far better than the clip's spread, with no
data on disk (the clip it is given is one of its own free clips, so the test needs no simulation)."""
from __future__ import annotations

import numpy as np
import pytest

import sciffusion
from sciffusion_domains.video.inverse import known_frames


@pytest.fixture(scope="module")
def model():
    return sciffusion.load("turbulence_interpolate")


def test_it_is_trained_for_forecasting_and_interpolation(model):
    assert model.domain.given_tasks == ("forecast", "interpolate")
    assert model.domain.given_every == 4 and model.domain.given_frames == 4
    assert model.settings().steps == 20  # its best measured setting for interpolation


def test_interpolation_keeps_the_given_frames_and_fills_the_gaps(model, tmp_path):
    [free] = model.sample(1, steps=10, cond={"unconditional": True}, seed=1, progress=False, verbose=False)
    clip = tmp_path / "clip.npy"
    np.save(clip, free.values)  # [C, T, H, W] in data units, as sciffusion-sample writes it
    members = model.sample(2, steps=10, cond={"input": str(clip), "task": "interpolate"}, seed=2, progress=False,
                           verbose=False)
    known = known_frames(model.domain.frames, task="interpolate", every=4).numpy()
    truth = free.values
    std = truth.std()
    for member in members:
        given_error = np.sqrt(((member.values[:, known] - truth[:, known]) ** 2).mean())
        gap_error = np.sqrt(((member.values[:, ~known] - truth[:, ~known]) ** 2).mean())
        assert given_error < 0.1 * std, given_error / std
        assert gap_error < 0.3 * std, gap_error / std  # climatology's error is about 1 std

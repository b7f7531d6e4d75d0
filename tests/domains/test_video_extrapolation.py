"""Optical-flow extrapolation against an exact answer: a smooth blob translating at constant velocity
is continued where it goes, far closer than persistence, and the known frames are left alone."""
import numpy as np
import pytest
import torch

from sciffusion_domains.video.extrapolation import extrapolate_frames, extrapolation


def moving_blob(frames: int, velocity=(0.5, 1.0), size: int = 32) -> torch.Tensor:
    """``[1, 2, frames, size, size]``: a Gaussian blob (channel 0) and its negative (channel 1), its centre
    moving ``velocity`` (rows, columns) pixels a frame."""
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    clip = []
    for t in range(frames):
        r, c = 10 + velocity[0] * t, 8 + velocity[1] * t
        clip.append(np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * 3.0 ** 2)))
    blob = torch.tensor(np.stack(clip), dtype=torch.float32)
    return torch.stack([blob, -blob])[None]


def test_a_translating_blob_is_continued_where_it_goes():
    clip = moving_blob(10)
    guess = extrapolate_frames(clip, known=4, count=6)
    truth = clip[:, :, 4:]
    persistence = clip[:, :, 3:4].expand_as(truth)
    error = (guess - truth).abs().amax(dim=(0, 1, 3, 4))
    assert (error < 0.05).all(), error  # the blob's peak is 1
    assert (guess - truth).norm() < 0.05 * (persistence - truth).norm()
    # the centre of mass lands where the blob is, lead by lead
    rows = torch.arange(32.0)[:, None]
    centre = lambda frames: (frames[0, 0] * rows).sum(dim=(1, 2)) / frames[0, 0].sum(dim=(1, 2))  # noqa: E731
    torch.testing.assert_close(centre(guess), centre(truth), atol=0.05, rtol=0)
    torch.testing.assert_close(guess[:, 1], -guess[:, 0])  # one motion for all channels


def test_the_known_frames_are_kept_and_too_few_are_refused():
    clip = moving_blob(6)
    out = extrapolation(clip, given=3)
    assert torch.equal(out[:, :, :3], clip[:, :, :3]) and out.shape == clip.shape
    still = clip[:, :, :1].expand(-1, -1, 4, -1, -1)
    torch.testing.assert_close(extrapolate_frames(still, 2, 2), still[:, :, :2], atol=1e-4, rtol=0)  # no motion, no change
    with pytest.raises(ValueError, match="2 or more known frames"):
        extrapolate_frames(clip, known=1, count=2)


def test_a_periodic_field_wraps_around_and_the_boundary_is_checked():
    """On a periodic domain (``boundary="wrap"``) a blob leaving on the right comes back on the left."""
    size = 32
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")

    def periodic_blob(t):  # centre at column 28 + t, on a torus
        dc = (cols - 28 - t + size / 2) % size - size / 2
        return np.exp(-((rows - 16) ** 2 + dc ** 2) / (2 * 2.5 ** 2))

    clip = torch.tensor(np.stack([periodic_blob(t) for t in range(10)]), dtype=torch.float32)[None, None]
    truth = clip[:, :, 4:]
    wrapped = extrapolate_frames(clip, 4, 6, boundary="wrap")
    held = extrapolate_frames(clip, 4, 6, boundary="edge")
    assert (wrapped - truth).abs().max() < 0.1
    assert (held - truth).abs().max() > 0.5  # the edge held: nothing comes back in on the left
    with pytest.raises(ValueError, match="boundary='periodic'"):
        extrapolate_frames(clip, 4, 2, boundary="periodic")


def test_the_context_of_a_forecaster_is_the_extrapolation_at_frames_it_makes():
    """``extrapolated_context``: known frames are themselves; a frame after the known ones is the
    extrapolation from the two latest (the same numbers as ``extrapolate_frames``); known frames two apart
    give half the motion a frame; fewer than two known before a frame hold the latest (the first known
    before any), and a clip with none known is zeros."""
    from sciffusion_domains.video.extrapolation import extrapolated_context

    clip = moving_blob(8)
    forecast = torch.tensor([[True] * 4 + [False] * 4])
    out = extrapolated_context(clip, forecast)
    assert torch.equal(out[:, :, :4], clip[:, :, :4])
    torch.testing.assert_close(out[:, :, 4:], extrapolate_frames(clip, 4, 4), atol=1e-6, rtol=0)
    assert (out[:, :, 4:] - clip[:, :, 4:]).abs().max() < 0.05

    sparse = torch.tensor([[False, True, False, True, False, False, False, False]])
    out = extrapolated_context(clip, sparse)
    # frame 0 holds the first known (1), frame 2 the latest known (1: one known before it, no motion yet)
    assert torch.equal(out[:, :, 0], clip[:, :, 1]) and torch.equal(out[:, :, 2], clip[:, :, 1])
    # frames 4-7 continue the motion between 1 and 3, halved to one frame's
    assert (out[:, :, 4:] - clip[:, :, 4:]).abs().max() < 0.05
    assert (clip[:, :, 3:4] - clip[:, :, 4:]).abs().max() > 0.3  # what holding frame 3 would have missed

    nothing = extrapolated_context(clip, torch.zeros(1, 8, dtype=torch.bool))
    assert not nothing.any()
    with pytest.raises(ValueError, match="mask \\[B, T\\]"):
        extrapolated_context(clip, forecast[:, :5])
    with pytest.raises(ValueError, match="edge, wrap"):
        extrapolated_context(clip, forecast, boundary="reflect")

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

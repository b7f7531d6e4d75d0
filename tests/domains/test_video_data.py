"""Video data: Moving MNIST (deterministic, bouncing, max-composited, disjoint splits) and the user's
clips from a folder of frame stacks or an xarray/Zarr store, with errors that name the layout."""
import numpy as np
import pytest
import torch

from sciffusion_domains.images.data import mnist5k
from sciffusion_domains.video import data


def test_trajectories_stay_in_the_canvas_and_bounce_at_constant_speed():
    path = data.trajectory(np.random.default_rng(0), 200, 0.1)
    assert path.min() >= 0 and path.max() <= 1
    steps = np.abs(np.diff(path, axis=0))
    assert np.allclose(np.linalg.norm(steps, axis=1)[steps.min(axis=1) > 1e-9].max(), 0.1, atol=1e-9)
    assert (np.diff(np.sign(np.diff(path[:, 0]))) != 0).any()  # at least one reflection in x


@pytest.fixture(scope="module")
def train():
    return data.MovingDigits("train", size=32, frames=6, num_clips=50)


def test_moving_digits_are_deterministic_and_composited_with_a_maximum(train):
    clip, label = train[7]
    again, label_again = data.MovingDigits("train", size=32, frames=6, num_clips=50)[7]
    assert clip.shape == (1, 6, 32, 32) and torch.equal(clip, again) and label == label_again
    assert clip.min() == -1 and clip.max() <= 1 and not torch.equal(clip, train[8][0])
    pixels, classes = train.pixels(7)
    assert label == data.pair_label(classes) and data.label_digits(label, 2) == tuple(sorted(classes))
    # a max-composite never exceeds the brightest digit pixel and keeps each frame's digit mass
    assert pixels.max() <= train.digits.max() and (pixels.reshape(6, -1).max(axis=1) > 100).all()
    assert train.digit_size == 14 and data.MovingDigits("val", size=64, frames=2, num_clips=1).digit_size == 28


def test_splits_use_disjoint_digit_images_and_seeds(train):
    test = data.MovingDigits("test", size=32, frames=6, num_clips=50)
    train_ids, test_ids = set(mnist5k("train").source_indices.tolist()), set(mnist5k("test").source_indices.tolist())
    assert not train_ids & test_ids and len(test.digits) == 500
    assert not torch.equal(train[0][0], test[0][0])


def test_moving_digits_options_are_checked():
    with pytest.raises(ValueError, match="num_digits"):
        data.MovingDigits("train", num_digits=4)
    with pytest.raises(ValueError, match="unknown split"):
        data.MovingDigits("training")


def test_folder_of_frame_stacks_any_layout_split_by_file(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(5):
        np.save(tmp_path / f"run{i}.npy", rng.integers(0, 256, (10, 3, 8, 6), dtype=np.uint8))
    clips = {s: data.clip_folder(tmp_path, s, frames=4, stride=3) for s in data.SPLITS}
    assert clips["train"].shape == (3, 4, 8, 6) and len(clips["train"]) == 3 * 3 and len(clips["test"]) == 3
    clip, label = clips["train"][1]
    assert clip.shape == (3, 4, 8, 6) and label == -1 and -1 <= clip.min() and clip.max() <= 1
    stacks = [np.load(tmp_path / f"run{i}.npy") for i in range(5)]
    first = clips["train"].stacks[0]
    assert torch.allclose(clip, data.to_symmetric(torch.from_numpy(first[3:7])).permute(1, 0, 2, 3))
    assert sum(any(np.array_equal(s, c) for c in clips["val"].stacks) for s in stacks) == 1


def test_folder_errors_name_the_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no \.npy file.*\[T, H, W\] or \[T, C, H, W\]"):
        data.clip_folder(tmp_path, "train", frames=4)
    np.save(tmp_path / "a.npy", np.zeros((10, 8, 8), np.float32))
    np.save(tmp_path / "b.npy", np.zeros((10, 8, 9), np.float32))
    with pytest.raises(ValueError, match=r"b.npy has frames of shape \(1, 8, 9\).*\(1, 8, 8\)"):
        data.clip_folder(tmp_path, "train", frames=4)
    np.save(tmp_path / "b.npy", np.zeros((10,), np.float32))
    with pytest.raises(ValueError, match=r"must be \[T, H, W\] or \[T, C, H, W\], got shape \(10,\)"):
        data.clip_folder(tmp_path, "train", frames=4)
    (tmp_path / "b.npy").unlink()
    with pytest.raises(ValueError, match="no clip of 9 frames fits"):
        data.clip_folder(tmp_path, "train", frames=9)  # one stack: time cut 8 / 1 / 1


def test_zarr_store_with_a_time_dimension(tmp_path):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("zarr")
    times = 40
    u = np.arange(times * 4 * 5, dtype=np.float32).reshape(times, 4, 5)
    store = xr.Dataset({"u": (("time", "y", "x"), u), "v": (("time", "y", "x"), -u),
                        "coast": (("y", "x"), np.ones((4, 5)))})
    store.to_zarr(tmp_path / "flow.zarr")
    train = data.clip_store(tmp_path / "flow.zarr", "train", frames=8)
    test = data.clip_store(tmp_path / "flow.zarr", "test", frames=4)
    assert train.shape == (2, 8, 4, 5) and len(train) == 4 and len(test) == 1  # times 0-31, then 36-39
    clip, _ = test[0]
    assert torch.equal(clip[0], torch.from_numpy(u[36:40])) and torch.equal(clip[1], -clip[0])
    with pytest.raises(ValueError, match="names 'w', which .* holds"):
        data.clip_store(tmp_path / "flow.zarr", "train", frames=4, variables=["w"])
    with pytest.raises(ValueError, match=r"'coast' has dimensions \('y', 'x'\); expected .*\(time, y, x\)"):
        data.clip_store(tmp_path / "flow.zarr", "train", frames=4, variables=["u", "coast"])

"""Video data: Moving MNIST (deterministic, bouncing, max-composited, disjoint splits) and the user's
clips from a folder of frame stacks and video files (GIF, MP4) or an xarray/Zarr store, with errors that
name the layout."""
import sys

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
    (tmp_path / "notes.txt").write_text("not a video")  # files of other suffixes are ignored
    with pytest.raises(FileNotFoundError, match=r"no file with a suffix \.npy/\.gif/\.mp4/.*\[T, C, H, W\]"):
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


def moving_square(frames: int, height: int, width: int) -> np.ndarray:
    """uint8 ``[frames, H, W]``: a grey gradient background and a bright 8 x 8 square moving right 2 pixels a frame
    (even corners, so that yuv420p chroma blocks never straddle its edges)."""
    background = np.add.outer(np.arange(height) * 3, np.arange(width) * 2).astype(np.uint8) + 20
    stack = np.repeat(background[None], frames, axis=0)
    for t in range(frames):
        stack[t, 4:12, 2 * t:2 * t + 8] = 230
    return stack


def write_gif(path, stack: np.ndarray) -> None:
    from PIL import Image

    images = [Image.fromarray(frame) for frame in stack]  # mode L: saved with a grey palette
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)


def write_mp4(path, rgb: np.ndarray) -> None:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    height, width = rgb.shape[1:3]
    # quality=10: libx264 -crf 0, so the loss is the rgb -> yuv420p conversion (chroma at half resolution)
    writer = imageio_ffmpeg.write_frames(str(path), (width, height), pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
                                         fps=10.0, codec="libx264", quality=10, macro_block_size=16)
    writer.send(None)
    for frame in rgb:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


def test_folder_reads_an_animated_grey_gif_exactly(tmp_path):
    stack = moving_square(10, 16, 24)
    (tmp_path / "runs").mkdir()
    write_gif(tmp_path / "runs" / "square.gif", stack)  # found recursively
    assert data.read_frame_stack(tmp_path / "runs" / "square.gif").shape == (10, 1, 16, 24)
    train = data.clip_folder(tmp_path, "train", frames=8)  # one file: its time axis cut 8 / 1 / 1
    clip, label = train[0]
    assert train.shape == (1, 8, 16, 24) and len(train) == 1 and label == -1
    assert train.stacks[0].dtype == np.uint8 and clip.min() >= -1 and clip.max() <= 1
    assert torch.equal(clip[0], torch.from_numpy(stack[:8]).float() / 127.5 - 1)  # grey palette: lossless
    assert len(data.clip_folder(tmp_path, "test", frames=1)) == 1


def test_folder_reads_an_rgb_mp4_within_the_codec_tolerance(tmp_path):
    grey = moving_square(10, 32, 48)
    rgb = np.stack([grey, 255 - grey, np.full_like(grey, 90)], axis=-1)
    rgb[:, 4:12, :, 2] = 200  # a blue band
    write_mp4(tmp_path / "colour.MP4", rgb)  # the suffix is matched in any case
    train = data.clip_folder(tmp_path, "train", frames=8)
    clip, _ = train[0]
    assert data.read_frame_stack(tmp_path / "colour.MP4").shape == (10, 3, 32, 48)
    assert train.shape == (3, 8, 32, 48) and clip.shape == (3, 8, 32, 48) and len(train) == 1
    assert clip.min() >= -1 and clip.max() <= 1
    error = ((clip.permute(1, 2, 3, 0) + 1) * 127.5 - torch.from_numpy(rgb[:8]).float()).abs()
    # measured with imageio-ffmpeg 0.8.1 (ffmpeg 9.0): max 18, mean 2.5, 90% of the values within 5 (of 255);
    # a swapped channel order would be off by over 100 in most pixels
    assert error.max() <= 24 and error.mean() <= 4 and error.quantile(0.9) <= 8
    # a grey video decodes with R == G == B and is read as one channel
    (tmp_path / "grey").mkdir()
    write_mp4(tmp_path / "grey" / "grey.mp4", np.repeat(grey[..., None], 3, axis=-1))
    stack = data.read_frame_stack(tmp_path / "grey" / "grey.mp4")
    assert stack.shape == (10, 1, 32, 48) and np.abs(stack[:, 0].astype(int) - grey).max() <= 2
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match=r"ffmpeg could not read .*broken\.mp4"):
        data.clip_folder(tmp_path, "train", frames=8)


def test_folder_mixes_npy_and_gif_when_their_grids_agree(tmp_path):
    stack = moving_square(10, 16, 24)
    np.save(tmp_path / "a.npy", stack[::-1].copy())
    write_gif(tmp_path / "b.gif", stack)
    train = data.clip_folder(tmp_path, "train", frames=4, stride=4)  # two files: each cut 8 / 1 / 1
    assert train.shape == (1, 4, 16, 24) and len(train) == 4
    assert np.array_equal(train.stacks[0][:, 0], stack[::-1][:8]) and np.array_equal(train.stacks[1][:, 0], stack[:8])
    np.save(tmp_path / "a.npy", np.zeros((10, 16, 25), np.uint8))
    with pytest.raises(ValueError, match=r"b\.gif has frames of shape \(1, 16, 24\) \(C, H, W\), .*\(1, 16, 25\)"):
        data.clip_folder(tmp_path, "train", frames=4)
    np.save(tmp_path / "a.npy", np.zeros((10, 3, 16, 24), np.uint8))  # RGB next to a grey GIF
    with pytest.raises(ValueError, match=r"b\.gif has frames of shape \(1, 16, 24\) .*\(3, 16, 24\)"):
        data.clip_folder(tmp_path, "train", frames=4)
    np.save(tmp_path / "a.npy", np.zeros((10, 16, 24), np.float32))
    with pytest.raises(ValueError, match="mix uint8 .* and float frame stacks"):
        data.clip_folder(tmp_path, "train", frames=4)


def test_videos_without_imageio_ffmpeg_name_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import imageio_ffmpeg raises ImportError
    write_gif(tmp_path / "a.gif", moving_square(10, 16, 24))
    assert data.clip_folder(tmp_path, "train", frames=4).shape == (1, 4, 16, 24)  # GIFs need only Pillow
    (tmp_path / "b.mp4").write_bytes(b"never opened")
    with pytest.raises(ImportError, match=r"b\.mp4 needs imageio-ffmpeg: pip install 'sciffusion\[video\]'"):
        data.clip_folder(tmp_path, "train", frames=4)

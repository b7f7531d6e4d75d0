"""The video domain's output formats: the MP4 is H.264 / yuv420p with even, enlarged frames whose
pixels read back (decoded, block-averaged back to the clip's size, compared to the display frames);
``domain.formats`` decides what is written and in which order; unknown formats, NetCDF without a
field and a missing imageio-ffmpeg are named with their fix."""
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf

from sciffusion_domains.video.domain import (DEFAULT_FORMATS, DecodedClip, VideoDomain, mp4_frames, mp4_scale,
                                             require_ffmpeg)

pytest.importorskip("PIL")
imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="MP4 output needs pip install 'sciffusion[video]'")
imageio = pytest.importorskip("imageio.v2", reason="reading MP4s back needs pip install 'sciffusion[video]'")

TINY = dict(size=32, frames=6, train_clips=4, eval_clips=4)


@pytest.fixture(scope="module")
def clips():
    domain = VideoDomain(**TINY)
    batch = domain.collate([domain.dataset("val")[i] for i in range(2)])
    return domain.decode(batch.x, batch.space)


def read_mp4(path):
    """(metadata, frames uint8 [T, H, W, 3]) through imageio's ffmpeg reader."""
    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        return reader.get_meta_data(), np.stack([frame for frame in reader.iter_data()])
    finally:
        reader.close()


def test_enlargement_is_integer_and_sizes_even():
    assert mp4_scale(32, 32) == 8 and mp4_scale(64, 64) == 4 and mp4_scale(20, 300) == 1 and mp4_scale(30, 30) == 9
    pixels = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5, 1)
    out = mp4_frames(pixels, min_size=1)  # no enlargement: 3 x 5 padded to 4 x 6 by repeating the edge
    assert out.shape == (2, 4, 6, 3) and out.dtype == np.uint8
    assert np.array_equal(out[:, :3, :5, 0], pixels[..., 0]) and np.array_equal(out[..., 0], out[..., 2])
    assert np.array_equal(out[:, 3, :5, 0], pixels[:, 2, :, 0]) and np.array_equal(out[:, :3, 5, 0], pixels[:, :, 4, 0])
    big = mp4_frames(pixels, min_size=10)  # 5 -> 10: twice, nearest neighbour
    assert big.shape == (2, 6, 10, 3) and np.array_equal(big[:, ::2, ::2, 1], pixels[..., 0])
    assert np.array_equal(big[:, 1::2, 1::2, 1], pixels[..., 0])
    colour = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    colour[..., 0] = 200  # three channels stay colour; two (u, v) show the first, as the GIF does
    assert np.array_equal(mp4_frames(colour, min_size=2)[0, 0, 0], [200, 0, 0])
    assert np.array_equal(mp4_frames(colour[..., :2], min_size=2)[0, 0, 0], [200, 200, 200])


def test_the_mp4_reads_back_as_the_clip(clips, tmp_path):
    clip = clips[0]
    path = clip.save_mp4(tmp_path / "clip.mp4", fps=5)
    meta, frames = read_mp4(path)
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p") and meta["fps"] == 5
    assert frames.shape == (6, 256, 256, 3)  # 32 px enlarged 8 times
    shown = clip.pixels[..., 0].astype(np.float64)  # [T, 32, 32]
    decoded = frames.astype(np.float64).reshape(6, 32, 8, 32, 8, 3).mean(axis=(2, 4, 5))
    error = np.abs(decoded - shown)
    assert error.mean() < 1.5 and error.max() < 24  # lossy, but close (measured: mean 0.05, max 1 grey level)
    assert shown.std() > 30  # the clip has digits, so the comparison can fail
    # each frame is in its place: the moving digits differ from frame to frame more than the coding error
    shifted = np.abs(decoded[1:] - shown[:-1]).mean()
    assert shifted > 5 * error.mean()


def test_odd_colour_frames_are_padded_to_even_sizes(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)  # [T, H, W, RGB]
    clip = DecodedClip(values=np.zeros((3, 3, 5, 7), dtype=np.float32), pixels=pixels)
    meta, frames = read_mp4(clip.save_mp4(tmp_path / "odd.mp4", min_size=35))  # 7 px x 5 -> 25 x 35 -> 26 x 36
    assert frames.shape == (3, 26, 36, 3) and meta["size"] == (36, 26)
    decoded = frames[:, :25, :35].astype(np.float64).reshape(3, 5, 5, 7, 5, 3).mean(axis=(2, 4))
    # colour noise is the hardest case for yuv420p (chroma at half resolution): close on average
    assert np.abs(decoded - pixels).mean() < 25 and np.abs(decoded - pixels).mean() < np.abs(pixels - 128.0).mean() / 2


def test_formats_decide_what_is_written_and_in_which_order(clips, tmp_path):
    assert VideoDomain(**TINY).formats == DEFAULT_FORMATS == ("gif", "mp4", "npy")
    files = VideoDomain(**TINY).save(clips, tmp_path / "default")
    assert [p.name for p in files] == [f"sample_0000{i}.{f}" for i in range(2) for f in ("gif", "mp4", "npy")]
    only = VideoDomain(**TINY, formats=["npy"]).save(clips, tmp_path / "npy")
    assert [p.name for p in only] == ["sample_00000.npy", "sample_00001.npy"]
    assert sorted(p.name for p in (tmp_path / "npy").iterdir()) == ["sample_00000.npy", "sample_00001.npy"]
    assert np.array_equal(np.load(only[1]), clips[1].values)
    assert [p.suffix for p in VideoDomain(**TINY, formats=["mp4", "gif"]).save(clips[:1], tmp_path / "two")] == [
        ".mp4", ".gif"]
    assert VideoDomain(**TINY, formats="mp4").formats == ("mp4",)  # domain.formats=mp4 on the command line


def test_shipped_configs_name_the_default_formats():
    conf = VideoDomain.config_dir() / "domain"
    assert tuple(OmegaConf.load(conf / "moving_digits.yaml").domain.formats) == DEFAULT_FORMATS
    assert tuple(OmegaConf.load(conf / "turbulence.yaml").domain.formats) == DEFAULT_FORMATS + ("nc",)


def test_bad_formats_are_named(clips, tmp_path):
    with pytest.raises(ValueError, match=r"unknown: \['avi'\]"):
        VideoDomain(**TINY, formats=["gif", "avi"])
    with pytest.raises(ValueError, match="at most once"):
        VideoDomain(**TINY, formats=["gif", "gif"])
    with pytest.raises(ValueError, match="at least one"):
        VideoDomain(**TINY, formats=[])
    with pytest.raises(ValueError, match="nc, which is written for source=turbulence only"):
        VideoDomain(**TINY, formats=["npy", "nc"])
    domain = VideoDomain(**TINY, formats=["npy"])
    domain.formats = ["webm"]  # changed after construction: refused before anything is written
    with pytest.raises(ValueError, match="webm"):
        domain.save(clips, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_a_missing_imageio_ffmpeg_names_the_install_and_how_to_leave_mp4_out(clips, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import imageio_ffmpeg now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'sciffusion\[video\]'.*domain.formats=\[gif,npy\]"):
        require_ffmpeg()
    with pytest.raises(ImportError, match="imageio-ffmpeg"):
        VideoDomain(**TINY)  # mp4 is a default format: said at once, not after a training run
    domain = VideoDomain(**TINY, formats=["gif", "npy"])  # without mp4 nothing needs it
    assert [p.suffix for p in domain.save(clips[:1], tmp_path)] == [".gif", ".npy"]
    with pytest.raises(ImportError, match="imageio-ffmpeg"):
        clips[0].save_mp4(tmp_path / "clip.mp4")

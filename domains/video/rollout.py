"""Autoregressive rollout: clips longer than the model's window, one window at a time.

A model draws windows of T frames. Given the first k frames of a clip, each window is drawn with its
first k frames known (the last k frames of the clip so far) and its first ``new_frames`` new frames
(default all T - k) are appended, until the clip holds ``frames`` frames (any number, past T). Fewer new
frames a window keep every frame at a short lead from known ones, for a model whose use of the given
frames fades with the lead, at the cost of more windows. With ``start_sigma`` a window does not start
from pure noise: its new frames start as the last known frame (persistence) noised to that scaled noise
level, and sampling runs the rest of the grid from there (SDEdit, Meng et al. 2022), so that what the
noise has not covered, the shapes of the content, is carried over instead of redrawn. The known frames are
passed the way the model was trained for them:

    conditioning  a model trained with ``domain.given_frames = k`` gets them as cond["frames"]
    inpainting    any other model generates them under the core's ``Inpainting`` guidance on the time
                  axis (``method`` as in ``guidance=forecast``: replace, reconstruction or dps)

The clip returned keeps the given frames exactly; window w draws its noise from a generator seeded by
(seed, w), so a rollout is reproducible and its windows are independent draws.

From the command line (the domain's files per member, ``figure.png`` with every k-th frame, at most 16 a
member, and ``rollout.json``):

    python -m sciffusion_domains.video.rollout checkpoint=turbulence input=test:0 frames=48 members=4 out_dir=roll
    python -m sciffusion_domains.video.rollout checkpoint=turbulence_viscosity input=test:0 viscosity=3e-3 ...
    python -m sciffusion_domains.video.rollout checkpoint=RUN/checkpoints/last.ckpt input=clip.npy given=4 ...

``input`` is ``test:K`` or a ``.npy`` clip ``[C, T, H, W]`` (or ``[T, H, W]``) whose first ``given`` frames
start the rollout; ``given`` defaults to the model's ``given_frames``. Settings left out (``sampler``,
``steps``, ``grid``, ``new_frames``, ``start_sigma``, ``start_from``) are the checkpoint's: a checkpoint
stores its measured rollout settings in ``sampling_defaults["rollout"]`` (``{"new_frames": 1,
"start_sigma": 0.5}``), else a window adds all its new frames from pure noise. ``start_sigma=none`` starts from pure noise even
where the checkpoint stores a level.
"""
from __future__ import annotations

import inspect
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sciffusion_domains.dense.inverse import known_values_guidance
from torch import Tensor
from tqdm.auto import tqdm

from sciffusion.guidance import device_of
from sciffusion.parameterization import Denoiser
from sciffusion.processes import NoiseProcess
from sciffusion.space import DenseSpace
from sciffusion.timesteps import GRIDS, make_grid

from .domain import VideoDomain
from .extrapolation import extrapolate_frames

START_FROM = ("persistence", "extrapolation", "mean")  # what a warm-started window's new frames start as


@torch.no_grad()
def rollout(denoiser: Denoiser, process: NoiseProcess, domain: VideoDomain, given: Tensor, *, frames: int,
            sampler: str = "heun", steps: int = 20, grid: str = "karras", seed: int = 0, method: str = "replace",
            progress: bool = False, cond: dict[str, Tensor] | None = None, new_frames: int | None = None,
            start_sigma: float | None = None, start_from: str = "persistence") -> Tensor:
    """Clips ``[B, C, frames, H, W]`` in data units that start with ``given [B, C, k, H, W]`` (data units).

    ``k`` must be the model's ``given_frames`` when it was trained with them; otherwise any
    ``0 < k < T``. Each window adds ``new_frames`` frames (``1..T - k``, default ``T - k``); ``B`` clips are drawn together (repeat a start
    to draw an ensemble). ``cond`` adds conditions every window is given, e.g. ``{"vector": [B, 1]}`` (the
    viscosity, ``domain.condition(B, viscosity=NU)``) for a model trained on ``domain.viscosities``.
    ``start_sigma`` starts each window's new frames from the last known frame at that scaled noise level
    (``grid`` must be one in noise level: karras or uniform_log_snr), or with ``start_from="extrapolation"``
    from the last known frame carried along the optical flow between the last two (``extrapolation``), or
    with ``start_from="mean"`` from the model's own forecast mean (its denoiser at the top noise level,
    one more evaluation a window)."""
    from sciffusion.samplers import prior_sample, sample

    c, window, h, w = domain.shape
    if given.dim() != 5 or tuple(given.shape[1:2] + given.shape[3:]) != (c, h, w):
        raise ValueError(f"given frames must be [B, C, k, H, W] with (C, H, W) = {(c, h, w)}, got {tuple(given.shape)}")
    k = given.shape[2]
    if domain.given_frames and k != domain.given_frames:
        raise ValueError(f"this model was trained on {domain.given_frames} given frames; pass that many, got {k}")
    if not 0 < k < window:
        raise ValueError(f"need 0 < given frames < {window} (the model's window), got {k}")
    if frames < k:
        raise ValueError(f"a rollout of {frames} frames cannot keep {k} given frames")
    new_frames = window - k if new_frames is None else new_frames
    if not 0 < new_frames <= window - k:
        raise ValueError(f"new_frames must be in 1..{window - k} (the window {window} less the {k} given), got {new_frames}")
    if domain.conditional and domain.given_frames:
        raise ValueError("rollout of a class-conditional forecaster is not supported: cond['drop'] would drop the "
                         "given frames with the class; train it with domain.conditional=false")
    device = device_of(denoiser)
    extra = {key: value.to(device) for key, value in (cond or {}).items()}
    clip = domain.encode(given.float()).to(device)
    known = torch.zeros(window, dtype=torch.bool, device=device)
    known[:k] = True
    ts = start_grid(grid, process, steps, start_sigma)
    if start_from not in START_FROM:
        raise ValueError(f"start_from={start_from!r}: give one of {', '.join(START_FROM)}")
    if start_from == "extrapolation" and k < 2:
        raise ValueError(f"start_from=extrapolation needs 2 or more given frames (the motion between the last two), got {k}")
    space = DenseSpace()
    windows = range(-(-(frames - k) // new_frames))
    for index in tqdm(windows, desc="rollout windows", disable=not progress):
        observed = torch.zeros(len(clip), c, window, h, w, device=device)
        observed[:, :, :k] = clip[:, :, -k:]
        if domain.given_frames:
            guided, window_cond = denoiser, {**extra, **domain.given_condition(observed)}
        else:
            mask = known[None, None, :, None, None]
            guided = known_values_guidance(denoiser, process, observed, mask, method=method, noise_std=0.0,
                                           scale=1.0, zeta=1.0, data_var=0.5, unconditional=domain.conditional)
            window_cond = dict(extra)
        generator = torch.Generator(device).manual_seed(seed * 1_000_003 + index)
        x = prior_sample(process, observed, space=space, generator=generator,
                         t=None if start_sigma is None else float(ts[0]))
        if start_sigma is not None:  # the signal under that noise: the known frames, then a guess of the new ones
            if start_from == "extrapolation":
                guess = extrapolate_frames(observed, k, window - k)
            elif start_from == "mean":  # the model's own forecast mean: its denoiser at the top noise level
                top = torch.full((len(x),), float(process.t_max), device=device)
                pure = prior_sample(process, observed, space=space, generator=generator)
                guess = guided(pure, top, space, window_cond)[:, :, k:]
            else:  # persistence: every new frame the last known one
                guess = observed[:, :, k - 1:k].expand(-1, -1, window - k, -1, -1)
            x = x + process.alpha(ts[0]).to(x.dtype) * torch.cat([observed[:, :, :k], guess], dim=2)
        x0 = sample(sampler, guided, x, ts, process=process, space=space, cond=window_cond, generator=generator)
        clip = torch.cat([clip, x0[:, :, k:k + new_frames]], dim=2)
    out = domain.to_data(clip[:, :, :frames].cpu())
    out[:, :, :k] = given.float()  # the given frames exactly, not their encode/decode round trip
    return out


def start_grid(grid: str, process: NoiseProcess, steps: int, start_sigma: float | None) -> Tensor:
    """The sampling grid, from the process's top noise level, or from ``start_sigma`` (a scaled sigma)."""
    if start_sigma is None:
        return make_grid(grid, process, steps)
    options = inspect.signature(GRIDS[grid]).parameters if grid in GRIDS else {}
    if "sigma_max" not in options:  # an unknown name is make_grid's error
        in_noise_level = sorted(name for name, f in GRIDS.items() if "sigma_max" in inspect.signature(f).parameters)
        raise ValueError(f"start_sigma needs a grid in noise level ({' or '.join(in_noise_level)}), not grid={grid!r}")
    last = options["sigma_min"].default
    top = float(process.scaled_sigma(torch.tensor(process.t_max, dtype=torch.float64)))
    if not last < start_sigma <= top:  # make_grid would cap a higher one silently at the top
        raise ValueError(f"start_sigma={start_sigma} must lie above {last} (the grid's last noise level) and at most "
                         f"{top:.4g}, the process's top noise level")
    return make_grid(grid, process, steps, sigma_max=start_sigma)


@dataclass
class RolloutOptions:
    checkpoint: str = "???"
    input: str = "test:0"
    frames: int | None = None  # default: twice the model's window
    given: int | None = None  # default: the model's given_frames
    members: int = 4
    new_frames: int | None = None
    # new frames start from the last known one at this noise level (SDEdit); "none": from pure noise
    start_sigma: Any = None
    start_from: str | None = None  # with start_sigma: what the new frames start as (persistence, extrapolation, mean)
    viscosity: float | None = None  # a model trained on domain.viscosities (default: a test:K input's own)
    sampler: str | None = None
    steps: int | None = None
    grid: str | None = None
    method: str = "replace"  # how a model trained without given frames is given them (inpainting)
    seed: int = 0
    out_dir: str = "rollout"


PURE_NOISE = "none"  # start_sigma=none: from pure noise, whatever the checkpoint stores
LIBRARY = {"new_frames": None, "start_sigma": None, "start_from": "persistence"}  # all new frames, pure noise


def rollout_settings(stored: dict[str, Any] | None, **given: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The window settings of a rollout (``new_frames``, ``start_sigma``, ``start_from``: ``rollout``'s
    keywords) and where each came from: the given value (None: not given), else the checkpoint's
    ``sampling_defaults["rollout"]`` (``stored``), else ``LIBRARY`` (every new frame of a window from pure
    noise). ``start_sigma="none"`` asks for pure noise over a stored level."""
    stored = dict(stored or {})
    for name, values in (("the checkpoint's rollout defaults", stored), ("the rollout settings given", given)):
        unknown = sorted(set(values) - set(LIBRARY))
        if unknown:
            raise ValueError(f"{name} hold {unknown}; a rollout's window settings are {', '.join(LIBRARY)}")
    chosen, sources = {}, {}
    for key, default in LIBRARY.items():
        if given.get(key) is not None:
            chosen[key], sources[key] = given[key], "given"
        elif stored.get(key) is not None:
            chosen[key], sources[key] = stored[key], "checkpoint sampling_defaults"
        else:
            chosen[key], sources[key] = default, "library default"
    sigma = chosen["start_sigma"]
    if isinstance(sigma, str) and sigma.lower() == PURE_NOISE:
        chosen["start_sigma"] = None
    elif sigma is not None:
        if isinstance(sigma, (bool, str)) or not isinstance(sigma, (int, float)):
            raise ValueError(f"start_sigma={sigma!r}: give a noise level (0.5) or {PURE_NOISE!r} (start from pure noise)")
        chosen["start_sigma"] = float(sigma)
    if chosen["start_from"] not in START_FROM:
        raise ValueError(f"start_from={chosen['start_from']!r}: give one of {', '.join(START_FROM)}")
    return chosen, sources


def describe_windows(chosen: dict[str, Any], sources: dict[str, str], new_by_default: int) -> str:
    """One line: the window settings and where each came from (``settings.Settings.describe``'s form)."""
    from sciffusion.settings import describe_sources

    start = (PURE_NOISE if chosen["start_sigma"] is None
             else f"{chosen['start_sigma']} start_from={chosen['start_from']}")
    return (f"new_frames={chosen['new_frames'] or new_by_default} start_sigma={start} ("
            + describe_sources(sources) + ")")


def given_frames(domain: VideoDomain, input: str, given: int) -> Tensor:
    """The first ``given`` frames ``[1, C, given, H, W]`` (data units) of ``test:K`` or a ``.npy`` clip."""
    from .inverse import read_input

    c, _, h, w = domain.shape
    if input.startswith("test:"):
        clip = read_input(domain, input)
    else:
        if not Path(input).is_file():
            raise FileNotFoundError(f"input={input!r} is neither test:K nor a .npy file; give the clip to continue")
        clip = torch.from_numpy(np.load(input)).float()
        clip = (clip[None] if clip.dim() == 3 else clip)[None]
        if clip.dim() != 5 or (clip.shape[1], clip.shape[3], clip.shape[4]) != (c, h, w):
            raise ValueError(f"input={input!r} holds an array of shape {tuple(clip.shape[1:])}; the model's frames are "
                             f"[C, H, W] = {(c, h, w)}: give [C, T, H, W] (or [T, H, W] for one channel)")
    if clip.shape[2] < given:
        raise ValueError(f"input={input!r} holds {clip.shape[2]} frames; the rollout starts from {given}")
    return clip[:, :, :given]


def model_rollout(model, given: Tensor, *, frames: int, sampler: str | None = None, steps: int | None = None,
                  grid: str | None = None, seed: int = 0, method: str = "replace", cond: dict | None = None,
                  progress: bool = False, verbose: bool = True, **windows: Any) -> tuple[Tensor, dict[str, str]]:
    """``rollout`` for a loaded ``sciffusion.api.Model``, with the settings not given (None) taken from the
    checkpoint as ``sample`` takes them (``sampler``, ``steps``, ``grid``) and from its
    ``sampling_defaults["rollout"]`` (``windows``: ``new_frames``, ``start_sigma``, ``start_from``; see
    ``rollout_settings``). Returns the clips and ``{"sampling": ..., "windows": ...}``, what was used and
    where each setting came from (printed unless ``verbose=False``)::

        model = sciffusion.load("moving_digits")
        clips, used = model_rollout(model, first_frames, frames=16)   # first_frames [B, C, 4, H, W]
    """
    settings = model.settings(sampler=sampler, steps=steps, grid=grid)
    chosen, sources = rollout_settings(model.sampling_defaults.get("rollout"), **windows)
    k, window = given.shape[2], model.domain.shape[1]
    description = {"sampling": settings.describe(), "windows": describe_windows(chosen, sources, window - k)}
    if verbose:
        print(f"rollout: {len(given)} clips of {frames} frames from {k} given, {description['sampling']}, "
              f"{description['windows']}", flush=True)
    clips = rollout(model.denoiser, model.process, model.domain, given, frames=frames, sampler=settings.sampler,
                    steps=settings.steps, grid=settings.grid, seed=seed, method=method, progress=progress, cond=cond,
                    **chosen)
    return clips, description


def run(opts: RolloutOptions) -> dict:
    import sciffusion

    start = time.time()
    model = sciffusion.load(opts.checkpoint)
    domain = model.domain
    if not isinstance(domain, VideoDomain):
        raise SystemExit(f"checkpoint={opts.checkpoint} models the {domain.name} domain; a rollout needs a video model")
    window = domain.shape[1]
    given = opts.given or domain.given_frames
    if not given:
        raise SystemExit("this model was trained without given frames: say how many frames start the rollout (given=K)")
    frames = opts.frames or 2 * window
    start_frames = given_frames(domain, opts.input, given).expand(opts.members, -1, -1, -1, -1)
    # what every window is given besides the frames: a viscosity model's viscosity (asked, else test:K's own)
    cond = domain.viscosity_condition(opts.members, opts.viscosity, opts.input, unconditional=False)
    clips, description = model_rollout(model, start_frames, frames=frames, sampler=opts.sampler, steps=opts.steps,
                                       grid=opts.grid, seed=opts.seed, method=opts.method, cond=cond, progress=True,
                                       new_frames=opts.new_frames, start_sigma=opts.start_sigma,
                                       start_from=opts.start_from)
    objects = domain.clips(clips, cond)
    out_dir = Path(opts.out_dir)
    every = -(-frames // 16)  # the figure shows at most 16 frames a member: every k-th
    shown = [replace(obj, pixels=obj.pixels[::every]) for obj in objects]
    files = domain.save(objects, out_dir) + [domain.figure(shown, out_dir / "figure.png")]
    result = {"options": asdict(opts), "frames": frames, "given": given, "window": window, "figure_every": every,
              **description, "files": [str(f) for f in files], "seconds": round(time.time() - start, 1)}
    (out_dir / "rollout.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def parse(argv: Sequence[str]) -> RolloutOptions:
    """``key=value`` arguments (OmegaConf's syntax) into the options."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(OmegaConf.structured(RolloutOptions), OmegaConf.from_dotlist(list(argv)))
    opts = RolloutOptions(**OmegaConf.to_container(cfg, resolve=True))
    if opts.checkpoint == "???":
        raise SystemExit("give checkpoint=NAME_OR_PATH (a shipped video model such as turbulence, or a run's .ckpt)")
    return opts


def main(argv: Sequence[str] | None = None) -> None:
    opts = parse(sys.argv[1:] if argv is None else argv)
    result = run(opts)
    print(f"rollout: wrote {opts.out_dir} ({len(result['files'])} files) in {result['seconds']} s")


if __name__ == "__main__":
    main()

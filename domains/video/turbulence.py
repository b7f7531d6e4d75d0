"""2-D decaying incompressible turbulence simulated with phiflow, cached on disk, cut into clips.

Each trajectory starts from a random incompressible velocity on the periodic square [0, 2 pi)^2 whose
energy spectrum peaks at ``peak_wavenumber`` (``E(k) ~ k^4 exp(-2 (k / k_p)^2)``, McWilliams 1984's
shape) with total energy ``energy``, drawn from ``numpy.random.default_rng(trajectory seed)``. phiflow
(numpy backend, float64) advances the Navier-Stokes equations on a staggered grid: MacCormack
advection, explicit viscosity, and a pressure projection (conjugate gradients) every step. After
``spinup`` time units a frame is kept every ``frame_dt`` (``substeps`` steps), ``length`` frames in all.

The simulation runs on a grid ``oversample`` times finer than the frames; frames are coarse-grained by
averaging the fine face velocities over each coarse face, which keeps the discrete divergence zero.
Trajectory seeds: split s, index i -> ``seed * 1_000_000 + SPLIT_BASE[s] + i``, so train, val and test
never share a seed. Trajectories are simulated ``chunk`` at a time (one batched phiflow run; the
conjugate-gradient solve stops when every member has converged, so a trajectory is reproduced
exactly by the same chunking, which the cache key includes).

Measured here (2 CPU threads shared with 5 other jobs): a step of 4 trajectories at 32x32 takes ~1.2 s,
mostly phiflow's Python overhead, so 4 trajectories of 32 frames take ~3 minutes. The numpy backend
was faster than torch here (20 steps at 32x32: 3.0 s against 5.2 s), and torch's float32 CG diverged
at 64x64.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from sciffusion.domain import cache_dir as sciffusion_cache_dir

from . import physics
from .data import ClipArrays, _check_split

SPLIT_BASE = {"train": 0, "val": 100_000, "test": 200_000}  # disjoint seed ranges per split
FIELDS = ("vorticity", "velocity")
VISCOSITY_REFERENCE = 1e-2  # viscosity_vector(1e-2) = [0]
INSTALL = "the turbulence source needs phiflow: pip install 'sciffusion[video]' (or pip install phiflow==3.4.0)"


@dataclass(frozen=True)
class Simulation:
    """What a trajectory is: grid, time stepping and the initial spectrum (see the module docstring)."""

    size: int = 32
    oversample: int = 1
    length: int = 32
    frame_dt: float = 0.2
    substeps: int = 4
    spinup: float = 1.0
    viscosity: float = 1e-3
    peak_wavenumber: float = 4.0
    energy: float = 0.5
    chunk: int = 4

    def __post_init__(self):
        if self.size < 8 or self.oversample < 1 or self.length < 1 or self.substeps < 1 or self.chunk < 1:
            raise ValueError(f"need size >= 8 and oversample, length, substeps, chunk >= 1; got {self}")
        if self.frame_dt <= 0 or self.spinup < 0 or self.viscosity < 0 or self.energy <= 0:
            raise ValueError(f"need frame_dt > 0, spinup >= 0, viscosity >= 0 and energy > 0; got {self}")

    @property
    def dt(self) -> float:
        return self.frame_dt / self.substeps


def trajectory_seed(split: str, index: int, seed: int = 0) -> int:
    """The seed of trajectory ``index`` of ``split``; the ranges of the splits are disjoint."""
    _check_split(split)
    if not 0 <= index < 100_000:
        raise ValueError(f"trajectory index must be in 0..99999, got {index}")
    return seed * 1_000_000 + SPLIT_BASE[split] + index


def initial_velocity(seed: int, size: int, *, peak_wavenumber: float, energy: float) -> np.ndarray:
    """A random staggered velocity ``[2, size, size]`` with zero discrete divergence and
    ``1/2 mean(u^2 + v^2) = energy``, its spectrum shaped ``k^4 exp(-2 (k / k_p)^2)``: the streamfunction
    gets random phases and, per mode, ``|psi_hat|^2 ~ E(k) / (k^2 * 2 pi k)`` (energy spread over the shell)."""
    rng = np.random.default_rng(seed)
    ky, kx = physics.wavenumbers(size, size)
    k = np.hypot(ky, kx)
    shape = k**4 * np.exp(-2 * (k / peak_wavenumber) ** 2)
    amplitude = np.sqrt(np.divide(shape, 2 * math.pi * k**3, out=np.zeros_like(k), where=k > 0))
    psi = np.fft.ifft2(amplitude * (rng.normal(size=k.shape) + 1j * rng.normal(size=k.shape))).real
    velocity = physics.velocity_from_streamfunction(psi)
    return velocity * math.sqrt(energy / (0.5 * (velocity**2).sum(axis=0).mean()))


def coarse_grain(velocity: np.ndarray, factor: int) -> np.ndarray:
    """Staggered velocity ``[..., 2, n H, n W]`` to ``[..., 2, H, W]``: each coarse face gets the mean of
    the n fine faces on it, so the coarse divergence of a cell is the mean of its fine cells' divergences."""
    if factor == 1:
        return velocity
    *lead, _, h, w = velocity.shape
    u = velocity[..., 0, :, ::factor].reshape(*lead, h // factor, factor, w // factor).mean(axis=-2)
    v = velocity[..., 1, ::factor, :].reshape(*lead, h // factor, w // factor, factor).mean(axis=-1)
    return np.stack([u, v], axis=-3)


def simulate(seeds: list[int], sim: Simulation) -> np.ndarray:
    """Trajectories ``[B, length, 2, size, size]`` (float32 staggered velocity) of the given seeds, in one
    batched phiflow run."""
    n = sim.size * sim.oversample
    start = np.stack([initial_velocity(s, n, peak_wavenumber=sim.peak_wavenumber, energy=sim.energy) for s in seeds])
    velocity = evolve(start, sim, frames=sim.length, spinup_steps=round(sim.spinup / sim.dt))
    return coarse_grain(velocity, sim.oversample).astype(np.float32)


def evolve(start: np.ndarray, sim: Simulation, *, frames: int, spinup_steps: int = 0) -> np.ndarray:
    """``[B, frames, 2, n, n]`` (float64): the staggered velocities ``start [B, 2, n, n]`` projected onto
    divergence-free fields, advanced ``spinup_steps`` steps, then a frame every ``sim.substeps`` steps
    (the first is the state after the spin-up). ``sim`` gives the time step, viscosity and solver only."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # phiflow's import warns about optional backends
            from phi import flow
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(INSTALL) from err
    phimath = flow.math
    n = start.shape[-1]
    kept = []
    with phimath.precision(64), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's sparse-format notices from inside phiml's solver
        values = phimath.stack({c: phimath.tensor(start[:, i].transpose(0, 2, 1), flow.batch("b"), flow.spatial("x,y"))
                                for i, c in enumerate("xy")}, flow.dual(vector="x,y"))
        box = flow.Box(x=2 * math.pi, y=2 * math.pi)
        velocity = flow.StaggeredGrid(values, flow.extrapolation.PERIODIC, x=n, y=n, bounds=box)
        solve = flow.Solve("CG", 1e-8, 1e-8, max_iterations=10 * n * n)
        velocity, _ = flow.fluid.make_incompressible(velocity, solve=solve)
        for step in range(spinup_steps + (frames - 1) * sim.substeps + 1):
            if step >= spinup_steps and (step - spinup_steps) % sim.substeps == 0:
                kept.append(np.stack([velocity.values[{"~vector": c}].numpy("b,y,x") for c in "xy"], axis=1))
            if len(kept) == frames:
                break
            velocity = flow.advect.mac_cormack(velocity, velocity, sim.dt)
            if sim.viscosity:
                velocity = flow.diffuse.explicit(velocity, sim.viscosity, sim.dt)
            velocity, _ = flow.fluid.make_incompressible(velocity, solve=solve)
    return np.stack(kept, axis=1)


def cache_dir() -> Path:
    """``$SCIFFUSION_CACHE/video/turbulence`` or ``~/.cache/sciffusion/video/turbulence``."""
    return sciffusion_cache_dir("video", "turbulence")


def _settings(split: str, count: int, sim: Simulation, seed: int) -> dict:
    return {"split": split, "count": count, "seed": seed, **asdict(sim)}


def cache_path(split: str, count: int, sim: Simulation, *, seed: int = 0) -> Path:
    """Where ``trajectories`` keeps these trajectories: keyed by every setting (is_file() says whether
    they were simulated already)."""
    key = hashlib.sha256(json.dumps(_settings(split, count, sim, seed), sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / f"{split}-{sim.size}px-{count}x{sim.length}-{key}.npy"


def trajectories(split: str, count: int, sim: Simulation, *, seed: int = 0, cache: bool = True,
                 progress: bool = True) -> np.ndarray:
    """``count`` trajectories ``[count, length, 2, size, size]`` of ``split``, read from the cache when
    it holds them (``cache_path``), else simulated (a progress bar per chunk) and stored."""
    _check_split(split)
    if count < 1:
        raise ValueError(f"need at least one trajectory for split {split!r}, got {count}")
    settings = _settings(split, count, sim, seed)
    path = cache_path(split, count, sim, seed=seed)
    if cache and path.is_file():
        return np.load(path, mmap_mode="r")
    from tqdm.auto import tqdm

    seeds = [trajectory_seed(split, i, seed) for i in range(count)]
    chunks = [seeds[i:i + sim.chunk] for i in range(0, count, sim.chunk)]
    bar = tqdm(chunks, desc=f"simulating {count} {split} trajectories", unit="chunk", disable=not progress)
    result = np.concatenate([simulate(chunk, sim) for chunk in bar])
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(partial, result)
        partial.replace(path)  # atomic: a concurrent reader never sees half a file
        from importlib.metadata import version

        path.with_suffix(".json").write_text(json.dumps({**settings, "phiflow": version("phiflow")}, indent=2))
    return result


def as_field(velocity: np.ndarray, field: str) -> np.ndarray:
    """Frames ``[T, C, H, W]`` of a trajectory's velocity ``[T, 2, H, W]``: its vorticity (C = 1) or itself."""
    if field not in FIELDS:
        raise ValueError(f"unknown turbulence field {field!r}; choose one of {FIELDS}")
    return physics.vorticity(velocity)[:, None] if field == "vorticity" else np.asarray(velocity)


def viscosity_vector(viscosity: float) -> list[float]:
    """The physical parameter a viscosity-conditioned model is given (cond["vector"]): ``log10(nu / 1e-2)``.
    A log scale because the flows differ by the ratio of viscosities (the dissipation rate ``nu k^2``);
    the fixed reference keeps the same viscosity the same vector in every model."""
    if not viscosity > 0:
        raise ValueError(f"a viscosity must be > 0, got {viscosity}")
    return [math.log10(viscosity / VISCOSITY_REFERENCE)]


def viscosity_of(vector) -> float:
    """The viscosity whose ``viscosity_vector`` is ``vector`` (its inverse), to the 7 significant digits a
    float32 vector holds (3e-3, not 0.0029999998564600406)."""
    return float(f"{VISCOSITY_REFERENCE * 10 ** float(vector[0]):.7g}")


def turbulence_clips(split: str, *, frames: int, count: int, sim: Simulation, field: str = "vorticity",
                     stride: int | None = None, seed: int = 0, progress: bool = True,
                     viscosities: list[float] | None = None) -> ClipArrays:
    """Clips ``[C, frames, H, W]`` cut every ``stride`` frames from ``count`` trajectories of ``split``.
    With ``viscosities``, ``count`` trajectories at each (the same seeds: the same initial states, decaying
    at each viscosity), and every clip comes with ``viscosity_vector`` of its viscosity."""
    if frames > sim.length:
        raise ValueError(f"clips of {frames} frames do not fit trajectories of {sim.length}; raise "
                         "domain.simulation.length or lower domain.frames")
    what = f"turbulence ({split} split)"
    if viscosities is None:
        stacks = [as_field(v, field) for v in trajectories(split, count, sim, seed=seed, progress=progress)]
        return ClipArrays(stacks, frames=frames, stride=stride, what=what)
    stacks, parameters = [], []
    for nu in viscosities:
        runs = trajectories(split, count, replace(sim, viscosity=float(nu)), seed=seed, progress=progress)
        stacks += [as_field(v, field) for v in runs]
        parameters += [viscosity_vector(nu)] * count
    return ClipArrays(stacks, frames=frames, stride=stride, what=what, parameters=parameters)


def to_dataset(values: np.ndarray, field: str, *, frame_dt: float):
    """One clip ``[C, T, H, W]`` as an ``xarray.Dataset`` on the periodic square [0, 2 pi)^2: ``vorticity``
    at the cell corners, or ``u`` / ``v`` on their faces (coordinates of the corners; the attributes say
    where each component sits), with ``time`` in simulation units from the first frame."""
    import xarray as xr

    if field not in FIELDS:
        raise ValueError(f"unknown turbulence field {field!r}; choose one of {FIELDS}")
    channels, frames, h, w = values.shape
    names = ["vorticity"] if field == "vorticity" else ["u", "v"]
    if channels != len(names):
        raise ValueError(f"a {field} clip has {len(names)} channel(s), got {channels} ([C, T, H, W] = {values.shape})")
    where = {"vorticity": "cell corners (x, y)", "u": "x-faces (x, y + dy/2)", "v": "y-faces (x + dx/2, y)"}
    coords = {"time": np.arange(frames) * frame_dt, "y": np.arange(h) * 2 * math.pi / h,
              "x": np.arange(w) * 2 * math.pi / w}
    data = {name: (("time", "y", "x"), values[i], {"location": where[name]}) for i, name in enumerate(names)}
    return xr.Dataset(data, coords=coords, attrs={"domain": "periodic square [0, 2 pi)^2",
                                                  "source": "sciffusion video domain, source=turbulence"})

"""Score turbulence forecasts against held-out solver trajectories (the test split of source=turbulence).

Each test trajectory gives its first ``--given`` frames; forecasts fill the remaining frames (past the
model's window with an autoregressive rollout) and are scored per lead and in their physics:

    persistence      the last given frame, repeated (one member)
    extrapolation    the last given frame carried along the optical flow between the last two given frames
                     (``sciffusion_domains.video.extrapolation``, periodic; one member): the classical nowcast
    solver_seeds     the solver itself from other seeds (the val split at the same times): an ensemble with
                     the flow's exact statistics and no knowledge of the initial state (climatology)
    solver_perturbed the solver itself continued from the last given frame's velocity plus a random
                     divergence-free perturbation of ``--perturbation`` times its energy (``--perturbed-members``
                     per trajectory; 0 skips it): how far the flow itself is predictable
    model            with --checkpoint: ``--members`` rollouts of a trained video model per trajectory

Scores (``sciffusion_domains.video.physics``): ensemble-mean RMSE and CRPS per lead (fair for ensembles,
the absolute error for one member), the energy spectrum per shell over every forecast frame against the
truth's (log10 ratio), total enstrophy ratio, temporal autocorrelation per lag, and the divergence of
velocity fields. Writes ``scores.json``, ``spectrum.png``, ``leads.png`` and ``frames.png`` (trajectory 0:
the truth and member 0 of each forecast, every 3rd frame) into ``--out``.

    python experiments/video/evaluate_turbulence.py --out experiments/video/turbulence_references
    python experiments/video/evaluate_turbulence.py --checkpoint runs/turb/checkpoints/last.ckpt --members 4 \\
        --out eval/turb
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import torch

from sciffusion_domains.video import physics, turbulence
from sciffusion_domains.video.extrapolation import extrapolate_frames
from sciffusion_domains.video.metrics import mean_energy_spectrum


def fields(velocity: np.ndarray, field: str) -> np.ndarray:
    """Trajectories ``[N, T, 2, H, W]`` as clips ``[N, C, T, H, W]`` of ``field``."""
    return np.stack([turbulence.as_field(v, field) for v in velocity]).transpose(0, 2, 1, 3, 4).astype(np.float64)


def vorticity_of(clips: np.ndarray, field: str) -> np.ndarray:
    """``[..., C, T, H, W]`` clips to their vorticity ``[..., T, H, W]``."""
    return clips[..., 0, :, :, :] if field == "vorticity" else physics.vorticity(np.moveaxis(clips, -4, -3))


def score(ensemble: np.ndarray, truth: np.ndarray, field: str) -> dict:
    """Per-lead and physical scores of ``ensemble [M, N, C, L, H, W]`` against ``truth [N, C, L, H, W]``."""
    members = len(ensemble)
    crps = physics.crps_per_lead(ensemble, truth, fair=members > 1)
    spectrum = mean_energy_spectrum(vorticity_of(ensemble, field))
    reference = mean_energy_spectrum(vorticity_of(truth, field))
    half = truth.shape[-1] // 2
    log_ratio = physics.spectrum_log_ratio(spectrum, reference)
    rho = physics.temporal_autocorrelation(ensemble.reshape(-1, *ensemble.shape[2:]))
    rho_truth = physics.temporal_autocorrelation(truth)
    omega, omega_truth = vorticity_of(ensemble, field), vorticity_of(truth, field)
    out = {"members": members, "rmse_per_lead": physics.rmse_per_lead(ensemble, truth).tolist(),
           "crps_per_lead": crps.tolist(), "crps_kind": "fair" if members > 1 else "absolute error (1 member)",
           "energy_spectrum": spectrum.tolist(), "spectrum_log10_ratio": log_ratio.tolist(),
           "spectrum_log_error": float(np.abs(log_ratio[1:half + 1]).mean()),
           "enstrophy_ratio": float((omega**2).mean() / (omega_truth**2).mean()),
           "autocorrelation": rho.tolist(), "autocorrelation_error": float(np.abs(rho[1:] - rho_truth[1:]).mean())}
    if field == "velocity":
        out["divergence_rms"] = float(np.sqrt((physics.divergence(np.moveaxis(ensemble, -4, -3)) ** 2).mean()))
    return out


def perturbed_solver(velocity: np.ndarray, given: int, sim: turbulence.Simulation, *, members: int,
                     relative_energy: float, seed: int, field: str) -> np.ndarray:
    """``[M, N, C, L, H, W]``: the solver continued from ``velocity [N, T, 2, H, W]`` at frame ``given - 1``
    plus a random perturbation (``turbulence.initial_velocity``'s spectrum, ``relative_energy`` of the
    state's energy), ``L = T - given`` frames, M = ``members``."""
    from tqdm.auto import tqdm

    if sim.oversample != 1:
        raise SystemExit("solver_perturbed needs the solver's own grid: simulation.oversample=1")
    n, frames = len(velocity), velocity.shape[1] - given
    state = np.asarray(velocity[:, given - 1], dtype=np.float64)
    energy = 0.5 * (state**2).sum(axis=1).mean(axis=(-1, -2))
    starts = np.stack([state[i] + turbulence.initial_velocity(10**9 + seed * 10**6 + m * n + i, state.shape[-1],
                                                               peak_wavenumber=sim.peak_wavenumber,
                                                               energy=relative_energy * energy[i])
                       for m in range(members) for i in range(n)])
    chunks = [starts[i:i + 2 * sim.chunk] for i in range(0, len(starts), 2 * sim.chunk)]
    runs = [turbulence.evolve(c, sim, frames=frames + 1) for c in tqdm(chunks, desc="perturbed solver runs")]
    clips = fields(np.concatenate(runs)[:, 1:], field)  # the first frame is the perturbed start
    return clips.reshape(members, n, *clips.shape[1:])


def model_forecast(checkpoint: str, given: np.ndarray, frames: int, *, members: int, steps: int, seed: int,
                   field: str, sampler: str = "heun", grid: str = "karras", **windows) -> np.ndarray:
    """``[M, N, C, frames - k, H, W]``: ``members`` rollouts of the checkpoint's model from ``given``
    (``windows``: ``rollout``'s ``new_frames``, ``start_sigma``, ``start_from``)."""
    import sciffusion

    model = sciffusion.load(checkpoint)
    if model.domain.source != "turbulence" or model.domain.field != field:
        raise SystemExit(f"{checkpoint} models source={model.domain.source} field={getattr(model.domain, 'field', None)}; "
                         f"this evaluation scores turbulence {field} (--field)")
    return rollout_members(model, given, frames, members=members, steps=steps, seed=seed, sampler=sampler, grid=grid,
                           **windows)


def rollout_members(model, given: np.ndarray, frames: int, *, members: int, steps: int, seed: int,
                    sampler: str = "heun", grid: str = "karras", cond: dict | None = None, **windows) -> np.ndarray:
    """``[M, N, C, frames - k, H, W]``: ``members`` rollouts of a loaded model from ``given [N, C, k, H, W]``;
    ``cond`` holds per-clip conditions ``[N, ...]`` (e.g. the viscosity vector), repeated for the members."""
    import torch

    from sciffusion_domains.video.rollout import rollout

    k = given.shape[2]
    start = torch.from_numpy(np.tile(given, (members, 1, 1, 1, 1))).float()  # member-major: index m * N + n
    cond = {key: value.repeat(members, *[1] * (value.dim() - 1)) for key, value in (cond or {}).items()}
    clips = rollout(model.denoiser, model.process, model.domain, start, frames=frames, sampler=sampler,
                    steps=steps, grid=grid, seed=seed, progress=True, cond=cond, **windows).numpy()
    return clips[:, :, k:].reshape(members, len(given), *clips.shape[1:2], frames - k, *clips.shape[3:])


def plot(scores: dict, truth_spectrum: np.ndarray, path: Path, leads_path: Path, *, frame_dt: float,
         kmax: int) -> None:
    """The energy spectra (shells 1..kmax, complete circles only) and RMSE / CRPS against lead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    half = kmax + 1
    k = np.arange(len(truth_spectrum))
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.loglog(k[1:half], truth_spectrum[1:half], "k-", lw=2, label="truth (test trajectories)")
    for name, s in scores.items():
        ax.loglog(k[1:half], np.array(s["energy_spectrum"])[1:half], "--", label=name)
    ax.set(xlabel="wavenumber k", ylabel="E(k)", title="energy spectrum over the forecast frames")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for name, s in scores.items():
        lead = (np.arange(len(s["rmse_per_lead"])) + 1) * frame_dt
        axes[0].plot(lead, s["rmse_per_lead"], label=name)
        axes[1].plot(lead, s["crps_per_lead"], label=name)
    axes[0].set(xlabel="lead (time units)", ylabel="RMSE (ensemble mean)")
    axes[1].set(xlabel="lead (time units)", ylabel="CRPS")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(leads_path, dpi=120)


def frames_figure(truth: np.ndarray, forecasts: dict, path: Path, *, every: int = 3) -> None:
    """Trajectory 0's vorticity, every ``every``-th forecast frame: the truth, then member 0 of each
    forecast, on one colour scale (truth mean +- 3 std)."""
    from sciffusion_domains.video.figures import frame_grid

    field = "vorticity" if truth.shape[1] == 1 else "velocity"
    rows = {"truth": vorticity_of(truth[:1], field)[0]}
    rows.update({name: vorticity_of(f[0, :1], field)[0] for name, f in forecasts.items()})
    low, high = rows["truth"].mean() - 3 * rows["truth"].std(), rows["truth"].mean() + 3 * rows["truth"].std()
    pixels = [(np.clip((r[::every] - low) / (high - low), 0, 1) * 255).astype(np.uint8)[..., None] for r in rows.values()]
    frame_grid(pixels, path, names=[name[:10] for name in rows])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for scores.json and the figures")
    parser.add_argument("--field", default="vorticity", choices=turbulence.FIELDS)
    parser.add_argument("--trajectories", type=int, default=8, help="test (and val) trajectories to use")
    parser.add_argument("--given", type=int, default=4, help="frames given to every forecast")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--length", type=int, default=32, help="frames per trajectory (the forecast runs to it)")
    parser.add_argument("--checkpoint", help="a trained source=turbulence model to roll out")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sampler", default="heun", help="the model's sampler (a sciffusion sampler name)")
    parser.add_argument("--grid", default="karras", help="the model's time grid (a sciffusion grid name)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--new-frames", type=int, help="frames a rollout window adds (default: the window less the given)")
    parser.add_argument("--start-sigma", type=float, help="rollout windows start their new frames from the last known "
                        "frame at this noise level (SDEdit; default: pure noise)")
    parser.add_argument("--perturbed-members", type=int, default=2, help="members of solver_perturbed (0: none)")
    parser.add_argument("--perturbation", type=float, default=1e-3, help="perturbation energy / state energy")
    args = parser.parse_args(argv)
    sim = turbulence.Simulation(size=args.size, length=args.length)
    if not 0 < args.given < args.length:
        parser.error(f"--given must be in 1..{args.length - 1}")
    started = time.time()
    test_velocity = turbulence.trajectories("test", args.trajectories, sim)
    truth = fields(test_velocity, args.field)
    others = fields(turbulence.trajectories("val", args.trajectories, sim), args.field)
    k = args.given
    target = truth[:, :, k:]
    forecasts = {"persistence": physics.persistence(truth[:, :, :k], args.length - k)[None],
                 "extrapolation": extrapolate_frames(torch.from_numpy(truth[:, :, :k]), k, args.length - k,
                                                     boundary="wrap").numpy()[None],
                 "solver_seeds": np.broadcast_to(others[:, None, :, k:], (len(others), *target.shape))}
    if args.perturbed_members:
        forecasts["solver_perturbed"] = perturbed_solver(test_velocity, k, sim, members=args.perturbed_members,
                                                         relative_energy=args.perturbation, seed=args.seed,
                                                         field=args.field)
    if args.checkpoint:
        forecasts["model"] = model_forecast(args.checkpoint, truth[:, :, :k], args.length, members=args.members,
                                            steps=args.steps, seed=args.seed, field=args.field,
                                            sampler=args.sampler, grid=args.grid, new_frames=args.new_frames,
                                            start_sigma=args.start_sigma)
    scores = {name: score(np.asarray(f, dtype=np.float64), target, args.field) for name, f in forecasts.items()}
    truth_spectrum = mean_energy_spectrum(vorticity_of(target, args.field))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
              "settings": {**vars(args), "simulation": sim.__dict__, "frame_dt": sim.frame_dt},
              "truth": {"energy_spectrum": truth_spectrum.tolist(),
                        "autocorrelation": physics.temporal_autocorrelation(target).tolist(),
                        "enstrophy": float(0.5 * (vorticity_of(target, args.field) ** 2).mean())},
              "scores": scores, "seconds": round(time.time() - started, 1)}
    (out / "scores.json").write_text(json.dumps(result, indent=1))
    plot(scores, truth_spectrum, out / "spectrum.png", out / "leads.png", frame_dt=sim.frame_dt,
         kmax=args.size // 2)
    frames_figure(target, forecasts, out / "frames.png")
    for name, s in scores.items():
        print(f"{name:16s} M={s['members']:2d}  RMSE lead 1/4/{args.length - k}: "
              f"{s['rmse_per_lead'][0]:.3f}/{s['rmse_per_lead'][3]:.3f}/{s['rmse_per_lead'][-1]:.3f}  CRPS: "
              f"{s['crps_per_lead'][0]:.3f}/{s['crps_per_lead'][3]:.3f}/{s['crps_per_lead'][-1]:.3f}  spectrum "
              f"{s['spectrum_log_error']:.3f}  enstrophy {s['enstrophy_ratio']:.3f}  autocorr {s['autocorrelation_error']:.3f}")
    return result


if __name__ == "__main__":
    main()

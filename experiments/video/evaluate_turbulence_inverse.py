"""Super-resolution and assimilation on held-out turbulence, scored against the classical answers
(issue #17): the shipped forecaster's guided ensembles (``sciffusion-sample guidance=video_superres`` and
``guidance=video_assimilate``, free clips: no frames given) against

* climatology: the training mean with the training spread (a Gaussian);
* interpolation: bicubic upsampling of the block means (periodic), or linear interpolation of the
  scattered observations in each frame (periodic, by tiling);
* optimal interpolation (OI, Gandin 1963; the Kalman filter's analysis step with a static covariance): the
  Gaussian posterior under the space-time covariance of the training trajectories, assumed stationary
  (homogeneous in space, a function of the lag in time), estimated from every pair of frames up to the
  clip's length apart; its posterior variance gives an exact Gaussian CRPS. It is the best linear
  estimate under that covariance, so it is the strongest classical answer for RMSE.

Scores per task, over the clips: RMSE of the ensemble mean (or of the estimate), CRPS (fair for the
ensemble, exact Gaussian for climatology and OI, the absolute error for interpolation), the rms misfit to
the observations, and the enstrophy-spectrum error of single fields (members, or the estimate: a smooth
estimate lacks the small scales). Data units (vorticity); clip k is window k of test trajectory k.
Heun 40 steps: at the forecaster's default 10, guided samples miss the observations (super-resolution on
test:8, a clip outside the scored ones: block-mean misfit 0.58 at 10 steps, 0.05 at 40, noise 0.04).

    python experiments/video/evaluate_turbulence_inverse.py --tasks superres --out experiments/video/turbulence_inverse
    python experiments/video/evaluate_turbulence_inverse.py --tasks assimilate --out experiments/video/turbulence_inverse

Interpolation in time (``--tasks interpolate``): every 4th frame and the last are given exactly (frames 0, 4,
8, 12, 15 of 16) and the 11 others are scored. Three diffusion answers: **conditioning**, a model trained to
be given those frames (``--interpolator``, ``domain.given_tasks=[forecast,interpolate]``, sampled with
``cond.input=test:K cond.task=interpolate`` at ``--interpolator-steps``), and **inpainting**, the forecaster's
free clips with the known frames pasted in at every step (``guidance=forecast guidance.task=interpolate``,
``method=replace``, at ``--steps``) or matched by reconstruction guidance (``method=reconstruction``, noise
0.02 as for super-resolution); against OI given the same frames (a jitter of 1e-3 data std stands for
exact observations), linear interpolation in time and climatology:

    python experiments/video/evaluate_turbulence_inverse.py --tasks interpolate \
        --interpolator experiments/video/runs/turb_interp/checkpoints/last.ckpt --out experiments/video/turbulence_inverse
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

FACTOR = 2  # super-resolution: 16x16 block means of the 32x32 vorticity (at 4, 8x8 means keep too little of it)
TASKS = ("superres", "assimilate")
SUPERRES_NOISE = 0.02  # observation noise std in the model's (standardised) units, as the guidance takes it


def task_options(fraction: float, noise: float) -> tuple[dict[str, list[str]], dict[str, float]]:
    """Each task's sampling options, and its observation noise std (standardised units): assimilation
    observes ``fraction`` of each frame's pixels with ``noise``."""
    options = {"superres": ["guidance=video_superres", f"guidance.factor={FACTOR}", f"guidance.noise_std={SUPERRES_NOISE}"],
               "assimilate": ["guidance=video_assimilate", f"guidance.fraction={fraction}", f"guidance.noise_std={noise}"]}
    return options, {"superres": SUPERRES_NOISE, "assimilate": noise}
EVERY = 4  # interpolation: every 4th frame and the last given, as the interpolator was trained
INTERPOLATION = {  # method -> the sampling options (the checkpoint is --checkpoint or --interpolator)
    "inpainting": ["guidance=forecast", "guidance.task=interpolate", f"guidance.every={EVERY}", "guidance.method=replace"],
    "reconstruction guidance": ["guidance=forecast", "guidance.task=interpolate", f"guidance.every={EVERY}",
                                "guidance.method=reconstruction", "guidance.noise_std=0.02"],
    "conditioning": ["cond.task=interpolate"],
}


def lag_covariance(stacks: list[np.ndarray], mean: float, lags: int) -> np.ndarray:
    """``c [lags, H, W]``: ``c[dt][d] = E[x_t(p) x_{t+dt}(p + d)]`` of the anomalies, averaged over
    trajectories, start frames and positions (periodic), by FFT cross-correlation."""
    total = None
    counts = np.zeros(lags)
    for stack in stacks:
        x = np.asarray(stack, dtype=np.float64)[:, 0] - mean  # [T, H, W]
        modes = np.fft.fft2(x)
        size = x.shape[1] * x.shape[2]
        if total is None:
            total = np.zeros((lags, *x.shape[1:]))
        for dt in range(lags):
            products = np.conj(modes[:len(x) - dt]) * modes[dt:]
            total[dt] += np.fft.ifft2(products.sum(0)).real / size
            counts[dt] += len(x) - dt
    return total / counts[:, None, None]


def spatial_blocks(c: np.ndarray) -> np.ndarray:
    """``S [lags, HW, HW]``: ``S[dt][p, q] = cov(x_t(p), x_{t+dt}(q)) = c[dt][q - p]``."""
    lags, h, w = c.shape
    py, px = np.divmod(np.arange(h * w), w)
    dy = (py[None, :] - py[:, None]) % h
    dx = (px[None, :] - px[:, None]) % w
    return c[:, dy, dx]


def covariance_between(blocks: np.ndarray, t1: int, t2: int) -> np.ndarray:
    """``cov(x_t1, x_t2) [HW, HW]`` from the stationary blocks."""
    return blocks[t2 - t1] if t2 >= t1 else blocks[t1 - t2].T


def optimal_interpolation(blocks: np.ndarray, operators: list[np.ndarray], y: np.ndarray, noise_var: float,
                          mean: float) -> tuple[np.ndarray, np.ndarray]:
    """The Gaussian posterior mean and variance ``[T, HW]`` given observations ``y = H_t x_t + noise`` of
    every frame t (``operators[t] [n_t, HW]``, ``y`` their values stacked over t)."""
    frames = len(operators)
    sizes = [len(op) for op in operators]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    n, hw = starts[-1], blocks.shape[1]
    c_oo = np.zeros((n, n))
    c_go = np.zeros((frames * hw, n))
    for t2 in range(frames):
        columns = slice(starts[t2], starts[t2 + 1])
        for t1 in range(frames):
            cross = covariance_between(blocks, t1, t2) @ operators[t2].T  # cov(x_t1, y_t2) [HW, n_t2]
            c_go[t1 * hw:(t1 + 1) * hw, columns] = cross
            c_oo[starts[t1]:starts[t1 + 1], columns] = operators[t1] @ cross
    c_oo = 0.5 * (c_oo + c_oo.T) + noise_var * np.eye(n)
    weights = np.linalg.solve(c_oo, c_go.T).T  # [T HW, n]
    posterior_mean = mean + weights @ (y - mean)
    posterior_var = np.maximum(blocks[0][0, 0] - (weights * c_go).sum(1), 0.0)
    return posterior_mean.reshape(frames, hw), posterior_var.reshape(frames, hw)


def block_mean_operator(h: int, w: int, factor: int) -> np.ndarray:
    """``[h w / factor^2, h w]``: the mean of each factor x factor block, row-major over blocks."""
    py, px = np.divmod(np.arange(h * w), w)
    block = (py // factor) * (w // factor) + px // factor
    op = np.zeros((h * w // factor**2, h * w))
    op[block, np.arange(h * w)] = 1.0 / factor**2
    return op


def point_operator(mask: np.ndarray) -> np.ndarray:
    """``[n, HW]`` picking the observed pixels of one frame (``mask [H, W]``), row-major."""
    idx = np.flatnonzero(mask.ravel())
    op = np.zeros((len(idx), mask.size))
    op[np.arange(len(idx)), idx] = 1.0
    return op


def bicubic_periodic(low: np.ndarray, factor: int) -> np.ndarray:
    """Bicubic upsampling of ``[T, h, w]`` block means to ``[T, h f, w f]`` with periodic edges (the block
    means sit at the blocks' centres)."""
    x = torch.tensor(low, dtype=torch.float64)[:, None]
    pad = 2
    x = torch.cat([x[..., -pad:, :], x, x[..., :pad, :]], dim=-2)
    x = torch.cat([x[..., -pad:], x, x[..., :pad]], dim=-1)
    big = F.interpolate(x, scale_factor=factor, mode="bicubic", align_corners=False)
    crop = pad * factor
    return big[..., crop:-crop, crop:-crop][:, 0].numpy()


def linear_periodic(values: np.ndarray, mask: np.ndarray, fill: float) -> np.ndarray:
    """Per frame, linear interpolation of the observed pixels of ``[T, H, W]`` (periodic: the points tiled
    3 x 3), ``fill`` where no triangle covers a pixel."""
    from scipy.interpolate import griddata

    frames, h, w = values.shape
    out = np.empty_like(values, dtype=np.float64)
    gy, gx = np.mgrid[0:h, 0:w]
    for t in range(frames):
        ys, xs = np.nonzero(mask[t])
        v = values[t][mask[t]]
        points = np.concatenate([np.stack([ys + a * h, xs + b * w], 1) for a in (-1, 0, 1) for b in (-1, 0, 1)])
        out[t] = griddata(points, np.tile(v, 9), (gy, gx), method="linear", fill_value=fill)
    return out


def crps_gaussian(mean: np.ndarray, std: np.ndarray, truth: np.ndarray) -> float:
    from sciffusion_domains.weather.scores import crps_gaussian as crps

    return float(crps(torch.tensor(mean), torch.tensor(np.maximum(std, 1e-12)), torch.tensor(truth)).mean())


def fair_crps(members: np.ndarray, truth: np.ndarray) -> float:
    from sciffusion_domains.weather.scores import crps_ensemble

    return float(crps_ensemble(torch.tensor(members, dtype=torch.float64), torch.tensor(truth, dtype=torch.float64),
                               fair=True).mean())


def spectrum_error(fields: np.ndarray, truth: np.ndarray) -> float:
    """Mean over shells 1..H/2 of |log10| of the frame-averaged enstrophy spectrum's ratio to the truth's."""
    from sciffusion_domains.video.physics import enstrophy_spectrum, spectrum_log_ratio

    half = truth.shape[-1] // 2
    reference = enstrophy_spectrum(truth)[1].mean(0)
    ratio = spectrum_log_ratio(enstrophy_spectrum(fields)[1].mean(0), reference)
    return float(np.abs(ratio[1:half + 1]).mean())


def ensemble_row(members: np.ndarray, truth: np.ndarray, misfit: float) -> dict:
    """The scores of an ensemble ``[M, T, H, W]``: its mean's RMSE, fair CRPS, spread and the members'
    spectrum error (``misfit`` is the task's)."""
    return dict(rmse=np.sqrt(((members.mean(0) - truth) ** 2).mean()), crps=fair_crps(members, truth), misfit=misfit,
                spectrum=np.mean([spectrum_error(m, truth) for m in members]),
                spread=np.sqrt(members.var(0, ddof=1).mean()))


def estimate_row(estimate: np.ndarray, truth: np.ndarray, misfit: float, std: np.ndarray | None = None,
                 spectrum: bool = True) -> dict:
    """The scores of one estimate: with ``std`` a Gaussian (exact CRPS), else a point (absolute error)."""
    crps = crps_gaussian(estimate, std, truth) if std is not None else float(np.abs(estimate - truth).mean())
    return dict(rmse=np.sqrt(((estimate - truth) ** 2).mean()), crps=crps, misfit=misfit,
                spectrum=spectrum_error(estimate, truth) if spectrum else float("nan"),
                spread=np.sqrt((std ** 2).mean()) if std is not None else 0.0)


def climatology_row(truth: np.ndarray, mean: float, std: float, misfit: float) -> dict:
    return estimate_row(np.full_like(truth, mean), truth, misfit, np.full_like(truth, std), spectrum=False)


def run_samples(checkpoint: str, options: list[str], members: int, steps: int, folder: Path) -> float:
    """Draw ``members`` samples into ``folder``, unless it holds those of this very command already (its
    ``done`` file names the command): a folder from a run with other members, steps or options is redrawn,
    not read as if it were this one's."""
    overrides = [f"checkpoint={checkpoint}", *options, f"num_samples={members}", f"batch_size={members}",
                 f"steps={steps}", "progress=false", f"out_dir={folder}"]
    done = folder / "done"
    if done.exists() and done.read_text() == "\n".join(overrides):
        return 0.0
    done.unlink(missing_ok=True)
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "sciffusion-sample"), *overrides], check=True,
                   stdout=subprocess.DEVNULL)
    done.write_text("\n".join(overrides))
    return time.perf_counter() - start


def known_frames_of(frames: int) -> np.ndarray:
    from sciffusion_domains.video.inverse import known_frames

    return np.flatnonzero(known_frames(frames, task="interpolate", every=EVERY).numpy())


def linear_in_time(clip: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``[T, H, W]``: each unknown frame linearly between the known frames either side."""
    out = clip.astype(np.float64).copy()
    for a, b in zip(known[:-1], known[1:]):
        for t in range(a + 1, b):
            out[t] = ((b - t) * clip[a] + (t - a) * clip[b]) / (b - a)
    return out


def draw_interpolation(path: Path, truth: np.ndarray, members: dict, oi_mean: np.ndarray, linear: np.ndarray,
                       mean: float, std: float) -> None:
    """One clip's 16 frames: the truth, member 0 of each diffusion method, the OI mean and linear interpolation
    (grey scale mean -/+ 3 std, as the domain draws clips)."""
    from sciffusion_domains.video.figures import frame_grid

    def pixels(x):
        return np.clip((x - mean + 3 * std) / (6 * std) * 255, 0, 255).round().astype(np.uint8)[..., None]

    rows = [truth, *(m[0] for m in members.values()), oi_mean, linear]
    short = {"inpainting": "inpainted", "reconstruction guidance": "guided", "conditioning": "conditioned"}
    names = ["truth", *(short[m] for m in members), "OI mean", "linear"]
    frame_grid([pixels(r) for r in rows], path, names=names)


def interpolation(args, domain, blocks: np.ndarray, mean: float, std: float) -> tuple[dict, float]:
    """Interpolation in time scored on the unknown frames (see the module docstring)."""
    if args.interpolator is None:
        raise SystemExit("--tasks interpolate needs --interpolator CKPT (a model trained with "
                         "domain.given_tasks=[forecast,interpolate])")
    frames, (h, w) = domain.frames, domain.shape[-2:]
    known = known_frames_of(frames)
    unknown = np.setdiff1d(np.arange(frames), known)
    operators = [point_operator(np.full((h, w), t in known)) for t in range(frames)]
    jitter = (1e-3 * std) ** 2
    test = domain.dataset("test")
    rows: dict[str, dict[str, list]] = {}
    seconds = 0.0
    for k in range(args.clips):
        clip = k * (len(test) // len(test.stacks)) + k  # window k of test trajectory k, as for the other tasks
        truth = test[clip][0][0].numpy().astype(np.float64)  # [T, H, W] data units
        members = {}
        for method in args.methods:
            options = INTERPOLATION[method]
            checkpoint, steps = ((args.interpolator, args.interpolator_steps) if method == "conditioning"
                                 else (args.checkpoint, args.steps))
            key = "cond.input" if method == "conditioning" else "guidance.input"
            folder = args.out / "interpolate" / method.replace(" ", "_") / f"clip_{clip}"
            seconds += run_samples(checkpoint, [*options, f"{key}=test:{clip}"], args.members, steps, folder)
            members[method] = np.stack([np.load(folder / f"sample_{m:05d}.npy")[0] for m in range(args.members)])
        y = truth[known].reshape(-1)
        oi_mean, oi_var = optimal_interpolation(blocks, operators, y, jitter, mean)
        oi_mean, oi_std = oi_mean.reshape(frames, h, w), np.sqrt(oi_var).reshape(frames, h, w)
        linear = linear_in_time(truth, known)
        u = unknown  # scored frames; the misfit column is how far the given frames moved

        def per_frame(estimate):
            return np.sqrt(((estimate - truth)[u] ** 2).mean(axis=(1, 2)))

        estimates = {f"diffusion, {method}": {**ensemble_row(m[:, u], truth[u],
                                                             np.sqrt(((m[:, known] - truth[known]) ** 2).mean())),
                                              "rmse_per_frame": per_frame(m.mean(0))}
                     for method, m in members.items()}
        estimates["optimal interpolation"] = {
            **estimate_row(oi_mean[u], truth[u], np.sqrt(((oi_mean - truth)[known] ** 2).mean()), oi_std[u]),
            "rmse_per_frame": per_frame(oi_mean)}
        estimates["linear in time"] = {**estimate_row(linear[u], truth[u], 0.0), "rmse_per_frame": per_frame(linear)}
        estimates["climatology"] = {**climatology_row(truth[u], mean, std, np.sqrt(((mean - truth[known]) ** 2).mean())),
                                    "rmse_per_frame": per_frame(np.full_like(truth, mean))}
        if k == 0:
            draw_interpolation(args.out / "interpolate" / "frames.png", truth, members, oi_mean, linear, mean, std)
        for name, scores in estimates.items():
            for key, value in scores.items():
                rows.setdefault(name, {}).setdefault(key, []).append(np.asarray(value, dtype=np.float64))
        print(f"interpolate clip {clip}: " + ", ".join(f"{n} {s['rmse']:.3f}" for n, s in estimates.items()), flush=True)
    table = {name: {key: (np.mean(v, axis=0).tolist() if key == "rmse_per_frame" else float(np.mean(v)))
                    for key, v in scores.items()} for name, scores in rows.items()}
    return table, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="turbulence")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--steps", type=int, default=40,
                        help="Heun steps; the forecaster's default 10 leaves guided samples far from the observations")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=[*TASKS, "interpolate"])
    parser.add_argument("--interpolator", help="a checkpoint trained with domain.given_tasks=[forecast,interpolate]")
    parser.add_argument("--interpolator-steps", type=int, default=10,
                        help="Heun steps for sampling by conditioning (the forecaster's default)")
    parser.add_argument("--guidance-options", nargs="*", default=[],
                        help="extra sampling options for superres/assimilate, e.g. guidance.scale=2")
    parser.add_argument("--methods", nargs="+", default=list(INTERPOLATION), choices=list(INTERPOLATION),
                        help="the diffusion methods of --tasks interpolate")
    parser.add_argument("--fraction", type=float, default=0.05,
                        help="assimilate: the fraction of each frame's pixels observed")
    parser.add_argument("--noise", type=float, default=0.1,
                        help="assimilate: the observation noise std in standardised units (data std 1)")
    parser.add_argument("--split", default="test", choices=["test", "val"],
                        help="the clips of super-resolution and assimilation: val to choose settings, test to report")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not 0 < args.fraction <= 1 or args.noise <= 0:
        parser.error(f"need 0 < --fraction <= 1 and --noise > 0, got {args.fraction} and {args.noise}")
    options, noise_std = task_options(args.fraction, args.noise)
    if args.split != "test" and "interpolate" in args.tasks:
        parser.error("--split val is for --tasks superres / assimilate; interpolation is scored on test clips")

    import sciffusion

    model = sciffusion.load(args.checkpoint)
    domain = model.domain
    mean, std = (float(v[0]) for v in domain.statistics())
    frames, (h, w) = domain.frames, domain.shape[-2:]
    start = time.perf_counter()
    c = lag_covariance(domain.dataset("train").stacks, mean, frames)
    blocks = spatial_blocks(c)
    print(f"space-time covariance from the training trajectories: {time.perf_counter() - start:.0f} s "
          f"(variance {c[0, 0, 0]:.3f}, lag-1 correlation {c[1, 0, 0] / c[0, 0, 0]:.3f})", flush=True)

    results, seconds = {}, {}
    for task in args.tasks:
        if task == "interpolate":
            results[task], seconds[task] = interpolation(args, domain, blocks, mean, std)
            continue
        noise_var = (noise_std[task] * std) ** 2
        rows: dict[str, dict[str, list[float]]] = {}
        seconds[task] = 0.0
        clips = domain.dataset(args.split)
        for k in range(args.clips):
            # window k of trajectory k (9 windows of 16 frames, every 2nd frame, per 32-frame trajectory): other
            # flows at other stages of their decay
            clip = k * (len(clips) // len(clips.stacks)) + k
            folder = args.out / task / ("" if args.split == "test" else args.split) / f"clip_{clip}"
            source = f"test:{clip}"
            if args.split != "test":  # guidance.input takes test:K or a file: the clip in data units
                folder.mkdir(parents=True, exist_ok=True)
                source = str(folder / f"{args.split}_clip.npy")
                np.save(source, clips[clip][0].numpy())
            seconds[task] += run_samples(args.checkpoint, [*options[task], *args.guidance_options,
                                                            f"guidance.input={source}"], args.members,
                                         args.steps, folder)
            truth = np.load(folder / "input.npy")[0].astype(np.float64)  # [T, H, W]
            members = np.stack([np.load(folder / f"sample_{m:05d}.npy")[0] for m in range(args.members)])
            obs = np.load(folder / "observation.npy")[0].astype(np.float64)
            if task == "superres":
                operators = [block_mean_operator(h, w, FACTOR)] * frames
                y = obs.reshape(frames, -1).ravel()
                interpolated = bicubic_periodic(obs, FACTOR)

                def observe(x):
                    return x.reshape(frames, h // FACTOR, FACTOR, w // FACTOR, FACTOR).mean(axis=(2, 4))
            else:
                mask = np.load(folder / "observation_mask.npy")[0]
                operators = [point_operator(mask[t]) for t in range(frames)]
                y = np.concatenate([obs[t][mask[t]] for t in range(frames)])
                interpolated = linear_periodic(np.nan_to_num(obs), mask, mean)

                def observe(x):
                    return x[..., mask]
            oi_mean, oi_var = optimal_interpolation(blocks, operators, y, noise_var, mean)
            oi_mean, oi_std = oi_mean.reshape(frames, h, w), np.sqrt(oi_var).reshape(frames, h, w)
            y_obs = obs if task == "superres" else obs[mask]
            estimates = {
                "diffusion ensemble": ensemble_row(members, truth, np.sqrt(np.mean([(observe(m) - y_obs) ** 2
                                                                                    for m in members]))),
                "optimal interpolation": estimate_row(oi_mean, truth, np.sqrt(((observe(oi_mean) - y_obs) ** 2).mean()),
                                                      oi_std),
                "interpolation": estimate_row(interpolated, truth,
                                              np.sqrt(((observe(interpolated) - y_obs) ** 2).mean())),
                "climatology": climatology_row(truth, mean, std, np.sqrt(((mean - y_obs) ** 2).mean())),
            }
            for name, scores in estimates.items():
                for key, value in scores.items():
                    rows.setdefault(name, {}).setdefault(key, []).append(float(value))
        results[task] = {name: {key: float(np.mean(v)) for key, v in scores.items()} for name, scores in rows.items()}
    out = {"checkpoint": args.checkpoint, "split": args.split, "clips": args.clips, "members": args.members, "steps": args.steps,
           "tasks": {task: options.get(task, INTERPOLATION) for task in args.tasks}, "guidance_options": args.guidance_options,
           "interpolator": args.interpolator, "interpolator_steps": args.interpolator_steps,
           "noise_std_model_units": noise_std, "data_std": std, "sampling_seconds": seconds, "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"scores_{'_'.join(args.tasks)}.json").write_text(json.dumps(out, indent=1) + "\n")
    for task, table in results.items():
        print(f"\n{task} ({args.clips} {args.split} clips, {args.members} members; data std {std:.3f})")
        print("| method | RMSE | CRPS | spread | obs misfit | spectrum error |\n|---|---|---|---|---|---|")
        for name, s in table.items():
            print(f"| {name} | {s['rmse']:.3f} | {s['crps']:.3f} | {s['spread']:.3f} | {s['misfit']:.3f} | "
                  f"{s['spectrum']:.3f} |")
        if task == "interpolate":
            print("RMSE per frame (unknown frames; the given ones are " f"{known_frames_of(domain.frames).tolist()}):")
            for name, s in table.items():
                print(f"  {name}: " + " ".join(f"{v:.2f}" for v in s["rmse_per_frame"]))


if __name__ == "__main__":
    main()

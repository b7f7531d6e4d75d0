"""Score a viscosity-conditioned turbulence model (``experiment=turbulence_viscosity_cpu``) at each viscosity,
against the solver's held-out trajectories at that viscosity, including viscosities it was never trained on.

For each ``--viscosities`` value NU, the 8 test trajectories simulated at NU (the same initial states at
every NU: only the viscosity differs) give:

Forecasts (the first 4 frames given, rolled out to 32 frames; ``--members`` per trajectory, fair CRPS):
    model            the conditioned model told NU
    model_told_<V>   at ``--told-wrong`` viscosities, the same model told the wrong viscosity V (the trained
                     one farthest from NU in log): how much its forecast follows the parameter rather than
                     the given frames
    baseline         ``--baseline`` (default the shipped ``turbulence`` forecaster, trained at 1e-3 only)
    persistence      the last given frame, repeated

Free clips (16 frames, no frame given: what the viscosity alone decides), ``--free`` of them, against the
24 test clips at NU (every 8th window), in their physics: enstrophy 1/2 mean(omega^2) (ratio to the
truth's), energy spectrum (mean |log10| ratio over shells 1..16) and decay (enstrophy of the last frame
over the first, mean over clips):
    model            cond.task=free cond.viscosity=NU
    model_unconditioned   no condition at all (condition dropout's mode)
    solver_val       the val trajectories at NU (where simulated): the floor, real clips against real clips
    solver_nu=V      test clips at the other viscosities V: what ignoring the viscosity would score

Each run writes ``nu_<NU>.json`` into ``--out`` (two processes can take different viscosities);
``--report`` reads them all and writes ``table.md``, ``enstrophy.png`` (the enstrophy of every forecast
frame against time, per viscosity) and ``free_frames.png``.

    python experiments/video/evaluate_turbulence_viscosity.py --checkpoint runs/visc/checkpoints/last.ckpt \\
        --viscosities 1e-3 5.5e-3 --out experiments/video/turbulence_viscosity
    python experiments/video/evaluate_turbulence_viscosity.py --report --out experiments/video/turbulence_viscosity
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_turbulence import fields, rollout_members, score  # noqa: E402  (the fixed-viscosity script's)

from sciffusion_domains.video import physics, turbulence  # noqa: E402
from sciffusion_domains.video.metrics import field_metrics, mean_energy_spectrum  # noqa: E402

FREE_STRIDE = 8  # free-clip references: every 8th 16-frame window of a trajectory (3 of 32 frames)


def enstrophy(omega: np.ndarray) -> np.ndarray:
    """1/2 mean(omega^2) over the grid: ``[..., H, W]`` -> ``[...]``."""
    return 0.5 * (omega**2).mean(axis=(-1, -2))


def windows(clips: np.ndarray, frames: int, stride: int) -> np.ndarray:
    """``[N, C, T, H, W]`` trajectories -> ``[N * W, C, frames, H, W]`` clips every ``stride`` frames."""
    starts = range(0, clips.shape[2] - frames + 1, stride)
    return np.concatenate([clips[:, :, s:s + frames] for s in starts])


def physics_scores(samples: np.ndarray, reference: np.ndarray) -> dict:
    """``metrics.field_metrics`` of vorticity clips ``[N, 1, T, H, W]`` (enstrophy ratio, spectrum error
    over shells 1..H/2, autocorrelation error), their decay and their mean energy spectrum."""
    def decay(clips):
        return float((enstrophy(clips[:, 0, -1]) / enstrophy(clips[:, 0, 0])).mean())

    return {"clips": len(samples), **field_metrics(samples, reference, field="vorticity"),
            "decay": decay(samples), "decay_truth": decay(reference),
            "energy_spectrum": mean_energy_spectrum(samples[:, 0]).tolist()}


def forecast(model, given: np.ndarray, frames: int, *, members: int, steps: int, seed: int,
             viscosity: float | None) -> np.ndarray:
    """``[M, N, 1, frames - k, H, W]``: ``members`` rollouts from ``given [N, 1, k, H, W]``, told
    ``viscosity`` (None: a model without the parameter)."""
    cond = None if viscosity is None else model.domain.viscosity_condition(len(given), viscosity, None, unconditional=False)
    return rollout_members(model, given, frames, members=members, steps=steps, seed=seed, cond=cond)


def free_clips(model, count: int, *, viscosity: float | None, steps: int, seed: int) -> np.ndarray:
    """``[count, 1, T, H, W]`` clips with no frame given: told ``viscosity``, or with no condition (None)."""
    cond = {"unconditional": True} if viscosity is None else {"task": "free", "viscosity": viscosity}
    return np.stack([c.values for c in model.sample(count, sampler="heun", steps=steps, cond=cond, seed=seed,
                                                    verbose=False)]).astype(np.float64)


def evaluate(args, nu: float) -> dict:
    import sciffusion

    model = sciffusion.load(args.checkpoint)
    trained = list(model.domain.viscosities or [])
    if not trained:
        raise SystemExit(f"{args.checkpoint} is not conditioned on the viscosity (domain.viscosities)")
    sim = replace(model.domain.simulation_spec(), viscosity=nu)
    started = time.time()
    truth = fields(turbulence.trajectories("test", args.trajectories, sim), "vorticity")
    k, length = args.given, truth.shape[2]
    target = truth[:, :, k:]
    wrong = max(trained, key=lambda v: abs(math.log10(v / nu)))
    forecasts = {"model": forecast(model, truth[:, :, :k], length, members=args.members, steps=args.steps,
                                   seed=args.seed, viscosity=nu)}
    if nu in args.told_wrong:
        forecasts[f"model_told_{wrong:g}"] = forecast(model, truth[:, :, :k], length, members=args.members,
                                                      steps=args.steps, seed=args.seed, viscosity=wrong)
    forecasts["persistence"] = physics.persistence(truth[:, :, :k], length - k)[None]
    if args.baseline:
        forecasts["baseline"] = forecast(sciffusion.load(args.baseline), truth[:, :, :k], length,
                                         members=args.members, steps=args.steps, seed=args.seed, viscosity=None)
    scores = {}
    for name, f in forecasts.items():
        f = np.asarray(f, dtype=np.float64)
        scores[name] = {**score(f, target, "vorticity"),
                        "enstrophy_per_lead": enstrophy(f[:, :, 0]).mean(axis=(0, 1)).tolist()}
    frames = model.domain.frames
    reference = windows(truth, frames, FREE_STRIDE)
    free = {"model": free_clips(model, args.free, viscosity=nu, steps=args.steps, seed=args.seed),
            "model_unconditioned": free_clips(model, args.free, viscosity=None, steps=args.steps, seed=args.seed)}
    free_scores = {name: physics_scores(clips, reference) for name, clips in free.items()}
    if turbulence.cache_path("val", args.trajectories, sim).is_file():  # other initial states at the same viscosity
        val = fields(turbulence.trajectories("val", args.trajectories, sim), "vorticity")
        free_scores["solver_val"] = physics_scores(windows(val, frames, FREE_STRIDE), reference)
    for other in args.viscosities:
        if other != nu and turbulence.cache_path("test", args.trajectories, replace(sim, viscosity=other)).is_file():
            clips = fields(turbulence.trajectories("test", args.trajectories, replace(sim, viscosity=other)), "vorticity")
            free_scores[f"solver_nu={other:g}"] = physics_scores(windows(clips, frames, FREE_STRIDE), reference)
    np.save(Path(args.out) / f"free_nu_{nu:g}.npy", free["model"][:1].astype(np.float16))  # for the figure only
    return {"viscosity": nu, "trained_viscosities": trained, "held_out": nu not in trained, "wrong_viscosity": wrong,
            "truth": {"enstrophy_per_lead": enstrophy(target[:, 0]).mean(axis=0).tolist(),
                      "enstrophy_given": enstrophy(truth[:, 0, :k]).mean(axis=0).tolist()},
            "forecast": scores, "free": free_scores, "seconds": round(time.time() - started, 1)}


LEADS = (1, 4, 8, 16, 28)


def report(out: Path) -> str:
    """``table.md`` and the figures from every ``nu_*.json`` in ``out``."""
    runs = sorted((json.loads(p.read_text()) for p in out.glob("nu_*.json")), key=lambda r: r["viscosity"])
    if not runs:
        raise SystemExit(f"no nu_*.json in {out}: run the evaluation first")
    lines = ["| viscosity | forecast | CRPS lead " + " / ".join(map(str, LEADS)) + " | RMSE lead "
             + " / ".join(map(str, LEADS)) + " | enstrophy ratio, last 4 leads | spectrum error |", "|---|---|---|---|---|---|"]
    for run in runs:
        nu = f"{run['viscosity']:g}" + (" (held out)" if run["held_out"] else "")
        truth_end = np.mean(run["truth"]["enstrophy_per_lead"][-4:])
        for name, s in run["forecast"].items():
            end = np.mean(s["enstrophy_per_lead"][-4:]) / truth_end
            lines.append(f"| {nu} | {name} | " + " / ".join(f"{s['crps_per_lead'][lead - 1]:.3f}" for lead in LEADS)
                         + " | " + " / ".join(f"{s['rmse_per_lead'][lead - 1]:.2f}" for lead in LEADS)
                         + f" | {end:.2f} | {s['spectrum_log_error']:.3f} |")
            nu = ""
    lines += ["", "| viscosity | free clips | enstrophy ratio | spectrum error | decay (truth) |", "|---|---|---|---|---|"]
    for run in runs:
        nu = f"{run['viscosity']:g}" + (" (held out)" if run["held_out"] else "")
        for name, s in run["free"].items():
            lines.append(f"| {nu} | {name} | {s['enstrophy_ratio']:.2f} | {s['spectrum_log_error']:.3f} | "
                         f"{s['decay']:.2f} ({s['decay_truth']:.2f}) |")
            nu = ""
    text = "\n".join(lines) + "\n"
    (out / "table.md").write_text(text)
    _figures(runs, out)
    return text


def _figures(runs: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(runs)))
    for run, colour in zip(runs, colours):
        given = run["truth"]["enstrophy_given"]
        truth = given + run["truth"]["enstrophy_per_lead"]
        t = np.arange(len(truth)) * 0.2
        label = f"nu={run['viscosity']:g}" + (" (held out)" if run["held_out"] else "")
        ax.semilogy(t, truth, "-", color=colour, lw=2, label=label + ": solver")
        ax.semilogy(t[len(given):], run["forecast"]["model"]["enstrophy_per_lead"], "--", color=colour)
        if "baseline" in run["forecast"]:
            ax.semilogy(t[len(given):], run["forecast"]["baseline"]["enstrophy_per_lead"], ":", color=colour)
    ax.set(xlabel="time (from the first given frame)", ylabel="enstrophy 1/2 <omega^2>",
           title="solid: solver; dashed: conditioned model; dotted: the 1e-3 forecaster")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "enstrophy.png", dpi=120)
    from sciffusion_domains.video.figures import frame_grid

    rows, names = [], []
    for run in runs:
        path = out / f"free_nu_{run['viscosity']:g}.npy"
        if path.is_file():
            omega = np.load(path)[0, 0, ::3]  # the first free clip, every 3rd frame
            rows.append((np.clip((omega + 6) / 12, 0, 1) * 255).astype(np.uint8)[..., None])
            names.append(f"nu={run['viscosity']:g}")
    if rows:
        frame_grid(rows, out / "free_frames.png", names=names)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--checkpoint", help="a model trained with domain.viscosities")
    parser.add_argument("--baseline", default="turbulence", help="a fixed-viscosity forecaster ('' for none)")
    parser.add_argument("--viscosities", type=float, nargs="+", default=[1e-3, 3e-3, 5.5e-3, 1e-2, 3e-2])
    parser.add_argument("--told-wrong", type=float, nargs="*", default=[1e-3, 3e-2],
                        help="viscosities at which the model is also told the farthest trained one")
    parser.add_argument("--trajectories", type=int, default=8)
    parser.add_argument("--given", type=int, default=4)
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--free", type=int, default=24, help="free clips per viscosity")
    parser.add_argument("--steps", type=int, default=10, help="Heun steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", action="store_true", help="only write table.md and the figures")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        if not args.checkpoint:
            parser.error("--checkpoint is needed (or --report)")
        command = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
        for nu in args.viscosities:
            result = {"command": command, "settings": vars(args), **evaluate(args, nu)}
            (out / f"nu_{nu:g}.json").write_text(json.dumps(result, indent=1))
            print(f"nu={nu:g}: {result['seconds']} s", flush=True)
    print(report(out))


if __name__ == "__main__":
    main()

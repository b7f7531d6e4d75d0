"""``make demo``: sample the shipped checkpoints of the built-in domains (molecules first) through the
same apps a user runs, write each field's files, figures and metrics into ``demo_output/<domain>/``,
then train, sample and score the toy domain end to end. Prints where to look.

    python -m sciffusion.demo [--out demo_output] [--only molecules,images]

A few minutes on two CPU cores. Each step is an ordinary command (printed as it runs), so any of them
can be rerun alone with more samples or steps.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import torch

from . import registry


# demo step -> its domain (folder and pip extra), where they differ
DOMAIN_OF = {"audio_gap": "audio", "audio_latent": "audio", "molecules_edm": "molecules", "images_2step": "images",
             "images_latent": "images", "video_digits": "video"}
REGISTERED_AS = {"molecules": "qm9"}  # domain folder -> entry-point name, where they differ


def shipped(domain_package: str, name: str) -> Path | None:
    """A checkpoint shipped in ``sciffusion_domains.<domain_package>/weights/``, if present."""
    try:
        path = Path(str(resources.files(f"sciffusion_domains.{domain_package}") / "weights" / name))
    except ModuleNotFoundError:
        return None
    return path if path.is_file() else None


def demo_steps(out: Path) -> list[tuple[str, str, list[str]]]:
    """(domain, what it shows, command) for every shipped checkpoint found."""
    steps = []
    if (ckpt := shipped("molecules", "qm9_joint_cpu.ckpt")) is not None:
        steps.append(("molecules", "3D molecules with generated bonds and charges (SDF, XYZ, figure), scored with "
                      "the generated bonds and with bonds re-perceived from the coordinates",
                      ["-m", "sciffusion.cli.evaluate", f"checkpoint={ckpt}", "num_samples=64", "batch_size=64",
                       "save_samples=true", "reference_limit=500", f"out_dir={out / 'molecules'}"]))
    if (ckpt := shipped("molecules", "qm9_cpu.ckpt")) is not None:
        name = "molecules_edm" if steps else "molecules"
        steps.append((name, "3D molecules (SDF, XYZ, 3D and 2D figures) with EDM's stability/validity metrics",
                      ["-m", "sciffusion.cli.evaluate", f"checkpoint={ckpt}", "num_samples=64", "batch_size=64",
                       "sampler=ddpm", "grid=uniform_t", "steps=100", "save_samples=true", "reference_limit=500",
                       f"out_dir={out / name}"]))
    if (ckpt := shipped("images", "mnist_unet.ckpt")) is not None:
        steps.append(("images", "class-conditional digits with classifier-free guidance (PNGs, grid, classifier FD)",
                      ["-m", "sciffusion.cli.evaluate", f"checkpoint={ckpt}", "num_samples=50", "batch_size=50",
                       "sampler=dpmpp_2m", "steps=20", "guidance=cfg", "guidance.scale=2.0", "save_samples=true",
                       f"out_dir={out / 'images'}"]))
    if (ckpt := shipped("images", "mnist_consistency.ckpt")) is not None:
        steps.append(("images_2step", "the same digits from the distilled model in 2 steps, no guidance needed "
                      "(consistency distillation; beside the teacher's 20 guided steps)",
                      ["-m", "sciffusion.cli.evaluate", f"checkpoint={ckpt}", "num_samples=50", "batch_size=50",
                       "steps=2", "save_samples=true", f"out_dir={out / 'images_2step'}"]))
    if (ckpt := shipped("latent", "mnist_latent_unet.ckpt")) is not None:  # the images plugin decodes its latents
        steps.append(("images_latent", "the same digits from a latent U-Net (4x7x7 autoencoder latents, decoder in the "
                      "checkpoint), beside the pixel model's: a sample costs 1/3.5 of the pixel model's at the same "
                      "sampler and steps, training cost 1/3.1 (experiments/latent/README.md)",
                      ["-m", "sciffusion.cli.evaluate", f"checkpoint={ckpt}", "num_samples=50", "batch_size=50",
                       "save_samples=true", f"out_dir={out / 'images_latent'}"]))
    if (ckpt := shipped("weather", "hadisst_forecast.ckpt")) is not None:
        steps.append(("weather", "SST ensemble forecasts (NetCDF, maps, Nino 3.4 plume, CRPS vs baselines)",
                      ["-m", "sciffusion_domains.weather.forecast", f"checkpoint={ckpt}", "members=4", "leads=3",
                       "inits=[2017-03,2017-09,2018-03,2018-09,2019-03,2019-09]", "steps=10", "observations=100", f"out_dir={out / 'weather'}"]))
    if (ckpt := shipped("video", "turbulence_forecast.ckpt")) is not None:  # simulates the 8 test flows once (~1 min)
        steps.append(("video", "2-D turbulence (vorticity) continued from the first 4 frames of a held-out "
                      "solver trajectory and rolled out to 32 frames, twice the model's window (GIF, MP4, NetCDF, "
                      "frame grid)",
                      ["-m", "sciffusion_domains.video.rollout", f"checkpoint={ckpt}", "members=4", "frames=32",
                       "input=test:0", f"out_dir={out / 'video'}"]))
    if (ckpt := shipped("video", "moving_digits_forecast.ckpt")) is not None:
        steps.append(("video_digits", "Moving MNIST continued from the first 4 frames of a held-out clip to 16 "
                      "frames, one frame a window from the last frame at noise 0.5, the model's measured rollout "
                      "defaults (GIF, frame grid)",
                      ["-m", "sciffusion_domains.video.rollout", f"checkpoint={ckpt}", "members=4", "frames=16",
                       "input=test:0", f"out_dir={out / 'video_digits'}"]))
    if (ckpt := shipped("audio", "spoken_digits.ckpt")) is not None:
        steps.append(("audio", "spoken digits with classifier-free guidance as WAV and spectrograms, with classifier "
                               "metrics", ["-m", "sciffusion.cli.evaluate", f"checkpoint={ckpt}", "num_samples=20",
                                           "batch_size=20", "sampler=dpmpp_2m", "steps=20", "guidance=cfg",
                                           "guidance.scale=2.0", "save_samples=true", f"out_dir={out / 'audio'}"]))
        steps.append(("audio_gap", "a held-out clip with its middle (0.35-0.6 s) regenerated, four ways (WAV, figure)",
                      ["-m", "sciffusion.cli.sample", f"checkpoint={ckpt}", "num_samples=4", "batch_size=4",
                       "sampler=dpmpp_2m", "steps=20", "guidance=gap", "guidance.input=test:3",
                       f"out_dir={out / 'audio_gap'}"]))
    if (ckpt := shipped("latent", "spoken_digits_latent_unet.ckpt")) is not None:  # the audio plugin decodes it
        steps.append(("audio_latent", "the same spoken digits from a latent U-Net (4x20x16 autoencoder latents, decoder "
                      "in the checkpoint; AudioLDM-style) at its measured defaults: FD 3.73 against the pixel model's "
                      "5.02 at 1/3.3 of its training cost and 1/4.1 of its sampling cost (experiments/latent/README.md)",
                      ["-m", "sciffusion.cli.evaluate", f"checkpoint={ckpt}", "num_samples=20", "batch_size=20",
                       "save_samples=true", f"out_dir={out / 'audio_latent'}"]))
    return steps


def run_toy(out: Path, steps: int, *, experiment: str = "toy_edm", sampler: str = "heun", sampling_steps: int = 24,
            grid: str = "karras") -> dict:
    """Train the toy domain through the CLI code path, sample and score it against the exact mixture."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from .cli import sample, train

    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        train_cfg = compose("train", overrides=[f"experiment={experiment}", "train.batch_size=256", "train.log_every=100",
                                                "train.save_every=500", "train.warmup=100", "optim.lr=2e-3",
                                                f"train.steps={steps}"])
        ckpt = out / "run" / "checkpoints" / "last.ckpt"
        sample_cfg = compose("sample", overrides=["num_samples=2000", f"sampler={sampler}", f"steps={sampling_steps}",
                                                  f"grid={grid}", "batch_size=1000", f"checkpoint={ckpt}",
                                                  f"out_dir={out}"])
    train.run(train_cfg, out / "run")
    domain, objects = sample.draw(OmegaConf.to_container(sample_cfg, resolve=True))
    sample.write(domain, objects, out)
    metrics = domain.metrics(objects, domain.reference("test"))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_output", help="output folder (replaced)")
    parser.add_argument("--only", default=None, help="comma-separated domains to run (default: all shipped, then toy)")
    parser.add_argument("--toy-steps", type=int, default=1000, help="training steps of the toy run")
    args = parser.parse_args(argv)
    only = None if args.only is None else set(args.only.split(","))
    # small models on a busy machine: intra-op threads only spin against each other
    torch.set_num_threads(1)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    out = Path(args.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start, summary = time.perf_counter(), {}
    for name, what, command in demo_steps(out):
        if only is not None and name not in only:
            continue
        domain = DOMAIN_OF.get(name, name)
        registered = REGISTERED_AS.get(domain, domain)
        if registered not in registry.loadable():
            summary[name] = {"skipped": f"the {registered} plugin does not import; pip install 'sciffusion[{domain}]'"}
            continue
        print(f"\n== {name}: {what}\n   {Path(sys.executable).name} {' '.join(command)}", flush=True)
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, *command], env=env)
        summary[name] = {"folder": str(out / name), "seconds": round(time.perf_counter() - t0, 1),
                         "ok": done.returncode == 0, "command": " ".join(["python", *command])}
        if (out / name / "metrics.json").is_file():
            summary[name]["metrics"] = json.loads((out / name / "metrics.json").read_text()).get("metrics")
    if only is None or "toy" in only:
        print("\n== toy: train, sample and score a 2-D Gaussian mixture end to end (EDM, Heun)", flush=True)
        t0 = time.perf_counter()
        metrics = run_toy(out / "toy", args.toy_steps)
        summary["toy"] = {"folder": str(out / "toy"), "seconds": round(time.perf_counter() - t0, 1), "ok": True,
                          "metrics": metrics}
        print("\n== toy_joint: points and their labels generated jointly (Gaussian + categorical parts, DDPM)",
              flush=True)
        t0 = time.perf_counter()
        metrics = run_toy(out / "toy_joint", args.toy_steps, experiment="toy_joint", sampler="ddpm",
                          sampling_steps=100, grid="uniform_t")
        summary["toy_joint"] = {"folder": str(out / "toy_joint"), "seconds": round(time.perf_counter() - t0, 1),
                                "ok": True, "metrics": metrics}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"\ndone in {time.perf_counter() - start:.0f} s. Look at {out}:")
    for name, entry in summary.items():
        status = "ok" if entry.get("ok") else entry.get("skipped", "FAILED (see the output above)")
        print(f"  {name:10s} {entry.get('folder', '')}  [{status}]")
        folder = Path(entry.get("folder", out))
        for picture in sorted(folder.glob("*.png"))[:4]:
            print(f"             {picture.name}")
    print(f"  summary    {out / 'summary.json'} (every command and metric)")
    failed = [n for n, e in summary.items() if "ok" in e and not e["ok"]]
    if failed:
        raise SystemExit(f"demo steps failed: {', '.join(failed)}")
    return out


if __name__ == "__main__":
    main()

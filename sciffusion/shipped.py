"""The checkpoints shipped with the built-in domains, by short name, and the sampling settings that
measured best for each (stored in the checkpoint as ``sampling_defaults``; see ``settings``).

    sciffusion.load("qm9")            # domains/molecules/weights/qm9_cpu.ckpt
    sciffusion-sample checkpoint=digits num_samples=20 out_dir=samples/digits

A checkpoint is named by its short name, an alias, or its file's stem (``qm9_cpu``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Shipped:
    """A checkpoint file in ``sciffusion_domains.<package>/weights/`` and how to sample it best."""

    package: str
    file: str
    what: str
    best: dict[str, Any] = field(default_factory=dict)  # sampler, steps, grid, guidance (None or {name, ...})
    measured: str = ""  # where the settings were measured
    # the conditions a sample needs when no input is given (a forecaster: free clips), e.g. for
    # model.sample(n, cond=entry.free_cond); empty when the model samples with none
    free_cond: dict[str, Any] = field(default_factory=dict)

    def path(self) -> Path | None:
        """The installed file, or None when the domain package or the file is absent."""
        try:
            path = Path(str(resources.files(f"sciffusion_domains.{self.package}") / "weights" / self.file))
        except ModuleNotFoundError:
            return None
        return path if path.is_file() else None


SHIPPED: dict[str, Shipped] = {
    "qm9_joint": Shipped("molecules", "qm9_joint_cpu.ckpt",
                         "QM9 molecules with hydrogens: positions, atom types, charges and bonds generated jointly "
                         "(see experiments/molecules/joint/README.md)",
                         {"sampler": "ddpm", "steps": 500, "grid": "uniform_t", "guidance": None,
                          "sampler_options": {"categorical": "posterior"}},
                         "step 30,000 (21,500 steps on a 2-core CPU, then 8,500 on an H200), DDPM 500 + exact "
                         "categorical posterior, 500 molecules sampled on the CPU, seed 0: bonds re-perceived "
                         "from coordinates: atom stability 96.7%, DetermineBonds validity 88.4%; generated "
                         "bonds: atom / molecule stability 97.9 / 90.2%, strict validity 88.4%, connected "
                         "98.2%, unique 99.8%, novel 66.0% (experiments/molecules/joint/README.md)"),
    "qm9_joint_noh": Shipped("molecules", "qm9_joint_noh_cpu.ckpt",
                             "QM9 molecules without hydrogens, atoms, charges and Kekule bonds generated jointly",
                             {"sampler": "ddpm", "steps": 500, "grid": "uniform_t", "guidance": None,
                              "sampler_options": {"categorical": "posterior"}},
                             "experiments/molecules/joint/README.md: validity (implicit H) "
                             "95.3/96.0/96.0/96.7/97.0% at 20/50/100/250/500 DDPM steps, 300 molecules, step "
                             "8500"),
    "qm9_joint_alpha": Shipped("molecules", "qm9_joint_alpha_cpu.ckpt",
                               "the joint QM9 model conditioned on the polarisability alpha (cond.alpha=..., bohr^3)",
                               {"sampler": "ddpm", "steps": 100, "grid": "uniform_t",
                                "guidance": {"name": "cfg", "scale": 2.0},
                                "sampler_options": {"categorical": "posterior"}},
                               "experiments/molecules/joint/README.md: CFG 2 misses the requested alpha by 3.50"
                               " bohr^3 (3.71 unguided), correlation 0.89; DDPM 100 steps"),
    "qm9": Shipped("molecules", "qm9_cpu.ckpt", "3D molecules of QM9 with hydrogens (EGNN, CPU-trained)",
                   {"sampler": "ddpm", "steps": 250, "grid": "uniform_t", "guidance": None},
                   "experiments/molecules/README.md: DDPM 250 steps has the most stable atoms and connected molecules"),
    "qm9_alpha": Shipped("molecules", "qm9_alpha_cpu.ckpt", "QM9 molecules conditioned on the polarisability alpha",
                         {"sampler": "ddpm", "steps": 100, "grid": "uniform_t", "guidance": None},
                         "experiments/molecules/README.md: the conditional model (CFG scale 1) has the lowest MAE"),
    "digits": Shipped("images", "mnist_unet.ckpt", "class-conditional MNIST digits (U-Net, EDM)",
                      {"sampler": "dpmpp_2m", "steps": 20, "grid": "karras", "guidance": {"name": "cfg", "scale": 2.0}},
                      "experiments/images/README.md and make demo: DPM-Solver++(2M) 20 steps, CFG 2 (class accuracy "
                      "0.99 against 0.91 unguided)"),
    "digits_consistency": Shipped("images", "mnist_consistency.ckpt",
                                  "the digits model distilled to 1-4 steps (consistency distillation, CFG 2 distilled in)",
                                  {"sampler": "consistency", "steps": 2, "grid": "karras",
                                   "grid_options": {"sigma_min": 0.8}, "guidance": None},
                                  "experiments/distillation/README.md: 2 consistency steps, FD 3.78 and 99.2% "
                                  "of classes recognised (teacher: DPM-Solver++(2M) 20 steps with CFG 2, 40 "
                                  "NFE, FD 3.89, 98.6%)"),
    "digits_latent": Shipped("latent", "mnist_latent_unet.ckpt",
                             "class-conditional MNIST digits from a U-Net on 4x7x7 autoencoder latents (the KL "
                             "autoencoder embedded: latent diffusion at 1/3.5 of the pixel model's sampling cost)",
                             {"sampler": "heun", "steps": 20, "grid": "karras", "guidance": {"name": "cfg", "scale": 2.0}},
                             "experiments/latent/README.md: Heun 20 steps, CFG 2: FD 3.13 and class accuracy 0.998 "
                             "(unguided: FD 1.85, accuracy 0.872; the pixel model 3.86 / 1.92)"),
    "spoken_digits_latent": Shipped("latent", "spoken_digits_latent_unet.ckpt",
                                    "one-second spoken digits from a U-Net on 4x20x16 autoencoder latents of the "
                                    "log-mel spectrograms (AudioLDM-style; the KL autoencoder embedded)",
                                    {"sampler": "dpmpp_2m", "steps": 25, "grid": "karras",
                                     "guidance": {"name": "cfg", "scale": 2.0}},
                                    "experiments/latent/README.md: DPM-Solver++(2M) 25 steps, CFG 2: FD 3.73 and 99.6% "
                                    "recognised (unguided: FD 4.94, 92.4%; the pixel model 5.02 / 8.32)"),
    "spoken_digits": Shipped("audio", "spoken_digits.ckpt", "one-second spoken digits as log-mel spectrograms",
                             {"sampler": "dpmpp_2m", "steps": 25, "grid": "karras",
                              "guidance": {"name": "cfg", "scale": 2.0}},
                             "experiments/audio/README.md: DPM-Solver++(2M) 25 steps, CFG 2 (97.4% recognised)"),
    "spoken_digits_2step": Shipped("audio", "spoken_digits_2step.ckpt",
                                   "the spoken-digits model distilled to 2 DDIM steps (progressive distillation, "
                                   "32 -> 2 steps, CFG 2 distilled in)",
                                   {"sampler": "ddim", "steps": 2, "grid": "uniform_t", "guidance": None},
                                   "experiments/distillation/README.md: 2 steps, FD 8.89 and 95.8% recognised (teacher "
                                   "at 50 NFE: FD 5.02, 97.4%; at 2 NFE: FD 30.1, 59.6%)"),
    "hadisst": Shipped("weather", "hadisst_forecast.ckpt", "monthly sea-surface temperature forecasts (HadISST 5x5)",
                       {"sampler": "heun", "steps": 12, "grid": "karras", "guidance": None},
                       "experiments/weather/README.md: Heun 12 steps on the Karras grid"),
    "hadisst_forecast_2step": Shipped("weather", "hadisst_forecast_2step.ckpt",
                                      "the HadISST forecast model distilled to 1-4 steps (consistency distillation)",
                                      {"sampler": "consistency", "steps": 2, "grid": "karras",
                                       "grid_options": {"sigma_min": 0.5}, "guidance": None},
                                      "experiments/distillation/README.md: 2 steps, fair CRPS at most 1.008x the "
                                      "teacher's at Heun 12 steps (23 NFE) at every lead, spread/skill 1.00-1.09"),
    "turbulence": Shipped("video", "turbulence_forecast.ckpt",
                          "2-D decaying turbulence (vorticity, 16 frames of 32x32) forecast from 4 given frames, "
                          "rolled out past 16 with sciffusion_domains.video.rollout (cond.input=test:K or a .npy clip)",
                          {"sampler": "heun", "steps": 10, "grid": "karras", "guidance": None},
                          "domains/video/README.md: Heun 10 steps (19 NFE): fair CRPS equal to Heun 20 and "
                          "DPM-Solver++(2M) 20 at every lead (0.090 at lead 1, 0.647 at 28), the closest spectrum "
                          "(0.034) and enstrophy (0.96) of the three", free_cond={"unconditional": True}),
    "turbulence_interpolate": Shipped("video", "turbulence_interpolate.ckpt",
                                      "the turbulence forecaster fine-tuned to also interpolate in time: given every 4th "
                                      "frame and the last (cond.input=test:K cond.task=interpolate), or the first 4 "
                                      "(cond.input=test:K, a forecast)",
                                      {"sampler": "heun", "steps": 20, "grid": "karras", "guidance": None},
                                      "domains/video/README.md: interpolation at Heun 20 steps: fair CRPS 0.056 against "
                                      "0.058 at 10 and optimal interpolation's 0.122, spread/skill 1.00 against 1.21",
                                      free_cond={"unconditional": True}),
    "turbulence_viscosity": Shipped("video", "turbulence_viscosity.ckpt",
                                    "2-D decaying turbulence conditioned on the viscosity (trained at 1e-3, 3e-3, 1e-2, "
                                    "3e-2): forecasts from 4 given frames (cond.input=test:K or a .npy clip, "
                                    "cond.viscosity=NU) and clips from the viscosity alone (cond.task=free "
                                    "cond.viscosity=NU)",
                                    {"sampler": "heun", "steps": 10, "grid": "karras", "guidance": None},
                                    "domains/video/README.md: Heun 10 steps (19 NFE), the turbulence forecaster's best "
                                    "measured setting and the one this model was scored at: fair CRPS at lead 28 "
                                    "0.425 at the held-out viscosity 5.5e-3 (the fixed-viscosity forecaster: 0.460), "
                                    "0.081 at 3e-2 (0.320)", free_cond={"task": "free", "viscosity": 1e-2}),
    "moving_digits": Shipped("video", "moving_digits_forecast.ckpt",
                             "Moving MNIST (two digits bouncing, 32x32) continued from 4 given frames: windows of 8 "
                             "frames rolled out one new frame a window from the last frame noised to 0.5 "
                             "(python -m sciffusion_domains.video.rollout checkpoint=moving_digits input=test:K "
                             "frames=16; its defaults are these); cond.unconditional=true for free windows",
                             {"sampler": "heun", "steps": 20, "grid": "karras", "guidance": None,
                              "rollout": {"new_frames": 1, "start_sigma": 0.5}},
                             "experiments/video/moving_digits_shipped/: Heun 20 steps, one new frame a window from "
                             "the last frame at noise 0.5 (16,000 steps): forecast video FD 22.7 (persistence 71.4, "
                             "optical-flow extrapolation 20.0), frame FD 19.5 (80.4), the pair of digits in 40% of "
                             "frames (24%); frames change 0.38 as much as real clips'",
                             free_cond={"unconditional": True}),
}
ALIASES = {"mnist": "digits", "mnist_unet": "digits", "mnist_consistency": "digits_consistency", "audio": "spoken_digits", "weather": "hadisst",
           "hadisst_forecast": "hadisst", "qm9_cpu": "qm9", "qm9_alpha_cpu": "qm9_alpha",
           "qm9_joint_alpha_cpu": "qm9_joint_alpha", "mnist_latent_unet": "digits_latent",
           "spoken_latent": "spoken_digits_latent",
           "turbulence_forecast": "turbulence"}


def names() -> list[str]:
    """The short names of the shipped checkpoints."""
    return sorted(SHIPPED)


def lookup(name: str) -> Shipped | None:
    """The shipped checkpoint called ``name`` (a short name, an alias or a file stem), else None."""
    return SHIPPED.get(ALIASES.get(name, name))


EXTRA = {"latent": "images"}  # the pip extra a weights package needs, where its name is not one


def resolve(name: str) -> Path:
    """The file of the shipped checkpoint ``name``; raises naming the choices or the extra to install."""
    entry = lookup(name)
    if entry is None:
        raise ValueError(f"no shipped checkpoint called {name!r}; the names are {', '.join(names())} "
                         "(or pass the path of a .ckpt file or of a folder written by save_pretrained)")
    path = entry.path()
    if path is None:
        raise FileNotFoundError(f"the shipped checkpoint {name!r} ({entry.package}/weights/{entry.file}) is not "
                                f"installed; pip install 'sciffusion[{EXTRA.get(entry.package, entry.package)}]' from a "
                                "source checkout")
    return path

"""Training and sampling cost of the pixel UNet (experiment=mnist_unet) against latent models
(experiment=mnist_latent_dit with patch size 2 and 1 / mnist_latent_unet) on one CPU thread, measured in one process with the
models taking turns, so that a busy machine slows them alike.

    OMP_NUM_THREADS=1 python experiments/latent/bench_cost.py --autoencoder RUN/checkpoints/last.ckpt

Training: seconds per optimiser step of a batch of 64 (forward, backward, AdamW; the latent data are
encoded once beforehand, as the latent domain does), and of the autoencoder (experiment=
mnist_latent_autoencoder), which one trains once for every latent model on the data. Sampling:
milliseconds per image for Heun with 20 steps (39 network evaluations) and classifier-free guidance
(x2), one batch of 50, plus the decoder for latent models, in three rounds with the models taking
turns (medians). Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import sciffusion.cli  # noqa: F401  (registers the schemas and the domain search path)
from sciffusion.cli import build
from sciffusion.guidance import ClassifierFreeGuidance
from sciffusion.samplers import heun, prior_sample
from sciffusion.space import DenseSpace
from sciffusion.timesteps import make_grid


def parts(experiment: str, autoencoder: str | None, *overrides: str):
    extra = [f"domain.autoencoder={autoencoder}", *overrides] if autoencoder else list(overrides)
    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}", *extra])
    plain = OmegaConf.to_container(cfg, resolve=True)
    torch.manual_seed(0)
    return build.build(plain)


def train_step(p, optimiser, x, labels) -> float:
    start = time.perf_counter()
    t = p.loss.sample_time(len(x), torch.Generator().manual_seed(0))
    loss = p.loss(p.model, x, space=DenseSpace(), cond={"label": labels}, t=t,
                  generator=torch.Generator().manual_seed(1)).mean()
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return time.perf_counter() - start


@torch.no_grad()
def sample_cost(p, shape, n: int, *, sampler=heun, steps: int = 20) -> tuple[float, float]:
    """(wall, CPU) milliseconds per sample of ``sampler`` with ``steps`` on the Karras grid and classifier-free
    guidance at scale 2, one batch of ``n`` with labels 0-9 in turn, plus the decoder for a latent model (to
    the base domain's tensors; an audio model's Griffin-Lim inversion is left out, as it is the same for all)."""
    p.model.eval()
    denoiser = ClassifierFreeGuidance(p.model, 2.0)
    grid = make_grid("karras", p.process, steps)
    wall, cpu = time.perf_counter(), time.thread_time()
    x = prior_sample(p.process, torch.zeros(n, *shape), generator=torch.Generator().manual_seed(0), space=DenseSpace())
    x = sampler(denoiser, x, grid, process=p.process, space=DenseSpace(), cond={"label": torch.arange(n) % 10})
    if hasattr(p.domain, "decode_latents"):
        p.domain.decode_latents(x)
    p.model.train()
    return 1000 * (time.perf_counter() - wall) / n, 1000 * (time.thread_time() - cpu) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--autoencoder", required=True)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per model (after 2 warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="sampling rounds, the models taking turns")
    parser.add_argument("--images", type=int, default=50, help="images per sampling round (one batch)")
    args = parser.parse_args()
    models = {"pixel_unet": parts("mnist_unet", None), "latent_dit": parts("mnist_latent_dit", args.autoencoder),
              "latent_dit_p1": parts("mnist_latent_dit", args.autoencoder, "network.dit.patch_size=1"),
              "latent_unet": parts("mnist_latent_unet", args.autoencoder)}
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (64,), generator=g)
    data = {"pixel_unet": torch.rand(64, 1, 28, 28, generator=g) * 2 - 1}
    for name in ("latent_dit", "latent_dit_p1", "latent_unet"):
        data[name] = torch.randn(64, *models[name].domain.shape, generator=g)
    trained = {**models, "autoencoder": parts("mnist_latent_autoencoder", None)}
    data["autoencoder"] = data["pixel_unet"]
    optimisers = {name: p.optimizer(p.model.parameters()) for name, p in trained.items()}
    times: dict[str, list[float]] = {name: [] for name in trained}
    for i in range(args.steps + 2):
        for name, p in trained.items():
            seconds = train_step(p, optimisers[name], data[name], labels)
            if i >= 2:
                times[name].append(seconds)
    sampling: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, p in models.items():
            sampling[name].append(sample_cost(p, data[name].shape[1:], args.images)[0])
    out = {"threads": torch.get_num_threads(), "train_steps_timed": args.steps, "sampling_rounds": args.rounds,
           "images_per_round": args.images}
    for name, p in models.items():
        out[name] = {"parameters": sum(q.numel() for q in p.model.parameters()),
                     "s_per_step": round(statistics.median(times[name]), 4),
                     "ms_per_image_heun20_cfg": round(statistics.median(sampling[name]), 2)}
    out["autoencoder"] = {"parameters": sum(q.numel() for q in trained["autoencoder"].model.parameters()),
                          "s_per_step": round(statistics.median(times["autoencoder"]), 4)}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()

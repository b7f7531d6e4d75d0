"""Training cost per step of the shipped spoken-digit pixel U-Net (experiment=spoken_digits) against the
latent U-Net (experiment=spoken_digits_latent_unet) and the autoencoder
(experiment=spoken_digits_latent_autoencoder), on one CPU thread, measured in one process with the models
taking turns, so that a busy machine slows them alike (as bench_cost.py does for MNIST).

    OMP_NUM_THREADS=1 python experiments/latent/bench_spoken_digits.py --autoencoder AE/checkpoints/last.ckpt

Any autoencoder checkpoint of that experiment will do (a 3-step one: only its shape matters). Per model:
median seconds per optimiser step of a batch of 32 (forward, backward, AdamW), as wall time and as the
thread's CPU time (what an uncontended thread would take as wall time), and the encoder's CPU seconds
per clip (the latent domain encodes the data once before training); and the sampling cost per clip of
the two diffusion models at the shipped defaults: DPM-Solver++(2M), 25 Karras steps, CFG 2 (50 network
evaluations), the decoder included (``bench_cost.sample_cost``). Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from bench_cost import parts, sample_cost  # the MNIST cost benchmark next to this file (it registers the configs)
from sciffusion.samplers import dpmpp_2m
from sciffusion.space import DenseSpace

BATCH = 32  # the spoken_digits recipe's


def train_step(p, optimiser, x, labels) -> tuple[float, float]:
    """(wall, CPU) seconds of one optimiser step."""
    wall, cpu = time.perf_counter(), time.thread_time()
    t = p.loss.sample_time(len(x), torch.Generator().manual_seed(0))
    loss = p.loss(p.model, x, space=DenseSpace(), cond={"label": labels}, t=t,
                  generator=torch.Generator().manual_seed(1)).mean()
    optimiser.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(p.model.parameters(), 1.0)
    optimiser.step()
    return time.perf_counter() - wall, time.thread_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--autoencoder", required=True)
    parser.add_argument("--steps", type=int, default=6, help="timed training steps per model (after 1 warm-up)")
    parser.add_argument("--rounds", type=int, default=3, help="sampling rounds, the two diffusion models taking turns")
    parser.add_argument("--clips", type=int, default=20, help="clips per sampling round (one batch)")
    args = parser.parse_args()
    models = {"pixel_unet": parts("spoken_digits", None),
              "latent_unet": parts("spoken_digits_latent_unet", args.autoencoder),
              "autoencoder": parts("spoken_digits_latent_autoencoder", None)}
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (BATCH,), generator=g)
    spectrograms = torch.randn(BATCH, 1, 80, 63, generator=g)
    data = {"pixel_unet": spectrograms, "autoencoder": spectrograms,
            "latent_unet": torch.randn(BATCH, *models["latent_unet"].domain.shape, generator=g)}
    optimisers = {name: p.optimizer(p.model.parameters()) for name, p in models.items()}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
    for i in range(args.steps + 1):
        for name, p in models.items():
            seconds = train_step(p, optimisers[name], data[name], labels)
            if i >= 1:
                times[name].append(seconds)
    encoder = models["latent_unet"].domain.autoencoder
    with torch.no_grad():
        cpu = time.thread_time()
        encoder.encode(spectrograms)
        encode_cpu = (time.thread_time() - cpu) / BATCH
    sampling: dict[str, list[tuple[float, float]]] = {"pixel_unet": [], "latent_unet": []}
    for _ in range(args.rounds):
        for name in sampling:
            sampling[name].append(sample_cost(models[name], data[name].shape[1:], args.clips, sampler=dpmpp_2m, steps=25))
    out = {"threads": torch.get_num_threads(), "batch": BATCH, "steps_timed": args.steps,
           "sampling_rounds": args.rounds, "clips_per_round": args.clips,
           "latent_shape": list(models["latent_unet"].domain.shape), "encode_cpu_s_per_clip": round(encode_cpu, 4)}
    for name, p in models.items():
        out[name] = {"parameters": sum(q.numel() for q in p.model.parameters()),
                     "wall_s_per_step": round(statistics.median(w for w, _ in times[name]), 3),
                     "cpu_s_per_step": round(statistics.median(c for _, c in times[name]), 3)}
        if name in sampling:
            out[name]["wall_ms_per_clip_dpmpp2m25_cfg"] = round(statistics.median(w for w, _ in sampling[name]), 1)
            out[name]["cpu_ms_per_clip_dpmpp2m25_cfg"] = round(statistics.median(c for _, c in sampling[name]), 1)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()

"""Steps per second of sciffusion's training loop against a bare hand-written PyTorch loop.

Both train the same denoiser (the toy domain's MLP, v-prediction on vp_cosine) with the same loss,
global batch and AdamW optimiser. The loop includes everything it does by default: the DataLoader
with the domain's collate, per-micro-batch seeded generators, gradient-norm clipping with the
NaN/inf guard, the EMA update, the learning-rate schedule, JSON-lines + TensorBoard logs every 50
steps and a checkpoint every 500 steps. The bare loop indexes a tensor and steps the optimiser.

    python benchmarks/training.py [--steps 600] [--repeats 3] [--threads 1]

Runs alternate and the best of ``repeats`` is kept, which filters out noise from other processes.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial

import torch

from sciffusion.losses import DiffusionLoss
from sciffusion.parameterization import ModelDenoiser
from sciffusion.processes import make_process
from sciffusion.space import DenseSpace
from sciffusion.training import Trainer, TrainOptions, seed_everything
from sciffusion_domains.toy import ToyDomain

# name: (hidden, depth, batch, share of --steps): the wider model runs fewer, longer steps.
SIZES = {"toy default (128 wide, 3 deep, batch 256)": (128, 3, 256, 1.0),
         "wider (512 wide, 4 deep, batch 1024)": (512, 4, 1024, 0.2)}


def make_model(domain: ToyDomain, process, hidden: int, depth: int) -> ModelDenoiser:
    seed_everything(0)
    return ModelDenoiser(domain.network(hidden=hidden, depth=depth), process, "v")


def bare_loop(domain: ToyDomain, hidden: int, depth: int, batch: int, steps: int) -> float:
    """Seconds for ``steps`` steps of the plainest loop with the same model, loss and optimiser."""
    process = make_process("vp_cosine")
    model, loss_fn = make_model(domain, process, hidden, depth), DiffusionLoss(process)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = domain.dataset("train").points
    start = time.perf_counter()
    for _ in range(steps):
        x = data[torch.randint(len(data), (batch,))]
        loss = loss_fn(model, x, space=DenseSpace()).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def sciffusion_loop(domain: ToyDomain, hidden: int, depth: int, batch: int, steps: int) -> float:
    """Seconds for ``steps`` steps of ``Trainer.fit`` with its default cadences."""
    process = make_process("vp_cosine")
    with tempfile.TemporaryDirectory() as run_dir:
        options = TrainOptions(steps=steps, batch_size=batch, device="cpu", progress=False, resume=None,
                               log_every=50, save_every=500, warmup=100, lr_schedule="cosine")
        trainer = Trainer(domain=domain, model=make_model(domain, process, hidden, depth), process=process,
                          loss=DiffusionLoss(process), optimizer=partial(torch.optim.AdamW, lr=1e-3),
                          run_dir=run_dir, options=options)
        start = time.perf_counter()
        trainer.fit()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    domain = ToyDomain(train_size=16384)
    print(f"torch {torch.__version__}, {args.threads} thread(s), best of {args.repeats} runs")
    for name, (hidden, depth, batch, share) in SIZES.items():
        steps = max(20, int(args.steps * share))
        bare, ours = [], []
        for _ in range(args.repeats):
            bare.append(bare_loop(domain, hidden, depth, batch, steps))
            ours.append(sciffusion_loop(domain, hidden, depth, batch, steps))
        bare_rate, our_rate = steps / min(bare), steps / min(ours)
        print(f"{name}, {steps} steps: bare loop {bare_rate:7.1f} steps/s | sciffusion Trainer {our_rate:7.1f} steps/s "
              f"| ratio {our_rate / bare_rate:6.1%}")


if __name__ == "__main__":
    main()

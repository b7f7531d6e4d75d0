"""Does the weather loader keep up with training? Samples per second of the Zarr loader with 0, 1 and 2
DataLoader workers against those of the training step, on a synthetic WeatherBench-2-layout store.

The store (written to a temporary folder by ``synthetic.write_synthetic_store``): 64x128 grid, 10
channels (2m_temperature, 10 m winds, mean sea-level pressure; geopotential, temperature, specific
humidity at 500 and 850 hPa), 6-hourly, one time step per chunk, Zarr 2. The domain is
``experiment=wb2_forecast`` with that store's variables: lazy dask reads of history 2 -> target
windows, workers opening the store themselves, the rank-aware ``StepSampler``, the domain's collate.
The training step is ``Trainer.train_step`` (forward, backward, clipping, AdamW, EMA) on a batch in
memory, on CPU, fp32, of the GPU config's UNet and of the tiny test config's.

    OMP_NUM_THREADS=1 python benchmarks/weather_loader.py [--steps 400] [--batch 8] [--batches 40]

Each loader figure is the best of ``--repeats`` passes over ``--batches`` batches after the first
(worker start-up is reported separately).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from sciffusion.training import Trainer, TrainOptions
from sciffusion.training.data import Layout, StepSampler
from sciffusion_domains.weather.synthetic import BENCHMARK_VARIABLES, write_synthetic_store


def config(store: Path, cache: Path, experiment: str, steps: int, *extra: str) -> dict:
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    import sciffusion.cli  # noqa: F401  (the plugins' config folders)

    days = steps // 4
    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        cfg = compose("train", overrides=[
            f"experiment={experiment}", f"domain.sources.0.path={store}",
            f"domain.sources.0.variables=[{','.join(BENCHMARK_VARIABLES)}]", "domain.sources.0.levels=[500,850]",
            f"domain.splits={{train: [2020-01-01, 2020-01-{min(days - 4, 31):02d}], val: [2020-01-01, 2020-01-02], "
            "test: [2020-01-01, 2020-01-02]}", "domain.num_channels=null", "domain.periodic=null",
            f"domain.stats_cache={cache}", *extra])
    return OmegaConf.to_container(cfg, resolve=True)


def loader_rate(domain, dataset, *, workers: int, batch: int, batches: int, repeats: int) -> tuple[float, float]:
    """(samples/s after the first batch, seconds to the first batch) with ``workers`` processes."""
    best, startup = 0.0, float("inf")
    for repeat in range(repeats):
        sampler = StepSampler(len(dataset), Layout(batch), seed=repeat)
        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=domain.collate, num_workers=workers)
        start = time.perf_counter()
        it = iter(loader)
        next(it)
        first = time.perf_counter()
        for _ in range(batches):
            next(it)
        end = time.perf_counter()
        best, startup = max(best, batches * batch / (end - first)), min(startup, first - start)
        del it, loader
    return best, startup


def train_rate(cfg: dict, *, batch: int, steps: int) -> tuple[float, int]:
    """(samples/s of ``Trainer.train_step`` on a batch already in memory, after one warm-up step;
    number of parameters): the step alone, without data loading."""
    from sciffusion.cli.build import build

    parts = build(cfg)
    data = parts.domain.dataset("train")
    ready = parts.domain.collate([data[i] for i in range(batch)])
    with tempfile.TemporaryDirectory() as run_dir:
        options = TrainOptions(steps=steps + 1, batch_size=batch, device="cpu", progress=False, resume=None,
                               tensorboard=False, warmup=0, ema_decay=cfg["train"]["ema_decay"],
                               grad_clip=cfg["train"]["grad_clip"])
        trainer = Trainer(domain=parts.domain, model=parts.model, process=parts.process, loss=parts.loss,
                          optimizer=parts.optimizer, run_dir=run_dir, options=options)
        trainer.train_step(iter([ready]))
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step(iter([ready]))
        seconds = (time.perf_counter() - start) / steps
    return batch / seconds, sum(p.numel() for p in parts.model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400, help="6-hourly time steps in the store")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        store = write_synthetic_store(tmp / "wb2.zarr", steps=args.steps, shape=(64, 128))
        size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
        files = sum(1 for f in store.rglob("*") if f.is_file())
        print(f"store: 64x128, 10 channels, {args.steps} times, {files} files, {size / 2**20:.0f} MiB on disk, "
              f"written in {time.perf_counter() - start:.1f} s")
        from sciffusion.cli.build import build_domain

        cfg = config(store, tmp / "cache", "wb2_forecast", args.steps)
        domain = build_domain(cfg)
        start = time.perf_counter()
        dataset = domain.dataset("train")
        computed = time.perf_counter() - start
        start = time.perf_counter()
        build_domain(cfg).dataset("train")
        print(f"statistics (mask + mean/std over every {domain.stats_stride}th training time, dask): "
              f"{computed:.1f} s computed, {time.perf_counter() - start:.2f} s from the cache; "
              f"{len(dataset)} training windows, channels {domain.channels}")
        for workers in (0, 1, 2):
            rate, startup = loader_rate(domain, dataset, workers=workers, batch=args.batch, batches=args.batches,
                                        repeats=args.repeats)
            rows.append((f"loader, Zarr, {workers} workers", rate, f"first batch after {startup:.2f} s"))
        through_dask = build_domain(cfg).dataset("train")
        through_dask.reader.direct = False  # what several sources or coarsen read through
        for workers in (0, 2):
            rate, startup = loader_rate(domain, through_dask, workers=workers, batch=args.batch,
                                        batches=args.batches, repeats=args.repeats)
            rows.append((f"loader, Zarr through a dask graph per window, {workers} workers", rate,
                         f"first batch after {startup:.2f} s"))
        memory = build_domain({**cfg, "domain": {**cfg["domain"], "in_memory": True}})
        rate, _ = loader_rate(memory, memory.dataset("train"), workers=0, batch=args.batch, batches=args.batches,
                              repeats=args.repeats)
        rows.append(("loader, whole store in memory, 0 workers", rate, "the ceiling without Zarr reads"))
        for experiment, name in (("wb2_forecast", "GPU config"), ("wb2_tiny", "tiny test config")):
            extra = ["train.precision=fp32"] if experiment == "wb2_forecast" else []
            rate, params = train_rate(config(store, tmp / "cache", experiment, args.steps, *extra),
                                      batch=args.batch, steps=args.train_steps)
            rows.append((f"training step, {name} UNet ({params / 1e6:.1f}M), CPU fp32", rate,
                         f"mean of {args.train_steps} steps after one"))
    print(f"\nbatch {args.batch}, torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs visible\n")
    print("| what | samples/s | note |\n|---|---:|---|")
    for what, rate, note in rows:
        print(f"| {what} | {rate:.1f} | {note} |")


if __name__ == "__main__":
    main()

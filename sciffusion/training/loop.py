"""The training loop: one optimiser step per global batch, on any device, with or without DDP.

Reproducibility is by construction. The data order is a function of (seed, step) (see ``data``),
and the noise of micro-batch k at step s comes from generators seeded by (seed, s, k), so the
result depends neither on the number of ranks and accumulation steps that share a global batch (for
a fixed micro-batch size) nor on where a run was interrupted: a checkpoint holds every other state.
"""
from __future__ import annotations

import contextlib
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ..domain import Batch, Cond, Domain
from ..processes import NoiseProcess
from . import distributed
from .checkpoint import (CheckpointError, CorruptCheckpointError, load_checkpoint, rng_state, save_checkpoint,
                         seed_everything, set_rng_state)
from .data import Layout, StepSampler
from .ema import EMA
from .generate import SamplingOptions, decode_all, generate
from .logs import RunLogger
from .resume import check_resumable, load_weights
from .schedule import make_schedule

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
logger = logging.getLogger("sciffusion.train")


def announce(message: str) -> None:
    """Tell the user: into the log when logging is configured (the apps: console and RUN_DIR/train.log),
    else on stdout."""
    if logger.isEnabledFor(logging.INFO) and logger.hasHandlers():
        logger.info(message)
    else:
        print(message, flush=True)


class TrainingLoss(Protocol):
    """What the loop trains on: ``sciffusion.losses.DiffusionLoss``, or any task with the same two calls
    (e.g. the molecules domain's property regression). ``sample_time`` draws the times ``[n]`` of a
    micro-batch from the loop's seeded generator; the call returns the per-sample loss ``[B]``. A loss with
    a method ``set_progress(step, steps)`` is told the step before each one (a schedule over the run)."""

    def sample_time(self, n: int, generator: torch.Generator | None = None) -> Tensor: ...

    def __call__(self, model: nn.Module, x0: Tensor, *, space, cond: Cond, t: Tensor,
                 generator: torch.Generator) -> Tensor: ...


AfterStep = Callable[[int, dict[str, Tensor]], bool]


class NonFiniteLossError(FloatingPointError):
    """The loss or the gradient became NaN or infinite."""


@dataclass
class TrainOptions:
    """The loop's options (``train:`` in the configs). ``batch_size`` is the global batch: it is split
    over ``world_size`` ranks and ``accumulate`` accumulation steps. ``save_every`` rewrites
    ``last.ckpt``; ``keep_every`` (0 = never) keeps numbered copies. ``resume`` is "auto" (continue
    from ``last.ckpt`` in the run directory if there is one), a checkpoint path, or None (start afresh);
    a run continues only with the config it was trained with, up to the options in
    ``resume.MAY_CHANGE``. ``init_from`` starts a new run from a checkpoint's model and EMA weights
    (not its optimiser, schedule or step): fine-tuning, a longer anneal, a distillation teacher;
    ``init_new_parameters`` lets the new model have parameters the checkpoint lacks (named in the log)."""

    steps: int = 1000
    batch_size: int = 256
    accumulate: int = 1
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    precision: str = "fp32"
    device: str = "auto"
    compile: bool = False
    seed: int = 0
    lr_schedule: str = "constant"
    warmup: int = 0
    final_lr: float = 0.0
    log_every: int = 50
    save_every: int = 500
    keep_every: int = 0
    sample_every: int = 0
    sample_count: int = 256
    num_workers: int = 0
    progress: bool = True
    tensorboard: bool = True
    resume: str | None = "auto"
    init_from: str | None = None
    init_new_parameters: bool = False

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {sorted(PRECISIONS)}")
        for name in ("steps", "log_every", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be at least 1, got {getattr(self, name)}")


def micro_seed(seed: int, step: int, k: int) -> int:
    """The seed of micro-batch k of step ``step``: distinct for every (seed, step, k)."""
    return ((seed * 1_000_003 + step) * 4099 + k) % (2**62)


def clip_gradients(grads: list[Tensor], max_norm: float | None) -> Tensor:
    """Scale ``grads`` in place so that their global 2-norm is at most ``max_norm`` (no clipping if
    None or 0); returns the norm before clipping. ``nn.utils.clip_grad_norm_`` for one device and
    dtype group, without its per-call regrouping, which costs as much as a small model's step."""
    if not grads:
        return torch.zeros(())
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    if max_norm:
        torch._foreach_mul_(grads, torch.clamp(max_norm / (norm + 1e-6), max=1.0))
    return norm


class _LossModule(nn.Module):
    """The model and its loss as one module, so that DDP's forward hooks see the whole computation."""

    def __init__(self, model: nn.Module, loss: TrainingLoss):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, x: Tensor, space, cond: dict, t: Tensor, generator: torch.Generator) -> Tensor:
        return self.loss(self.model, x, space=space, cond=cond, t=t, generator=generator).mean()


class Trainer:
    """Trains ``model`` on ``domain``'s train split by minimising ``loss``: a denoiser module (with
    ``.predict`` and ``.target``) under a ``DiffusionLoss``, or any model under a ``TrainingLoss``.

    ``optimizer`` builds the optimiser from the parameters. ``run_dir`` receives ``checkpoints/``,
    ``metrics.jsonl``, ``tensorboard/`` and ``samples/``; ``config`` (plain nested dicts) is stored in
    every checkpoint. ``sampling`` enables periodic sampling with the EMA weights of a denoiser, under
    ``process`` (which a model that does not sample need not give). ``given`` names the config keys set
    on the command line: on resume, options the run's config lacks and that were not given are options
    added to the library since, accepted at their current values (``resume.check_resumable``).
    """

    def __init__(self, *, domain: Domain, model: nn.Module, process: NoiseProcess | None, loss: TrainingLoss,
                 optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer], run_dir: str | Path,
                 options: TrainOptions | None = None, sampling: SamplingOptions | None = None,
                 config: dict[str, Any] | None = None, given: Sequence[str] | None = None):
        self.opts = options or TrainOptions()
        self.given = given
        if sampling is not None and process is None:
            raise ValueError("periodic sampling (sampling=...) needs the noise process; pass process=")
        self.domain, self.process, self.loss_fn, self.sampling = domain, process, loss, sampling
        self.run_dir = Path(run_dir)
        self.config = config or {}
        self.device = distributed.pick_device(self.opts.device)
        self.rank, self.world_size = distributed.setup(self.device)
        self.layout = Layout(self.opts.batch_size, self.world_size, self.rank, self.opts.accumulate)
        seed_everything(self.opts.seed)
        self.model = model.to(self.device)
        self.ema = EMA(self.model, decay=self.opts.ema_decay)
        if self.opts.compile:
            self.model.net.compile()
        self.module: nn.Module = _LossModule(self.model, loss)
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.module = DistributedDataParallel(self.module, device_ids=ids)
        self.params = list(self.model.parameters())
        self.optimizer = optimizer(self.params)
        o = self.opts
        self.schedule = make_schedule(self.optimizer, kind=o.lr_schedule, warmup=o.warmup, total=o.steps,
                                      final=o.final_lr)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=o.precision == "fp16")
        self.dataset = domain.dataset("train")
        self.step = 0
        self._reference: list | None = None
        self._restored = False

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def last_path(self) -> Path:
        return self.checkpoint_dir / "last.ckpt"

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "data": self._sampler(self.step).position(self.step),
            "config": self.config,
            "domain": self.domain.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.domain.load_state_dict(state.get("domain", {}))
        self.step = int(state["step"])

    def save(self, path: Path | None = None) -> Path | None:
        """Write a checkpoint (rank 0 only) to ``path`` or ``last.ckpt``."""
        if self.rank != 0:
            return None
        return save_checkpoint(self.state_dict(), path or self.last_path)

    def _resume_path(self) -> Path | None:
        resume = self.opts.resume
        if not resume:
            return None
        if resume == "auto":
            return self.last_path if self.last_path.is_file() else None
        return Path(resume)

    def _read_resume(self, path: Path) -> dict[str, Any]:
        try:
            # On the CPU: load_state_dict moves weights and optimiser state to the model's device, while
            # generator states and the domain's statistics must stay on the CPU (a run may change device).
            return load_checkpoint(path, map_location="cpu")
        except CorruptCheckpointError as err:
            raise CorruptCheckpointError(f"cannot resume: {err}; resume from another with train.resume=PATH, "
                                         "or start afresh with train.resume=null") from None
        except CheckpointError as err:
            raise CheckpointError(f"cannot resume from train.resume={self.opts.resume}: {err}") from None

    def restore(self) -> None:
        """Before training (once): continue from the resume checkpoint when there is one and its config
        matches, else start from ``init_from``'s weights when given, else from the initial weights.
        Raises ``ConfigMismatchError`` (nothing written) when the configs differ."""
        if self._restored:
            return
        path = self._resume_path()
        if path is not None:
            state = self._read_resume(path)
            added = check_resumable(state, self.config, path, given=self.given)
            self.load_state_dict(state)
            if self.rank == 0 and not self.finished:
                announce(f"resuming from step {self.step} of {path}")
                if added:
                    announce("options added to the library since this run started, at their current values: "
                             + ", ".join(f"{key}={value}" for key, value in added.items()))
        elif self.opts.init_from:
            state = load_checkpoint(self.opts.init_from, map_location=self.device)
            new = load_weights(self.model, self.ema, state, self.config, self.opts.init_from,
                               new_parameters=self.opts.init_new_parameters)
            if self.rank == 0:
                announce(f"starting a new run from the weights of {self.opts.init_from} (step {state['step']})")
                if new:
                    announce(f"parameters new to this model, started afresh: {', '.join(new)}")
        self._restored = True

    @property
    def finished(self) -> bool:
        return self.step >= self.opts.steps

    # -- the loop ----------------------------------------------------------------------------
    def _sampler(self, start: int) -> StepSampler:
        return StepSampler(len(self.dataset), self.layout, seed=self.opts.seed, start=start)

    def _batches(self) -> Iterator[Batch]:
        """This rank's micro-batches from the current step on, in the order of ``data.StepSampler``."""
        sampler = self._sampler(self.step)
        if self.opts.num_workers == 0:
            # The same fetch-then-collate as a DataLoader without workers, minus its per-batch overhead,
            # which is a good share of a step for small models.
            fetch = getattr(self.dataset, "__getitems__", None) or (lambda idx: [self.dataset[i] for i in idx])
            return (self.domain.collate(fetch(indices)) for indices in sampler)
        # A private generator: creating the iterator must not consume the global RNG (resume would differ).
        return iter(DataLoader(self.dataset, batch_sampler=sampler, collate_fn=self.domain.collate,
                               num_workers=self.opts.num_workers, pin_memory=self.device.type == "cuda",
                               generator=torch.Generator().manual_seed(self.opts.seed)))

    def _autocast(self):
        dtype = PRECISIONS[self.opts.precision]
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    def _micro_step(self, batch, j: int) -> Tensor:
        seed = micro_seed(self.opts.seed, self.step, self.layout.micro_index(j))
        g_cpu = torch.Generator().manual_seed(seed)
        g_dev = g_cpu if self.device.type == "cpu" else torch.Generator(self.device).manual_seed(seed)
        batch = batch.to(self.device)
        t = self.loss_fn.sample_time(len(batch), g_cpu).to(self.device)
        last = j == self.opts.accumulate - 1
        sync = contextlib.nullcontext() if last or self.world_size == 1 else self.module.no_sync()
        with sync:
            with self._autocast():
                loss = self.module(batch.x, batch.space, batch.cond, t, g_dev)
            self.scaler.scale(loss / self.opts.accumulate).backward()
        return loss.detach()

    def _guard(self, loss: Tensor, grad_norm: Tensor) -> None:
        bad_loss = not math.isfinite(float(loss))
        # Under fp16 an infinite gradient is the scaler's business: it skips the step and lowers the scale.
        bad_grad = not self.scaler.is_enabled() and not math.isfinite(float(grad_norm))
        if not (bad_loss or bad_grad):
            return
        what = f"loss {float(loss)}" if bad_loss else f"gradient norm {float(grad_norm)}"
        kept = (f"the last good checkpoint is {self.last_path}" if self.last_path.is_file()
                else "no checkpoint had been written yet")
        raise NonFiniteLossError(
            f"training stopped at step {self.step}: the {what} is not finite; {kept} (left untouched). "
            "Lower the learning rate (optim.lr), enable gradient clipping (train.grad_clip=1.0) or "
            "switch train.precision from fp16 to bf16, then resume.")

    def train_step(self, batches) -> dict[str, float]:
        """One optimiser step over ``accumulate`` micro-batches drawn from the iterator ``batches``."""
        self.optimizer.zero_grad(set_to_none=True)
        set_progress = getattr(self.loss_fn, "set_progress", None)
        if set_progress is not None:  # a loss whose schedule follows the run (consistency training's gap)
            set_progress(self.step, self.opts.steps)
        losses = [self._micro_step(next(batches), j) for j in range(self.opts.accumulate)]
        loss = torch.stack(losses).mean()
        self.scaler.unscale_(self.optimizer)
        grad_norm = clip_gradients([p.grad for p in self.params if p.grad is not None], self.opts.grad_clip)
        self._guard(loss, grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self._schedule_step()
        self.ema.update()
        self.step += 1
        return {"loss": loss, "grad_norm": grad_norm}

    def _schedule_step(self) -> None:
        if not self.scaler.is_enabled():
            self.schedule.step()
            return
        # Under fp16 the scaler skips steps whose gradients overflow, and torch warns that the schedule
        # then moves without an optimiser step; here the schedule follows the step count on purpose.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            self.schedule.step()

    def _mean_over_ranks(self, value: Tensor) -> float:
        if self.world_size > 1:
            value = value.clone()
            torch.distributed.all_reduce(value)
            value /= self.world_size
        return float(value)

    def fit(self, *, after_step: AfterStep | None = None) -> dict[str, Any]:
        """Train to ``steps``, resuming from a checkpoint if one is configured. Returns the last log record
        (empty when the run had already finished).

        ``after_step(step, out)`` is called after each optimiser step with its ``{"loss", "grad_norm"}``
        (tensors, local to this rank): a caller's own reporting, or a stop on a wall-time budget, for
        returning True ends the run there, saved as at its last step, so that it can be resumed (under
        DDP every rank must return the same)."""
        self.restore()
        o = self.opts
        if self.finished:
            if self.rank == 0:
                announce(f"the run in {self.run_dir} is finished: step {self.step} of train.steps={o.steps}; "
                         "nothing to train (raise train.steps to train longer)")
            return {}
        log = RunLogger(self.run_dir, total_steps=o.steps, start_step=self.step, enabled=self.rank == 0,
                        tensorboard=o.tensorboard, progress=o.progress)
        record: dict[str, Any] = {}
        batches = self._batches()
        self.model.train()
        try:
            while self.step < o.steps:
                out = self.train_step(batches)
                log.advance()
                if self.step % o.log_every == 0 or self.step == o.steps:
                    record = {"loss": self._mean_over_ranks(out["loss"]), "grad_norm": float(out["grad_norm"]),
                              "lr": self.schedule.get_last_lr()[0], **log.throughput(self.step, o.batch_size)}
                    log.log(self.step, record)
                if o.keep_every and self.step % o.keep_every == 0:
                    self.save(self.checkpoint_dir / f"step_{self.step:08d}.ckpt")
                if self.step % o.save_every == 0 or self.step == o.steps:
                    self.save()
                if self.sampling is not None and o.sample_every and self.step % o.sample_every == 0:
                    log.log(self.step, self.sample_and_score(), kind="sample")
                if after_step is not None and after_step(self.step, out) and not self.finished:
                    self.save()
                    break
        except NonFiniteLossError as err:
            log.log(self.step, {"error": str(err)}, kind="error")
            raise
        finally:
            log.close()
        return record

    # -- periodic sampling -------------------------------------------------------------------
    def sample_and_score(self) -> dict[str, float]:
        """Sample with the EMA weights into ``samples/step_XXXXXXXX/`` and score against the val split."""
        batches = generate(self.domain, self.ema.module, self.process, self.opts.sample_count,
                           options=self.sampling, device=self.device)
        if self.rank != 0:
            return {}
        objects = decode_all(self.domain, batches)
        out_dir = self.run_dir / "samples" / f"step_{self.step:08d}"
        self.domain.save(objects, out_dir)
        self.domain.figure(objects, out_dir / "figure.png")
        if self._reference is None:
            self._reference = self.domain.reference("val", limit=self.opts.sample_count)
        return self.domain.metrics(objects, self._reference)

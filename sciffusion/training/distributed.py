"""DDP under ``torchrun``: one process per device, gloo on CPU, NCCL on CUDA."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, Iterator

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """(rank, world_size); (0, 1) outside ``torchrun``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _export_slurm_environment() -> None:
    """Under Hydra's submitit launcher with several tasks, SLURM (not torchrun) starts the processes:
    submitit translates its variables into the RANK / WORLD_SIZE / MASTER_ADDR that torch expects."""
    if "WORLD_SIZE" in os.environ or int(os.environ.get("SLURM_NTASKS", "1")) < 2:
        return
    try:
        from submitit.helpers import TorchDistributedEnvironment
    except ImportError:
        return
    TorchDistributedEnvironment().export()


def setup(device: torch.device) -> tuple[int, int]:
    """Join the process group when launched by ``torchrun`` or as several SLURM tasks (WORLD_SIZE > 1);
    returns (rank, world_size)."""
    _export_slurm_environment()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world()


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks this rank's CUDA device, else MPS, else CPU."""
    if name != "auto":
        device = torch.device(name)
        if device.type == "cuda" and device.index is None:  # "cuda": this rank's GPU (set_device needs an index)
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    elif torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (just ``[obj]`` outside DDP)."""
    rank, size = world()
    if size == 1:
        return [obj]
    out: list[Any] = [None] * size
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def process_group_closed_at_end() -> Iterator[None]:
    """Leave the process group when the block ends. After a normal end every rank first waits at a barrier, so
    that none closes its connections while another is still in its last collective (gloo aborted a rank at
    exit with "terminate called without an active exception" when one rank left early). After an error there is
    no barrier and no teardown: the other ranks may never arrive, and destroying the group while they are in a
    collective can hang; the process ends and torchrun stops the others."""
    yield
    barrier()
    teardown()


def end_finished_rank() -> None:
    """Exit a ``torchrun`` rank that finished its work and left the process group, skipping Python's
    finalisation; outside a multi-rank launch, return. gloo's worker threads can outlive
    ``destroy_process_group`` (DDP's reducer still holds the group), and destroying them while the interpreter
    is torn down aborted a rank in CI with "terminate called without an active exception" after both ranks
    had finished and met at the closing barrier. Every file the run writes is closed by then; the streams and
    the logging handlers are flushed here."""
    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

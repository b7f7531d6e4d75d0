"""Learning-rate schedules: a linear warm-up, then constant, cosine or linear decay.

Each is a multiplier of the optimiser's base learning rate as a function of the step, used through
``torch.optim.lr_scheduler.LambdaLR`` so that its state is one integer in the checkpoint.
"""
from __future__ import annotations

import math
from functools import partial

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def _decay(progress: float, kind: str, final: float) -> float:
    if kind == "constant":
        return 1.0
    if kind == "cosine":
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))
    return final + (1 - final) * (1 - progress)  # linear


def multiplier(step: int, *, kind: str, warmup: int, total: int, final: float) -> float:
    """lr(step) / base_lr: step / warmup during warm-up, then the decay over the remaining steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return _decay(progress, kind, final)


KINDS = ("constant", "cosine", "linear")


def make_schedule(optimizer: Optimizer, *, kind: str = "constant", warmup: int = 0, total: int = 1,
                  final: float = 0.0) -> LambdaLR:
    """A LambdaLR for ``kind`` in KINDS with ``warmup`` steps; ``final`` is the last multiplier of a decay."""
    if kind not in KINDS:
        raise ValueError(f"unknown learning-rate schedule {kind!r}; choose one of {list(KINDS)}")
    if warmup < 0 or total < 1:
        raise ValueError(f"need warmup >= 0 and total >= 1 steps, got warmup={warmup}, total={total}")
    return LambdaLR(optimizer, partial(multiplier, kind=kind, warmup=warmup, total=total, final=final))

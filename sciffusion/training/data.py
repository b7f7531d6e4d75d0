"""Data order as a pure function of the step, so that resuming and changing the number of ranks
or accumulation steps never changes which samples a step sees.

Each epoch is a permutation of the dataset drawn from (seed, epoch). Step s of the epoch takes the
global batch ``perm[s*G : (s+1)*G]`` (an incomplete last batch is dropped), split into micro-batches
of ``m`` samples. Micro-batch k of the global batch goes to rank ``k // accumulate``, which sees it as
its ``k % accumulate``-th accumulation step. The same k seeds that micro-batch's noise (see ``loop``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch.utils.data import Sampler


@dataclass(frozen=True)
class Layout:
    """How a global batch of ``batch_size`` samples is spread over ranks and accumulation steps."""

    batch_size: int
    world_size: int = 1
    rank: int = 0
    accumulate: int = 1

    def __post_init__(self):
        parts = self.world_size * self.accumulate
        if self.batch_size < 1 or self.batch_size % parts:
            raise ValueError(f"batch_size={self.batch_size} must be a positive multiple of world_size x accumulate "
                             f"= {self.world_size} x {self.accumulate} = {parts}; change batch_size or train.accumulate")

    @property
    def micro_batch(self) -> int:
        return self.batch_size // (self.world_size * self.accumulate)

    def micro_index(self, j: int) -> int:
        """The index k within the global batch of this rank's j-th accumulation step."""
        return self.rank * self.accumulate + j


class StepSampler(Sampler[list[int]]):
    """Yields this rank's micro-batches of indices, ``accumulate`` per step, from step ``start`` on."""

    def __init__(self, num_items: int, layout: Layout, *, seed: int = 0, start: int = 0):
        self.steps_per_epoch = num_items // layout.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"the dataset has {num_items} items, fewer than one global batch of {layout.batch_size}; "
                             "lower batch_size")
        self.num_items, self.layout, self.seed, self.start = num_items, layout, seed, start

    def permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.num_items, generator=g)

    def position(self, step: int) -> dict[str, int]:
        """The data-order position before ``step``: epoch and batch within it."""
        return {"epoch": step // self.steps_per_epoch, "batch": step % self.steps_per_epoch}

    def __iter__(self) -> Iterator[list[int]]:
        lay, m = self.layout, self.layout.micro_batch
        step = self.start
        while True:
            pos = self.position(step)
            perm = self.permutation(pos["epoch"])
            for b in range(pos["batch"], self.steps_per_epoch):
                batch = perm[b * lay.batch_size:(b + 1) * lay.batch_size]
                for j in range(lay.accumulate):
                    k = lay.micro_index(j)
                    yield batch[k * m:(k + 1) * m].tolist()
                step += 1

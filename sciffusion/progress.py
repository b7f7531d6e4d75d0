"""A tqdm bar of sampler steps over every chunk a rank draws, for the apps and ``Model.sample``.

The sampler's ``callback`` (called after every step) moves the bar; the end of each chunk sets it to
the chunk's last step, so samplers that report fewer steps than asked (adaptive ones) stay aligned.
Only rank 0 shows a bar.
"""
from __future__ import annotations

from typing import Any

from .training import distributed


class SamplingProgress:
    """``with SamplingProgress(num_samples, batch_size, steps) as bar``: pass ``bar.sampler_options()``
    to the sampler and ``bar.chunk_done`` to ``generate(progress=...)``."""

    def __init__(self, num_samples: int, batch_size: int, steps: int, *, enabled: bool = True):
        rank, world = distributed.world()
        chunks = -(-max(num_samples, 0) // max(batch_size, 1))
        self.mine = len(range(rank, chunks, world))
        self.steps, self.done = steps, 0
        self.bar = None
        if enabled and rank == 0 and self.mine:
            from tqdm.auto import tqdm

            unit = f" ({self.mine} chunks)" if self.mine > 1 else ""
            self.bar = tqdm(total=self.mine * steps, desc=f"sampling{unit}", unit="step", leave=False)

    def __enter__(self) -> "SamplingProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()

    def sampler_options(self) -> dict[str, Any]:
        """``{"callback": ...}`` for the sampler, or nothing without a bar."""
        return {} if self.bar is None else {"callback": self.step}

    def step(self, info: dict[str, Any]) -> None:
        if self.bar is not None and self.bar.n < (self.done + 1) * self.steps:
            self.bar.update(1)

    def chunk_done(self, num: int) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.done * self.steps - self.bar.n)

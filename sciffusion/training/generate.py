"""Drawing new samples in fixed chunks with per-chunk seeds, so that the result is the same however
many ranks share the work.

Sample i belongs to chunk ``c = i // batch_size``; chunk c is drawn from generators seeded by
(seed, c) and handled by rank ``c % world_size``. Every chunk therefore sees the same conditions,
template, prior noise and sampler noise on 1 rank or on 8, and the gathered result is identical.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..domain import Batch, Domain, check_condition_request, space_to
from ..guidance_base import restore_samples
from ..joint import JointProcess, prior_sample_joint
from ..parameterization import Denoiser
from ..processes import NoiseProcess
from ..state import state_to
from ..timesteps import make_grid
from . import distributed


@dataclass
class SamplingOptions:
    """Which sampler on which grid; ``options`` go to the sampler (e.g. ``churn`` or ``eta``)."""

    sampler: str = "heun"
    steps: int = 32
    grid: str = "karras"
    grid_options: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 256
    seed: int = 0


def chunk_seed(seed: int, chunk: int) -> int:
    return (seed * 1_000_003 + chunk) % (2**62)


@torch.no_grad()
def draw_chunk(domain: Domain, denoiser: Denoiser, process: NoiseProcess, num: int, *, chunk: int,
               options: SamplingOptions, device: torch.device, cond_request: dict[str, Any]) -> Batch:
    """``num`` samples of chunk ``chunk``: conditions and template from a CPU generator, prior and
    sampler noise from a generator on ``device``, both seeded by (seed, chunk). Returned on the CPU."""
    from ..samplers import prior_sample, sample

    seed = chunk_seed(options.seed, chunk)
    g_cpu = torch.Generator().manual_seed(seed)
    g_dev = torch.Generator(device).manual_seed(seed + 1)
    cond = domain.condition(num, generator=g_cpu, **cond_request)
    x_like, space = domain.template(num, generator=g_cpu, cond=cond)
    cond = {k: v.to(device) for k, v in cond.items()}
    space = space_to(space, device)
    if isinstance(process, JointProcess):  # a state with several parts: each part from its own prior
        x = prior_sample_joint(process, state_to(x_like, device), space, generator=g_dev)
        ts = make_grid(options.grid, process.grid_process, options.steps, **options.grid_options)
    else:
        x = prior_sample(process, x_like.to(device), space=space, generator=g_dev)
        ts = make_grid(options.grid, process, options.steps, **options.grid_options)
    x0 = sample(options.sampler, denoiser, x, ts, process=process, space=space, cond=cond, generator=g_dev,
                **options.options)
    # guidance that fixes values only up to a symmetry, such as a fragment up to translation, puts the
    # samples back in its frame, through any wrappers around it
    x0 = restore_samples(denoiser, x0, space)
    return Batch(x0, space, cond).to("cpu")


def generate(domain: Domain, denoiser: Denoiser, process: NoiseProcess, num_samples: int, *,
             options: SamplingOptions, device: torch.device | str = "cpu",
             cond_request: dict[str, Any] | None = None,
             progress: Callable[[int], None] | None = None) -> list[Batch]:
    """``num_samples`` samples as a list of chunk batches in sample order, on every rank.

    Each rank draws its share of the chunks; the chunks are then gathered from all ranks.
    ``progress(n)`` is called after each local chunk with its size.
    """
    if num_samples < 1 or options.batch_size < 1:
        raise ValueError(f"need num_samples >= 1 and batch_size >= 1, got {num_samples} and {options.batch_size}")
    check_condition_request(domain, dict(cond_request or {}))
    device = torch.device(device)
    rank, world = distributed.world()
    chunks = range((num_samples + options.batch_size - 1) // options.batch_size)
    mine = []
    for c in chunks[rank::world]:
        num = min(options.batch_size, num_samples - c * options.batch_size)
        mine.append((c, draw_chunk(domain, denoiser, process, num, chunk=c, options=options, device=device,
                                   cond_request=dict(cond_request or {}))))
        if progress is not None:
            progress(num)
    gathered = [item for part in distributed.gather_objects(mine) for item in part]
    return [batch for _, batch in sorted(gathered, key=lambda item: item[0])]


def decode_all(domain: Domain, batches: list[Batch]) -> list[Any]:
    """The decoded objects of every chunk, in sample order."""
    return [obj for b in batches for obj in domain.decode(b.x, b.space, b.cond)]

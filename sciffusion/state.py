"""States with several named parts, and the edge layout they need.

A state is either one tensor (images, spectrograms, grids, today's molecules) or a ``dict`` of named
parts, e.g. for a molecule

    {"pos": [N, 3] float, "atoms": [N] int64, "charges": [N] int64, "bonds": [E] int64}

Continuous parts are floating tensors; categorical parts hold class indices (int64). Each part lives
in its own ``Space`` (``PartsSpace`` maps part names to spaces) and has its own noise process
(``sciffusion.joint.JointProcess``); one time ``t`` per sample drives all of them.

Why a plain ``dict`` of tensors and not ``tensordict`` or PyG ``HeteroData``: the core's operations
on a state are per part and few (move to a device, add, select), a dict does them with no dependency,
``torch.compile``, DDP, ``torch.save(weights_only=True)`` and EMA see ordinary tensors, and the
graph structure (which rows belong to which sample, which edges join which atoms) already lives in
the spaces rather than in the data container. PyG's ``Batch`` stays the domain's input format.
"""
from __future__ import annotations

from typing import Iterator, Mapping, Union

import torch
from torch import Tensor

from .space import GraphSpace, Space

State = Union[Tensor, dict[str, Tensor]]


def is_categorical(part: Tensor) -> bool:
    """Whether a state part holds class indices (an integer tensor) rather than continuous values."""
    return not part.is_floating_point() and not part.is_complex()


class PartsSpace(Space, Mapping[str, Space]):
    """One ``Space`` per part of a ``dict`` state; every part has the same number of samples.
    ``project`` acts part by part; sums, averages and noise are per part (``space[name].sum``)."""

    def __init__(self, spaces: Mapping[str, Space]):
        if not spaces:
            raise ValueError("a PartsSpace needs at least one part")
        self.spaces = dict(spaces)

    def __getitem__(self, name: str) -> Space:
        if name not in self.spaces:
            raise KeyError(f"the state has no part {name!r}; its parts are {sorted(self.spaces)}")
        return self.spaces[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.spaces)

    def __len__(self) -> int:
        return len(self.spaces)

    def batch_size(self, x: Mapping[str, Tensor]) -> int:
        sizes = {name: self.spaces[name].batch_size(x[name]) for name in self.spaces}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"parts disagree on the number of samples: {sizes}")
        return next(iter(sizes.values()))

    def check(self, x: Mapping[str, Tensor]) -> None:
        """Raise if the state's parts are not exactly this space's parts."""
        if set(x) != set(self.spaces):
            raise ValueError(f"state parts {sorted(x)} do not match the space's parts {sorted(self.spaces)}")

    def to(self, device: torch.device | str) -> "PartsSpace":
        return PartsSpace({name: space.to(device) for name, space in self.spaces.items()})

    def project(self, x: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {name: self.spaces[name].project(part) for name, part in x.items()}

    def _per_part(self, op: str):
        raise TypeError(f"PartsSpace.{op} is per part: call space[name].{op} for one of {sorted(self.spaces)}")

    def per_sample(self, values, x):
        self._per_part("per_sample")

    def sum(self, values):
        self._per_part("sum")

    def dims(self, x):
        self._per_part("dims")

    def randn_like(self, x, generator=None):
        self._per_part("randn_like")

    def average(self, values):
        self._per_part("average")

    def __repr__(self) -> str:
        return f"PartsSpace({', '.join(f'{k}={type(v).__name__}' for k, v in self.spaces.items())})"


class EdgeSpace(GraphSpace):
    """Per-sample edge sets as rows of one tensor ``e[E, ...]``, each undirected pair stored once.

    ``index[2, E]`` holds the node indices (into the node rows of the same batch) of each pair with
    ``index[0] < index[1]``; ``batch[E]`` is each edge's sample. A sample may have no edges (a
    one-atom molecule): its sums are zero and its average is zero. Storing each pair once keeps an
    edge state symmetric by construction; ``directed`` gives both directions for message passing.
    """

    def __init__(self, index: Tensor, batch: Tensor, num_samples: int, num_nodes: int):
        if index.dim() != 2 or index.shape[0] != 2:
            raise ValueError(f"edge index must be [2, E], got shape {tuple(index.shape)}")
        if index.shape[1] != batch.shape[0]:
            raise ValueError(f"edge index has {index.shape[1]} edges but batch has {batch.shape[0]}")
        if index.numel() and not (index[0] < index[1]).all():
            raise ValueError("store each undirected edge once, with index[0] < index[1]")
        self.index, self.num_nodes = index, int(num_nodes)
        self.batch = batch
        self.num_samples = int(num_samples)
        self.zero_mean = []
        self.counts = torch.bincount(batch, minlength=self.num_samples)

    @classmethod
    def fully_connected(cls, node_batch: Tensor, num_samples: int) -> "EdgeSpace":
        """Every pair of distinct nodes of the same sample, from the node rows' sample index
        ``node_batch[N]`` (rows of a sample contiguous, as PyG collates them)."""
        counts = torch.bincount(node_batch, minlength=num_samples)
        starts = torch.cumsum(counts, 0) - counts
        pairs, owners = [], []
        for b, (start, n) in enumerate(zip(starts.tolist(), counts.tolist())):
            i, j = torch.triu_indices(n, n, offset=1, device=node_batch.device)
            pairs.append(torch.stack([i, j]) + start)
            owners.append(torch.full((i.numel(),), b, dtype=torch.long, device=node_batch.device))
        index = torch.cat(pairs, 1) if pairs else torch.zeros(2, 0, dtype=torch.long)
        batch = torch.cat(owners) if owners else torch.zeros(0, dtype=torch.long)
        return cls(index, batch, num_samples, int(node_batch.numel()))

    def directed(self) -> tuple[Tensor, Tensor]:
        """Both directions of every edge: ``(index[2, 2E], which[2E])`` where ``which`` maps each
        directed edge back to its undirected row (to gather edge features or scatter messages)."""
        rows = torch.arange(self.index.shape[1], device=self.index.device)
        return torch.cat([self.index, self.index.flip(0)], 1), torch.cat([rows, rows])

    def dims(self, x: Tensor) -> Tensor:
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        return (self.counts * x.shape[1:].numel()).to(dtype)

    # average and to(): the defaults of Space (sum / dims, clamped, for samples without edges; every
    # tensor attribute moved)


def map_parts(fn, *states: State) -> State:
    """Apply ``fn`` to a one-tensor state, or part by part to ``dict`` states with the same parts."""
    if isinstance(states[0], Tensor):
        return fn(*states)
    return {name: fn(*(s[name] for s in states)) for name in states[0]}


def state_to(x: State, device: torch.device | str, dtype: torch.dtype | None = None) -> State:
    """``x`` on ``device``; ``dtype`` converts floating parts only (class indices stay integers)."""
    move = lambda v: v.to(device, dtype) if dtype is not None and v.is_floating_point() else v.to(device)
    return map_parts(move, x)


def first_tensor(x: State) -> Tensor:
    """A tensor of the state (the state itself, or its first part): for its device."""
    return x if isinstance(x, Tensor) else next(iter(x.values()))


__all__ = ["EdgeSpace", "PartsSpace", "State", "first_tensor", "is_categorical", "map_parts", "state_to"]

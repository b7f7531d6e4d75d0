"""What every molecule network reads from ``(x, t, space, cond)`` and how it returns its prediction.

``x[N, 3 + F]``: columns 0..2 are atom positions, columns 3.. the atom-type features. Invariant
per-atom inputs are the type features, the time ``t`` of the atom's molecule and, for conditional
models, the molecule's properties ``cond["properties"][B, P]`` followed by a "present" flag; a
molecule whose condition is dropped (``cond["drop"]``, classifier-free guidance) or absent gets
zeros and flag 0, so the unconditional model is the same network.
"""
from __future__ import annotations

import torch
from torch import Tensor

from sciffusion.losses import DROP
from sciffusion.parameterization import Cond

from .graph import fully_connected_edges, radius_graph

PROPERTIES = "properties"  # cond[PROPERTIES]: [B, P] molecular properties to condition on


def molecule_index(space, x: Tensor) -> tuple[Tensor, int]:
    """The molecule of each atom ``[N]`` and the number of molecules B, from a ``GraphSpace``."""
    batch = getattr(space, "batch", None)
    if batch is None:
        raise TypeError(f"molecule networks need a GraphSpace telling each atom's molecule, got {type(space).__name__}")
    if batch.shape != x.shape[:1]:
        raise ValueError(f"space.batch has shape {tuple(batch.shape)} but x has {x.shape[0]} atoms (shape {tuple(x.shape)})")
    return batch, space.num_samples


def split_atoms(x: Tensor, num_features: int) -> tuple[Tensor, Tensor]:
    """Positions ``[N, 3]`` and type features ``[N, F]`` of ``x[N, 3 + F]``."""
    if x.dim() != 2 or x.shape[1] != 3 + num_features:
        raise ValueError(f"x must be [N_atoms, 3 + {num_features}] (positions then {num_features} atom features), "
                         f"got shape {tuple(x.shape)}; set num_features to the number of feature columns")
    return x[:, :3], x[:, 3:]


def invariant_inputs(h: Tensor, t: Tensor, batch: Tensor, num_molecules: int, cond: Cond,
                     num_properties: int) -> Tensor:
    """Per-atom invariant inputs ``[N, F + 1 (+ P + 1)]``: type features, time, properties, flag."""
    t = t.to(h)
    if t.dim() == 0:
        t = t.expand(num_molecules)
    if t.shape != (num_molecules,):
        raise ValueError(f"t must hold one time per molecule, shape ({num_molecules},), got {tuple(t.shape)}")
    columns = [h, t[batch, None]]
    properties = cond.get(PROPERTIES)
    if num_properties == 0:
        if properties is not None:
            raise ValueError(f"cond has {PROPERTIES!r} of shape {tuple(properties.shape)} but the network was built "
                             "with num_properties=0; build it with num_properties=P to condition on them")
        return torch.cat(columns, 1)
    if properties is None:
        values = h.new_zeros(num_molecules, num_properties)
        present = h.new_zeros(num_molecules, dtype=torch.bool)
    else:
        if properties.shape != (num_molecules, num_properties):
            raise ValueError(f"cond[{PROPERTIES!r}] must be [B, P] = ({num_molecules}, {num_properties}), "
                             f"got {tuple(properties.shape)}")
        present = torch.ones(num_molecules, dtype=torch.bool, device=h.device)
        if DROP in cond:
            present = present & ~cond[DROP].to(h.device)
        # where, not a product: a dropped molecule may carry NaN placeholders
        values = torch.where(present[:, None], properties.to(h), torch.zeros((), dtype=h.dtype, device=h.device))
    columns += [values[batch], present.to(h)[batch, None]]
    return torch.cat(columns, 1)


def molecule_edges(pos: Tensor, batch: Tensor, *, radius: float | None, max_num_neighbors: int | None) -> Tensor:
    """Edges ``[2, E]`` (source, target): all pairs within each molecule, or those within ``radius``."""
    if radius is None:
        return fully_connected_edges(batch)
    return radius_graph(pos, radius, batch, max_num_neighbors=max_num_neighbors)


def centre_positions(pos: Tensor, batch: Tensor, num_molecules: int) -> Tensor:
    """``pos[N, 3]`` minus its molecule's mean, so that predictions live in the zero-mean subspace."""
    total = pos.new_zeros(num_molecules, pos.shape[1]).index_add_(0, batch, pos)
    count = torch.bincount(batch, minlength=num_molecules).clamp(min=1).to(pos)
    return pos - (total / count[:, None])[batch]


def check_graph_options(radius: float | None, max_num_neighbors: int | None) -> None:
    if radius is not None and not radius > 0:
        raise ValueError(f"radius must be a positive distance or None (fully connected), got {radius}")
    if max_num_neighbors is not None and radius is None:
        raise ValueError("max_num_neighbors needs a radius graph; set radius too, or leave both None")

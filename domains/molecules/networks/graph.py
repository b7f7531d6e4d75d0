"""Edges between the atoms of a batch of molecules: all pairs, or all pairs closer than a radius.

Edges never join atoms of different molecules. ``edge_index[2, E]`` follows PyG's
``source_to_target`` flow: a message goes from ``edge_index[0]`` (neighbour j) to
``edge_index[1]`` (centre i) and is aggregated at the centre. ``batch`` need not be sorted: the
atoms of a molecule may be spread over the batch in any order.

The radius graph is plain torch: molecules are sorted by size, padded in groups of similar size
and compared with ``torch.cdist``, a group (and, for one huge molecule, a block of its rows) at a
time, so memory stays below ``max_pairs`` distances whatever the batch. torch-cluster or pyg-lib
are used instead when they are importable and give the same answer.
"""
from __future__ import annotations

import importlib.util

import torch
from torch import Tensor

DEFAULT_MAX_PAIRS = 1 << 22  # distances held in memory at once by ``radius_graph`` (16 MB in float32)


def _sort_by_molecule(batch: Tensor, num_atoms: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """``order`` of atoms grouped by molecule, atoms per molecule ``counts[B]`` and offsets ``ptr[B]``."""
    if batch is None:
        batch = torch.zeros(num_atoms, dtype=torch.long, device=device)
    if batch.dim() != 1 or batch.numel() != num_atoms:
        raise ValueError(f"batch must be a 1-D index with one molecule id per atom ({num_atoms} atoms), "
                         f"got shape {tuple(batch.shape)}")
    order = torch.argsort(batch, stable=True)
    counts = torch.bincount(batch)
    ptr = torch.cumsum(counts, 0) - counts
    return order, counts, ptr


def fully_connected_edges(batch: Tensor, *, loop: bool = False) -> Tensor:
    """All ordered pairs (j, i) of atoms in the same molecule, ``[2, sum_m n_m^2]`` (minus the
    ``n_m`` self loops unless ``loop``). ``batch[N]`` gives each atom's molecule."""
    order, counts, ptr = _sort_by_molecule(batch, batch.numel(), batch.device)
    mol_sorted = batch[order]
    size = counts[mol_sorted]  # neighbours of each (sorted) atom, itself included
    centre = torch.repeat_interleave(torch.arange(batch.numel(), device=batch.device), size)
    first_edge = torch.cumsum(size, 0) - size
    local = torch.arange(centre.numel(), device=batch.device) - first_edge[centre]
    neighbour = ptr[mol_sorted[centre]] + local
    if not loop:
        keep = neighbour != centre
        centre, neighbour = centre[keep], neighbour[keep]
    return torch.stack([order[neighbour], order[centre]])


def _external_radius_graph(pos: Tensor, r: float, batch: Tensor, loop: bool) -> Tensor | None:
    """torch-cluster's or pyg-lib's compiled search when installed, else None (both need a sorted batch)."""
    if pos.shape[0] > 1 and bool((batch[1:] < batch[:-1]).any()):
        return None
    # find_spec first: importing torch_geometric only to learn that pyg-lib is missing takes seconds
    if importlib.util.find_spec("torch_cluster") is not None:
        import torch_cluster

        return torch_cluster.radius_graph(pos, r, batch, loop=loop, max_num_neighbors=pos.shape[0])
    if importlib.util.find_spec("pyg_lib") is None or importlib.util.find_spec("torch_geometric") is None:
        return None
    import torch_geometric.typing
    from torch_geometric.nn import radius_graph as pyg_radius_graph

    if not torch_geometric.typing.WITH_RADIUS:
        return None
    return pyg_radius_graph(pos, r, batch, loop=loop, max_num_neighbors=pos.shape[0])


def radius_graph(pos: Tensor, r: float, batch: Tensor | None = None, *, loop: bool = False,
                 max_num_neighbors: int | None = None, max_pairs: int = DEFAULT_MAX_PAIRS,
                 use_compiled: bool = True) -> Tensor:
    """Edges (j, i) with ``||pos_i - pos_j|| <= r`` and i, j in the same molecule, ``[2, E]``.

    pos: ``[N, D]`` positions; batch: ``[N]`` molecule of each atom (None: one molecule).
    loop: also join each atom to itself. max_num_neighbors: keep only the nearest this many
    neighbours of each centre i (self loops do not count unless ``loop``); None keeps them all.
    max_pairs: at most this many distances are computed at once (a speed/memory trade-off only).
    use_compiled: allow torch-cluster or pyg-lib when importable (only without max_num_neighbors,
    whose neighbour choice they do not make by distance).
    """
    if pos.dim() != 2:
        raise ValueError(f"pos must be [N, D] positions, got shape {tuple(pos.shape)}")
    if not r > 0:
        raise ValueError(f"the radius r must be positive, got {r}")
    if max_num_neighbors is not None and max_num_neighbors < 1:
        raise ValueError(f"max_num_neighbors must be a positive count or None, got {max_num_neighbors}")
    num_atoms, device = pos.shape[0], pos.device
    order, counts, ptr = _sort_by_molecule(batch, num_atoms, device)
    if use_compiled and max_num_neighbors is None:
        edges = _external_radius_graph(pos, r, order.new_zeros(num_atoms) if batch is None else batch, loop)
        if edges is not None:
            return edges
    pos_sorted = pos.detach()[order]
    # Molecules from largest to smallest, so that each group pads to sizes close to its own.
    by_size = torch.argsort(counts, descending=True, stable=True)
    sizes = counts[by_size].tolist()
    pieces, start = [], 0
    while start < len(sizes) and sizes[start] > 0:
        n = sizes[start]
        rows = max(1, min(n, max_pairs // n))  # one huge molecule: a block of its rows at a time
        group = max(1, max_pairs // (rows * n)) if rows == n else 1
        mols = by_size[start:start + group]
        start += len(mols)
        for row0 in range(0, n, rows):
            pieces.append(_group_edges(pos_sorted, counts[mols], ptr[mols], n, row0, min(rows, n - row0),
                                       r, loop, max_num_neighbors))
    if not pieces:
        return torch.zeros(2, 0, dtype=torch.long, device=device)
    neighbour, centre = torch.cat(pieces, 1)
    return torch.stack([order[neighbour], order[centre]])


def _group_edges(pos_sorted: Tensor, counts: Tensor, ptr: Tensor, n: int, row0: int, rows: int, r: float,
                 loop: bool, max_num_neighbors: int | None) -> Tensor:
    """Edges of a group of molecules padded to ``n`` atoms, for centres ``row0 .. row0 + rows - 1``
    of each; returned as sorted-atom indices ``[2, E]`` (neighbour, centre)."""
    local = torch.arange(n, device=pos_sorted.device)
    exists = local < counts[:, None]  # [G, n]
    atom = torch.where(exists, ptr[:, None] + local, torch.zeros_like(local))
    padded = pos_sorted[atom]  # [G, n, D]
    centres = slice(row0, row0 + rows)
    # The explicit difference, not the matrix-product shortcut, so that distances near r are exact.
    dist = torch.cdist(padded[:, centres], padded, compute_mode="donot_use_mm_for_euclid_dist")  # [G, rows, n]
    valid = exists[:, centres, None] & exists[:, None, :]
    if not loop:
        valid = valid & (local[centres, None] != local[None, :])
    dist = dist.masked_fill(~valid, float("inf"))
    if max_num_neighbors is not None and max_num_neighbors < n:
        nearest = torch.topk(dist, max_num_neighbors, dim=-1, largest=False).indices
        kept = torch.zeros_like(valid).scatter_(-1, nearest, True)
        dist = dist.masked_fill(~kept, float("inf"))
    g, c, j = torch.nonzero(dist <= r, as_tuple=True)
    return torch.stack([atom[g, j], atom[g, c + row0]])

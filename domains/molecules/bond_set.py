"""Bonds of packed molecules as plain tensors (``BondSet``) and QM9's cached set of them.

Kept apart from ``chemistry`` (which perceives bonds with RDKit) so that training from the cache
needs no RDKit: a GPU machine or a minimal install reads ``qm9_bonds_v1.pt`` and trains.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from . import data

BOND_TYPES = ("none", "single", "double", "triple", "aromatic")
STATUSES = ("ok", "mismatch", "failed")
SOURCES = ("perceived", "smiles", "perceived_unmatched", "unassigned", "given")
_CACHE_VERSION = 1


def _gather(ptr: Tensor, index: Tensor) -> Tensor:
    """Concatenated rows ``ptr[k] .. ptr[k + 1]`` for each k of ``index``."""
    lengths = ptr[index + 1] - ptr[index]
    starts = torch.repeat_interleave(ptr[index], lengths)
    return starts + torch.arange(int(lengths.sum())) - torch.repeat_interleave(lengths.cumsum(0) - lengths, lengths)


@dataclass
class BondSet:
    """Bonds of packed molecules, in the order of the ``MoleculeSet`` they were computed from.

    ``counts[M]`` atoms per molecule, ``z[N]`` atomic numbers, ``charge[N]`` formal charges,
    ``num_edges[M]`` bonds per molecule, ``edges[E, 2]`` atom indices within their molecule (i < j),
    ``order[E]`` bond types (``BOND_TYPES``, aromatic = 4), ``order_kekule[E]`` the Kekule form,
    ``status[M]`` and ``source[M]`` indices into ``STATUSES`` and ``SOURCES``. All int64."""

    counts: Tensor
    z: Tensor
    charge: Tensor
    num_edges: Tensor
    edges: Tensor
    order: Tensor
    order_kekule: Tensor
    status: Tensor
    source: Tensor
    ptr: Tensor = field(init=False, repr=False)
    edge_ptr: Tensor = field(init=False, repr=False)

    def __post_init__(self):
        for name in ("counts", "z", "charge", "num_edges", "edges", "order", "order_kekule", "status", "source"):
            setattr(self, name, getattr(self, name).long())
        self.edges = self.edges.reshape(-1, 2)
        self.ptr = torch.cat([self.counts.new_zeros(1), self.counts.cumsum(0)])
        self.edge_ptr = torch.cat([self.num_edges.new_zeros(1), self.num_edges.cumsum(0)])
        if self.z.shape != (int(self.ptr[-1]),) or self.edges.shape[0] != int(self.edge_ptr[-1]):
            raise ValueError(f"z {tuple(self.z.shape)} must hold sum(counts) = {int(self.ptr[-1])} atoms and edges "
                             f"{tuple(self.edges.shape)} sum(num_edges) = {int(self.edge_ptr[-1])} bonds")

    def __len__(self) -> int:
        return len(self.counts)

    def molecule(self, i: int) -> tuple[Tensor, Tensor, Tensor]:
        """Molecule i's ``edges[E_i, 2]`` (local indices), ``order[E_i]`` and ``charge[n_i]``."""
        a, b = int(self.edge_ptr[i]), int(self.edge_ptr[i + 1])
        return self.edges[a:b], self.order[a:b], self.charge[int(self.ptr[i]):int(self.ptr[i + 1])]

    def global_edges(self) -> Tensor:
        """``[2, E]`` indices into the packed atoms, as PyG's ``edge_index`` of the whole set."""
        molecule = torch.repeat_interleave(torch.arange(len(self)), self.num_edges)
        return (self.edges + self.ptr[molecule, None]).T.contiguous()

    def select(self, index: Tensor | Sequence[int]) -> "BondSet":
        """Molecules ``index`` in that order (as ``MoleculeSet.select``)."""
        index = torch.as_tensor(index, dtype=torch.long)
        atoms, bonds = _gather(self.ptr, index), _gather(self.edge_ptr, index)
        return BondSet(self.counts[index], self.z[atoms], self.charge[atoms], self.num_edges[index], self.edges[bonds],
                       self.order[bonds], self.order_kekule[bonds], self.status[index], self.source[index])

    def without_hydrogens(self) -> "BondSet":
        """Hydrogens and their bonds dropped, heavy atoms renumbered in their order (as ``MoleculeSet``'s)."""
        keep = self.z != 1
        molecule = torch.repeat_interleave(torch.arange(len(self)), self.counts)
        counts = torch.bincount(molecule[keep], minlength=len(self))
        # Renumbering is monotonic, so pairs stay i < j and sorted.
        local = torch.cumsum(keep.long(), 0) - 1 - torch.cat([counts.new_zeros(1), counts.cumsum(0)])[molecule]
        edge_molecule = torch.repeat_interleave(torch.arange(len(self)), self.num_edges)
        ends = self.edges + self.ptr[edge_molecule, None]
        kept = keep[ends].all(1)
        num_edges = torch.bincount(edge_molecule[kept], minlength=len(self))
        return BondSet(counts, self.z[keep], self.charge[keep], num_edges, local[ends[kept]], self.order[kept],
                       self.order_kekule[kept], self.status, self.source)

    def kekulized(self) -> "BondSet":
        """The same bonds with ``order`` in Kekule form (no aromatic type)."""
        return replace(self, order=self.order_kekule)

    def summary(self) -> dict[str, int]:
        """How many molecules have each status and each source."""
        return {**{f"status_{s}": int((self.status == k).sum()) for k, s in enumerate(STATUSES)},
                **{f"source_{s}": int((self.source == k).sum()) for k, s in enumerate(SOURCES)}}

    def to_tensors(self) -> dict[str, Tensor]:
        """Compact plain tensors for ``torch.save`` (QM9 molecules have fewer than 256 atoms and bonds)."""
        wide = bool((self.counts > 255).any() or (self.num_edges > 255).any())
        small = dict.fromkeys(("counts", "num_edges", "edges"), torch.int32 if wide else torch.uint8)
        small.update(z=torch.uint8, charge=torch.int8, order=torch.uint8, order_kekule=torch.uint8,
                     status=torch.uint8, source=torch.uint8)
        return {name: getattr(self, name).to(dtype) for name, dtype in small.items()}


def qm9_bonds(remove_h: bool = False, *, split: str | None = None, kekulize: bool = False, limit: int | None = None,
              root: Path | str | None = None, seed: int = 0, workers: int = 2, progress: bool = True) -> BondSet:
    """Bonds and formal charges of QM9, aligned atom for atom with ``data.load_qm9`` called with the
    same ``split``, ``remove_h``, ``limit``, ``root`` and ``seed``.

    The full set is computed once (80-140 s on 2 shared cores) and cached as plain tensors in
    ``<root or cache_dir()>/qm9/qm9_bonds_v1.pt`` (with hydrogens; ``remove_h`` is derived on load);
    ``limit`` computes the first molecules only, without caching. ``kekulize`` gives Kekule orders.
    Sources measured on QM9: 123,799 perceived, 7,028 from the SMILES (6,808 failed perceptions,
    220 mismatches, mostly charge placements), 2 perceived but unmatched, 2 unassigned."""
    if limit is not None:
        from .chemistry import perceive_all

        bonds = perceive_all(data.load_qm9(limit=limit), workers=workers, progress=progress)
    else:
        path = Path(root if root is not None else data.cache_dir()) / "qm9" / f"qm9_bonds_v{_CACHE_VERSION}.pt"
        if path.exists():
            bonds = BondSet(**torch.load(path, weights_only=True))
        else:
            start = time.perf_counter()
            from .chemistry import perceive_all  # RDKit: only when the cache is built

            bonds = perceive_all(data.load_qm9(root=root), workers=workers, progress=progress)
            if progress:
                print(f"QM9 bonds in {time.perf_counter() - start:.0f} s: {bonds.summary()}", file=sys.stderr)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f".{os.getpid()}.bonds.tmp"  # renamed: readers never see half a file
            torch.save(bonds.to_tensors(), tmp)
            os.replace(tmp, path)
    if split is not None:
        if split not in data.QM9_SPLIT_SIZES:
            raise ValueError(f"split must be one of {list(data.QM9_SPLIT_SIZES)} or None, got {split!r}")
        bonds = bonds.select(data.qm9_split(len(bonds), seed=seed)[split])
    bonds = bonds.without_hydrogens() if remove_h else bonds
    return bonds.kekulized() if kekulize else bonds

"""Fragment-constrained generation for the joint model (``qm9_joint``): a fragment fixes its atoms'
positions, elements and formal charges *and* the bonds among them; the rest is generated.

    sciffusion-sample checkpoint=CKPT guidance=fragment guidance.fragment=frag.sdf cond.num_atoms=15

As in ``fragment.py`` each new molecule's first k atoms are the fragment's, in the file's order, and
positions are pasted at the translation that best matches the model's estimate, then restored to the
file's frame. From an SDF the fragment's bond table (read as written, without sanitising, since a
fragment may have open valences) fixes every pair among its atoms: listed bonds with their order,
unlisted pairs as "no bond". An XYZ file has no bonds: its pairs are generated. Categorical entries
are shown to the network as their known class and its estimate is made certain there (see
``sciffusion.guidance.Inpainting``); pairs between fragment and new atoms are generated.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from sciffusion.guidance import Inpainting, device_of
from sciffusion.state import PartsSpace

_ORDERS = {1.0: 1, 2.0: 2, 3.0: 3, 1.5: 4}


class JointFragmentInpainting(Inpainting):
    """Inpainting of joint molecule states whose first ``k`` atoms are a fixed fragment.

    ``pos[k, 3]`` (in the fragment's frame), ``atoms[k]`` and ``charges[k]`` (class indices of the
    domain), ``bonds[k, k]`` bond-type indices or None (bonds not fixed)."""

    def __init__(self, denoiser, pos: Tensor, atoms: Tensor, charges: Tensor, bonds: Tensor | None):
        super().__init__(denoiser, {}, {})
        self.pos, self.atoms, self.charges, self.bonds = pos, atoms, charges, bonds

    @property
    def size(self) -> int:
        return len(self.atoms)

    def _within(self, space) -> Tensor:
        """Each atom row's index within its molecule."""
        counts = space.counts
        if (counts <= self.size).any():
            raise ValueError(f"molecules of {int(counts.min())} atoms cannot hold a fragment of {self.size} atoms "
                             f"and generate anything: ask for more (cond.num_atoms > {self.size})")
        starts = torch.cumsum(counts, 0) - counts
        return torch.arange(len(space.batch), device=space.batch.device) - starts[space.batch]

    def part_entries(self, name: str, x: Tensor, space) -> tuple[Tensor, Tensor] | None:
        if name == "bonds":
            if self.bonds is None:
                return None
            i, j = space.index  # node rows; every molecule's first k rows are the fragment
            starts = torch.cumsum(space_counts(space, i.device), 0) - space_counts(space, i.device)
            li, lj = i - starts[space.batch], j - starts[space.batch]
            fixed = (li < self.size) & (lj < self.size)
            known = torch.zeros_like(x)
            known[fixed] = self.bonds.to(x.device)[li[fixed], lj[fixed]]
            return known, fixed
        values = {"pos": self.pos, "atoms": self.atoms, "charges": self.charges}.get(name)
        if values is None:
            return None
        within = self._within(space)
        fixed = within < self.size
        known = torch.zeros_like(x)
        known[fixed] = values.to(device=x.device, dtype=x.dtype)[within[fixed]]
        return known, (fixed[:, None].expand_as(x) if x.dim() == 2 else fixed)


def space_counts(edge_space, device) -> Tensor:
    """Atoms per molecule behind an ``EdgeSpace`` (n (n - 1) / 2 pairs per molecule of n atoms)."""
    pairs = edge_space.counts.to(device).double()
    return torch.round((1 + torch.sqrt(1 + 8 * pairs)) / 2).long()


def read_joint_fragment(path: str | Path, *, domain, record: int = 0):
    """(pos [k, 3], atoms [k], charges [k], bonds [k, k] or None) of record ``record`` of an SDF or
    XYZ file, as the domain's class indices."""
    from .data import ATOMIC_NUMBERS
    from .fragment import read_fragment
    from .joint_domain import CHARGES

    frag = read_fragment(path, atom_types=tuple(domain.atom_types), record=record)
    index = {ATOMIC_NUMBERS[s]: k for k, s in enumerate(domain.atom_types)}
    atoms = torch.tensor([index[int(z)] for z in frag.z.tolist()])
    k = len(atoms)
    charges = torch.zeros(k, dtype=torch.long) - CHARGES[0]
    bonds = None
    if Path(path).suffix.lower() in (".sdf", ".mol"):
        from rdkit import Chem

        mol = list(Chem.SDMolSupplier(str(path), sanitize=False, removeHs=False))[int(record)]
        bonds = torch.zeros(k, k, dtype=torch.long)
        for bond in mol.GetBonds():
            order = 4 if bond.GetIsAromatic() else _ORDERS[bond.GetBondTypeAsDouble()]
            i, j = sorted((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()))
            bonds[i, j] = order
        charges = torch.tensor([a.GetFormalCharge() for a in mol.GetAtoms()]) - CHARGES[0]
        if charges.min() < 0 or charges.max() >= len(CHARGES):
            raise ValueError(f"the fragment {path} has formal charges outside {CHARGES}, which the model cannot generate")
    return frag.pos.float(), atoms, charges, bonds


def joint_fragment(denoiser, *, domain, fragment: str, num_atoms: int | None, record: int = 0,
                   out_dir: str | None = None) -> JointFragmentInpainting:
    """``guidance=fragment`` for a ``qm9_joint`` checkpoint (called by ``fragment.fragment``)."""
    pos, atoms, charges, bonds = read_joint_fragment(fragment, domain=domain, record=record)
    k = len(atoms)
    if num_atoms is None or int(num_atoms) <= k:
        raise ValueError(f"fragment generation needs molecules larger than the fragment's {k} atoms: "
                         f"set cond.num_atoms=N with N > {k}")
    device = device_of(denoiser)
    guide = JointFragmentInpainting(denoiser, pos.to(device), atoms.to(device), charges.to(device),
                                    None if bonds is None else bonds.to(device))
    if out_dir is not None:
        import shutil

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        shutil.copy(fragment, Path(out_dir) / f"fragment{Path(fragment).suffix.lower()}")
    return guide


__all__ = ["JointFragmentInpainting", "joint_fragment", "read_joint_fragment"]

"""The QM9 generation metrics of EDM (Hoogeboom et al. 2022) and its successors.

- atom / molecule stability: allowed valences under bonds inferred from distances (``bonds``);
- validity: the RDKit molecule built from those bonds sanitises (EDM ``qm9/rdkit_functions.py``);
  its SMILES is the canonical SMILES of the largest fragment, the convention of EDM;
- uniqueness: distinct SMILES among valid molecules; novelty: unique SMILES absent from the
  training SMILES (computed from the training molecules the same way, as EDM does);
- connectivity: molecules whose inferred bond graph is a single fragment (over all molecules);
- a second opinion: validity when RDKit perceives bonds itself (``rdDetermineBonds``, total charge 0).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import torch
from rdkit import Chem, RDLogger
from rdkit.Chem import rdDetermineBonds
from rdkit.Geometry import Point3D
from torch import Tensor
from torch_geometric.data import Batch, Data

from . import bonds
from .data import MoleculeSet

_BOND_TYPES = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}


def _atoms_with_conformer(z: Sequence[int], pos: Tensor, charge: Sequence[int] | None) -> Chem.RWMol:
    mol = Chem.RWMol()
    conformer = Chem.Conformer(len(z))
    for k, number in enumerate(z):
        atom = Chem.Atom(int(number))
        if charge is not None:
            atom.SetFormalCharge(int(charge[k]))
        mol.AddAtom(atom)
        conformer.SetAtomPosition(k, Point3D(*map(float, pos[k])))
    conformer.Set3D(True)
    mol.AddConformer(conformer, assignId=True)
    return mol


def rdkit_molecules(molecules: MoleculeSet | Batch | Sequence[Data], *, with_charges: bool = False) -> list[Chem.Mol]:
    """Unsanitised RDKit molecules with 3D conformers and the bonds inferred from distances.

    ``with_charges`` sets each atom's formal charge from the data (EDM ignores them)."""
    packed = MoleculeSet.from_molecules(molecules)
    edges, order = bonds.bond_orders(packed.pos, packed.z, packed.counts)
    molecule_of_edge = packed.batch[edges[0]]
    edge_ptr = torch.searchsorted(molecule_of_edge, torch.arange(len(packed) + 1))
    result = []
    for m in range(len(packed)):
        a, b = int(packed.ptr[m]), int(packed.ptr[m + 1])
        charge = packed.charge[a:b].tolist() if with_charges else None
        mol = _atoms_with_conformer(packed.z[a:b].tolist(), packed.pos[a:b], charge)
        for e in range(int(edge_ptr[m]), int(edge_ptr[m + 1])):
            mol.AddBond(int(edges[0, e]) - a, int(edges[1, e]) - a, _BOND_TYPES[int(order[e])])
        result.append(mol.GetMol())
    return result


def largest_fragment_smiles(mol: Chem.Mol) -> str | None:
    """Canonical SMILES of the largest fragment if ``mol`` sanitises, else None (EDM's validity)."""
    mol = Chem.Mol(mol)
    try:
        Chem.SanitizeMol(mol)
    except Exception:  # RDKit raises several exception types for valence and kekulisation errors
        return None
    fragments = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    return Chem.MolToSmiles(max(fragments, default=mol, key=lambda f: f.GetNumAtoms()))


def perceived_smiles(mol: Chem.Mol, *, charge: int = 0, max_iterations: int = 10_000) -> str | None:
    """SMILES of the largest fragment after RDKit's own bond perception from the coordinates
    (``DetermineBonds`` with total ``charge``), or None if perception or sanitisation fails.
    ``max_iterations`` caps the bond-order search, which can explode on implausible samples."""
    bare = Chem.RWMol(mol)
    for bond in list(bare.GetBonds()):
        bare.RemoveBond(bond.GetBeginAtomIdx(), bond.GetEndAtomIdx())
    try:
        rdDetermineBonds.DetermineBonds(bare, charge=charge, maxIterations=max_iterations)
    except Exception:  # no valid assignment of bond orders and charges
        return None
    return largest_fragment_smiles(bare)


def is_connected(mol: Chem.Mol) -> bool:
    """Whether the molecule's bond graph is one fragment."""
    return len(Chem.GetMolFrags(mol, sanitizeFrags=False)) == 1


@dataclass
class MoleculeMetrics:
    """Fractions in [0, 1]. ``smiles[i]`` is molecule i's SMILES, None if invalid. ``novelty`` is
    None without training SMILES, ``validity_perceived`` None when RDKit perception was skipped."""

    num_molecules: int
    atom_stability: float
    molecule_stability: float
    validity: float
    uniqueness: float
    novelty: float | None
    connectivity: float
    validity_perceived: float | None
    smiles: list[str | None] = field(repr=False)

    def as_dict(self) -> dict[str, float]:
        """The metrics as floats, leaving out the ones not computed."""
        names = ["atom_stability", "molecule_stability", "validity", "uniqueness", "novelty", "connectivity",
                 "validity_perceived"]
        return {name: float(getattr(self, name)) for name in names if getattr(self, name) is not None}


def evaluate(molecules: MoleculeSet | Batch | Sequence[Data], *, training_smiles: Iterable[str] | None = None,
             perceive_bonds: bool = True) -> MoleculeMetrics:
    """All metrics for generated (or real) molecules; see the module docstring for definitions.

    ``training_smiles``: the set from ``reference_smiles(train_molecules)``, for novelty.
    ``perceive_bonds``: also run RDKit's bond perception (slower, about 1-5 ms a molecule)."""
    packed = MoleculeSet.from_molecules(molecules)
    atom_ok, molecule_ok = bonds.stability(packed.pos, packed.z, packed.counts)
    with _quiet_rdkit():
        mols = rdkit_molecules(packed)
        smiles = [largest_fragment_smiles(mol) for mol in mols]
        perceived = [perceived_smiles(mol) for mol in mols] if perceive_bonds else None
    valid = [s for s in smiles if s is not None]
    unique = set(valid)
    novelty = None
    if training_smiles is not None:
        reference = training_smiles if isinstance(training_smiles, (set, frozenset)) else set(training_smiles)
        novelty = len(unique - reference) / len(unique) if unique else 0.0
    return MoleculeMetrics(
        num_molecules=len(packed),
        atom_stability=atom_ok.float().mean().item(),
        molecule_stability=molecule_ok.float().mean().item(),
        validity=len(valid) / len(packed),
        uniqueness=len(unique) / len(valid) if valid else 0.0,
        novelty=novelty,
        connectivity=sum(is_connected(mol) for mol in mols) / len(packed),
        validity_perceived=None if perceived is None else sum(s is not None for s in perceived) / len(packed),
        smiles=smiles,
    )


def reference_smiles(molecules: MoleculeSet | Batch | Sequence[Data], *, cache: Path | str | None = None) -> set[str]:
    """SMILES of the valid molecules of a training set, built with inferred bonds like generated
    ones, so novelty compares like with like. ``cache``: a text file read if present, else written."""
    if cache is not None and Path(cache).exists():
        return set(Path(cache).read_text().splitlines())
    with _quiet_rdkit():
        result = {s for s in map(largest_fragment_smiles, rdkit_molecules(molecules)) if s is not None}
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        Path(cache).write_text("\n".join(sorted(result)) + "\n")
    return result


class _quiet_rdkit:
    """Silence RDKit's per-molecule error log: invalid samples are expected and counted."""

    def __enter__(self):
        RDLogger.DisableLog("rdApp.*")

    def __exit__(self, *exc):
        RDLogger.EnableLog("rdApp.*")

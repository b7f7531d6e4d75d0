"""Metrics of jointly generated molecules under both protocols of the field, side by side.

Generated bonds (MiDi's protocol): an atom is stable when the sum of its generated bond orders
(aromatic = 1.5) is a whole number allowed for its element and generated formal charge; a molecule
when all its atoms are. ``validity`` is strict: RDKit sanitises the molecule with every hydrogen an
explicit atom and none implicit, it is one fragment, and no atom is a radical (a missing hydrogen
would otherwise sanitise as one); ``validity_lenient`` lets RDKit add implicit hydrogens (labelled:
it hides missing hydrogens).

Bonds re-perceived from coordinates alone (EDM's tables and RDKit's ``DetermineBonds``), via
``metrics.evaluate`` on the positions and elements only: the stricter protocol, prefixed ``perceived_``.

Geometry: Wasserstein-1 distances between the generated and reference distributions of bond lengths
(per bond type, Angstrom) and bond angles (degrees), as MiDi and EQGAT-diff report.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from rdkit import Chem

from .bonds import atom_stable
from .chemistry import to_rdkit


def to_mol(data, *, sanitize: bool = True) -> Chem.Mol:
    """An RDKit molecule of a decoded sample (generated bonds and charges, no implicit hydrogens)."""
    return to_rdkit(data.z, data.pos, data.charge, data.edge_index.T, data.bond_order, sanitize=sanitize)


def write_xyz(objects: Sequence, path: Path) -> Path:
    from .bonds import SYMBOLS

    lines = []
    for i, data in enumerate(objects):
        lines += [str(len(data.z)), f"sample_{i}"]
        lines += [f"{SYMBOLS[int(z)]} {x:.5f} {y:.5f} {w:.5f}" for z, (x, y, w) in zip(data.z, data.pos.tolist())]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def _kekule_orders(data) -> torch.Tensor | None:
    """The generated bonds' orders with aromatic rings in a Kekule form (RDKit), or None when the
    aromatic bonds admit none. Counting an aromatic bond as 1.5 would call pyrrole's N and furan's O
    unstable (1.5 + 1.5 + 1 = 4 for N-H), which miscounts real QM9 molecules."""
    if not bool((data.bond_order == 4).any()):
        return data.bond_order.long()
    try:
        mol = Chem.RWMol(to_mol(data, sanitize=False))
        Chem.Kekulize(mol, clearAromaticFlags=True)
    except Exception:  # RDKit raises KekulizeException and friends
        return None
    return torch.tensor([int(mol.GetBondBetweenAtoms(int(i), int(j)).GetBondTypeAsDouble())
                         for i, j in data.edge_index.T.tolist()], dtype=torch.long)


def generated_stability(data) -> torch.Tensor:
    """Per-atom stability [n] under the generated bonds and charges: the sum of bond orders (aromatic
    rings kekulized) is allowed for the element and charge. Atoms of aromatic bonds that admit no
    Kekule form count as unstable."""
    order = _kekule_orders(data)
    aromatic_failed = order is None
    if aromatic_failed:
        order = torch.where(data.bond_order == 4, torch.ones_like(data.bond_order), data.bond_order).long()
    valence = torch.zeros(len(data.z), dtype=torch.long)
    valence.index_add_(0, data.edge_index[0], order).index_add_(0, data.edge_index[1], order)
    stable = atom_stable(data.z, valence, charge=data.charge)
    if aromatic_failed:
        on_aromatic = torch.zeros(len(data.z), dtype=torch.bool)
        on_aromatic[data.edge_index[:, data.bond_order == 4].flatten()] = True
        stable = stable & ~on_aromatic
    return stable


def _validity(data, *, implicit: bool) -> str | None:
    """Canonical SMILES if the molecule sanitises (and is one fragment), else None."""
    try:
        mol = to_mol(data, sanitize=False)
        if implicit:
            mol = Chem.RWMol(mol)
            for atom in mol.GetAtoms():
                atom.SetNoImplicit(False)
            mol = mol.GetMol()
        Chem.SanitizeMol(mol)
    except Exception:  # RDKit raises several exception types for impossible chemistry
        return None
    if len(Chem.GetMolFrags(mol)) != 1:
        return None
    if any(atom.GetNumRadicalElectrons() for atom in mol.GetAtoms()):
        return None  # with no implicit hydrogens, a missing hydrogen sanitises as a radical: not a molecule
    return Chem.MolToSmiles(Chem.RemoveHs(mol, sanitize=False))


def canonical_smiles(data, *, explicit_hydrogens: bool = True) -> str | None:
    """The molecule's canonical SMILES (hydrogens removed) if it is valid and one fragment, else None;
    ``explicit_hydrogens=False`` lets RDKit add the implicit hydrogens of a model without them."""
    return _validity(data, implicit=not explicit_hydrogens)


def _bond_lengths(objects: Sequence) -> dict[int, np.ndarray]:
    out = {k: [] for k in range(1, 5)}
    for d in objects:
        if d.edge_index.numel():
            length = (d.pos[d.edge_index[0]] - d.pos[d.edge_index[1]]).norm(dim=1)
            for k in range(1, 5):
                out[k].append(length[d.bond_order == k].numpy())
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}


def _bond_angles(objects: Sequence) -> np.ndarray:
    angles = []
    for d in objects:
        neighbours = [[] for _ in range(len(d.z))]
        for i, j in d.edge_index.T.tolist():
            neighbours[i].append(j)
            neighbours[j].append(i)
        for centre, around in enumerate(neighbours):
            for a in range(len(around)):
                for b in range(a + 1, len(around)):
                    u, v = d.pos[around[a]] - d.pos[centre], d.pos[around[b]] - d.pos[centre]
                    cos = float((u @ v) / (u.norm() * v.norm()).clamp_min(1e-9))
                    angles.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.asarray(angles)


def geometry_distances(samples: Sequence, reference: Sequence) -> dict[str, float]:
    """W1 distances of bond lengths (by type, where both sets have bonds of that type) and angles."""
    from scipy.stats import wasserstein_distance

    out = {}
    mine, theirs = _bond_lengths(samples), _bond_lengths(reference)
    for k, name in zip(range(1, 5), ("single", "double", "triple", "aromatic")):
        if len(mine[k]) and len(theirs[k]):
            out[f"w1_bond_length_{name}"] = float(wasserstein_distance(mine[k], theirs[k]))
    a, b = _bond_angles(samples), _bond_angles(reference)
    if len(a) and len(b):
        out["w1_bond_angle"] = float(wasserstein_distance(a, b))
    return out


def evaluate_joint(samples: Sequence, reference: Sequence = (), *, training_smiles: set[str] | None = None,
                   perceive: bool = True, explicit_hydrogens: bool = True) -> dict[str, float]:
    """Both protocols' metrics (fractions in [0, 1]) and the geometry distances to ``reference``.
    ``explicit_hydrogens=False`` (a model without hydrogens): validity lets RDKit add implicit
    hydrogens (then equal to ``validity_lenient``) and stability, which needs every hydrogen, is left out."""
    from rdkit import RDLogger

    from .metrics import evaluate

    RDLogger.DisableLog("rdApp.*")
    strict = [_validity(d, implicit=False) for d in samples]
    lenient = [_validity(d, implicit=True) for d in samples]
    valid = strict if explicit_hydrogens else lenient
    valid = [s for s in valid if s is not None]
    out = {
        "validity": len(valid) / max(len(samples), 1),
        "validity_lenient": sum(s is not None for s in lenient) / max(len(samples), 1),
        "uniqueness": len(set(valid)) / len(valid) if valid else 0.0,
    }
    if explicit_hydrogens:  # without hydrogens, valences are incomplete by design: no stability
        stable = [generated_stability(d) for d in samples]
        out["atom_stability"] = float(torch.cat(stable).double().mean()) if stable else 0.0
        out["molecule_stability"] = float(np.mean([bool(s.all()) for s in stable])) if stable else 0.0
    if training_smiles is not None:
        out["novelty"] = len(set(valid) - training_smiles) / len(set(valid)) if valid else 0.0
    if perceive and explicit_hydrogens:  # distance tables need every atom, hydrogens included
        perceived = evaluate(samples, perceive_bonds=True).as_dict()
        out.update({f"perceived_{k}": v for k, v in perceived.items()})
    if len(reference):
        out.update(geometry_distances(samples, reference))
    return out


__all__ = ["canonical_smiles", "evaluate_joint", "generated_stability", "geometry_distances", "to_mol", "write_xyz"]

"""Bond orders and formal charges of molecules with 3D coordinates, for generators that produce
positions, atom types, charges and bonds jointly (MiDi, EQGAT-diff), and QM9's set of them.

Bond types follow MiDi and EQGAT-diff: 0 none, 1 single, 2 double, 3 triple, 4 aromatic (RDKit's
aromaticity after sanitisation); every ``BondSet`` also holds the Kekule form (aromatic bonds as 1/2).
All hydrogens are explicit atoms: RDKit molecules are built with ``SetNoImplicit(True)``, so a
missing hydrogen shows up as a radical, never as an invented implicit hydrogen.

Where a molecule's bonds come from (``SOURCES``), tried in this order:
- "perceived": RDKit's ``DetermineBonds`` on the geometry (connect-the-dots connectivity, then bond
  orders and charges for the total charge) sanitises and gives the dataset's SMILES (status "ok");
- "smiles": else the SMILES's bond orders and charges are mapped onto the geometry's connectivity
  (connect-the-dots, then extended Hueckel) where the two graphs are the same, hydrogen counts
  included; among symmetric mappings the one with the higher orders on the shorter bonds wins, so a
  carboxylate's double bond lands on its shorter C-O;
- "perceived_unmatched": no mapping exists (the geometry is another molecule than its SMILES) but
  perception gives a valid molecule: its bonds describe the coordinates, so they are kept;
- "unassigned": nothing worked; the molecule has no bonds and should be left out of training;
- "given": read from a file (``read_bonded_sdf``).
The status of the first perception ("ok", "mismatch", "failed", ``STATUSES``) is kept as well.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from rdkit import Chem, RDLogger
from rdkit.Chem import rdDetermineBonds
from rdkit.Geometry import Point3D
from torch import Tensor

from .bond_set import BOND_TYPES, SOURCES, STATUSES, BondSet, qm9_bonds  # noqa: F401 (re-exported)
from .bonds import SINGLE_BOND_PM, SYMBOLS
from .data import MoleculeSet

_RDKIT_BOND = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE, 4: Chem.BondType.AROMATIC}
_ORDER = {bond_type: order for order, bond_type in _RDKIT_BOND.items()}
# Caps the exponential bond-order search; no QM9 molecule needs more.
_MAX_ITERATIONS = 100_000
_MAX_MATCHES = 1_000


def _atoms(z: Sequence[int], pos: np.ndarray | None, charge: Sequence[int] | None = None) -> Chem.RWMol:
    """Atoms (no bonds) that never get implicit hydrogens, with a 3D conformer when ``pos[n, 3]`` is given."""
    mol = Chem.RWMol()
    for k, number in enumerate(z):
        atom = Chem.Atom(int(number))
        atom.SetNoImplicit(True)
        atom.SetFormalCharge(0 if charge is None else int(charge[k]))
        mol.AddAtom(atom)
    if pos is not None:
        conformer = Chem.Conformer(len(z))
        for k, xyz in enumerate(np.asarray(pos, dtype=np.float64)):
            conformer.SetAtomPosition(k, Point3D(*map(float, xyz)))
        conformer.Set3D(True)
        mol.AddConformer(conformer, assignId=True)
    return mol


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """Mute file descriptors 1 and 2: extended Hueckel (YAeHMOP) prints a warning per short contact."""
    sys.stdout.flush(), sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1), os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1), os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def _connected(z: Sequence[int], pos: np.ndarray, *, hueckel: bool, total_charge: int) -> Chem.RWMol | None:
    """The atoms with single bonds wherever the geometry says they are bonded, or None on failure."""
    mol = _atoms(z, pos)
    try:
        if hueckel:
            with _silenced():
                rdDetermineBonds.DetermineConnectivity(mol, useHueckel=True, charge=total_charge)
        else:
            rdDetermineBonds.DetermineConnectivity(mol)
    except Exception:  # RDKit raises ValueError and RuntimeError for geometries it cannot handle
        return None
    return mol


def _sanitized(mol: Chem.Mol) -> Chem.Mol | None:
    """A strictly sanitised copy with no implicit hydrogens, or None if RDKit rejects it."""
    mol = Chem.RWMol(mol)
    for atom in mol.GetAtoms():
        atom.SetNoImplicit(True)
        atom.SetNumExplicitHs(0)
    try:
        Chem.SanitizeMol(mol)
    except Exception:  # valence, kekulisation and aromaticity errors have different types
        return None
    return mol.GetMol()


def _perceived(connected: Chem.Mol, total_charge: int) -> Chem.Mol | None:
    mol = Chem.RWMol(connected)
    try:
        rdDetermineBonds.DetermineBondOrders(mol, charge=total_charge, embedChiral=False,
                                             maxIterations=_MAX_ITERATIONS)
    except Exception:  # no assignment of orders and charges reaches the total charge
        return None
    return _sanitized(mol)


def _key(mol: Chem.Mol) -> str:
    """Canonical SMILES without stereo and hydrogens, the same whatever way ``mol`` was built."""
    mol = Chem.Mol(mol)
    Chem.RemoveStereochemistry(mol)
    # Written, parsed and written again: RemoveHs keeps stereo-defining hydrogens and bracket atoms.
    return Chem.CanonSmiles(Chem.MolToSmiles(Chem.RemoveHs(mol, sanitize=False), isomericSmiles=False),
                            useChiral=False)


def _smiles_key(smiles: str) -> str | None:
    mol = Chem.MolFromSmiles(smiles)
    return None if mol is None else _key(mol)


def _reference_length(a: int, b: int) -> float:
    pair = (SYMBOLS.get(a, ""), SYMBOLS.get(b, ""))
    return float(SINGLE_BOND_PM.get(pair) or SINGLE_BOND_PM.get(pair[::-1]) or 150.0) / 100


def _mapped_smiles(connected: Chem.Mol, smiles: str, pos: np.ndarray) -> Chem.Mol | None:
    """``connected`` with the bond orders and charges of ``smiles``, if its heavy-atom graph and
    hydrogen counts are those of the SMILES, else None."""
    template = Chem.MolFromSmiles(smiles)
    if template is None:
        return None
    Chem.Kekulize(template, clearAromaticFlags=True)
    z = [atom.GetAtomicNum() for atom in connected.GetAtoms()]
    heavy = [k for k, n in enumerate(z) if n != 1]
    # Hydrogens are matched through their one heavy neighbour, as that atom's hydrogen count.
    if any(len(a.GetNeighbors()) != 1 or a.GetNeighbors()[0].GetAtomicNum() == 1
           for a in connected.GetAtoms() if a.GetAtomicNum() == 1):
        return None
    target = Chem.RemoveAllHs(connected, sanitize=False)  # keeps the heavy atoms' order
    query = Chem.RWMol(template)
    for bond in query.GetBonds():
        bond.SetBondType(Chem.BondType.SINGLE)
    for atom in query.GetAtoms():
        atom.SetFormalCharge(0)  # a charged query atom only matches atoms of that charge
    if target.GetNumAtoms() != query.GetNumAtoms() or target.GetNumBonds() != query.GetNumBonds():
        return None
    Chem.FastFindRings(target), Chem.FastFindRings(query)
    best, best_score = None, float("inf")
    for match in target.GetSubstructMatches(query, uniquify=False, useChirality=False, maxMatches=_MAX_MATCHES):
        if any(target.GetAtomWithIdx(match[q]).GetNumExplicitHs() != a.GetTotalNumHs()
               for q, a in enumerate(template.GetAtoms())):
            continue
        score = 0.0  # bond orders times relative lengths: least when the higher orders are the shorter bonds
        for bond in template.GetBonds():
            i, j = heavy[match[bond.GetBeginAtomIdx()]], heavy[match[bond.GetEndAtomIdx()]]
            score += _ORDER[bond.GetBondType()] * float(np.linalg.norm(pos[i] - pos[j])) / _reference_length(z[i], z[j])
        if score < best_score:
            best, best_score = match, score
    if best is None:
        return None
    result = Chem.RWMol(connected)
    for q, atom in enumerate(template.GetAtoms()):
        result.GetAtomWithIdx(heavy[best[q]]).SetFormalCharge(atom.GetFormalCharge())
    for bond in template.GetBonds():
        i, j = heavy[best[bond.GetBeginAtomIdx()]], heavy[best[bond.GetEndAtomIdx()]]
        result.GetBondBetweenAtoms(i, j).SetBondType(bond.GetBondType())
    return _sanitized(result)


def _bond_lists(mol: Chem.Mol) -> tuple[list[tuple[int, int]], list[int], list[int], list[int]]:
    """Sorted pairs i < j, their orders (aromatic = 4), their Kekule orders, and atom charges."""
    kekule = Chem.RWMol(mol)
    Chem.Kekulize(kekule, clearAromaticFlags=True)
    rows = sorted((min(b.GetBeginAtomIdx(), b.GetEndAtomIdx()), max(b.GetBeginAtomIdx(), b.GetEndAtomIdx()),
                   4 if b.GetIsAromatic() else _ORDER[b.GetBondType()],
                   _ORDER[kekule.GetBondWithIdx(b.GetIdx()).GetBondType()]) for b in mol.GetBonds())
    return ([(i, j) for i, j, _, _ in rows], [r[2] for r in rows], [r[3] for r in rows],
            [a.GetFormalCharge() for a in mol.GetAtoms()])


def _perception(z: Sequence[int], pos: np.ndarray, smiles: str | None,
                total_charge: int) -> tuple[Chem.Mol | None, str]:
    """The molecule ``DetermineBonds`` perceives (None if it fails) and its status."""
    connected = _connected(z, pos, hueckel=False, total_charge=total_charge)
    mol = None if connected is None else _perceived(connected, total_charge)
    if mol is None:
        return None, "failed"
    return mol, "ok" if smiles is None or _key(mol) == _smiles_key(smiles) else "mismatch"


def _assign(z: Sequence[int], pos: np.ndarray, smiles: str | None, total_charge: int = 0) -> tuple:
    """Bonds of one molecule as plain lists: (pairs, orders, Kekule orders, charges, status, source)."""
    perceived, status = _perception(z, pos, smiles, total_charge)
    if status == "ok":
        return (*_bond_lists(perceived), STATUSES.index(status), SOURCES.index("perceived"))
    # Hueckel connectivity costs ~5x more than connect-the-dots; only the few failures pay for it.
    for hueckel in (False, True):
        connected = _connected(z, pos, hueckel=hueckel, total_charge=total_charge)
        mapped = _mapped_smiles(connected, smiles, pos) if smiles is not None and connected is not None else None
        if mapped is not None:
            return (*_bond_lists(mapped), STATUSES.index(status), SOURCES.index("smiles"))
    if perceived is None and connected is not None:
        perceived = _perceived(connected, total_charge)
    if perceived is None:
        return [], [], [], [0] * len(z), STATUSES.index(status), SOURCES.index("unassigned")
    source = "perceived" if smiles is None else "perceived_unmatched"
    return (*_bond_lists(perceived), STATUSES.index(status), SOURCES.index(source))


def _edge_tensors(pairs: list, orders: list, charges: list) -> tuple[Tensor, Tensor, Tensor]:
    return (torch.tensor(pairs, dtype=torch.long).reshape(-1, 2), torch.tensor(orders, dtype=torch.long),
            torch.tensor(charges, dtype=torch.long))


def perceive_bonds(z: Tensor | Sequence[int], pos: Tensor | np.ndarray, total_charge: int = 0,
                   smiles: str | None = None, *, kekulize: bool = False) -> tuple[Tensor, Tensor, Tensor, str]:
    """RDKit's bond perception (``DetermineBonds``) on one geometry, checked against a SMILES.

    ``z[n]`` atomic numbers, ``pos[n, 3]`` Angstrom, all hydrogens explicit. Returns ``edges[E, 2]``
    (i < j), ``order[E]`` in 1..4 (1..3 with ``kekulize``), formal ``charge[n]`` and the status:
    "ok" (sanitises and, if ``smiles`` is given, has its canonical SMILES, stereo ignored),
    "mismatch" (sanitises but is another molecule or another charge placement) or "failed" (no
    bonds, all charges zero)."""
    z = [int(n) for n in z]
    mol, status = _perception(z, np.asarray(pos, dtype=np.float64), smiles, total_charge)
    pairs, aromatic, kekule, charges = _bond_lists(mol) if mol is not None else ([], [], [], [0] * len(z))
    return (*_edge_tensors(pairs, kekule if kekulize else aromatic, charges), status)


def assign_bonds(z: Tensor | Sequence[int], pos: Tensor | np.ndarray, smiles: str | None = None, *,
                 total_charge: int = 0, kekulize: bool = False) -> tuple[Tensor, Tensor, Tensor, str, str]:
    """``perceive_bonds`` with the fallbacks of the module docstring: ``edges[E, 2]``, ``order[E]``,
    ``charge[n]``, the perception status and the source of the returned bonds (``SOURCES``)."""
    pairs, aromatic, kekule, charges, status, source = _assign([int(n) for n in z], np.asarray(pos, dtype=np.float64),
                                                                smiles, total_charge)
    return (*_edge_tensors(pairs, kekule if kekulize else aromatic, charges), STATUSES[status], SOURCES[source])


def _pack(counts: Tensor, z: Tensor, results: Sequence[tuple]) -> BondSet:
    """A ``BondSet`` from one ``_assign``-style tuple per molecule."""
    def column(k: int) -> Tensor:
        return torch.tensor([value for r in results for value in r[k]], dtype=torch.long)

    return BondSet(counts, z, column(3), torch.tensor([len(r[0]) for r in results]), column(0).reshape(-1, 2),
                   column(1), column(2), torch.tensor([r[4] for r in results]), torch.tensor([r[5] for r in results]))


def _assign_task(task: tuple) -> tuple:
    RDLogger.DisableLog("rdApp.*")  # failures are counted, not printed
    return _assign(*task)


def perceive_all(molecules: MoleculeSet, *, total_charges: Sequence[int] | None = None, workers: int = 2,
                 progress: bool = True) -> BondSet:
    """``assign_bonds`` for every molecule (checked against ``molecules.smiles`` when present), in
    ``workers`` processes (at most 2: the machines have 2 cores), with a progress bar."""
    from tqdm.auto import tqdm

    tasks = ((molecules.z[molecules.ptr[m]:molecules.ptr[m + 1]].tolist(),
              molecules.pos[molecules.ptr[m]:molecules.ptr[m + 1]].double().numpy(),
              None if molecules.smiles is None else molecules.smiles[m],
              0 if total_charges is None else int(total_charges[m])) for m in range(len(molecules)))
    bar = tqdm(total=len(molecules), desc="bonds", disable=not progress, mininterval=5)
    # fork, as torch's DataLoader: workers only run RDKit, and spawn would re-run an unguarded script.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    results = []
    with multiprocessing.get_context(method).Pool(min(workers, 2)) if workers > 1 else contextlib.nullcontext() as pool:
        for result in (pool.imap(_assign_task, tasks, chunksize=64) if pool else map(_assign_task, tasks)):
            results.append(result)
            bar.update()
    bar.close()
    return _pack(molecules.counts, molecules.z, results)


def to_rdkit(z: Tensor | Sequence[int], pos: Tensor | np.ndarray | None, charge: Tensor | Sequence[int],
             edges: Tensor, order: Tensor, *, sanitize: bool = True) -> Chem.Mol:
    """An RDKit molecule of ``z[n]``, ``pos[n, 3]`` (None: no conformer), formal ``charge[n]`` and
    bonds ``edges[E, 2]`` of types ``order[E]`` in 1..4, hydrogens explicit and none implicit.
    ``sanitize`` runs RDKit's strict sanitisation, which raises for impossible valences."""
    mol = _atoms([int(n) for n in z], None if pos is None else np.asarray(pos, dtype=np.float64), list(charge))
    for (i, j), bond_type in zip(torch.as_tensor(edges).tolist(), torch.as_tensor(order).tolist()):
        mol.AddBond(int(i), int(j), _RDKIT_BOND[int(bond_type)])
        if bond_type == 4:
            bond = mol.GetBondBetweenAtoms(int(i), int(j))
            bond.SetIsAromatic(True)
            bond.GetBeginAtom().SetIsAromatic(True), bond.GetEndAtom().SetIsAromatic(True)
    mol = mol.GetMol()
    if sanitize:
        Chem.SanitizeMol(mol)
    else:
        mol.UpdatePropertyCache(strict=False)
    return mol


def from_rdkit(mol: Chem.Mol, *, kekulize: bool = False) -> tuple[Tensor, Tensor | None, Tensor, Tensor, Tensor]:
    """``(z[n], pos[n, 3] or None, charge[n], edges[E, 2], order[E])`` of a molecule whose hydrogens
    are all explicit atoms (``Chem.AddHs(mol, addCoords=True)`` first if not)."""
    implicit = [a.GetIdx() for a in mol.GetAtoms() if a.GetNumImplicitHs() or a.GetNumExplicitHs()]
    if implicit:
        raise ValueError(f"atoms {implicit[:10]} carry hydrogens that are not atoms; "
                         "call Chem.AddHs(mol, addCoords=True) first")
    pairs, aromatic, kekule, charges = _bond_lists(mol)
    pos = torch.tensor(mol.GetConformer().GetPositions(), dtype=torch.float32) if mol.GetNumConformers() else None
    edges, order, charge = _edge_tensors(pairs, kekule if kekulize else aromatic, charges)
    return torch.tensor([a.GetAtomicNum() for a in mol.GetAtoms()]), pos, charge, edges, order


def write_bonded_sdf(molecules: MoleculeSet, bonds: BondSet, path: str | Path, *,
                     names: Sequence[str] | None = None) -> Path:
    """An SDF file of ``molecules`` with the given bonds and formal charges (bond blocks in Kekule
    form, which every reader understands; aromaticity is perceived again on reading)."""
    if not torch.equal(molecules.counts, bonds.counts) or not torch.equal(molecules.z, bonds.z):
        raise ValueError("molecules and bonds describe different atoms; compute the bonds from these molecules")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with Chem.SDWriter(str(path)) as writer:
        writer.SetKekulize(False)
        for m in range(len(molecules)):
            a, b = int(molecules.ptr[m]), int(molecules.ptr[m + 1])
            e, f = int(bonds.edge_ptr[m]), int(bonds.edge_ptr[m + 1])
            mol = to_rdkit(molecules.z[a:b], molecules.pos[a:b], bonds.charge[a:b], bonds.edges[e:f],
                           bonds.order_kekule[e:f], sanitize=False)
            mol.SetProp("_Name", names[m] if names is not None else f"molecule_{m}")
            writer.write(mol)
    return path


def read_bonded_sdf(path: str | Path) -> tuple[MoleculeSet, BondSet]:
    """Molecules, bonds and charges of an SDF file with explicit hydrogens (as written by
    ``write_bonded_sdf``). Records RDKit cannot sanitise raise, naming the record."""
    atoms, results = [], []
    for index, mol in enumerate(Chem.SDMolSupplier(str(path), removeHs=False, sanitize=True)):
        if mol is None:
            raise ValueError(f"{path}: record {index} could not be read or sanitised")
        z, pos, _, _, _ = from_rdkit(mol)
        atoms.append((z, pos))
        results.append((*_bond_lists(mol), STATUSES.index("ok"), SOURCES.index("given")))
    packed = MoleculeSet(torch.cat([p for _, p in atoms]), torch.cat([z for z, _ in atoms]),
                         torch.tensor([len(z) for z, _ in atoms]))
    bonds = _pack(packed.counts, packed.z, results)
    packed.charge = bonds.charge
    return packed, bonds
